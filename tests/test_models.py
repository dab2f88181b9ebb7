"""Models: forward/backward on tiny inputs, parameter counts, timm and local weights."""

import pytest
import torch

from augloss import models


@pytest.mark.parametrize("name, options, params", [
    ("surrogate", {}, 30426),
    ("wrn", {"depth": 10, "width": 1}, 77850),
    ("wrn", {"depth": 16, "width": 2, "dropout": 0.3}, None),
    ("timm:test_efficientnet", {}, None),
])
def test_forward_backward_on_tiny_inputs(name, options, params):
    torch.manual_seed(0)
    model = models.create(name, 10, **options)
    if params is not None:
        assert models.count_parameters(model) == params
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, 10)
    out.logsumexp(-1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters() if p.requires_grad)


def test_surrogate_matches_the_earlier_code():
    m = models.create("surrogate", 10)
    bns = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    assert len(bns) == 6 and all(b.momentum == 0.01 and b.eps == 1e-3 for b in bns)
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 16, 16, 16, 32, 32, 32, 32]
    assert all(c.bias is not None and float(c.bias.detach().abs().sum()) == 0 for c in convs)
    assert any(isinstance(a, torch.nn.SiLU) for a in m.modules())
    assert m.dropout.p == 0.5


def test_wrn_28_10_has_36_5_million_parameters():
    m = models.create("wrn", 10, depth=28, width=10)
    assert abs(models.count_parameters(m) - 36.5e6) < 0.1e6
    with pytest.raises(ValueError, match="6n \\+ 4"):
        models.create("wrn", 10, depth=27)


def test_unknown_models_and_bad_class_counts():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        models.create("resnet", 10)
    with pytest.raises(ValueError, match="num_classes"):
        models.create("surrogate", 1)


def test_local_weights_file_loads_through_timm(tmp_path):
    torch.manual_seed(1)
    source = models.create("timm:test_efficientnet", 5)
    path = tmp_path / "weights.safetensors"
    models.save_weights(source, path)
    torch.manual_seed(2)
    loaded = models.create("timm:test_efficientnet", 7, weights=str(path))
    fresh = models.create("timm:test_efficientnet", 7)
    src, got, new = source.state_dict(), loaded.state_dict(), fresh.state_dict()
    body = [k for k in src if not k.startswith("classifier")]
    assert body and all(torch.equal(src[k], got[k]) for k in body)
    assert not all(torch.equal(new[k], got[k]) for k in body)
    assert got["classifier.weight"].shape[0] == 7  # a fresh head for the new classes


def test_missing_weights_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="copy the model.safetensors file"):
        models.create("efficientnetv2_s", 10, weights=str(tmp_path / "none.safetensors"))


def test_efficientnetv2_s_is_timms_tf_port():
    m = models.create("efficientnetv2_s", 196)
    assert m.default_cfg["architecture"] == "tf_efficientnetv2_s"
    assert m.num_classes == 196
    assert 20e6 < models.count_parameters(m) < 22e6


@pytest.mark.parametrize("tag", ["in1k", "in21k_ft_in1k"])
def test_data_config_comes_from_the_weights_pretrained_config(tag):
    from timm.data import resolve_data_config

    m = models.create("efficientnetv2_s", 102, tag=tag)
    assert models.weights_tag(m) == f"tf_efficientnetv2_s.{tag}"
    dc = models.data_config(m)
    timm_cfg = resolve_data_config({}, model=m)
    assert dc["input_size"] == list(timm_cfg["input_size"]) and dc["mean"] == list(timm_cfg["mean"])
    assert (dc["input_size"][-1], dc["interpolation"], dc["crop_pct"]) == (300, "bicubic", 1.0)
    pre = models.preprocessing(m, {"image_size": 224})
    assert pre["image_size"] == 224 and pre["std"] == [0.5] * 3 and pre["overridden"] == ["image_size"]
    with pytest.raises(ValueError, match="only timm models"):
        models.preprocessing(models.create("wrn", 10, depth=10, width=1))


def test_wrn_bn_momentum_reaches_every_batchnorm():
    from torch import nn

    from augloss import models

    m = models.create("wrn", 10, depth=10, width=1, bn_momentum=0.5)
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert bns and all(b.momentum == 0.5 for b in bns)
    assert all(b.momentum == 0.1 for b in models.create("wrn", 10, depth=10).modules()
               if isinstance(b, nn.BatchNorm2d))

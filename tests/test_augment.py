"""The five augmentation techniques on a batch."""

import pytest
import torch

from augloss import augment as A
from augloss import losses
from augloss.config import AugmentConfig
from augloss.names import TECHNIQUES


def _images(n=64, size=32):
    g = torch.Generator().manual_seed(0)
    # Bright images (no zeros) so that a Cutout hole is unambiguous.
    return torch.randint(50, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def _apply(tech, images, seed=0):
    torch.manual_seed(seed)
    return torch.stack([tech.train_transform(x) for x in images])


def test_the_paper_experiment_runs_the_papers_five_techniques():
    """The paper's five (base, cutout, mixup, RandAugment, all), in its order; the registry may
    hold more, which config.yaml does not run."""
    import yaml

    from tests.helpers import REPO

    paper = yaml.safe_load((REPO / "config.yaml").read_text())["augmentations"]
    assert paper == ["base", "cutout", "mixup", "randaugment", "all"]
    assert list(TECHNIQUES[:5]) == paper
    with pytest.raises(ValueError, match="unknown augmentation 'autoaugment'; techniques are "
                                         + ", ".join(TECHNIQUES)):
        A.build("autoaugment")


@pytest.mark.parametrize("name", TECHNIQUES)
def test_shapes_dtypes_and_seeded_reproducibility(name):
    tech = A.build(name)
    x = _images()
    a, b, c = _apply(tech, x, 0), _apply(tech, x, 0), _apply(tech, x, 1)
    assert a.shape == (64, 3, 32, 32) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert tech.mixup == (name in ("mixup", "all"))
    ev = torch.stack([tech.eval_transform(im) for im in x[:4]])
    torch.testing.assert_close(ev, x[:4].float() / 255)  # evaluation is deterministic


def test_base_flips_about_half_and_crops_with_padding():
    x = _images(400)
    out = _apply(A.build("base", AugmentConfig(pad=0)), x)  # no padding: only the flip acts
    flipped = sum(torch.allclose(o, (im.float() / 255).flip(-1)) for o, im in zip(out, x))
    same = sum(torch.allclose(o, im.float() / 255) for o, im in zip(out, x))
    assert same + flipped == 400 and 160 < flipped < 240
    padded = (_apply(A.build("base"), x) == 0).flatten(1).any(1).float().mean()
    assert padded > 0.9  # 80 of 81 crop offsets bring in zero padding


def test_cutout_zeroes_one_square():
    tech = A.build("cutout", AugmentConfig(pad=0))
    x = _images(200)
    torch.manual_seed(0)
    full = 0
    for im in x:
        out = tech.train_transform(im)
        zero = (out == 0).all(0)
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert zero.sum() > 0
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert zero.sum() == h * w  # one axis-aligned rectangle (a square clipped at borders)
        assert h <= 16 and w <= 16
        full += int(h == 16 and w == 16)
    assert full > 40  # unclipped holes are exactly 16 x 16


def test_cutout_size_scales_with_images_and_is_configurable():
    def cutout(cfg):
        return [t.size for t in A.build("cutout", cfg).train_transform.transforms
                if isinstance(t, A.Cutout)]

    assert cutout(AugmentConfig(cutout_size=8)) == [8]
    assert cutout(AugmentConfig(image_size=64)) == [32]
    assert cutout(AugmentConfig(image_size=80)) == [40]  # 16 px of 32, at 80 px


def test_surrogate_input_at_80_px_resizes_first_and_scales_like_the_earlier_code():
    cfg = AugmentConfig(image_size=80, normalize="tf")
    x = _images(6)
    ev = torch.stack([A.build("base", cfg).eval_transform(im) for im in x])
    assert ev.shape == (6, 3, 80, 80)
    from torchvision.transforms.v2 import functional as TF

    resized = TF.resize(x, [80, 80], antialias=True).float()
    torch.testing.assert_close(ev, (resized - 127.5) / 128, atol=1e-5, rtol=0)
    pads = [t.padding for t in A.build("base", cfg).train_transform.transforms
            if type(t).__name__ == "RandomCrop"]
    assert pads == [[10, 10, 10, 10]]  # 4 px of 32, at 80 px
    out = _apply(A.build("all", cfg), x)
    assert out.shape == (6, 3, 80, 80) and out.min() >= -1 and out.max() <= 1


def test_square_crop_takes_the_shorter_side_and_passes_square_images():
    torch.manual_seed(0)
    wide = torch.arange(2 * 3 * 10, dtype=torch.uint8).reshape(1, 3, 2, 10)[0].repeat(1, 3, 1)
    crops = {tuple(A.SquareCrop()(wide)[0, 0].tolist()) for _ in range(50)}
    assert all(len(c) == 6 for c in crops) and len(crops) == 5  # 5 offsets of a 6 x 6 square
    assert A.SquareCrop(random=False)(wide).shape == (3, 6, 6)
    square = _images(1)[0]
    state = torch.get_rng_state()
    assert A.SquareCrop()(square) is square and torch.equal(torch.get_rng_state(), state)


def test_normalisations_and_their_errors():
    x = _images(2)
    tf = A.build("none", AugmentConfig(normalize="tf")).eval_transform(x[0])
    torch.testing.assert_close(tf, (x[0].float() - 127.5) / 128, atol=1e-5, rtol=0)
    ms = AugmentConfig(normalize="mean_std", mean=(0.5,) * 3, std=(0.5,) * 3)
    torch.testing.assert_close(A.build("none", ms).eval_transform(x[0]),
                               x[0].float() / 127.5 - 1, atol=1e-5, rtol=0)
    for bad, match in [(dict(normalize="mean_std"), "mean_std needs"),
                       (dict(mean=(0.5,) * 3, std=(0.5,) * 3), "mean_std needs"),
                       (dict(normalize="z"), "normalize"),
                       (dict(interpolation="lanczos"), "interpolation"),
                       (dict(crop_pct=0), "crop_pct")]:
        with pytest.raises(ValueError, match=match):
            AugmentConfig(**bad)


def test_finetune_evaluation_resizes_by_crop_pct_with_the_interpolation():
    cfg = AugmentConfig(image_size=40, finetune=True, interpolation="bicubic", crop_pct=0.8)
    resize, crop = A.build("base", cfg).eval_transform.transforms[:2]
    assert resize.size == [50] and resize.interpolation.value == "bicubic"
    assert list(crop.size) == [40, 40]


def test_mixup_soft_targets_and_lambda_statistics():
    x = torch.rand(32, 3, 8, 8)
    y = torch.randint(0, 10, (32,))
    torch.manual_seed(0)
    lams = []
    for _ in range(400):
        m = A.mixup(x, y, alpha=1.0)
        lams.append(m.lam)
    soft = m.soft_targets(10)
    torch.testing.assert_close(soft.sum(1), torch.ones(32))
    lams = torch.tensor(lams)
    assert abs(lams.mean() - 0.5) < 0.05 and abs(lams.var() - 1 / 12) < 0.02  # Beta(1, 1)
    rest = (m.images - m.lam * x) / (1 - m.lam)  # the partner images: a permutation of x
    torch.testing.assert_close(rest.flatten(1).sum(1).sort().values,
                               x.flatten(1).sum(1).sort().values, rtol=1e-4, atol=1e-3)
    torch.manual_seed(1)
    small = torch.tensor([A.mixup(x, y, alpha=0.2).lam for _ in range(400)])
    assert ((small < 0.1) | (small > 0.9)).float().mean() > 0.5  # alpha < 1: mostly near 0 or 1


def test_mixup_modes_coincide_for_ce_and_differ_for_nonlinear_losses():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    y = torch.randint(0, 5, (16,))
    m = A.mixup(x, y, alpha=1.0)
    logits = torch.randn(16, 5)
    ce = losses.get("ce")
    torch.testing.assert_close(A.mixed_loss(ce, logits, m, "targets"),
                               A.mixed_loss(ce, logits, m, "losses"))
    sq = losses.get("square(y) * p")  # non-linear in y
    assert not torch.allclose(A.mixed_loss(sq, logits, m, "targets"),
                              A.mixed_loss(sq, logits, m, "losses"))
    with pytest.raises(ValueError, match="mixup_mode"):
        A.mixed_loss(ce, logits, m, "both")


def test_finetune_geometry_and_config_validation():
    tech = A.build("randaugment", AugmentConfig(image_size=48, normalize="imagenet"))
    out = _apply(tech, _images(4, size=64))
    assert out.shape == (4, 3, 48, 48)
    assert float(out.min()) < 0  # ImageNet normalisation
    ev = tech.eval_transform(_images(1, size=64)[0])
    assert ev.shape == (3, 48, 48)
    with pytest.raises(ValueError, match="mixup_mode"):
        AugmentConfig(mixup_mode="labels")
    with pytest.raises(ValueError, match="mixup_alpha"):
        AugmentConfig(mixup_alpha=0)
    with pytest.raises(ValueError, match="randaugment_m"):
        AugmentConfig(randaugment_m=31)

"""Loss modules: cross-entropy equivalence, targets, label smoothing, weights and the registry."""

import pytest
import torch
import torch.nn.functional as F

from augloss import losses as L
from augloss.losses import REGISTRY, LossSyntaxError


def _batch(seed=0, b=16, c=10):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, generator=g) * 2
    hard = torch.randint(0, c, (b,), generator=g)
    soft = torch.softmax(torch.randn(b, c, generator=g) * 3, dim=-1)
    return logits, hard, soft


@pytest.mark.parametrize("seed", range(5))
def test_ce_equals_torch_cross_entropy_for_hard_and_soft_targets(seed):
    logits, hard, soft = _batch(seed)
    ce = L.get("ce")
    torch.testing.assert_close(ce(logits, hard), F.cross_entropy(logits, hard), atol=1e-5, rtol=0)
    torch.testing.assert_close(ce(logits, soft), F.cross_entropy(logits, soft), atol=1e-5, rtol=0)


@pytest.mark.parametrize("ls", [0.1, 0.2])
def test_label_smoothing_matches_torch(ls):
    logits, hard, soft = _batch(3)
    ce = L.get("ce", label_smoothing=ls)
    torch.testing.assert_close(ce(logits, hard), F.cross_entropy(logits, hard, label_smoothing=ls),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(ce(logits, soft), F.cross_entropy(logits, soft, label_smoothing=ls),
                               atol=1e-5, rtol=0)


def test_ce_gradient_matches_torch():
    logits, hard, _ = _batch(4)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    L.get("ce")(a, hard).backward()
    F.cross_entropy(b, hard).backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=0)


def test_weighted_ce_matches_torch_with_probability_targets():
    logits, hard, soft = _batch(5, c=4)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    loss = L.get("weighted_ce", class_weights=w)
    # For probability targets torch applies the weights per class and averages over the batch.
    torch.testing.assert_close(loss(logits, soft), F.cross_entropy(logits, soft, weight=w),
                               atol=1e-5, rtol=0)
    # For index targets this is the batch mean of w[y] * CE, i.e. torch's weighted sum over B.
    want = F.cross_entropy(logits, hard, weight=w, reduction="sum") / len(hard)
    torch.testing.assert_close(loss(logits, hard), want, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs class_weights"):
        L.get("weighted_ce")
    with pytest.raises(ValueError, match="3 class weights for 4 classes"):
        L.get("ce", class_weights=[1.0, 1.0, 1.0])(logits, hard)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registry_loss_has_finite_gradients(name):
    kwargs = {"class_weights": torch.linspace(0.5, 2.0, 10)} if name == "weighted_ce" else {}
    loss = L.get(name, **kwargs)
    for seed in range(3):
        logits, hard, soft = _batch(seed)
        for target in (hard, soft):
            x = (logits * 5).requires_grad_()
            value = loss(x, target)
            value.backward()
            assert torch.isfinite(value) and torch.isfinite(x.grad).all()
            assert x.grad.abs().sum() > 0


def test_registry_losses_have_their_textbook_values():
    logits, hard, _ = _batch(7)
    p = torch.softmax(logits, dim=-1)
    pt = p.gather(1, hard[:, None]).squeeze(1)
    onehot = F.one_hot(hard, 10).float()
    expected = {
        "focal": (-(1 - pt) ** 2 * torch.log(pt)).mean(),
        "poly1": (F.cross_entropy(logits, hard, reduction="none") + (1 - pt)).mean(),
        "mse": ((onehot - p) ** 2).sum(1).mean(),
        "mae": (onehot - p).abs().sum(1).mean(),
        # Baikal as the earlier code's baseline: eps-guarded.
        "baikal": (-(torch.log(p + 1e-7) - onehot / (p + 1e-7))).sum(1).mean(),
    }
    for name, want in expected.items():
        torch.testing.assert_close(L.get(name)(logits, hard), want, atol=1e-4, rtol=1e-5)


def test_loss_runs_in_float32_under_autocast():
    logits, hard, _ = _batch(8)
    loss = L.get("ce")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(logits.bfloat16(), hard)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, F.cross_entropy(logits.bfloat16().float(), hard),
                               atol=1e-5, rtol=0)


def test_get_accepts_text_and_expr_and_names_its_loss():
    e = L.parse("square(y - p)")
    assert L.get(e).expr == e and L.get("square(y - p)").expr == e
    assert L.get("ce").name == "ce" and L.get(e).name == "square(y - p)"
    logits, hard, _ = _batch(9)
    assert L.get("mse")(logits, hard) == L.get("square(y - p)")(logits, hard)
    per_sample = L.get("ce").per_sample(logits, hard)
    assert per_sample.shape == (16,)


def test_bad_specs_and_targets_are_refused():
    with pytest.raises(LossSyntaxError, match="unknown loss name 'cee'"):
        L.get("cee")
    with pytest.raises(LossSyntaxError, match="position"):
        L.get("y * ln(")
    with pytest.raises(ValueError, match="does not use p"):
        L.get("y * 2")
    with pytest.raises(TypeError):
        L.get(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="label_smoothing"):
        L.get("ce", label_smoothing=1.5)
    logits, hard, soft = _batch(10)
    with pytest.raises(ValueError, match="soft targets must have shape"):
        L.get("ce")(logits, soft[:, :5])
    with pytest.raises(ValueError, match="class-index targets"):
        L.get("ce")(logits, hard[:, None])


def test_constant_and_input_free_subterms_broadcast():
    logits, hard, _ = _batch(11)
    # A term whose second operand is a constant subtree still yields [B, C] before the sum.
    value = L.get("p * exp(1) + 0 * y")(logits, hard)
    torch.testing.assert_close(value, torch.tensor(torch.e), atol=1e-5, rtol=0)


def test_expressions_use_the_guarded_log_and_registry_ce_the_exact_one():
    logits = torch.tensor([[-40.0, 0.0, 0.0]])
    target = torch.tensor([0])
    exact = L.get("ce")(logits, target)
    guarded = L.get("-(y * ln(p))")(logits, target)
    torch.testing.assert_close(exact, F.cross_entropy(logits, target))
    assert exact.item() > 40
    # ln(|p| + eps) bounds the loss at -ln(1e-7), as in the search space.
    assert guarded.item() == pytest.approx(-torch.log(torch.tensor(1e-7)).item(), rel=1e-4)
    assert L.get("ce").exact_log and not L.get("-(y * ln(p))").exact_log
    assert not L.get("baikal").exact_log

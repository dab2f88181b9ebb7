"""The 2-class integrity test, its two quirks and the expected outcomes of the reference."""

import numpy as np
import pytest

from augloss import losses as L
from augloss.losses import integrity, judge, parse


def test_probe_is_the_reference_curve():
    y, p = L.probe()
    assert y.shape == p.shape == (1000, 2)
    assert (y[:, 1] == 1).all() and (y[:, 0] == 0).all()
    assert p[0, 0].item() == pytest.approx(1e-7) and p[-1, 0].item() == pytest.approx(1 - 1e-7)
    assert np.allclose(p.sum(1).numpy(), 1.0)


def test_ce_is_accepted_unflipped():
    r = integrity(parse("-(y * ln(p))"))
    assert r.ok and not r.flip and r.reason == ""
    assert r.phenotype.shape == (1000,)
    assert r.phenotype.min() == 0.0 and r.phenotype.max() == 1.0
    assert r.phenotype[0] == 0.0 and r.phenotype[-1] == 1.0  # rises as the wrong class grows


def test_negated_ce_is_accepted_and_flipped():
    r = integrity(parse("y * ln(p)"))
    assert r.ok and r.flip
    # The phenotype of the flipped loss equals CE's.
    np.testing.assert_allclose(r.phenotype, integrity(parse("-(y * ln(p))")).phenotype, atol=1e-6)


def test_squared_error_is_accepted_unflipped():
    r = integrity(parse("square(y - p)"))
    assert r.ok and not r.flip


@pytest.mark.parametrize("text", ["1 + 0 * p", "y - y + p - p", "0 * p"])
def test_constants_are_rejected(text):
    r = integrity(parse(text))
    assert not r.ok and "constant" in r.reason


@pytest.mark.parametrize("text", ["square(p - 0.5)", "-square(p - 0.5)", "abs(p - 0.5)"])
def test_extremum_at_one_half_is_rejected(text):
    r = integrity(parse(text))
    assert not r.ok and "near p = 0.5" in r.reason


def test_u_shape_with_minimum_away_from_half_is_kept_and_cap_shape_flipped():
    # sum_c (p_c - .3)^2 is symmetric in q and 1 - q: its minimum sits at q = 0.5.
    assert not integrity(parse("square(p - 0.3)")).ok
    u = integrity(parse("square(p - y * 0.4)"))  # (q)^2 + (1-q-.4)^2: minimum at q = 0.3
    assert u.ok and not u.flip
    cap = integrity(parse("-square(p - y * 0.4)"))
    assert cap.ok and cap.flip


def test_more_than_one_turn_is_rejected():
    r = integrity(parse("sin(p * 20)"))
    assert not r.ok and "turns" in r.reason


def test_non_finite_curve_is_rejected():
    r = integrity(parse("p / 0 * exp(exp(exp(p * 10)))"))
    assert not r.ok and "non-finite" in r.reason


def _staircase(flat_steps, rising=True):
    v = np.linspace(0.0, 1.0, 1000).astype(np.float32)
    # Make `flat_steps` steps flat near the start (away from the centre window).
    for i in range(flat_steps):
        v[10 + 2 * i + 1] = v[10 + 2 * i]
    return v if rising else -v


@pytest.mark.parametrize("rising", [True, False])
def test_plateau_quirk_is_corrected_by_default_and_reproduced_on_request(rising):
    v = _staircase(3, rising)
    fixed = judge(v)
    faithful = judge(v, faithful_quirks=True)
    assert fixed.ok and faithful.ok
    assert fixed.quirk == faithful.quirk == "plateau"
    assert fixed.flip == (not rising)  # oriented like a strictly monotone curve
    assert faithful.flip == rising  # the earlier code: a non-decreasing curve gets flipped


def test_too_many_flat_steps_are_rejected():
    assert judge(_staircase(10)).ok
    r = judge(_staircase(11))
    assert not r.ok and "11 flat steps" in r.reason


def test_tiny_range_keeps_the_curve_unnormalised():
    v = np.linspace(0.0, 5e-5, 1000).astype(np.float32)
    r = judge(v)
    assert r.ok and not r.flip
    np.testing.assert_array_equal(r.phenotype, v)

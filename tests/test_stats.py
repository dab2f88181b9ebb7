"""augloss.stats against scipy and statsmodels: intervals, p-values, Holm, sign and Wilcoxon."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sp
from statsmodels.stats.multitest import multipletests

from augloss import stats
from augloss.tables import claims, collect, comparison


def test_paired_delta_matches_scipy_t_interval_and_p():
    a = {0: 0.91, 1: 0.93, 2: 0.90, 3: 0.95}
    b = {0: 0.90, 1: 0.91, 2: 0.905, 3: 0.92}
    d = stats.delta(a, b)
    diff = np.array([a[s] - b[s] for s in range(4)])
    assert d.test == "paired t" and d.n == 4
    assert d.delta == pytest.approx(diff.mean())
    assert d.p == pytest.approx(sp.ttest_rel(list(a.values()), list(b.values())).pvalue)
    low, high = sp.t.interval(0.95, 3, loc=diff.mean(), scale=sp.sem(diff))
    assert (d.low, d.high) == (pytest.approx(low), pytest.approx(high))
    assert d.half_width == pytest.approx((high - low) / 2)


def test_welch_delta_matches_scipy():
    a, b = {5: 0.93, 6: 0.95, 7: 0.90}, {0: 0.88, 1: 0.89, 2: 0.90}
    d = stats.delta(a, b)
    assert d.test == "Welch t"
    res = sp.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
    assert d.p == pytest.approx(res.pvalue)
    ci = res.confidence_interval(0.95)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


@pytest.mark.parametrize("a, b", [
    ({0: 0.87, 1: 0.88, 2: 0.89}, {0: 0.88, 1: 0.89, 2: 0.90}),  # constant paired difference
    ({0: 0.9, 1: 0.9}, {0: 0.8, 1: 0.8}),  # two zero-variance groups, paired
    ({5: 0.9, 6: 0.9}, {0: 0.8, 1: 0.8}),  # two zero-variance groups, unpaired
    ({0: 0.9}, {0: 0.8}),  # n = 1
    ({0: 0.9, 1: 0.8}, {4: 0.7}),  # one side n = 1, seeds do not pair
    ({0: 0.9, 1: 0.8}, {0: 0.9, 1: 0.8}),  # identical
])
def test_untestable_cells_have_no_p_value(a, b):
    d = stats.delta(a, b)
    assert d.test == stats.UNTESTABLE and d.p is None
    assert math.isnan(d.low) and math.isnan(d.high)


@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=12))
def test_holm_matches_statsmodels(ps):
    got = stats.holm(ps)
    testable = [p for p in ps if p is not None]
    if testable:
        want = iter(multipletests(testable, method="holm")[1])
        for g, p in zip(got, ps):
            if p is None:
                assert g is None
            else:
                assert g == pytest.approx(next(want), abs=1e-12)
    else:
        assert got == [None] * len(ps)


def test_claim_counts_and_tests_match_scipy():
    deltas = [0.02, 0.01, -0.005, 0.0, 0.03, 0.015, float("nan")]
    c = stats.claim(deltas)
    assert (c.cells, c.wins, c.ties, c.losses) == (6, 4, 1, 1)
    assert c.majority
    assert c.p_sign == pytest.approx(sp.binomtest(4, 5, 0.5).pvalue)
    assert c.p_wilcoxon == pytest.approx(sp.wilcoxon([0.02, 0.01, -0.005, 0.03, 0.015]).pvalue)
    assert c.mean_delta == pytest.approx(np.mean([0.02, 0.01, -0.005, 0.0, 0.03, 0.015]))
    none = stats.claim([0.0, 0.0])
    assert none.p_sign is None and none.p_wilcoxon is None and not none.majority
    assert not stats.claim([0.01, -0.01]).majority  # half is not a majority


def test_claims_table_and_files(tmp_path):
    from tests.helpers import write_runs

    df = collect.collect([write_runs(tmp_path / "runs")])
    t = comparison.comparison(df, "transfer")
    cl = claims.claims([t]).set_index("loss")
    assert list(cl.index) == ["focal", "evolved-cutout-1"]
    assert (cl.loc["focal", "wins"], cl.loc["focal", "losses"]) == (2, 0)
    assert cl.loc["focal", "p_sign"] == pytest.approx(sp.binomtest(2, 2, 0.5).pvalue)
    assert (cl.loc["evolved-cutout-1", "wins"], cl.loc["evolved-cutout-1", "losses"]) == (1, 1)
    assert not cl.loc["evolved-cutout-1", "majority"]
    paths = claims.write_claims(claims.claims([t]), tmp_path / "out" / "claims")
    md, csv, tex, html = (p.read_text() for p in paths)
    assert "### Claims, transfer" in md and "evolved[cutout]#1" in md and "majority" in md
    assert csv.startswith("stage,metric,loss,display,pooled_delta,pooled_ci_low,"
                          "pooled_ci_high,pooled_p,pooled_p_holm,tau2")
    assert ",cells,wins,ties,losses," in csv.splitlines()[0]
    assert r"\toprule" in tex and r"evolved[cutout]\#1" in tex and r"$\Delta$" in tex
    assert "<h3>Claims, transfer" in html and "evolved[cutout]#1" in html
    again = claims.write_claims(claims.claims([t]), tmp_path / "again" / "claims")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]


def test_no_table_prints_p_zero(tmp_path):
    from tests.helpers import write_runs

    runs = {("cifar10", "base", "ce"): {0: 0.90, 1: 0.91, 2: 0.92},
            ("cifar10", "base", "focal"): {0: 0.91, 1: 0.92, 2: 0.93}}  # +0.01 on every seed
    df = collect.collect([write_runs(tmp_path, runs=runs)])
    t = comparison.comparison(df, "transfer")
    row = t.cells.set_index("loss").loc["focal"]
    assert row["test"] == "untestable" and not row["significant"]
    csv = comparison.to_csv(t)
    assert ",0.0,paired" not in csv and "untestable" in csv
    assert "no cell is testable" in comparison.to_markdown(t)

"""The correlation study on fresh seeds: its seeds, its losses, its statistics (noise ceiling,
Spearman–Brown, attenuation, bootstrap, Holm) and its table and plot."""

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from augloss import losses, rankstats
from augloss.io import dumps
from augloss.search.correlation import correlation_study
from augloss.search.seeds import evaluation_seed, fresh_seeds, is_fresh
from augloss.stats import holm
from augloss.tables import correlation, plots
from augloss.tables.collect import TableError
from tests.helpers import FITNESS, SeededFakeEvaluator, write_best

AUGS = ("base", "cutout", "mixup", "randaugment", "all")
# Ten distinct losses, none equal to CE or a baseline.
EXPRESSIONS = ["square(y - p)", "abs(y - p)", "-(y * ln(p)) + abs(y - p) * 2",
               "-(ln(p) - y / p)", "-(y * ln(p)) * 2", "-(y * ln(p)) * 4",
               "-(y * ln(p)) + abs(y - p)", "square(y - p) + abs(y - p)",
               "-(y * ln(p)) + square(y - p)", "-(y * ln(p)) * 3"]
BASELINES = [
    {"name": "ce_ls", "expression": "ce", "label_smoothing": 0.1, "class_weights": None},
    {"name": "focal", "expression": "focal", "label_smoothing": 0.0, "class_weights": None},
    {"name": "poly1", "expression": "poly1", "label_smoothing": 0.0, "class_weights": None},
    {"name": "wce", "expression": "weighted_ce", "label_smoothing": 0.0,
     "class_weights": [1.0] * 10}]


def _best_files(tmp_path, top=2):
    return {a: write_best(tmp_path / f"{a}.json", a, EXPRESSIONS[2 * i:2 * i + top])
            for i, a in enumerate(AUGS)}


def _study(tmp_path, evaluator=None, search_seed=0, **kw):
    ev = evaluator or SeededFakeEvaluator()
    study = correlation_study(_best_files(tmp_path), 2, FITNESS, search_seed, None, AUGS,
                              batch=kw.pop("batch", 4), baselines=BASELINES, evaluator=ev,
                              resamples=kw.pop("resamples", 300), **kw)
    return study, ev


# --- the study -------------------------------------------------------------------------------

@pytest.mark.parametrize("search_seed", [0, 7])
def test_the_study_scores_every_loss_on_fresh_seeds_only(tmp_path, search_seed):
    study, ev = _study(tmp_path, search_seed=search_seed, seeds=3)
    seeds = {c[3] for c in ev.calls}
    assert seeds == set(fresh_seeds(search_seed, 3)) == set(study["seeds"])
    assert all(is_fresh(s) for s in seeds) and search_seed not in seeds
    used_by_searches = {evaluation_seed(search_seed, a, i) for a in AUGS for i in range(5000)}
    assert not seeds & used_by_searches
    assert {c[2] for c in ev.calls} == {"main"}
    # CE, 3 baselines (the class-weighted one skipped with its reason), 10 evolved losses;
    # each under every augmentation and seed, at most `batch` at a time, each with its own
    # label smoothing (ce_ls stacked with the others).
    kinds = [r["kind"] for r in study["losses"]]
    assert kinds == ["ce"] + ["baseline"] * 3 + ["evolved"] * 10
    assert [s["name"] for s in study["skipped"]] == ["wce"]
    assert "class weights" in study["skipped"][0]["reason"]
    assert sum(c[0] for c in ev.calls) == 14 * len(AUGS) * 3 and max(c[0] for c in ev.calls) <= 4
    smoothing = {study["losses"][i]["name"]: study["losses"][i]["label_smoothing"]
                 for i in range(14)}
    assert sum(ls == 0.1 for c in ev.calls for ls in c[4]) == len(AUGS) * 3
    assert [v for v in smoothing.values() if v] == [0.1]
    assert len(ev.calls) == len(AUGS) * 3 * 4  # ceil(14 / 4) stacked runs per aug and seed
    m = np.asarray(study["fitness_by_seed"])
    assert m.shape == (14, len(AUGS), 3)
    assert np.allclose(study["fitness"], m.mean(axis=2))
    assert study["over"].startswith("all losses")
    json.loads(dumps(study))


def test_an_evolved_loss_equal_to_ce_keeps_one_row_and_says_who_selected_it(tmp_path):
    files = {"base": write_best(tmp_path / "b.json", "base", ["-(y * ln(p))", "abs(y - p)"]),
             "cutout": write_best(tmp_path / "c.json", "cutout", ["abs(y - p)",
                                                                  "square(y - p)"])}
    study = correlation_study(files, 2, FITNESS, 0, None, ("base", "cutout"),
                              evaluator=SeededFakeEvaluator(), resamples=100)
    rows = {r["name"]: r for r in study["losses"]}
    assert rows["ce"]["kind"] == "ce" and rows["ce"]["selected_by"] == ["evolved-base-1"]
    assert rows["evolved-base-2"]["selected_by"] == ["evolved-base-2", "evolved-cutout-1"]
    assert len(study["losses"]) == 3


def test_fewer_than_two_seeds_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        _study(tmp_path, seeds=1)


def test_same_inputs_give_the_same_bytes_and_another_bootstrap_seed_other_intervals(tmp_path):
    a, _ = _study(tmp_path)
    b, _ = _study(tmp_path)
    assert dumps(a) == dumps(b)
    c, _ = _study(tmp_path, bootstrap_seed=1)
    assert c["bootstrap"]["seed"] == 1 and c["fitness_by_seed"] == a["fitness_by_seed"]
    assert [v["ci_low"] for v in c["spearman"].values()] != \
        [v["ci_low"] for v in a["spearman"].values()]


# --- the statistics: known answers -----------------------------------------------------------

def test_spearman_brown_and_attenuation_known_answers():
    assert rankstats.spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert rankstats.spearman_brown(0.6, 3) == pytest.approx(1.8 / 2.2)
    assert rankstats.spearman_brown(1.0, 4) == pytest.approx(1.0)
    assert rankstats.spearman_brown(-1.0, 2) is None and rankstats.spearman_brown(None, 2) is None
    assert rankstats.attenuation(0.3, 0.36, 1.0) == {"value": pytest.approx(0.5),
                                                      "raw": pytest.approx(0.5), "flag": ""}
    capped = rankstats.attenuation(0.9, 0.5, 0.5)
    assert capped["value"] == 1.0 and capped["raw"] == pytest.approx(1.8)
    assert capped["flag"] == "capped"
    assert rankstats.attenuation(-0.9, 0.5, 0.5)["value"] == -1.0
    for rel in (0.0, -0.2, None):
        out = rankstats.attenuation(0.4, rel, 0.8)
        assert out["value"] is None and out["flag"] == "reliability ≤ 0"
    assert rankstats.attenuation(None, 0.5, 0.5)["flag"] == "undefined"


def _cross(a, b):
    """ρ across seeds by hand: a on seed s vs b on seed t ≠ s, mean over the ordered pairs."""
    k = a.shape[1]
    return np.mean([stats.spearmanr(a[:, s], b[:, t]).statistic
                    for s, t in itertools.permutations(range(k), 2)])


def test_noise_ceiling_and_corrected_rho_on_a_constructed_matrix():
    # 6 losses, 2 augmentations, 2 seeds. Under a the seeds swap losses 0 and 1 (ρ = 1 - 6·2 /
    # (6·35) = 0.942857); under b they swap 4 and 5 and reverse 0..3 against a.
    a0, a1 = [1, 2, 3, 4, 5, 6], [2, 1, 3, 4, 5, 6]
    b0, b1 = [4, 3, 2, 1, 5, 6], [4, 3, 2, 1, 6, 5]
    x = np.array([[[a0[i], a1[i]], [b0[i], b1[i]]] for i in range(6)], dtype=float)
    out = rankstats.study_statistics(x, ["a", "b"], resamples=200, seed=0)
    r = 1 - 6 * 2 / (6 * 35)
    rel = 2 * r / (1 + r)
    for aug in ("a", "b"):
        assert out["reliability"][aug]["test_retest"] == pytest.approx(r)
        assert out["reliability"][aug]["spearman_brown"] == pytest.approx(rel)
    pair = out["spearman"]["a|b"]
    # The headline ρ is across seeds (a on seed 0 vs b on seed 1 and a on 1 vs b on 0).
    cross = _cross(x[:, 0], x[:, 1])
    assert pair["rho"] == pytest.approx(cross)
    assert pair["pairs"] == pytest.approx([stats.spearmanr(a0, b1).statistic,
                                           stats.spearmanr(a1, b0).statistic])
    means = stats.spearmanr(x[:, 0].mean(axis=1), x[:, 1].mean(axis=1)).statistic
    assert pair["rho_seed_means"] == pytest.approx(means)
    assert pair["rho_same_seed"] == pytest.approx(np.mean(
        [stats.spearmanr(a0, b0).statistic, stats.spearmanr(a1, b1).statistic]))
    # 6 losses: the exact permutation p of ρ across seeds (b's losses permuted with all their
    # seeds; two-sided: twice the smaller tail).
    perms = np.array([_cross(x[:, 0], x[list(q), 1]) for q in itertools.permutations(range(6))])
    tol = 1e-12
    exact = min(1.0, 2 * min((perms >= cross - tol).mean(), (perms <= cross + tol).mean()))
    assert pair["p"] == pytest.approx(exact) and pair["p_method"] == "exact"
    # Corrected by the single-seed test–retest ρ's (same footing as ρ across seeds).
    assert pair["corrected"] == pytest.approx(cross / r)
    assert pair["corrected_flag"] == "" and pair["n"] == 6
    assert 0 < pair["corrected_defined"] <= 1
    # 3 seeds: the test-retest correlation is the mean over the 3 seed pairs.
    x3 = np.concatenate([x, x[:, :, :1][:, :, ::-1] * 0 + np.array(
        [[[3], [1]], [[1], [2]], [[2], [3]], [[4], [4]], [[6], [5]], [[5], [6]]])], axis=2)
    out3 = rankstats.study_statistics(x3, ["a", "b"], resamples=100, seed=0)
    pairs = [stats.spearmanr(x3[:, 0, s], x3[:, 0, t]).statistic
             for s, t in itertools.combinations(range(3), 2)]
    assert out3["reliability"]["a"]["test_retest"] == pytest.approx(np.mean(pairs))
    assert out3["reliability"]["a"]["spearman_brown"] == pytest.approx(
        3 * np.mean(pairs) / (1 + 2 * np.mean(pairs)))
    assert out3["spearman"]["a|b"]["rho"] == pytest.approx(_cross(x3[:, 0], x3[:, 1]))
    assert len(out3["spearman"]["a|b"]["pairs"]) == 6


def _shared_seed_draw(rng, n=9, k=2, signal=1.0, shared=0.7, independent=0.7):
    """Losses x 2 augmentations x seeds: true per-augmentation levels independent between the
    augmentations (true ρ = 0), a loss's luck on a seed shared by both augmentations, and
    independent noise as large as that luck."""
    true = rng.normal(0, signal, (n, 2, 1))
    return (true + rng.normal(0, shared, (n, 1, k))
            + rng.normal(0, independent, (n, 2, k)))


def test_shared_seed_luck_does_not_bias_the_corrected_rho():
    # The same seeds serve every augmentation, so a loss's luck on a seed is in both of its
    # scores on that seed. On seed means it reads as agreement between the augmentations
    # (and the test–retest ρ, two seeds, never sees it): the earlier corrected ρ averaged
    # ≈ +0.26 over such draws with no true correlation. Across seeds it is ≈ 0.
    rng = np.random.default_rng(0)
    corrected, raw, same_seed_version = [], [], []
    for _ in range(500):
        out = rankstats.study_statistics(_shared_seed_draw(rng), ["a", "b"], resamples=10,
                                         seed=0, permutations=50)
        pair, rel = out["spearman"]["a|b"], out["reliability"]
        raw.append(pair["rho"])
        if pair["corrected"] is not None:
            corrected.append(pair["corrected"])
        old = rankstats.attenuation(pair["rho_seed_means"], rel["a"]["spearman_brown"],
                                    rel["b"]["spearman_brown"])["value"]
        if old is not None:
            same_seed_version.append(old)
    assert abs(np.mean(raw)) < 0.04, np.mean(raw)
    assert abs(np.mean(corrected)) < 0.1, np.mean(corrected)
    assert np.mean(same_seed_version) > 0.2, np.mean(same_seed_version)
    assert len(corrected) > 300


def test_the_cross_seed_p_holds_its_level_roughly_under_shared_seed_luck():
    # Exact without shared luck; with luck as large as the noise a little liberal (≈ 6 %).
    rng = np.random.default_rng(4)
    sims = 400
    ps = [rankstats.cross_seed_p(*np.moveaxis(_shared_seed_draw(rng), 1, 0), 500, 0)[0]
          for _ in range(sims)]
    assert np.mean(np.array(ps) <= 0.05) <= 0.05 + 0.02 + 3 * (0.05 * 0.95 / sims) ** 0.5


def test_spearman_p_for_9_to_20_losses_is_a_seeded_permutation_p():
    x = np.arange(12.0)
    rho, p = rankstats.spearman(x, x)
    # ρ = 1: no permutation of 10,000 reaches it but the observed; the t approximation's
    # p (~1e-70) cannot be right for 12 pairs.
    assert rho == pytest.approx(1.0)
    assert p == pytest.approx(2 / (1 + rankstats.P_PERMUTATIONS))
    rng = np.random.default_rng(8)
    y = x + rng.normal(scale=4, size=12)
    rho, p = rankstats.spearman(x, y)
    assert (rho, p) == rankstats.spearman(x, y)
    # Against 100,000 permutations of another generator (two-sided: twice the smaller tail).
    rx, ry = stats.rankdata(x) - 6.5, stats.rankdata(y) - 6.5
    draws = np.random.default_rng(1).permuted(np.tile(ry, (100_000, 1)), axis=1) @ rx
    obs = rx @ ry
    ref = 2 * min((draws >= obs - 1e-9).mean(), (draws <= obs + 1e-9).mean())
    assert p == pytest.approx(ref, abs=0.015)
    # Above 20 pairs scipy's t approximation.
    big = np.arange(25.0)
    yb = big + rng.normal(scale=10, size=25)
    assert rankstats.spearman(big, yb)[1] == pytest.approx(stats.spearmanr(big, yb).pvalue)


def test_a_ranking_that_is_pure_noise_gets_no_corrected_rho():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 2, 2))
    # b's seeds rank the losses in opposite orders: reliability ≤ 0
    x[:, 1, 1] = -x[:, 1, 0] + rng.normal(scale=0.01, size=8)
    out = rankstats.study_statistics(x, ["a", "b"], resamples=100, seed=0)
    assert out["reliability"]["b"]["spearman_brown"] is None or \
        out["reliability"]["b"]["spearman_brown"] <= 0
    assert out["spearman"]["a|b"]["corrected"] is None
    assert out["spearman"]["a|b"]["corrected_flag"] == "reliability ≤ 0"


def test_holm_runs_over_the_pairs():
    rng = np.random.default_rng(0)
    q = rng.normal(size=12)
    x = np.stack([q + rng.normal(scale=s, size=12) for s in (0.3, 0.6, 1.0, 3.0)], axis=1)
    x = np.stack([x, x + rng.normal(scale=0.1, size=x.shape)], axis=2)
    out = rankstats.study_statistics(x, ["a", "b", "c", "d"], resamples=100, seed=0)
    pairs = list(out["spearman"])
    assert len(pairs) == 6
    ps = [out["spearman"][p]["p"] for p in pairs]
    adjusted = [out["spearman"][p]["p_holm"] for p in pairs]
    assert adjusted == pytest.approx(holm(ps))
    assert adjusted == pytest.approx(list(multipletests(ps, method="holm")[1]))
    assert max(adjusted) > min(ps)


def test_bootstrap_interval_is_seeded_and_covers_a_known_rho():
    rng = np.random.default_rng(11)
    x = rng.normal(size=30)
    y = x + rng.normal(size=30)
    a = rankstats.spearman_ci(x, y, 500, seed=5)
    assert a == rankstats.spearman_ci(x, y, 500, seed=5)
    assert a != rankstats.spearman_ci(x, y, 500, seed=6)
    assert a["ci_low"] < a["rho"] < a["ci_high"] and a["defined"] == 500
    # Coverage: bivariate normal with r = 0.6 has Spearman ρ = (6/π) asin(r/2).
    true = 6 / math.pi * math.asin(0.3)
    cov = np.array([[1, 0.6], [0.6, 1]])
    hits, sims = 0, 200
    for i in range(sims):
        xy = rng.multivariate_normal([0, 0], cov, size=40)
        ci = rankstats.spearman_ci(xy[:, 0], xy[:, 1], 400, seed=i)
        hits += ci["ci_low"] <= true <= ci["ci_high"]
    assert 0.85 <= hits / sims <= 1.0, hits / sims


def test_undefined_correlations_are_none_not_nan():
    assert rankstats.spearman([1, 2], [1, 2]) == (None, None)
    assert rankstats.spearman([1, 1, 1], [1, 2, 3]) == (None, None)
    out = rankstats.spearman_ci([1, 1, 1, 1], [1, 2, 3, 4], 100, 0)
    assert out["rho"] is None and out["ci_low"] is None
    pooled = rankstats.grouped_rank_ci(np.array([[1.0, 2.0], [2.0, 1.0]]),
                                       np.array([[1.0, 2.0], [2.0, 1.0]]), 100, 0)
    assert pooled["rho"] is None and (pooled["n"], pooled["pairs"]) == (2, 4)


# --- the table and plot ----------------------------------------------------------------------

def test_correlation_table_plot_and_notes(tmp_path):
    study, _ = _study(tmp_path)
    df = correlation.correlation_table(study)
    pairs = df[df["section"] == "pair"]
    assert len(pairs) == 10 and (pairs["n_losses"] == 14).all()
    assert pairs[["augmentation_a", "augmentation_b"]].values.tolist()[0] == ["base", "cutout"]
    assert list(df[df["section"] == "noise ceiling"]["augmentation_a"]) == list(AUGS)
    paths = correlation.write_correlation_table(df, study, tmp_path / "out" / "correlation")
    md = paths[0].read_text()
    for text in ("ρ across seeds (95 % CI)", "p_holm", "corrected ρ (95 % CI)", "Noise ceiling",
                 "test–retest ρ, one seed", "reliability of the 2-seed mean", "defined in",
                 "ρ of seed means", "luck on a seed", "permutation p of ρ across seeds",
                 "only when the noise ceiling is", "1 cross-entropy, 3 baseline(s), 10 evolved",
                 "Not scored: wce"):
        assert text in md, text
    assert [p.suffix for p in paths] == [".md", ".csv", ".tex", ".html"]
    again = correlation.write_correlation_table(df, study, tmp_path / "again" / "correlation")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    png = plots.plot_correlation(study, tmp_path / "corr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.plot_correlation(study, tmp_path / "corr2.png").read_bytes() == \
        png.read_bytes()
    with pytest.raises(TableError, match="predates"):
        correlation.correlation_table({"augmentations": ["base"], "spearman": {},
                                       "losses": []})


def test_the_new_table_modules_do_not_import_torch():
    code = ("import sys\nfrom augloss import rankstats\n"
            "from augloss.tables import correlation, specificity, validity\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_study_parses_every_loss_it_scores(tmp_path):
    study, _ = _study(tmp_path)
    for row in study["losses"]:
        assert losses.parse(row["expression"]).key == row["key"]

"""The specificity table (diagonal advantage, permutation test, ANOVA interaction) and the
surrogate-validity table (surrogate fitness vs transfer accuracy), from synthetic runs with known
effects; and the workflow's DAG holding both."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm

from augloss.experiment import Experiment
from augloss.stats import holm
from augloss.tables import collect, specificity, validity
from tests.helpers import REPO, job_counts, smk, write_keyed_runs

AUGS = ["base", "cutout", "mixup", "randaugment", "all"]
SEEDS = [0, 1, 2]


def _runs(effect: float, seed: int = 0, dataset: str = "cifar10") -> dict:
    """CE and one evolved loss per augmentation: loss and augmentation main effects, seed noise
    (sd 0.2 pp) and ``effect`` added where a loss runs under its own augmentation."""
    rng = np.random.default_rng(seed)
    aug_effect = dict(zip(AUGS, rng.normal(0, 0.01, len(AUGS))))
    runs = {(dataset, a, "ce"): {s: 0.80 + aug_effect[a] + rng.normal(0, 0.002) for s in SEEDS}
            for a in AUGS}
    for o in AUGS:
        loss_effect = rng.normal(0, 0.01)
        for a in AUGS:
            runs[(dataset, a, f"evolved-{o}-1")] = {
                s: 0.80 + aug_effect[a] + loss_effect + (effect if a == o else 0.0)
                + rng.normal(0, 0.002) for s in SEEDS}
    return runs


def _table(tmp_path, effect, seed=0, **kw):
    df = collect.collect([write_keyed_runs(tmp_path / f"runs{effect}{seed}",
                                           _runs(effect, seed))])
    return df, *specificity.specificity(df, ["transfer"], "test_acc", None, **kw)


# --- specificity -----------------------------------------------------------------------------

def test_a_planted_diagonal_effect_is_found(tmp_path):
    _, summary, per_loss = _table(tmp_path, effect=0.03)
    row = summary.iloc[0]
    assert (row["stage"], row["dataset"], row["losses"], row["augmentations"]) == \
        ("transfer", "cifar10", 5, 5)
    # Δ own − mean Δ others = effect exactly in expectation; the noise is 0.2 pp.
    assert row["diagonal_advantage"] == pytest.approx(0.03, abs=0.003)
    assert row["diagonal_advantage_raw"] == pytest.approx(0.03, abs=0.003)
    # The origins permuted across 5 losses of distinct origins: 5! assignments.
    assert row["permutation_method"] == "exact" and row["permutations"] == 120
    assert row["assignments"] == 120 and row["smallest_p"] == pytest.approx(1 / 120)
    assert row["p_permutation"] == pytest.approx(1 / 120)  # the observed is the largest
    assert row["anova_p"] < 1e-6 and row["anova_F"] > 10
    assert list(per_loss["origin"]) == AUGS
    assert (per_loss["advantage"] > 0.02).all() and (per_loss["advantage_centred"] > 0.02).all()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_effect_gives_no_significant_p(tmp_path, seed):
    _, summary, _ = _table(tmp_path, effect=0.0, seed=seed)
    row = summary.iloc[0]
    assert abs(row["diagonal_advantage"]) < 0.005
    assert row["p_permutation"] > 0.05 and row["anova_p"] > 0.05


def test_the_permutation_test_holds_its_level_under_no_effect():
    rng = np.random.default_rng(0)
    sims = 400
    rejected = 0
    for _ in range(sims):
        profiles = [(rng.normal(size=5), [i == k for i in range(5)]) for k in range(5)]
        rejected += specificity.permutation_test(profiles)["p"] <= 0.05
    assert rejected / sims <= 0.05 + 3 * (0.05 * 0.95 / sims) ** 0.5


def _deltas(rng, origins, aug_effect=-0.02, diagonal=0.0, noise=0.002, ce_noise=0.002):
    """Δ vs CE (losses x 5 augmentations) of losses found under ``origins``: a loss level,
    every loss ``aug_effect`` under the last augmentation (`all`, nobody's origin in the
    unbalanced design), the seed means' noise, CE's noise in each cell (shared by the
    column's Δs) and ``diagonal`` under the loss's own augmentation."""
    own = np.array([[a == o for a in range(5)] for o in origins])
    d = (rng.normal(0, 0.01, (len(origins), 1)) + rng.normal(0, noise, own.shape)
         - rng.normal(0, ce_noise, 5) + diagonal * own)
    d[:, 4] += aug_effect
    return d, own


@pytest.mark.parametrize("origins", [[0, 1, 2, 3, 4], [0, 0, 1, 2, 3]],
                         ids=["balanced", "one-origin-missing-one-duplicated"])
def test_an_augmentation_effect_without_specificity_holds_the_level(origins):
    # Every evolved loss 2 pp worse under one augmentation, CE noise in every cell, no
    # specificity. Permuting augmentation labels within each loss rejected ~11 % of these
    # draws in the unbalanced design (and never in the balanced one): a shared effect is not
    # exchangeable across a loss's augmentations. The origins permuted across the losses on
    # double-centred Δs are exact.
    rng = np.random.default_rng(1)
    sims, alpha = 300, 0.05
    rejected = sum(specificity.permutation_test(*_deltas(rng, origins))["p"] <= alpha
                   for _ in range(sims))
    assert rejected / sims <= alpha + 3 * (alpha * (1 - alpha) / sims) ** 0.5, rejected


def test_a_diagonal_effect_is_found_beside_an_augmentation_effect():
    rng = np.random.default_rng(2)
    sims = 100
    found = 0
    for _ in range(sims):
        out = specificity.permutation_test(*_deltas(rng, range(5), diagonal=0.005))
        assert out["method"] == "exact" and out["assignments"] == 120
        found += out["p"] <= 0.05
    assert found / sims >= 0.8, found


def test_the_centred_advantage_ignores_shared_effects_and_the_raw_one_does_not():
    d = np.zeros((4, 5))
    d[:, 4] = -0.02  # every loss worse under `all`
    d[:, 2] += 0.01  # and better under mixup
    own = np.array([[a == o for a in range(5)] for o in (0, 0, 1, 2)])
    out = specificity.permutation_test(d, own)
    assert out["statistic"] == pytest.approx(0.0, abs=1e-15)
    # Uncentred: origins base, base, cutout own 0 against others' −0.0025; mixup 0.01 vs −0.005.
    assert out["raw"] == pytest.approx((3 * 0.0025 + 0.015) / 4)
    assert out["p"] == 1.0  # every assignment ties at 0
    # 4 losses, two of one origin: 4! / 2! distinct assignments.
    assert out["assignments"] == 12 and out["smallest_p"] == pytest.approx(1 / 12)


def test_every_distinct_assignment_is_enumerated_once():
    seqs = specificity._every_assignment([0, 0, 1, 2, 2, 2])
    assert len(seqs) == specificity.assignments([0, 0, 1, 2, 2, 2]) == 60
    assert len({tuple(s) for s in seqs}) == 60
    assert all(sorted(s) == [0, 0, 1, 2, 2, 2] for s in seqs)
    assert specificity.assignments([0, 1, 2, 3, 4]) == 120


def test_monte_carlo_permutations_are_seeded_and_bounded():
    profiles = [(np.array([1.0, 0, 0, 0, 0])[np.roll(range(5), k)], [i == k for i in range(5)])
                for k in range(5)]
    a = specificity.permutation_test(profiles, permutations=999, seed=4, max_exact=10)
    assert a == specificity.permutation_test(profiles, permutations=999, seed=4, max_exact=10)
    assert a["method"] == "Monte Carlo" and a["seed"] == 4
    # Only the identity assignment reaches the observed: p ≈ 1/120 (+ the observed itself).
    assert a["p"] >= 1 / 1000 and a["p"] == pytest.approx(1 / 120, abs=0.006)
    assert a["smallest_p"] == pytest.approx(1 / 120)
    exact = specificity.permutation_test(profiles)
    assert exact["method"] == "exact" and exact["p"] == pytest.approx(1 / 120)


def test_the_table_centres_an_augmentation_effect_and_lists_an_incomplete_loss(tmp_path):
    # Two losses found under base, one each under cutout and mixup, none under randaugment's
    # search kept complete (its loss has no `all` run), none under all; every loss 2 pp
    # worse under `all`, no specificity.
    rng = np.random.default_rng(3)
    runs = {("cifar10", a, "ce"): {s: 0.8 + rng.normal(0, 1e-4) for s in SEEDS} for a in AUGS}
    for loss in ("evolved-base-1", "evolved-base-2", "evolved-cutout-1", "evolved-mixup-1",
                 "evolved-randaugment-1"):
        level = rng.normal(0, 0.01)
        for a in AUGS:
            if loss == "evolved-randaugment-1" and a == "all":
                continue
            runs[("cifar10", a, loss)] = {s: 0.8 + level - 0.02 * (a == "all")
                                          + rng.normal(0, 1e-4) for s in SEEDS}
    df = collect.collect([write_keyed_runs(tmp_path / "runs", runs)])
    summary, per_loss = specificity.specificity(df, ["transfer"], "test_acc", None)
    row = summary.iloc[0]
    assert row["losses"] == 4 and row["assignments"] == 12  # 4! / 2!
    assert row["smallest_p"] == pytest.approx(1 / 12)
    # `all` is nobody's origin: uncentred, every loss gains 2/4 pp on the others' mean.
    assert row["diagonal_advantage_raw"] == pytest.approx(0.005, abs=5e-4)
    assert row["diagonal_advantage"] == pytest.approx(0.0, abs=5e-4)
    assert row["p_permutation"] > 0.05
    ra = per_loss[per_loss["loss"] == "evolved-randaugment-1"].iloc[0]
    assert ra["excluded"] == "not in the permutation test: no Δ vs CE under all"
    assert per_loss["advantage_centred"].notna().sum() == 4


def test_the_anova_interaction_matches_statsmodels_and_the_textbook(tmp_path):
    df, summary, _ = _table(tmp_path, effect=0.01)
    ev = df[df["loss"] != "ce"]
    data = pd.DataFrame({"loss": ev["loss"], "augmentation": ev["augmentation"],
                         "value": ev["test_acc"].astype(float)})
    row = anova_lm(ols("value ~ C(loss) * C(augmentation)", data=data).fit(), typ=2).loc[
        "C(loss):C(augmentation)"]
    got = summary.iloc[0]
    assert got["anova_F"] == pytest.approx(row["F"], rel=1e-9)
    assert got["anova_p"] == pytest.approx(row["PR(>F)"], rel=1e-6)
    # Balanced two-way layout: SS_int = n Σ (ȳ_ij − ȳ_i. − ȳ_.j + ȳ..)², df (I−1)(J−1).
    cell = data.groupby(["loss", "augmentation"])["value"].mean().unstack()
    n, (i, j) = len(SEEDS), cell.shape
    inter = cell.values - cell.values.mean(1, keepdims=True) - cell.values.mean(0) \
        + cell.values.mean()
    ss_int = n * (inter ** 2).sum()
    resid = data["value"] - data.apply(lambda r: cell.loc[r["loss"], r["augmentation"]], axis=1)
    f = (ss_int / ((i - 1) * (j - 1))) / ((resid ** 2).sum() / (len(data) - i * j))
    assert got["anova_F"] == pytest.approx(f, rel=1e-8)
    assert (got["anova_df_num"], got["anova_df_den"]) == ((i - 1) * (j - 1), len(data) - i * j)


def test_a_finetuned_loss_takes_every_search_that_selected_it_as_its_origin(tmp_path):
    runs = {("flowers", a, loss): {s: 0.7 + 0.01 * (a in ("cutout", "mixup")) * (loss != "ce")
                                   + 0.001 * s for s in SEEDS}
            for a in AUGS for loss in ("ce", "evolved-cutout-1")}
    root = write_keyed_runs(tmp_path / "ft", runs, stage="finetune",
                            keys={"evolved-cutout-1": "KCUT"})
    evolved = {"losses": [{"name": "evolved-cutout-1", "key": "KCUT",
                           "selected_by": ["evolved-cutout-1", "evolved-mixup-1"]}],
               "aliases": {"evolved-cutout-1": ["evolved-mixup-1"]}}
    df = collect.collect([root])
    summary, per_loss = specificity.specificity(df, ["finetune"], "test_acc", evolved)
    row = summary.iloc[0]
    assert per_loss.iloc[0]["origin"] == "cutout, mixup" and row["losses"] == 1
    # One loss: one assignment, nothing to permute: untestable, no p and no centred advantage
    # (never a p of 1 that reads like evidence); the uncentred advantage is still shown.
    assert row["assignments"] == 1 and pd.isna(row["smallest_p"]) and pd.isna(row["p_permutation"])
    assert row["diagonal_advantage_raw"] == pytest.approx(0.01)
    assert pd.isna(row["diagonal_advantage"])
    assert "same origin" in row["reason"]
    assert row["anova_F"] is None and "2 losses" in row["reason"]
    # Without evolved.json the loss's origin is its own name's search only.
    _, per_loss = specificity.specificity(df, ["finetune"], "test_acc", None)
    assert per_loss.iloc[0]["origin"] == "cutout"
    # A stage of named losses only has no origin to test: the table says so, it does not fail.
    only_ce = df[df["loss"] == "ce"]
    summary, _ = specificity.specificity(only_ce, ["finetune", "transfer"], "test_acc", None)
    assert "no loss of this stage has a resolvable origin" in summary.iloc[0]["reason"]
    assert summary.iloc[1]["reason"] == "no runs of this stage"
    paths = specificity.write_specificity(summary, _, tmp_path / "out" / "specificity")
    assert "Not testable or incomplete" in paths[0].read_text()


def test_the_specificity_files_are_deterministic_and_explain_the_power(tmp_path):
    _, summary, per_loss = _table(tmp_path, effect=0.02)
    a = specificity.write_specificity(summary, per_loss, tmp_path / "a" / "specificity")
    b = specificity.write_specificity(summary, per_loss, tmp_path / "b" / "specificity")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    md = a[0].read_text()
    for text in ("diagonal advantage (pp)", "(uncentred)", "permutation p", "smallest p",
                 "assignments", "interaction F", "+2.", "cannot go below",
                 "not the diagonal in particular", "double-centred", "permuted across"):
        assert text in md, text
    csv = pd.read_csv(a[1])
    assert set(csv["level"]) == {"dataset", "loss"}


# --- surrogate validity ----------------------------------------------------------------------

#: The study's rows: CE and CE with label smoothing share an expression key.
ROWS = [("ce", "KCE", 0.0, "ce"), ("ce_ls", "KCE", 0.1, "baseline"),
        ("focal", "KF", 0.0, "baseline"), ("evolved-base-1", "KB", 0.0, "evolved"),
        ("evolved-cutout-1", "KC", 0.0, "evolved")]


def _study(spread: float = 0.0) -> dict:
    """The study's rows and their seed-mean fitness; ``spread``: each loss's two fresh seeds
    ``spread`` apart around the mean, in a random direction (a surrogate reliability < 1)."""
    rng = np.random.default_rng(5)
    fit = rng.uniform(0.5, 0.9, size=(len(ROWS), len(AUGS)))
    fit[0], fit[1] = 0.3, 0.95  # CE lowest, CE with smoothing highest everywhere
    half = spread / 2 * rng.choice([-1.0, 1.0], size=fit.shape)
    return {"augmentations": AUGS, "seeds": [1, 3],
            "losses": [{"name": n, "key": k, "label_smoothing": ls, "kind": kind,
                        "selected_by": [n] if kind == "evolved" else []}
                       for n, k, ls, kind in ROWS],
            "fitness": fit.tolist(),
            "fitness_by_seed": np.stack([fit - half, fit + half], axis=2).tolist()}


def _validity_runs(tmp_path, study, datasets=("cifar10",), only=None, seeds=(0, 1), noise=1e-4):
    fit = np.asarray(study["fitness"])
    runs = {}
    for d in datasets:
        for i, (name, *_) in enumerate(ROWS):
            if only and d in only and name not in only[d]:
                continue
            for j, a in enumerate(AUGS):
                acc = 0.5 + 0.3 * fit[i, j]  # a monotone relation
                runs[(d, a, name)] = {s: acc + noise * (1 if s % 2 else -1) for s in seeds}
    runs[("cifar10", "base", "mystery")] = {0: 0.5, 1: 0.5}
    return collect.collect([write_keyed_runs(
        tmp_path / "runs", runs, keys={n: k for n, k, *_ in ROWS} | {"mystery": "KM"},
        label_smoothing={"ce_ls": 0.1})])


def test_a_monotone_relation_gives_rho_one_and_few_losses_a_dash(tmp_path):
    study = _study()
    df = _validity_runs(tmp_path, study, ("cifar10", "cifar100"),
                        only={"cifar100": ["ce", "focal"]})
    summary, per_loss, unmatched = validity.validity(study, df, "transfer", "test_acc",
                                                     None, 300, 0)
    c10 = summary[summary["dataset"] == "cifar10"]
    assert list(c10["augmentation"]) == AUGS + ["pooled"]
    assert (c10["losses"] == 5).all()
    assert c10["rho"].tolist() == pytest.approx([1.0] * 6)
    assert c10["ci_low"].tolist() == pytest.approx([1.0] * 6)
    assert c10["p"].iloc[:5].notna().all() and pd.isna(c10["p"].iloc[5])
    c100 = summary[summary["dataset"] == "cifar100"]
    assert c100["rho"].isna().all() and (c100["losses"] == 2).all()
    assert c100["reason"].str.contains("fewer than 3 losses").all()
    assert unmatched == ["mystery"]
    # CE and CE with label smoothing are told apart by their smoothing, not their key.
    ce_ls = per_loss[(per_loss["loss"] == "ce_ls") & (per_loss["dataset"] == "cifar10")]
    assert ce_ls["surrogate_fitness"].tolist() == pytest.approx([0.95] * 5)
    paths = validity.write_validity(summary, per_loss, study, unmatched,
                                    tmp_path / "out" / "surrogate_validity", "transfer")
    md = paths[0].read_text()
    assert "1.00 (1.00, 1.00)" in md and "— (fewer than 3 losses (2))" in md
    assert "300 resamples, seed 0" in md
    assert "| 5        | 1.00 (1.00, 1.00)           | 0.0167" in md  # exact p: 2/5!
    assert "within-augmentation ranks" in md and "mystery" in md
    again = validity.write_validity(summary, per_loss, study, unmatched,
                                    tmp_path / "again" / "surrogate_validity", "transfer")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]


def test_an_inverted_relation_gives_rho_minus_one(tmp_path):
    study = _study()
    df = _validity_runs(tmp_path, study)
    df["test_acc"] = 1.0 - df["test_acc"]
    summary, _, _ = validity.validity(study, df, "transfer", "test_acc", None, 200, 0)
    assert summary["rho"].tolist() == pytest.approx([-1.0] * 6)


def test_each_row_shows_both_reliabilities_the_corrected_rho_and_holm(tmp_path):
    study = _study(spread=0.3)
    df = _validity_runs(tmp_path, study)
    summary, per_loss, _ = validity.validity(study, df, "transfer", "test_acc", None, 200, 0)
    rows = summary[summary["augmentation"] != "pooled"]
    by_seed = np.asarray(study["fitness_by_seed"])
    capped = 0
    for j, r in enumerate(rows.itertuples()):
        # Surrogate: Spearman–Brown of the test–retest ρ between the study's two seeds.
        rr = stats.spearmanr(by_seed[:, j, 0], by_seed[:, j, 1]).statistic
        assert r.reliability_surrogate == pytest.approx(2 * rr / (1 + rr))
        assert r.surrogate_seeds == 2 and r.transfer_seeds == 2
        # Transfer: both seeds rank the losses alike (a seed shifts every loss equally).
        assert r.reliability_transfer == pytest.approx(1.0)
        assert r.rho == pytest.approx(1.0)
        if 0 < r.reliability_surrogate < 1 - 1e-9:
            capped += 1
            assert r.corrected_flag == "capped" and r.corrected == 1.0
            assert r.corrected_raw == pytest.approx(1 / np.sqrt(r.reliability_surrogate))
    assert capped >= 2, rows["reliability_surrogate"].tolist()
    assert list(rows["p_holm"]) == pytest.approx(holm(list(rows["p"])))
    assert pd.isna(summary.iloc[-1]["p_holm"]) and pd.isna(summary.iloc[-1]["corrected"])
    paths = validity.write_validity(summary, per_loss, study, [],
                                    tmp_path / "out" / "surrogate_validity", "transfer")
    md = paths[0].read_text()
    for text in ("p_holm", "reliability: surrogate (seeds)", "reliability: transfer (seeds)",
                 "corrected ρ", "[capped; raw", "only when both reliabilities are high",
                 "search winners", "restricted range"):
        assert text in md, text
    csv = pd.read_csv(paths[1])
    assert {"reliability_surrogate", "reliability_transfer", "corrected", "p_holm"} <= \
        set(csv.columns)


def test_seed_noise_on_the_transfer_side_gets_no_corrected_rho(tmp_path):
    study = _study()
    # One transfer seed: no split-seed reliability.
    one = _validity_runs(tmp_path / "one", study, seeds=(0,))
    summary, per_loss, unmatched = validity.validity(study, one, "transfer", "test_acc", None,
                                                     100, 0)
    row = summary.iloc[0]
    assert row["transfer_seeds"] == 1 and row["reliability_transfer"] is None
    assert row["corrected"] is None and row["corrected_flag"] == "reliability ≤ 0"
    md = validity.write_validity(summary, per_loss, study, unmatched,
                                 tmp_path / "o1" / "sv", "transfer")[0].read_text()
    assert "— (1 seed(s))" in md and "— (reliability ≤ 0)" in md
    # Two seeds whose noise swamps the losses' differences and reverses their order (their
    # mean keeps it): the transfer seeds disagree (reliability ≤ 0, −1 giving a zero
    # Spearman–Brown denominator), so there is no corrected ρ whatever ρ is.
    noisy = _validity_runs(tmp_path / "noisy", study, noise=0.5)
    fit = np.asarray(study["fitness"])
    noisy["test_acc"] = [v + (0.6 * f if s % 2 else -0.6 * f) for v, s, f in zip(
        noisy["test_acc"], noisy["seed"],
        [fit[[n for n, *_ in ROWS].index(loss), AUGS.index(a)]
         if loss in [n for n, *_ in ROWS] else 0.0
         for loss, a in zip(noisy["loss"], noisy["augmentation"])])]
    summary, _, _ = validity.validity(study, noisy, "transfer", "test_acc", None, 100, 0)
    row = summary.iloc[0]
    assert row["reliability_transfer"] is None
    assert row["corrected"] is None and row["corrected_flag"] == "reliability ≤ 0"


# --- the workflow ----------------------------------------------------------------------------

def test_the_demo_dag_lists_the_new_tables_and_the_study_scores_the_baselines(tmp_path):
    cfg = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    job = Experiment.from_config(cfg).correlation_job()
    assert [b["name"] for b in job["baselines"]] == ["ce_ls", "focal", "poly1"]
    assert job["seeds"] == 2 and job["baselines"][0]["label_smoothing"] == 0.1
    proc = smk(tmp_path, "-n", "--cores", "2", "--configfile", str(REPO / "demo" / "config.yaml"))
    counts = job_counts(proc.stdout)
    for rule in ("correlation_study", "table_correlation", "table_specificity",
                 "table_surrogate_validity"):
        assert counts[rule] == 1, rule
    for name in ("specificity.md", "surrogate_validity.csv", "specificity.html"):
        assert f"tables/{name}" in proc.stdout
    json.dumps(job)

"""Tables from synthetic metrics files with known statistics."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from augloss.tables import audit, claims, collect, comparison, plots, render, search
from augloss.tables.collect import TableError
from tests.helpers import RUNS, write_runs

def _holm(ps):
    order = np.argsort(ps)
    adj, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1, (len(ps) - rank) * ps[i]))
        adj[i] = running
    return adj


def test_comparison_table_numbers_bold_significance_and_wins(tmp_path):
    df = collect.collect([write_runs(tmp_path)])
    assert len(df) == 17
    t = comparison.comparison(df, "transfer")
    assert t.losses == ["ce", "focal", "evolved-cutout-1"]
    assert t.columns == [("cifar10", "base"), ("cifar10", "cutout")]
    c = t.cells.set_index(["loss", "augmentation"])
    for (dataset, a, loss), by_seed in RUNS.items():
        vals = np.array(list(by_seed.values()))
        assert c.loc[(loss, a), "mean"] == pytest.approx(vals.mean(), abs=1e-12)
        assert c.loc[(loss, a), "std"] == pytest.approx(vals.std(ddof=1), abs=1e-12)
        assert c.loc[(loss, a), "n"] == len(vals)
    # Known p-values: paired where seeds match, Welch where they do not.
    ce_b, ce_c = [0.90, 0.91, 0.92], [0.88, 0.89, 0.90]
    p = {("focal", "base"): stats.ttest_rel([0.905, 0.915, 0.93], ce_b).pvalue,
         ("evolved-cutout-1", "base"): stats.ttest_rel([0.95, 0.965, 0.97], ce_b).pvalue,
         ("focal", "cutout"): stats.ttest_ind([0.93, 0.95], ce_c, equal_var=False).pvalue}
    # A constant paired difference (-0.01 on every seed) is untestable, never p = 0 (scipy's
    # ttest_rel returns 0 there, with a precision warning).
    untestable = c.loc[("evolved-cutout-1", "cutout")]
    assert untestable["test"] == "untestable" and pd.isna(untestable["p_value"])
    assert pd.isna(untestable["p_holm"]) and untestable["delta_vs_ce"] == pytest.approx(-0.01)
    # Holm within each loss's own cells (the family "does this loss beat CE?").
    adj = {}
    for loss in ("focal", "evolved-cutout-1"):
        keys = [k for k in p if k[0] == loss]
        adj.update(zip(keys, multipletests([p[k] for k in keys], method="holm")[1]))
    for k in p:
        assert c.loc[k, "p_value"] == pytest.approx(p[k], rel=1e-9)
        assert c.loc[k, "p_holm"] == pytest.approx(adj[k], rel=1e-9)
    assert c.loc[("focal", "cutout"), "test"] == "Welch t"
    assert c.loc[("focal", "base"), "test"] == "paired t"
    assert bool(c.loc[("evolved-cutout-1", "base"), "significant"])
    assert not c.loc[("focal", "base"), "significant"]  # better mean, p too large
    assert not c.loc[("evolved-cutout-1", "cutout"), "beats_ce"]
    # Bold: the best mean of each column.
    assert bool(c.loc[("evolved-cutout-1", "base"), "best"])
    assert bool(c.loc[("focal", "cutout"), "best"])
    assert int(t.cells["best"].sum()) == 2
    wins = t.wins()
    assert wins.loc["focal"].tolist() == [2, 0, 0]
    assert wins.loc["evolved-cutout-1"].tolist() == [1, 1, 0]
    md = comparison.to_markdown(t)
    assert "**96.17 ± 1.04 (3)*" in md  # bold and significant
    assert "| 91.67 ± 1.26 (3) " in md  # focal/base: no marker, not bold
    assert "evolved[cutout]#1" in md
    lines = [l for l in md.splitlines() if l.startswith("| ")]
    assert lines[1].startswith("| ce ") and lines[3].startswith("| evolved[cutout]#1")
    tex = comparison.to_latex(t)
    assert r"\toprule" in tex and r"\textbf{96.17 $\pm$ 1.04 (3)$^{*}$}" in tex
    assert r"evolved[cutout]\#1" in tex
    csv = comparison.to_csv(t).splitlines()
    assert csv[0].startswith("loss,display,dataset,augmentation,n,mean,std,delta_vs_ce,ci_low,"
                             "ci_high,p_value,p_holm")
    assert len(csv) == 1 + 6


def test_outputs_are_byte_identical(tmp_path):
    df = collect.collect([write_runs(tmp_path / "runs")])
    a = comparison.write_comparison(comparison.comparison(df, "transfer"),
                                    tmp_path / "a" / "transfer")
    b = comparison.write_comparison(comparison.comparison(df, "transfer"),
                                    tmp_path / "b" / "transfer")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.suffix for p in a] == [".md", ".csv", ".tex", ".html"]


def test_latex_goes_through_booktabs_and_escapes_every_special_character():
    headers = ["loss", "a_b / 50%", "Δ"]
    body = [["evolved[cutout]#1", "**96.17 ± 1.04 (3)***", "—"],
            ["x & y $ {z} ~ ^ \\ _", "1.00 (2)", "+0.50"]]
    tex = render.booktabs(headers, body)
    assert tex.startswith("\\begin{tabular}{lrr}\n\\toprule") and "\\bottomrule" in tex
    assert r"evolved[cutout]\#1" in tex and r"a\_b / 50\%" in tex and r"$\Delta$" in tex
    assert r"\textbf{96.17 $\pm$ 1.04 (3)$^{*}$}" in tex and "---" in tex
    assert (r"x \& y \$ \{z\} \textasciitilde{} \^{} \textbackslash{} \_" in tex)
    raw = render.booktabs(["f"], [["`ln(p)`"]], raw={0: [r"$\ln p$"]})
    assert r"$\ln p$" in raw  # a formula column goes in unescaped


def test_html_tables_escape_and_render_the_markdown_marks(tmp_path):
    page = render.html_page("T <1>", [("T <1>", ["loss", "a"],
                                       [["`-(y * ln(p))`", "**96.17 ± 1.04 (3)***"],
                                        ["<script>", "1 & 2"]], ["**bold**: best"])])
    assert page.startswith("<!DOCTYPE html>") and "<title>T &lt;1&gt;</title>" in page
    assert "<code>-(y * ln(p))</code>" in page
    assert "<b>96.17 ± 1.04 (3)<sup>*</sup></b>" in page
    assert "&lt;script&gt;" in page and "<script>" not in page and "1 &amp; 2" in page
    assert "<p><b>bold</b>: best</p>" in page
    df = collect.collect([write_runs(tmp_path / "runs")])
    html = comparison.write_comparison(comparison.comparison(df, "transfer"), tmp_path / "t")[3]
    text = html.read_text()
    assert "<table>" in text and "evolved[cutout]#1" in text and "<b>" in text
    a = audit.audit(df)
    audit.write_audit(a, tmp_path / "a.md", tmp_path / "a.csv", tmp_path / "a.html")
    audit_html = (tmp_path / "a.html").read_text()
    assert audit_html.count("<tr>") == len(a) + 1 and "config hash" in audit_html


def test_learning_curves_per_stage_panel_and_loss(tmp_path):
    runs = write_runs(tmp_path / "runs")
    files = sorted(runs.rglob("metrics.json"))
    for i, f in enumerate(files):
        m = json.loads(f.read_text())
        m["curves"] = {"val_acc": [0.1 + 0.01 * i, 0.5, 0.6 + 0.001 * m["seed"]]}
        f.write_text(json.dumps(m))
    df = plots.learning_curves(files, "transfer")
    assert len(df) == 3 * len(files) and set(df["epoch"]) == {1, 2, 3}
    assert plots.learning_curves(files, "finetune").empty
    png = plots.plot_learning_curves(files, "transfer", tmp_path / "a.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    again = plots.plot_learning_curves(files, "transfer", tmp_path / "b.png")
    assert again.read_bytes() == png.read_bytes()
    with pytest.raises(collect.TableError, match="no finetune run"):
        plots.plot_learning_curves(files, "finetune", tmp_path / "c.png")


def test_finetune_table_has_the_same_shape(tmp_path):
    runs = {("flowers102", "mixup", "ce"): {0: 0.8, 1: 0.82},
            ("flowers102", "mixup", "evolved-mixup-1"): {0: 0.85, 1: 0.86},
            ("caltech101", "mixup", "ce"): {0: 0.9, 1: 0.91}}
    df = collect.collect([write_runs(tmp_path, stage="finetune", runs=runs)])
    t = comparison.comparison(df, "finetune")
    assert t.columns == [("caltech101", "mixup"), ("flowers102", "mixup")]
    md = comparison.to_markdown(t)
    assert "finetune" in md and "—" in md  # the missing caltech cell
    with pytest.raises(TableError, match="no runs of stage 'transfer'"):
        comparison.comparison(df, "transfer")


def test_inconsistent_inputs_are_refused_naming_the_files(tmp_path):
    write_runs(tmp_path)
    bad = tmp_path / "transfer" / "cifar10" / "base" / "ce" / "1" / "metrics.json"
    m = json.loads(bad.read_text())
    m["config_hash"] = "other"
    bad.write_text(json.dumps(m))
    with pytest.raises(TableError, match="mixes configurations") as info:
        collect.collect([tmp_path])
    assert str(bad.parent) in str(info.value)
    df = collect.collect([tmp_path], allow_mixed=True)
    a = audit.audit(df)
    assert "mixed configurations" in a.set_index(["augmentation", "loss"]).loc[("base", "ce"),
                                                                              "flags"]
    m["config_hash"] = "h-cifar10-base-ce"
    m["code_version"] = "0.2.0"
    bad.write_text(json.dumps(m))
    with pytest.raises(TableError, match="mixes code versions"):
        collect.collect([tmp_path])
    m["code_version"] = "0.1.0"
    del m["seed"]
    bad.write_text(json.dumps(m))
    with pytest.raises(TableError, match="missing key\\(s\\) seed"):
        collect.collect([tmp_path])
    bad.write_text("{")
    with pytest.raises(TableError, match="unreadable metrics file"):
        collect.collect([tmp_path])
    with pytest.raises(TableError, match="no such file"):
        collect.collect([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TableError, match="no metrics.json"):
        collect.collect([tmp_path / "empty"])


def test_audit_flags_missing_seeds_and_diverged_runs(tmp_path):
    write_runs(tmp_path)
    d = tmp_path / "transfer" / "cifar10" / "cutout" / "evolved-cutout-1" / "3"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({
        "stage": "transfer", "dataset": "cifar10", "augmentation": "cutout",
        "loss": "evolved-cutout-1", "seed": 3, "status": "diverged", "diverged": True,
        "config_hash": "h-cifar10-cutout-evolved-cutout-1", "code_version": "0.1.0",
        "test_acc": None}))
    (d / "provenance.json").write_text(json.dumps({"git_commit": "abc", "device": "cuda"}))
    df = collect.collect([tmp_path])
    a = audit.audit(df, expected_seeds={"transfer": [0, 1, 2, 3]}).set_index(
        ["augmentation", "loss"])
    assert "missing seeds [0, 1, 2, 3]" in a.loc[("cutout", "focal"), "flags"]
    assert "1 diverged run(s)" in a.loc[("cutout", "evolved-cutout-1"), "flags"]
    assert a.loc[("cutout", "evolved-cutout-1"), "seeds"] == "0 1 2 3"
    assert "H100" in a.loc[("base", "ce"), "device"]
    t = comparison.comparison(df, "transfer")
    row = t.cells.set_index(["loss", "augmentation"]).loc[("evolved-cutout-1", "cutout")]
    # The diverged run scores 0 (no credit), as in select_transfer; its seeds no longer pair.
    assert row["n"] == 4 and row["runs"] == 4 and row["diverged"] == 1
    assert row["mean"] == pytest.approx(np.mean([0.87, 0.88, 0.89, 0.0]))
    assert row["test"] == "Welch t"
    assert "(4, 1 div.)" in comparison.to_markdown(t)
    audit.write_audit(audit.audit(df), tmp_path / "audit.md", tmp_path / "audit.csv")
    text = (tmp_path / "audit.md").read_text()
    assert "evolved[cutout]#1" in text and "diverged" in text
    assert (tmp_path / "audit.csv").read_text().startswith("stage,dataset,augmentation,loss")


def _search_dir(root, a, fit, curve):
    d = root / a
    d.mkdir(parents=True)
    (d / "best.json").write_text(json.dumps({
        "augmentation": a, "seed": 0, "losses": [
            {"rank": 1, "name": f"evolved-{a}-1", "expression": "-(y * ln(p)) + y * (1 - p)",
             "key": "k", "latex": "x", "fitness": fit}],
        "reference": {"ce": {"fitness": 0.5}}}))
    (d / "summary.json").write_text(json.dumps({
        "augmentation": a, "seed": 0, "children": 10, "evaluations": 14,
        "rejections": {"duplicate-key": 3, "rejected-integrity": 4}, "curve": curve}))
    (d / "cache_stats.json").write_text(json.dumps({"cache_hits": 2, "trainings": 12}))
    return d


def test_search_and_correlation_tables_and_plots(tmp_path):
    dirs = {a: _search_dir(tmp_path, a, f, [{"children": 5, "best": f - 0.1, "median": 0.3},
                                            {"children": 10, "best": f, "median": 0.4}])
            for a, f in (("cutout", 0.61), ("base", 0.6))}
    st = search.search_table(dirs)
    assert st["augmentation"].tolist() == ["base", "cutout"]
    assert st.loc[0, "fitness"] == 0.6 and st.loc[0, "rejections"] == 7
    assert "cache_hits" not in st.columns and st.loc[0, "ce_fitness"] == 0.5  # reproducible
    paths = search.write_search_table(st, tmp_path / "out" / "search")
    assert "60.00" in paths[0].read_text()
    study = {"augmentations": ["base", "cutout", "mixup"], "losses": [{}, {}, {}, {}],
             "spearman": {"base|cutout": {"rho": 0.4, "p": 0.6},
                          "base|mixup": {"rho": -0.2, "p": 0.8},
                          "cutout|mixup": {"rho": None, "p": None}},
             "kendall": {"base|cutout": {"tau": 0.33, "p": 0.7},
                         "base|mixup": {"tau": 0.0, "p": 1.0},
                         "cutout|mixup": {"tau": None, "p": None}}}
    # The correlation table (augloss.tables.correlation) is tested in
    # tests/test_correlation_study.py; a study without its noise ceiling is refused, and its
    # plot still draws.
    from augloss.tables import correlation

    with pytest.raises(TableError, match="predates"):
        correlation.correlation_table(study)
    runs = collect.collect([write_runs(tmp_path / "runs")])
    pngs = [plots.plot_evolution(dirs, tmp_path / "p" / "evolution.png"),
            plots.plot_delta_heatmap(comparison.comparison(runs, "transfer"),
                                     tmp_path / "p" / "delta.png"),
            plots.plot_correlation(study, tmp_path / "p" / "corr.png"),
            plots.plot_probe_curves({"evolved-cutout-1": "square(y - p)",
                                     "evolved-base-1": "-(y * ln(p)) + y * (1 - p)"},
                                    tmp_path / "p" / "probe.png")]
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(data) < 2_000_000
    again = plots.plot_correlation(study, tmp_path / "p" / "corr2.png")
    assert again.read_bytes() == pngs[2].read_bytes()


def test_holm_correction():
    assert comparison.holm([0.01, 0.04, 0.03, None])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert comparison.holm([0.01, None])[1] is None
    assert comparison.display_name("evolved-all-2") == "evolved[all]#2"
    assert comparison.display_name("focal") == "focal"


def test_audit_shows_each_fine_tune_runs_preprocessing_and_flags_a_mix(tmp_path):
    pre = {"image_size": 300, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic",
           "crop_pct": 1.0, "overridden": [], "tag": "tf_efficientnetv2_s.in1k",
           "weights_file": None, "pretrained": True}
    runs = {("flowers102", "base", "ce"): {0: 0.9, 1: 0.91}}
    write_runs(tmp_path, stage="finetune", runs=runs, preprocessing=pre)
    other = tmp_path / "finetune" / "flowers102" / "base" / "ce" / "1" / "metrics.json"
    m = json.loads(other.read_text())
    m["preprocessing"] = {**pre, "image_size": 224, "overridden": ["image_size"]}
    other.write_text(json.dumps(m))
    a = audit.audit(collect.collect([tmp_path], allow_mixed=True))
    row = a.iloc[0]
    assert "tf_efficientnetv2_s.in1k: 300 px, bicubic, crop_pct 1, mean (0.5, 0.5, 0.5)" \
        in row["preprocessing"]
    assert "overridden by the config: image_size" in row["preprocessing"]
    assert "mixed preprocessing" in row["flags"]
    audit.write_audit(a, tmp_path / "audit.md", tmp_path / "audit.csv")
    md = (tmp_path / "audit.md").read_text()
    assert "- preprocessing: tf_efficientnetv2_s.in1k: 224 px" in md and "| tf_efficientnetv2_s.in1k: 300 px" in md
    assert collect.describe_preprocessing(None) == ""


def test_a_loss_selected_by_several_searches_shows_once_naming_each(tmp_path):
    df = collect.collect([write_runs(tmp_path)])
    aliases = {"evolved-cutout-1": ["evolved-mixup-1"], "not-trained": ["x"]}
    t = comparison.comparison(df, "transfer", aliases=aliases)
    md = comparison.to_markdown(t)
    assert md.count("evolved[cutout]#1 = evolved[mixup]#1") == 1
    assert t.aliases == {"evolved-cutout-1": ["evolved-mixup-1"]}
    assert set(t.cells.loc[t.cells["loss"] == "evolved-cutout-1", "display"]) == \
        {"evolved[cutout]#1 = evolved[mixup]#1"}
    c = claims.claims([t])
    assert "evolved[cutout]#1 = evolved[mixup]#1" in set(c["display"])
    a = audit.audit(df, aliases=aliases)
    assert "evolved[cutout]#1 = evolved[mixup]#1" in set(a["display"])


def test_search_table_and_plot_show_the_random_baseline(tmp_path):
    def curve(best):
        return [{"children": 5, "best": best - 0.1, "median": 0.3, "best_so_far": best - 0.1},
                {"children": 10, "best": best, "median": 0.4, "best_so_far": best}]

    for a, fit in (("base", 0.6), ("mixup", 0.7)):
        _search_dir(tmp_path, a, fit, curve(fit))
        _search_dir(tmp_path / "random", a, fit - 0.1, curve(fit - 0.1))
    dirs = {a: tmp_path / a for a in ("base", "mixup")}
    random = {a: tmp_path / "random" / a for a in ("base", "mixup")}
    df = search.search_table(dirs, random)
    assert list(df["random_fitness"]) == pytest.approx([0.5, 0.6])
    search.write_search_table(df, tmp_path / "search")
    assert "random search" in (tmp_path / "search.md").read_text()
    assert "random_fitness" not in search.search_table(dirs)
    with_random = plots.plot_evolution(dirs, tmp_path / "a.png", random).read_bytes()
    without = plots.plot_evolution(dirs, tmp_path / "b.png").read_bytes()
    assert with_random != without


def test_search_table_reports_fitness_noise_next_to_the_top_k_spread(tmp_path):
    """fitness_noise is the sd pooled within CE and the winner over the fresh seeds; top-k sd
    the spread among the top-k losses; both in the CSV, the Markdown (with the winner's and
    CE's mean ± sd and the lead's interval) and the LaTeX."""
    from augloss.search.summary import candidate_spread, noise_summary, top_spread

    d = _search_dir(tmp_path, "base", 0.9, [{"children": 0, "best": 0.8, "median": 0.5,
                                             "best_so_far": 0.8}])
    summary = json.loads((d / "summary.json").read_text())
    summary["ce_fitness"] = 0.5
    summary["noise"] = noise_summary({"seeds": [1, 3, 5], "ce": [0.5, 0.52, 0.54],
                                      "winner": [0.9, 0.88, 0.86], "winner_expression": "p"})
    history = [{"stage": "main", "status": "accepted", "key": k, "fitness": f}
               for k, f in (("a", 0.2), ("b", 0.4), ("a", 0.6), ("c", 0.8))]
    history += [{"stage": "prefilter", "status": "accepted", "key": "d", "fitness": 0.99},
                {"stage": "main", "status": "diverged", "key": "e", "fitness": 0.0}]
    summary["candidates"] = candidate_spread(history)
    assert summary["candidates"]["n"] == 3  # a (best 0.6), b, c; not the screen, not diverged
    summary["top_k"] = top_spread([{"fitness": 0.8}, {"fitness": 0.6}])
    assert summary["top_k"]["sd"] == pytest.approx(0.1414, abs=1e-4)
    assert summary["noise"]["fitness_noise"] == pytest.approx(0.02)
    assert summary["noise"]["winner_mean"] == pytest.approx(0.88)
    (d / "summary.json").write_text(json.dumps(summary))
    df = search.search_table({"base": d})
    assert df.loc[0, "fitness_noise"] == pytest.approx(0.02)
    assert df.loc[0, "top_k_sd"] == pytest.approx(0.1414, abs=1e-4)
    assert df.loc[0, "noise_seeds"] == 3 and df.loc[0, "lead"] == pytest.approx(0.36)
    assert "candidate_sd" not in df
    md, csv, tex, html = search.write_search_table(df, tmp_path / "search")
    text = md.read_text()
    assert "fitness_noise" in text and "winner (3 fresh seeds)" in text
    assert "88.00 ± 2.00" in text and "52.00 ± 2.00" in text
    assert "| 2.00 " in text and "| 14.14 " in text
    assert "+36.00 [+26.06, +45.94]" in text and "df = 2" in text
    assert "fitness_noise" in csv.read_text().splitlines()[0]
    latex = " ".join(tex.read_text().split())
    assert r"fitness\_noise" in latex and r"88.00 $\pm$ 2.00" in latex
    assert "& 2.00 & 14.14 &" in latex and "$x$" in latex  # the formula goes in as math
    assert re.search(r"<td>88.00 ± 2.00\s*</td>", html.read_text())
    assert noise_summary(None) is None


def test_evolution_plot_draws_cross_entropy_as_a_band_of_its_fresh_seeds(tmp_path, monkeypatch):
    """One panel per augmentation; CE a band (mean ± sd of its fresh-seed scores), or a line at
    its search-seed fitness when the search measured no noise."""
    import matplotlib.axes

    curve = [{"children": 0, "best": 0.5, "median": 0.3, "best_so_far": 0.5},
             {"children": 10, "best": 0.6, "median": 0.4, "best_so_far": 0.6}]
    dirs = {a: _search_dir(tmp_path, a, 0.6, curve) for a in ("base", "cutout")}
    summary = json.loads((dirs["base"] / "summary.json").read_text())
    summary["ce_fitness"] = 0.45
    summary["noise"] = {"seeds": [1, 3, 5], "ce": [0.40, 0.42, 0.44]}
    (dirs["base"] / "summary.json").write_text(json.dumps(summary))
    summary = json.loads((dirs["cutout"] / "summary.json").read_text())
    summary["ce_fitness"] = 0.47
    (dirs["cutout"] / "summary.json").write_text(json.dumps(summary))
    lines, bands, panels = [], {}, set()
    original_line, original_span = matplotlib.axes.Axes.axhline, matplotlib.axes.Axes.axhspan

    def line(self, y=0, *a, **k):
        lines.append((k.get("label"), y))
        panels.add(id(self))
        return original_line(self, y, *a, **k)

    def span(self, lo, hi, *a, **k):
        bands[k.get("label")] = (lo, hi)
        return original_span(self, lo, hi, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", line)
    monkeypatch.setattr(matplotlib.axes.Axes, "axhspan", span)
    plots.plot_evolution(dirs, tmp_path / "e.png")
    assert len(panels) == 2  # one panel per augmentation
    assert bands == {"cross-entropy, 3 fresh seeds (mean ± sd)": pytest.approx((40.0, 44.0))}
    assert lines == [(None, pytest.approx(42.0)),  # base: the band's mean
                     ("cross-entropy (search seed)", pytest.approx(47.0))]  # cutout: no noise


def test_learning_curves_of_runs_without_validation_plot_training_accuracy(tmp_path):
    """train_split: trainval runs record no validation accuracy (null per epoch): the plot shows
    their training accuracy and says so, instead of failing on nulls."""
    runs = write_runs(tmp_path / "runs")
    files = sorted(runs.rglob("metrics.json"))
    for f in files:
        m = json.loads(f.read_text())
        m["curves"] = {"val_acc": [None, None], "train_acc": [0.3, 0.7 + 0.01 * m["seed"]]}
        f.write_text(json.dumps(m))
    df = plots.learning_curves(files, "transfer")
    assert df["val_acc"].isna().all() and df["train_acc"].notna().all()
    png = plots.plot_learning_curves(files, "transfer", tmp_path / "t.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert plots.curve_column(df)[0] == "train_acc"
    assert "no validation set" in plots.curve_column(df)[1]
    with_val = plots.learning_curves(files[:1], "transfer").assign(val_acc=0.5)
    assert plots.curve_column(with_val) == ("val_acc", "validation accuracy")


def _cost_search_dir(root, a, with_cost=True):
    """A search directory with a 3-screen pool, 1 re-scored member and 2 children, and (with
    ``with_cost``) the cost.json timings of a CUDA machine."""
    d = _search_dir(root, a, 0.6, [])
    entries = [
        {"phase": "pool", "stage": "prescreen", "status": "accepted", "epochs_run": 10},
        {"phase": "pool", "stage": "prescreen", "status": "aborted", "epochs_run": 3},
        {"phase": "pool", "stage": "prescreen", "status": "accepted", "epochs_run": 10},
        {"phase": "rescore", "stage": "main", "status": "accepted", "epochs_run": 10},
        {"phase": "evolve", "iteration": 0, "stage": "prefilter", "status": "failed-prefilter",
         "epochs_run": 4},
        {"phase": "evolve", "iteration": 0, "stage": "main", "status": "accepted",
         "epochs_run": 10},
        {"phase": "evolve", "iteration": 1, "stage": "main", "status": "diverged",
         "epochs_run": 2}]
    (d / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    summary = json.loads((d / "summary.json").read_text())
    summary["recipes"] = {"prescreen": {"epochs": 10}, "prefilter": {"epochs": 4},
                          "main": {"epochs": 10}}
    (d / "summary.json").write_text(json.dumps(summary))
    if with_cost:
        (d / "cost.json").write_text(json.dumps({
            "version": 1, "device": "cuda (NVIDIA H200)", "threads": 16, "phases": {
                "prescreen": {"requested": 3, "cache_hits": 0, "trainings": 3, "calls": 3,
                              "epochs": 23, "steps": 230, "seconds": 4.6},
                "prefilter": {"requested": 4, "cache_hits": 1, "trainings": 3, "calls": 3,
                              "epochs": 12, "steps": 120, "seconds": 1.2},
                "main": {"requested": 3, "cache_hits": 0, "trainings": 3, "calls": 3,
                         "epochs": 22, "steps": 220, "seconds": 8.8}}}))
    return d


def test_search_cost_table_says_it_holds_timings_and_where_they_were_measured(tmp_path):
    dirs = {"cutout": _cost_search_dir(tmp_path, "cutout", with_cost=False),
            "base": _cost_search_dir(tmp_path, "base")}
    t = search.cost_table(dirs)
    assert t["augmentation"].tolist() == ["base", "cutout"]
    base = t.iloc[0]
    assert base["prescreen_evaluations"] == 3 and base["prescreen_pass_rate"] == pytest.approx(2 / 3)
    assert base["prescreen_epochs_mean"] == pytest.approx(23 / 3)
    assert base["prefilter_evaluations"] == 4 and base["prefilter_pass_rate"] == pytest.approx(0.75)
    assert base["prefilter_hit_rate"] == pytest.approx(0.25)
    assert base["main_s_per_training"] == pytest.approx(8.8 / 3)
    assert base["main_s_per_epoch"] == pytest.approx(0.4)
    assert base["children"] == 2 and base["attempts_per_child"] == 1.5
    assert base["children_discarded"] == 1 and base["device"] == "cuda (NVIDIA H200)"
    assert pd.isna(t.iloc[1]["main_seconds"])  # no cost.json: no timings, nothing invented
    md, csv = search.write_cost_table(t, tmp_path / "out" / "search_cost")
    assert (md.name, csv.name) == ("search_cost.md", "search_cost.csv")
    text = md.read_text()
    assert "timings" in text and "not byte-reproducible" in text and "search.csv" in text
    assert "base: cuda (NVIDIA H200), 16 threads" in text
    assert "cutout: no cost.json (timings unknown)" in text
    assert csv.read_text().startswith("augmentation,device,threads,timings,")
    # the search table beside it keeps no timing
    assert not {"main_seconds", "seconds", "device"} & set(search.search_table(dirs).columns)


def test_search_cost_table_names_an_unreadable_history(tmp_path):
    d = _cost_search_dir(tmp_path, "base")
    (d / "history.jsonl").unlink()
    with pytest.raises(TableError, match=r"history\.jsonl: no such file"):
        search.cost_table({"base": d})

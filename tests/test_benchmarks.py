"""The benchmark suite runs and writes every figure with min/median/max (no timing asserted)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_suite_writes_the_report(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--skip-demo",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    figures = report["figures"]
    for key in ("eval_vs_floor", "joint8_vs_sequential8", "joint16_vs_sequential16",
                "dryrun_paper_s", "pipeline_all_tensor_img_s", "pipeline_all_cpu_img_s",
                "pipeline_randaugment_tf_tensor_img_s", "pipeline_all_tf_cpu_img_s"):
        assert set(figures[key]) == {"min", "median", "max", "n"}, key
        assert 0 < figures[key]["min"] <= figures[key]["median"] <= figures[key]["max"]
    assert "demo_wall_s" not in figures  # --skip-demo
    md = (tmp_path / "report.md").read_text()
    assert "| eval_vs_floor |" in md and "<= 1.15" in md


def test_the_demo_figures_start_from_a_fresh_checkout_and_sum_every_process(tmp_path):
    """demo_wall_s runs on a copy of the tree as a clone has it; demo_peak_rss_mb adds up the
    resident memory of Snakemake and its jobs (more than Snakemake's own)."""
    from benchmarks.suite import _snakemake, fresh_checkout

    clone = fresh_checkout(tmp_path / "clone")
    assert (clone / "Snakefile").is_file() and (clone / "demo" / "config.yaml").is_file()
    assert not (clone / ".venv").exists() and not (clone / "results").exists()
    assert not (clone / ".git").exists()
    wall, peak = _snakemake(clone, "-n", "--cores", "2", "--configfile", "demo/config.yaml",
                            snakefile=clone / "Snakefile")
    assert wall > 0 and 50 < peak < 3000  # one interpreter with Snakemake loaded

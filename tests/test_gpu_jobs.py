"""GPU jobs share the run's cores: `--cores 8 --resources gpu=4` runs four GPU jobs at once."""

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from augloss.runtime import job_threads
from tests.helpers import REPO, load, smk

GPU_RULES = ("search", "correlation_study", "train_transfer", "finetune", "pretrain",
             "search_random")


@pytest.mark.parametrize("setting, cores, limit, per_job, cluster, expected", [
    (8, 8, 4, 1, False, 8),          # an integer is taken as given
    ("auto", 8, 4, 1, False, 2),     # four 1-GPU jobs at once, 2 threads each
    ("auto", 8, 4, 2, False, 4),     # two 2-GPU jobs at once
    ("auto", 8, 16, 1, False, 1),    # never below one
    ("auto", 8, 2, 4, False, 8),     # a request above the limit is scaled down to it
    ("auto", 8, None, 1, False, 8),  # no GPU limit: every core
    ("auto", 8, 0, 1, False, 8),     # --resources gpu=0: CPU jobs, every core
    ("auto", 8, 4, 0, False, 8),     # a CPU stage
    ("auto", 6, 4, 1, True, 6),      # a cluster: --cores caps one job
])
def test_job_threads(setting, cores, limit, per_job, cluster, expected):
    assert job_threads(setting, cores, limit, per_job, cluster) == expected


def rule_threads(output: str) -> dict[str, set[int]]:
    """{rule: the threads values a dry run printed for its jobs}."""
    out, rule = {}, None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "checkpoint ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("threads:") and rule:
            out.setdefault(rule, set()).add(int(line.split(":")[1]))
    return out


def test_paper_config_fits_four_gpu_jobs_in_eight_cores(tmp_path):
    proc = smk(tmp_path, "-n", "--cores", "8", "--resources", "gpu=4", "--configfile",
               str(REPO / "config.yaml"))
    threads = rule_threads(proc.stdout)
    gpu_rules = {r: t for r, t in threads.items() if r in GPU_RULES}
    assert {"search", "finetune"} <= set(gpu_rules)
    assert all(t == {2} for t in gpu_rules.values()), gpu_rules


def test_a_profile_can_set_the_threads(tmp_path):
    proc = smk(tmp_path, "-n", "--cores", "8", "--resources", "gpu=4", "--set-threads",
               "search=3", "--configfile", str(REPO / "config.yaml"))
    assert rule_threads(proc.stdout)["search"] == {3}


def stamps(path: Path) -> tuple[datetime, datetime, str]:
    prov = json.loads(path.read_text())
    return (datetime.fromisoformat(prov["started"]), datetime.fromisoformat(prov["ended"]),
            prov["cuda_visible_devices"])


def test_gpu_jobs_run_at_once_on_distinct_devices(tmp_path):
    """A real run: two 1-GPU training jobs under --cores 2 --resources gpu=2 overlap in time and
    hold different (fake) device ids; the computation falls back to the CPU here."""
    cfg = load(REPO / "demo" / "config.yaml")
    cfg.update(experiment="gpus", cpu_fallback=True)  # fake devices: the CPU on purpose
    cfg["transfer"].update(gpu=1, threads="auto", seeds_in_one_job=False)  # a job per seed
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    runs = [f"results/gpus/transfer/digits/base/ce/seed{s}" for s in (0, 1)]
    env = {**os.environ, "SMK_GPU_IDS": "0,1", "SMK_GPU_LOCK_DIR": str(tmp_path / "locks")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    smk(tmp_path, *[f"{r}/metrics.json" for r in runs], "--cores", "2", "--resources",
        "gpu=2", "--configfile", str(tmp_path / "c.yaml"), env=env)
    (s0, e0, d0), (s1, e1, d1) = (stamps(tmp_path / r / "provenance.json") for r in runs)
    overlap = (min(e0, e1) - max(s0, s1)).total_seconds()
    shorter = min(e0 - s0, e1 - s1).total_seconds()
    assert overlap > 0.5 * shorter, (overlap, shorter)
    assert {d0, d1} == {"0", "1"}
    for r in runs:
        prov = json.loads((tmp_path / r / "provenance.json").read_text())
        assert (prov["device"], prov["gpus_requested"], prov["cpu_fallback"]) == ("cpu", 1, True)
        assert "threads 1, gpus" in (tmp_path / r.replace("results/gpus/", "results/gpus/logs/")
                                     ).with_suffix(".log").read_text()


def test_a_job_given_a_gpu_that_cuda_cannot_use_fails_naming_the_cause(tmp_path):
    """No silent CPU fallback: on this CUDA-less machine a transfer job given gpu=1 stops at
    start with one line naming torch's CUDA build, the driver and the visible devices."""
    cfg = load(REPO / "demo" / "config.yaml")
    cfg["experiment"] = "nogpu"
    cfg["transfer"].update(gpu=1, seeds_in_one_job=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run = "results/nogpu/transfer/digits/base/ce/seed0"
    env = {**os.environ, "SMK_GPU_IDS": "0", "SMK_GPU_LOCK_DIR": str(tmp_path / "locks")}
    proc = smk(tmp_path, f"{run}/metrics.json", "--cores", "1", "--resources", "gpu=1",
               "--configfile", str(tmp_path / "c.yaml"), check=False, env=env)
    assert proc.returncode != 0
    log = (tmp_path / "results/nogpu/logs/transfer/digits/base/ce/seed0.log").read_text()
    line = next(x for x in log.splitlines() if x.startswith("augloss.runtime.GPUUnavailable"))
    for cause in ("cannot use CUDA", "torch 2", "driver:", "CUDA_VISIBLE_DEVICES='0'"):
        assert cause in line, line
    assert not (tmp_path / run / "metrics.json").exists()
    # --resources gpu=0 is the explicit CPU: the same job then runs, on the CPU.
    smk(tmp_path, f"{run}/metrics.json", "--cores", "1", "--resources", "gpu=0",
        "--configfile", str(tmp_path / "c.yaml"), env=env)
    prov = json.loads((tmp_path / run / "provenance.json").read_text())
    assert prov["device"] == "cpu" and prov["gpus_requested"] == 0

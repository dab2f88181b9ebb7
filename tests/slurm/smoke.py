"""Helpers of tests/slurm/run.sh: write the smoke config and the CI profile, check a finished run.

    python tests/slurm/smoke.py setup WORK     # WORK/config.yaml, WORK/profile/config.yaml
    python tests/slurm/smoke.py check WORK     # asserts, then prints a one-line JSON summary

The CI profile is ``profiles/slurm/config.yaml`` adapted the way the README tells users to adapt
it: the SITE placeholders filled for the local cluster (account, partitions), ``cpus_per_gpu``
cut to what the node has, plus the two settings a cluster without slurmdbd needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXP = "slurm"
GPU_RULES = ("search", "train_transfer", "pretrain", "finetune")


def setup(work: Path, ncpu: int, ngpu: int) -> None:
    cfg = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    cfg["experiment"] = EXP
    cfg["augmentations"] = ["base", "mixup"]
    for stage in ("transfer", "finetune"):
        cfg[stage]["seeds"] = [0]
    for stage in ("search", "transfer", "finetune"):
        cfg[stage]["gpu"] = 1  # scheduled on the fake GPUs (the jobs still compute on the CPU)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    text = (text.replace("SITE_ACCOUNT", "ci").replace("SITE_CPU_PARTITION", "debug")
            .replace("SITE_GPU_PARTITION", "debug"))
    profile = yaml.safe_load(text)
    assert "SITE_" not in json.dumps(profile), "a SITE placeholder was left unfilled"
    profile.update({
        "jobs": 4,
        "resources": {"gpu": ngpu},
        "slurm-logdir": str(work / "results" / "slurm-logs"),
        # No slurmdbd on the CI cluster: status through squeue (sacct would hang silently).
        "slurm-status-command": "squeue",
        "slurm-init-seconds-before-status-checks": 3,
        "latency-wait": 5,
    })
    for rule in profile.get("set-resources", {}).values():
        if "cpus_per_gpu" in rule:
            rule["cpus_per_gpu"] = max(1, ncpu // ngpu)
    (work / "profile").mkdir(exist_ok=True)
    (work / "profile" / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))


def check(work: Path, retried: str) -> dict:
    r = work / "results" / EXP
    for table in ("search", "correlation", "transfer", "finetune"):
        assert (r / "tables" / f"{table}.md").stat().st_size > 0, table
    # Every training job ran as a SLURM job that was given one of the fake GPUs.
    slurm_jobs, devices = set(), set()
    for prov in r.rglob("provenance.json"):
        p = json.loads(prov.read_text())
        assert p["slurm_job_id"], f"{prov} did not run under SLURM"
        assert p["cuda_visible_devices"] in ("0", "1"), f"{prov}: no GPU bound by SLURM"
        slurm_jobs.add(p["slurm_job_id"])
        devices.add(p["cuda_visible_devices"])
    assert slurm_jobs, "no training job ran"
    marker = r / "transfer" / "digits" / Path(retried) / ".failed-once-train_transfer"
    assert marker.exists(), f"the injected failure did not fire ({marker})"
    metrics = json.loads((marker.parent / "metrics.json").read_text())
    assert metrics["status"] == "completed", metrics["status"]
    return {"training_jobs_on_slurm": len(slurm_jobs), "fake_gpus_used": sorted(devices),
            "retried_job": f"train_transfer digits/{retried}"}


if __name__ == "__main__":
    cmd, work = sys.argv[1], Path(sys.argv[2])
    if cmd == "setup":
        setup(work, int(sys.argv[3]), int(sys.argv[4]))
    else:
        print(json.dumps(check(work, sys.argv[3])))

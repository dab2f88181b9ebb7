"""Helpers of tests/slurm/run.sh: write the smoke config and the CI profile, check a finished run.

    python tests/slurm/smoke.py setup WORK     # WORK/{config,interrupt}.yaml, WORK/profile/profile.yaml
    python tests/slurm/smoke.py interrupt WORK -- CMD...   # SIGINT CMD once a search runs
    python tests/slurm/smoke.py check WORK     # asserts, then prints a one-line JSON summary
    python tests/slurm/smoke.py setup-timeout WORK # WORK/timeout.yaml; prints the targets
    python tests/slurm/smoke.py timeout WORK REF -- CMD...  # TIMEOUT, retry, equal to REF

The CI profile is ``profiles/slurm/profile.yaml`` copied outside the repository and adapted the
way the README tells users to (then used as a global ``--profile``): the SITE placeholders
filled for the local cluster (account, partitions), ``cpus_per_gpu`` cut to what the node has,
plus the two settings a cluster without slurmdbd needs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXP = "slurm"
# The SIGINT test's own experiment: searches long enough (TIMEOUT_CHILDREN children, ~2 minutes)
# that they are still running when Snakemake cancels them. The demo's 36-candidate searches end
# within seconds of writing their first history line, so a SIGINT then could race their end.
INTERRUPT_EXP = "interrupt"
GPU_RULES = ("search", "search_random", "search_lockstep", "train_transfer", "pretrain",
             "finetune")
TIMEOUT_EXP = "timeout"
# The search and the training run each take ~2 minutes on 2 cores (a 150-epoch run took 32 s once
# the demo trained at 8 px): timeout() checks the reference's benchmark files say more than 60 s.
TIMEOUT_CHILDREN = 100
TIMEOUT_EPOCHS = 600
TIMEOUT_SEARCH_FILES = ("best.json", "history.jsonl", "population.json", "summary.json")


def setup(work: Path, ncpu: int, ngpu: int) -> None:
    cfg = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    cfg["experiment"] = EXP
    cfg["augmentations"] = ["base", "mixup"]
    for stage in ("transfer", "finetune"):
        cfg[stage].update(seeds=[0], seeds_in_one_job=False)  # GPU jobs: one per run
    for stage in ("search", "transfer", "finetune"):
        cfg[stage]["gpu"] = 1  # scheduled on the fake GPUs (the jobs still compute on the CPU)
    cfg["cpu_fallback"] = True  # fake GPUs: CUDA cannot use them, run on the CPU on purpose
    cfg["search"]["device"] = "auto"  # a search given a GPU computes on its job's device
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    long = yaml.safe_load(yaml.safe_dump(cfg))
    long["experiment"] = INTERRUPT_EXP
    long["search"]["algorithm"]["children"] = TIMEOUT_CHILDREN
    (work / "interrupt.yaml").write_text(yaml.safe_dump(long, sort_keys=False))

    text = (REPO / "profiles" / "slurm" / "profile.yaml").read_text()
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
        "slurm-keep-successful-logs": True,  # the test reads the retried job's log
    })
    for rule in profile.get("set-resources", {}).values():
        if "cpus_per_gpu" in rule:
            rule["cpus_per_gpu"] = max(1, ncpu // ngpu)
    for rule in profile.get("set-threads", {}):
        profile["set-threads"][rule] = max(1, ncpu // ngpu)
    (work / "profile").mkdir(exist_ok=True)
    (work / "profile" / "profile.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))


def setup_timeout(work: Path) -> list[str]:
    """WORK/timeout.yaml: one search and one training run, each longer than its 1-minute SLURM
    limit, with retries; returns the workflow targets (relative to WORK)."""
    cfg = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    cfg["experiment"] = TIMEOUT_EXP
    cfg["augmentations"] = ["base"]
    cfg["cpu_fallback"] = True  # the fake GPUs
    cfg["search"].update(gpu=1, device="auto", runtime=1, retries=8, baseline="none")
    cfg["search"]["algorithm"].update(children=TIMEOUT_CHILDREN, batch_children=1)
    cfg["transfer"].update(gpu=1, runtime=1, retries=8, seeds=[0], seeds_in_one_job=False)
    cfg["transfer"]["train"].update(epochs=TIMEOUT_EPOCHS)
    (work / "timeout.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = f"results/{TIMEOUT_EXP}"
    return [f"{r}/search/base/{f}" for f in TIMEOUT_SEARCH_FILES] + \
        [f"{r}/transfer/digits/base/ce/seed0/metrics.json"]


def interrupt(work: Path, cmd: list[str], timeout: float = 600) -> dict:
    """Run ``cmd`` (the workflow on ``interrupt.yaml``) and press Ctrl-C once a search job is
    running on SLURM.

    Snakemake must stop, cancel its SLURM jobs (``scancel``) and leave none queued. SIGINT is
    restored to its default in the child: a background shell would hand it down ignored.
    """
    searches = work / "results" / INTERRUPT_EXP / "search"
    history = list(searches.glob("*/work/history.jsonl"))
    log = open(work / "interrupted.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    while not history:
        assert proc.poll() is None, f"the workflow ended (rc {proc.returncode}) before a search ran"
        assert time.monotonic() < deadline, "no search started on SLURM in time"
        time.sleep(0.5)
        history = list(searches.glob("*/work/history.jsonl"))
    running = _squeue("RUNNING")
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=300)
    log.close()
    text = (work / "interrupted.log").read_text()
    assert "Terminating processes on user request" in text, text[-2000:]
    for _ in range(30):
        left = _squeue("PENDING,RUNNING,CONFIGURING,COMPLETING")
        if not left:
            break
        time.sleep(1)
    assert not left, f"SLURM jobs still queued after SIGINT: {left}"
    cancelled = _squeue("CANCELLED")
    states = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(running), "-o", "%i %T"],
                            capture_output=True, text=True).stdout if running else ""
    assert set(running) & set(cancelled), (running, cancelled, states, text[-2000:])
    return {"sigint_rc": rc, "running_at_sigint": len(running), "cancelled": len(cancelled)}


def timeout(work: Path, reference: Path, cmd: list[str], limit: float = 1500) -> dict:
    """Run ``cmd`` (the timeout experiment on SLURM), watching squeue for jobs that SLURM ended
    with state TIMEOUT; then check that both the search and the training run were killed at
    their limit at least once, finished on a retry, and equal ``reference`` (the same targets
    run without interruption) byte for byte."""
    for rel in ("search/base.tsv", "transfer/digits/base/ce/seed0.tsv"):
        tsv = reference / "results" / TIMEOUT_EXP / "benchmarks" / rel
        seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
        assert seconds > 75, (f"{rel}: the uninterrupted job took {seconds:.0f} s, too short "
                              "to hit a 1-minute limit; raise TIMEOUT_CHILDREN/TIMEOUT_EPOCHS")
    log = open(work / "timeout.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    timed_out: dict[str, str] = {}  # SLURM job id -> the rule's comment
    deadline = time.monotonic() + limit
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=300)
            raise AssertionError("the timeout run did not finish in time")
        out = subprocess.run(["squeue", "-h", "-t", "TIMEOUT", "-o", "%i|%k|%T"],
                             capture_output=True, text=True).stdout
        for line in out.split():
            job, comment, _ = line.split("|")
            timed_out[job] = comment
        time.sleep(2)
    log.close()
    text = (work / "timeout.log").read_text()
    assert proc.returncode == 0, text[-3000:]
    rules = sorted(set(timed_out.values()))
    for rule in ("rule_search", "rule_train_transfer"):
        assert any(c.startswith(rule) for c in rules), (rule, timed_out)
    killed = [p for p in (work / "results" / "slurm-logs").rglob("*.log")
              if "DUE TO TIME LIMIT" in p.read_text(errors="replace")]
    assert killed, "no SLURM job log says it was cancelled due to its time limit"
    r, ref = work / "results" / TIMEOUT_EXP, reference / "results" / TIMEOUT_EXP
    compared = [f"search/base/{f}" for f in TIMEOUT_SEARCH_FILES] + \
        ["transfer/digits/base/ce/seed0/metrics.json"]
    for rel in compared:
        assert (r / rel).read_bytes() == (ref / rel).read_bytes(), f"{rel} differs"
    history = (r / "search/base/history.jsonl").read_text().splitlines()
    return {"timed_out_jobs": {j: timed_out[j] for j in sorted(timed_out, key=int)},
            "slurm_logs_due_to_time_limit": len(killed), "byte_equal": compared,
            "search_evaluations": len(history)}


def _squeue(states: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-t", states, "-o", "%i"], capture_output=True,
                         text=True, check=True).stdout
    return out.split()


def check(work: Path, retried: str) -> dict:
    r = work / "results" / EXP
    for table in ("search", "correlation", "transfer", "finetune"):
        assert (r / "tables" / f"{table}.md").stat().st_size > 0, table
    # Every GPU job (searches, correlation study, training) ran as a SLURM job that was given
    # one of the fake GPUs; the local rules (evolved_losses, the selection) on the head node.
    slurm_jobs, devices = set(), set()
    for prov in r.rglob("provenance.json"):
        p = json.loads(prov.read_text())
        if prov.parent.name in ("evolved", "selection"):
            assert not p["slurm_job_id"] and p["gpus_requested"] == 0, prov
            continue
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
    elif cmd == "setup-timeout":
        print(" ".join(setup_timeout(work)))
    elif cmd == "timeout":
        print(json.dumps(timeout(work, Path(sys.argv[3]), sys.argv[sys.argv.index("--") + 1:])))
    elif cmd == "interrupt":
        print(json.dumps(interrupt(work, sys.argv[sys.argv.index("--") + 1:])))
    else:
        print(json.dumps(check(work, sys.argv[3])))

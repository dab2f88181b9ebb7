"""Crash safety, proven: SIGKILL the whole workflow at several points, rerun, compare bytes.

One uninterrupted reference run of a reduced demo, then a second run in another directory that
is killed (SIGKILL to Snakemake's process group and every descendant) three times -- during a
search, during a training epoch, and between writing a table and renaming it into place -- and
restarted each time as the README says (`--unlock`, then `--rerun-incomplete`). The finished
tables, metrics, search histories and selections must equal the reference byte for byte.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from augloss.io import PAUSE_ENV

REPO = Path(__file__).resolve().parents[1]
EXP = "crash"

# Compared byte for byte. Logs, benchmarks, provenance (hosts, timings) and the search cache
# statistics (a resumed search hits its cache more often, by design) legitimately differ.
# .finished/: a run's kept copy of its outputs (its provenance holds times and hosts)
SKIP_DIRS = {"logs", "benchmarks", "provenance", "cache", "work", "slurm-logs", ".finished"}
SKIP_FILES = {"cache_stats.json", "provenance.json", "cost.json", "search_cost.md",
              "search_cost.csv"}  # the search cost record and table: timings


def config(tmp: Path) -> Path:
    cfg = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())
    cfg["experiment"] = EXP
    cfg["augmentations"] = ["base", "mixup"]
    cfg["transfer"]["seeds"] = [0]
    cfg["finetune"]["seeds"] = [0]
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def command(work: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(work), "--cores", "2", "--configfile",
            str(work / "config.yaml"), *extra]


def run_to_end(work: Path, *extra: str) -> None:
    proc = subprocess.run(command(work, *extra), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake's process group and every process below it (jobs included)."""
    try:
        victims = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        victims = []
    os.killpg(proc.pid, signal.SIGKILL)
    for p in victims:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=60)
    psutil.wait_procs(victims, timeout=60)


def run_and_kill(work: Path, ready, what: str, env=None, timeout=600) -> None:
    """Start the workflow, wait until ``ready()`` is true, then kill it."""
    log = open(work / f"killed-{what}.log", "w")
    proc = subprocess.Popen(command(work, "--rerun-incomplete"), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"the workflow ended (rc {proc.returncode}) before the "
                                     f"kill point '{what}' was reached; see {log.name}")
            if time.monotonic() > deadline:
                raise AssertionError(f"kill point '{what}' not reached in {timeout} s")
            time.sleep(0.05)
    finally:
        kill_tree(proc)
        log.close()


def compared_files(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_dir() or SKIP_DIRS & set(rel.parts[:-1]) or p.name in SKIP_FILES:
            continue
        out[str(rel)] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("reference")
    config(work)
    run_to_end(work)
    return work / "results" / EXP


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def unlock(work: Path) -> None:
    """What the README tells users to do after a killed run, before `--rerun-incomplete`."""
    run_to_end(work, "--unlock")


def test_sigkill_at_three_points_then_rerun_gives_identical_results(tmp_path, reference):
    work = tmp_path
    config(work)
    r = work / "results" / EXP

    # 1. During a search: a few candidates evaluated, the search not finished.
    history = r / "search" / "base" / "work" / "history.jsonl"
    run_and_kill(work, lambda: lines(history) >= 3, "search")
    assert not (r / "search" / "base" / "best.json").exists()
    unlock(work)

    # 2. During a training epoch: a transfer job has checkpointed an epoch, not finished.
    def training_checkpointed():
        return (r / "transfer").exists() and any((r / "transfer").rglob("checkpoint.pt"))

    run_and_kill(work, training_checkpointed, "training")
    interrupted = [c.parent for c in (r / "transfer").rglob("checkpoint.pt")]
    assert interrupted and not any((d / "metrics.json").exists() for d in interrupted)
    unlock(work)

    # 3. During table writing: transfer.md written to its temp file, not yet renamed.
    run_and_kill(work, lambda: any((r / "tables").glob(".transfer.md.*.paused")), "tables",
                 env={PAUSE_ENV: "transfer.md"})
    assert not (r / "tables" / "transfer.md").exists()
    unlock(work)
    run_to_end(work, "--rerun-incomplete")
    # The killed search resumed from its state and the interrupted training jobs from their
    # checkpoints (the logs are those of the attempts that finished).
    assert "resuming search" in (r / "logs" / "search" / "base.log").read_text()
    grouped = yaml.safe_load((work / "config.yaml").read_text())["transfer"]["seeds_in_one_job"]
    for d in interrupted:  # one log per run, or per cell (seeds_in_one_job, as in the demo)
        log = r / "logs" / d.relative_to(r).parent / ("seeds.log" if grouped else f"{d.name}.log")
        assert "resum" in log.read_text(), log

    got, want = compared_files(r), compared_files(reference)
    assert set(got) == set(want), (set(got) ^ set(want))
    differing = [k for k in want if got[k] != want[k]]
    assert not differing, f"differ from the uninterrupted run: {differing}"
    assert any(k.endswith("history.jsonl") for k in want)
    assert any(k.endswith("metrics.json") for k in want)
    assert any(k.startswith("tables/") for k in want)

"""Distinct local GPUs for concurrent jobs, through lock files.

Snakemake's ``--resources gpu=N`` only counts GPUs; it does not say which device a job gets.
:func:`gpu_slots` claims ``n`` device ids all-or-nothing with non-blocking ``fcntl.flock`` on
``<lock_dir>/gpu<id>.lock`` and exports ``CUDA_VISIBLE_DEVICES`` before CUDA initialises. The
kernel drops the locks when the process exits, even on a crash, so no stale claim survives.

The pool of ids: under SLURM (``SLURM_JOB_ID``) the devices SLURM bound to the job
(``CUDA_VISIBLE_DEVICES``; without it, ``nvidia-smi -L``), and SLURM's binding wins (a stray
``SMK_GPU_IDS`` is ignored, with a warning); else ``SMK_GPU_IDS`` (e.g. ``0,1,2,3``) if set; else
the inherited ``CUDA_VISIBLE_DEVICES``; else the lines of ``nvidia-smi -L``. Under SLURM the lock
files are the allocation's own (keyed by ``SLURM_JOB_ID``): a job the SLURM plugin submitted
claims its one bound device, and the jobs of a local run inside an allocation (``salloc``,
``sbatch`` of Snakemake itself) claim distinct ones, as outside SLURM.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

log = logging.getLogger("augloss.gpu")


def default_lock_dir(environ: dict | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("SMK_GPU_LOCK_DIR"):
        return Path(env["SMK_GPU_LOCK_DIR"])
    slurm = f"-slurm{env['SLURM_JOB_ID']}" if env.get("SLURM_JOB_ID") else ""
    return Path(tempfile.gettempdir()) / f"augloss-gpu-locks-{os.getuid()}{slurm}"


def _nvidia_smi_ids() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False,
                             timeout=30)
    except subprocess.TimeoutExpired:
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]


def gpu_pool(environ: dict | None = None) -> list[str]:
    """The device ids a job may claim (module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("SLURM_JOB_ID") and env.get("SMK_GPU_IDS"):
        log.warning("SMK_GPU_IDS=%s ignored inside SLURM job %s: SLURM's binding "
                    "(CUDA_VISIBLE_DEVICES=%s) wins", env["SMK_GPU_IDS"],
                    env["SLURM_JOB_ID"], env.get("CUDA_VISIBLE_DEVICES"))
    elif env.get("SMK_GPU_IDS"):
        return [i.strip() for i in env["SMK_GPU_IDS"].split(",") if i.strip()]
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        return [i.strip() for i in env["CUDA_VISIBLE_DEVICES"].split(",") if i.strip()]
    return _nvidia_smi_ids()


def _try_claim(ids: list[str], n: int, lock_dir: Path) -> tuple[list[str], list[int]]:
    claimed, fds = [], []
    for dev in ids:
        if len(claimed) == n:
            break
        fd = os.open(lock_dir / f"gpu{dev}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        claimed.append(dev)
        fds.append(fd)
    if len(claimed) < n:  # all or nothing: holding some while waiting risks deadlock
        for fd in fds:
            os.close(fd)
        return [], []
    return claimed, fds


@contextlib.contextmanager
def gpu_slots(n: int, lock_dir: str | os.PathLike | None = None, timeout: float | None = None,
              environ: dict | None = None) -> Iterator[list[str]]:
    """Claim ``n`` distinct GPUs, set ``CUDA_VISIBLE_DEVICES``, yield the ids, release on exit.

    ``n = 0`` hides every GPU (``CUDA_VISIBLE_DEVICES=""``): the job runs on the CPU.
    """
    env = os.environ if environ is None else environ
    n = int(n)
    pool = gpu_pool(env)
    if n <= 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
        yield []
        return
    if n > len(pool):
        where = (f"SLURM bound {pool or 'none'} to job {env['SLURM_JOB_ID']} (ask SLURM for "
                 "GPUs: the profile's gpu or gres resources)") if env.get("SLURM_JOB_ID") \
            else f"the pool has {pool or 'none'} (set SMK_GPU_IDS)"
        raise RuntimeError(f"job given {n} GPU(s) but {where}; --resources gpu=0 for the CPU")
    lock_dir = Path(lock_dir) if lock_dir else default_lock_dir(env)
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        claimed, fds = _try_claim(pool, n, lock_dir)
        if claimed:
            break
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"no {n} free GPU(s) among {pool} after {timeout} s")
        time.sleep(1.0 + random.random())
    previous = env.get("CUDA_VISIBLE_DEVICES")
    env["CUDA_VISIBLE_DEVICES"] = ",".join(claimed)
    try:
        yield claimed
    finally:
        for fd in fds:
            os.close(fd)
        if previous is None:
            env.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            env["CUDA_VISIBLE_DEVICES"] = previous

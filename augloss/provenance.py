"""Provenance: the code version (git) and where a run ran; torch is imported only on use."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from augloss import __version__


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def code_version() -> dict:
    """git commit and dirty flag of the augloss checkout (empty when not a checkout)."""
    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else False
    return {"augloss": __version__, "git_commit": commit, "git_dirty": dirty}


def stamp(t: float) -> str:
    """UTC ISO-8601 time with milliseconds (jobs' start/end, e.g. to see them overlap)."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def provenance(device, started: float, ended: float, extra: dict) -> dict:
    """Where and how a run ran (not deterministic: host, times, devices); for provenance.json."""
    import torch

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return {
        **code_version(), "python": sys.version.split()[0], "platform": platform.platform(),
        "hostname": socket.gethostname(), "torch": torch.__version__,
        "torchvision": _version("torchvision"), "timm": _version("timm"),
        "numpy": _version("numpy"),
        "device": str(device), "gpu_name": gpu,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "threads": torch.get_num_threads(),
        "started": stamp(started), "ended": stamp(ended), **extra,
    }


def environment() -> dict:
    """Installed packages, Python, platform, snakemake version and the git state."""
    from importlib.metadata import distributions

    packages = sorted(f"{d.metadata['Name']}=={d.version}"
                      for d in distributions() if d.metadata["Name"])
    return {**code_version(), "python": sys.version.split()[0],
            "platform": platform.platform(), "snakemake": _version("snakemake"),
            "pip_freeze": packages}

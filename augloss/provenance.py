"""Provenance: the code version (git) and where a run or job ran; torch is imported only on use.

* :func:`provenance`: a training run's ``provenance.json``;
* :func:`job_provenance`: any other job's (searches, correlation study, checkpoint, selection),
  without importing torch unless the job ran on CUDA;
* :func:`science_packages`: the versions of the packages that can change a number;
* :func:`manifest_digest`: a prepared dataset's split digests, for a job's ``data``;
* :func:`environment`: the workflow's ``environment.json`` (each installed package once).
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from augloss import __version__

#: The packages whose version can change a result (recorded by every job, shown by the audit).
SCIENCE_PACKAGES = ("augloss", "torch", "torchvision", "timm", "numpy", "pillow", "scipy",
                    "statsmodels", "pandas", "scikit-learn")


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


def science_packages() -> dict[str, str]:
    """``{name: version}`` of the installed :data:`SCIENCE_PACKAGES` (augloss: the code's own
    version, which the workflow puts first on ``sys.path``); missing packages are left out."""
    found = {}
    for name in SCIENCE_PACKAGES:
        v = __version__ if name == "augloss" else _version(name)
        if v:
            found[name] = v
    return found


def _runtime_current() -> dict:
    """What the job asked for (``augloss.runtime.current()``: gpus_requested, device,
    cpu_fallback), or ``{}`` outside a job or before the runtime records it."""
    from augloss import runtime

    current = getattr(runtime, "current", None)
    try:
        got = current() if callable(current) else None
    except Exception:  # provenance never fails a finished job
        return {}
    return dict(got) if isinstance(got, dict) else {}


def _host() -> dict:
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "hostname": socket.gethostname(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def _cuda_packages(torch) -> dict[str, str]:
    """The CUDA and cuDNN versions a CUDA run computed with (kernels differ between them)."""
    cudnn = torch.backends.cudnn.version()
    return {"cuda": str(torch.version.cuda or ""), "cudnn": str(cudnn or "")}


def _requested(runtime: dict, extra: dict) -> dict:
    """``gpus_requested`` and ``cpu_fallback``: ``extra`` wins over the job runtime's record."""
    return {k: extra.get(k, runtime.get(k)) for k in ("gpus_requested", "cpu_fallback")}


def provenance(device, started: float, ended: float, extra: dict) -> dict:
    """Where and how a run ran (not deterministic: host, times, devices); for provenance.json."""
    import torch

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    rt = _runtime_current()
    return {
        **code_version(), **_host(), **{k: v for k, v in rt.items() if k != "device"},
        "torch": torch.__version__,
        "torchvision": _version("torchvision"), "timm": _version("timm"),
        "numpy": _version("numpy"),
        "packages": {**science_packages(),
                     **(_cuda_packages(torch) if device.type == "cuda" else {})},
        "device": str(device), "gpu_name": gpu, **_requested(rt, extra),
        "threads": torch.get_num_threads(),
        "started": stamp(started), "ended": stamp(ended), **extra,
    }


def job_provenance(started: float, ended: float, extra: dict,
                   device: str | None = None) -> dict:
    """``provenance.json`` of a job that is not a training run (a search, the correlation
    study, the ``evolved_losses`` checkpoint, the transfer selection).

    ``device`` is what the job ran on (``None``: the job runtime's record, else ``cpu``).
    Torch is imported only for a CUDA device (its GPU name), so CPU-only jobs stay light.
    ``extra`` (e.g. ``{"data": manifest_digest(...)}``) is merged last.
    """
    rt = _runtime_current()
    device = str(device or rt.get("device") or "cpu")
    gpu, packages = "", science_packages()
    if device.startswith("cuda"):
        try:
            import torch

            gpu = torch.cuda.get_device_name(torch.device(device))
            packages.update(_cuda_packages(torch))
        except Exception as exc:  # record, never fail a finished job
            gpu = f"unknown ({type(exc).__name__})"
    return {
        **code_version(), **_host(), **{k: v for k, v in rt.items() if k != "device"},
        "packages": packages, "device": device, "gpu_name": gpu,
        **_requested(rt, extra), "started": stamp(started), "ended": stamp(ended), **extra,
    }


def write_job_provenance(path: str | os.PathLike, started: float, extra: dict | None = None,
                         device: str | None = None) -> dict:
    """Write :func:`job_provenance` (ended now) to ``path`` atomically; return it."""
    import time

    from augloss.io import write_json

    prov = job_provenance(started, time.time(), dict(extra or {}), device)
    write_json(path, prov)
    return prov


def manifest_digest(manifest_file: str | os.PathLike) -> dict[str, str]:
    """``{split: digest[:16]}`` of a dataset manifest (``results/<exp>/data/<slug>.json``, as
    :func:`augloss.workflow.prepare_dataset` writes it): the same short digests as a training
    run's ``metrics.json`` ``data``."""
    from augloss.io import read_json

    splits = read_json(manifest_file).get("splits", {})
    return {split: str(s.get("digest", ""))[:16] for split, s in sorted(splits.items())}


def _normalise(name: str) -> str:
    """A distribution's normalised name (PEP 503): ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> tuple[list[str], dict[str, list[str]]]:
    """Each installed distribution once, as ``Name==version`` (sorted), and the names seen
    with more than one version on ``sys.path`` (``{name: versions, first = the one imported}``;
    each of those versions is listed).

    ``importlib.metadata.distributions()`` yields a distribution once per ``sys.path`` entry
    (and an editable checkout's ``.egg-info`` again), hence the deduplication.
    """
    from importlib.metadata import distributions

    seen: dict[str, tuple[str, list[str]]] = {}
    for d in distributions():
        name = d.metadata["Name"]
        if not name:
            continue
        shown, versions = seen.setdefault(_normalise(name), (name, []))
        if d.version not in versions:
            versions.append(d.version)
    freeze = sorted((f"{shown}=={v}" for shown, versions in seen.values() for v in versions),
                    key=str.lower)
    conflicts = {key: versions for key, (_, versions) in sorted(seen.items())
                 if len(versions) > 1}
    return freeze, conflicts


def environment() -> dict:
    """Installed packages (each once), the science packages' versions, Python, platform,
    snakemake version and the git state."""
    freeze, conflicts = installed()
    return {**code_version(), "python": sys.version.split()[0],
            "platform": platform.platform(), "snakemake": _version("snakemake"),
            "packages": science_packages(), "pip_freeze": freeze,
            "conflicting_versions": conflicts}

"""The job runtime: what every job does around its work, whatever its stage.

A job logs to its ``log:`` file, uses its ``threads``, claims its GPUs (:mod:`augloss.gpu`), runs
with the Hugging Face hub offline, and may fail once on purpose for the ``retries:`` tests. The
Snakefile also asks here how many threads a GPU job gets and whether the results directory can
be written. Torch is imported only inside a job that uses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator

log = logging.getLogger("augloss.runtime")


#: What the running job asked for and got (:func:`current`), for its provenance.
_CURRENT: dict = {}

#: The oldest NVIDIA driver each CUDA major version's torch builds run on (NVIDIA's CUDA
#: toolkit release notes, "CUDA Toolkit and Corresponding Driver Versions", Linux).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


class GPUUnavailable(RuntimeError):
    """A job given a GPU cannot use CUDA; the message is one line naming the cause."""


def current() -> dict:
    """The running job's ``gpus_requested``, ``device`` and ``cpu_fallback`` (empty outside a
    job): recorded in every provenance.json so the audit can flag a device other than asked."""
    return dict(_CURRENT)


def _driver_version() -> str:
    """The NVIDIA kernel driver's version, or why none was found (no torch, no CUDA call)."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        for word in text.split():
            if word[:1].isdigit() and word.count(".") >= 1:
                return word
    except OSError:
        pass
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                                  "--format=csv,noheader"], capture_output=True, text=True,
                                 check=False, timeout=30)
        except subprocess.TimeoutExpired:
            return "unknown (nvidia-smi hung for 30 s)"
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.split()[0]
        return f"unknown (nvidia-smi failed: {(out.stderr or out.stdout).strip()[:120]})"
    return "none found (no /proc/driver/nvidia/version, no nvidia-smi)"


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split("."))
    except ValueError:
        return ()


def cuda_unavailable(gpus: int, ids: list[str]) -> str:
    """One line: why CUDA cannot be used by a job given ``gpus`` GPU(s) (``ids`` claimed)."""
    import torch

    built = torch.version.cuda
    need = MIN_DRIVER.get(int(built.split(".")[0])) if built else None
    if built:
        build = f"torch {torch.__version__} is built for CUDA {built}" + \
            (f" (needs NVIDIA driver >= {need})" if need else "")
    else:
        build = f"torch {torch.__version__} is a CPU-only build"
    try:
        torch.cuda.init()
        said = f"{torch.cuda.device_count()} device(s) visible"
    except Exception as exc:  # noqa: BLE001 (torch's own reason, quoted)
        said = " ".join(str(exc).split()).split(". ")[0][:200]
    driver = _driver_version()
    new_enough = need and _version_tuple(driver) >= _version_tuple(need) > ()
    fix = ("the host's driver is new enough: in a container, pass the GPUs through "
           "(apptainer --nv, docker --gpus)" if new_enough else
           "install a torch build for this driver (README: 'GPU drivers')")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (f"job given {gpus} GPU(s) cannot use CUDA: {build}; driver: {driver}; "
            f"CUDA_VISIBLE_DEVICES={visible!r} (claimed {ids or 'none'}); torch says: {said}. "
            f"Fix: {fix}; or choose the CPU explicitly: --resources gpu=0, or cpu_fallback: "
            "true in the config (tests only)")


def unsupported_gpu() -> str | None:
    """Why the visible GPU cannot run this torch build's kernels (its compute capability is
    not among the build's architectures, e.g. a V100 under a build from sm_75 on), or None."""
    import torch

    major, minor = torch.cuda.get_device_capability(0)
    arches = torch.cuda.get_arch_list()
    if not arches or f"sm_{major}{minor}" in arches or \
            any(a.startswith("compute_") and int(a[8:]) <= major * 10 + minor for a in arches):
        return None
    return (f"{torch.cuda.get_device_name(0)} (sm_{major}{minor}) is not among torch "
            f"{torch.__version__}'s GPU architectures ({' '.join(arches)}): install a torch "
            "build that includes it (README: 'GPU drivers')")


def gres_gpus(gres: str | None) -> int:
    """GPUs a SLURM ``gres`` resource asks for (``gpu:a100:2`` -> 2, ``gpu`` -> 1)."""
    total = 0
    for part in str(gres or "").replace("--gres=", "").split(","):
        fields = part.strip().split(":")
        if fields[0] == "gpu":
            total += int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
    return total


def pick_job_device(gpus: int, ids: list[str], cpu_fallback: bool = False) -> str:
    """``cuda`` for a job given GPUs that CUDA can use; ``cpu`` for a job given none. A job
    given a GPU that CUDA cannot use raises :class:`GPUUnavailable`, unless ``cpu_fallback``
    (the config key the local-SLURM test's fake GPUs use), which logs a warning."""
    import torch

    if gpus <= 0:
        return "cpu"
    if torch.cuda.is_available() and torch.cuda.device_count() >= 1:
        why = unsupported_gpu()
        if why is None:
            return "cuda"
        reason = f"job given {gpus} GPU(s) cannot use it: {why}"
    else:
        reason = cuda_unavailable(gpus, ids)
    if not cpu_fallback:
        raise GPUUnavailable(reason)
    log.warning("cpu_fallback: running on the CPU: %s", reason)
    return "cpu"


@contextlib.contextmanager
def job_context(log_path: str, threads: int, gpus: int, uses_torch: bool = True,
                offline: bool = True, cpu_fallback: bool = False,
                gres: str | None = None) -> Iterator[str]:
    """Log to ``log_path``, use ``threads`` CPU threads, claim ``gpus`` distinct GPUs.

    Yields the torch device string: ``cuda`` for a job given GPUs, ``cpu`` for one given none
    (``gpus: 0`` in the config, or ``--resources gpu=0``). A job given a GPU that CUDA cannot
    use fails at start naming the cause (:func:`pick_job_device`) instead of crawling on the
    CPU, unless ``cpu_fallback``. Inside a SLURM job, a ``gres`` resource naming GPUs (a
    GRES-only site's ``gres: gpu:a100:1`` beside ``gpu: 0``, README) gives the job those GPUs.
    Jobs that never touch torch (tables, audit) pass
    ``uses_torch=False`` and skip its ~2 s import. Every job runs with the hub offline
    (``HF_HUB_OFFLINE=1``) except the head node's downloads (``offline=False``:
    prepare_dataset, prefetch_weights).
    """
    from augloss.gpu import gpu_slots

    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    stderr = sys.stderr
    sys.stderr = open(log_path, "a", buffering=1)
    hub = sys.modules.get("huggingface_hub.constants")  # read the variable at import
    was = os.environ.get("HF_HUB_OFFLINE"), hub and hub.HF_HUB_OFFLINE
    if offline:
        # Jobs may run on compute nodes without network: the head node fetched every dataset
        # and weights file (local rules), so no job ever contacts the Hugging Face hub.
        os.environ["HF_HUB_OFFLINE"] = "1"
        if hub:
            hub.HF_HUB_OFFLINE = True
    try:
        if os.environ.get("SLURM_JOB_ID") and not int(gpus):
            gpus = gres_gpus(gres)  # the GPUs a GRES-only site's job asked SLURM for
        with gpu_slots(int(gpus)) as ids:
            device = "cpu"
            if uses_torch:
                import torch

                torch.set_num_threads(max(1, int(threads)))
                device = pick_job_device(int(gpus), ids, bool(cpu_fallback))
            _CURRENT.update(gpus_requested=int(gpus), device=device,
                            cpu_fallback=bool(cpu_fallback) and device == "cpu" and
                            int(gpus) > 0)
            log.info("threads %d, gpus %s, device %s", threads, ids, device)
            yield device
    except BaseException:
        logging.getLogger("augloss").exception("job failed")
        raise
    finally:
        if offline:
            if was[0] is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = was[0]
            if hub:
                hub.HF_HUB_OFFLINE = was[1]
        _CURRENT.clear()
        root.removeHandler(handler)
        handler.close()
        sys.stderr.close()
        sys.stderr = stderr


def maybe_fail(rule: str, marker_dir: str | Path) -> None:
    """Fail once on purpose when ``AUGLOSS_FAIL_ONCE`` names this job (tests ``retries:``).

    The variable holds ``<rule>`` (every job of the rule fails once) or ``<rule>@<fragment>``
    (only jobs whose ``marker_dir`` path contains ``fragment``). The first attempt leaves a
    marker in ``marker_dir`` and raises; the retry sees the marker and goes on.
    """
    wanted, _, fragment = os.environ.get("AUGLOSS_FAIL_ONCE", "").partition("@")
    if wanted != rule or fragment not in str(marker_dir):
        return
    marker = Path(marker_dir) / f".failed-once-{rule}"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("injected failure\n")
        raise RuntimeError(f"injected one-off failure of rule {rule} in {marker_dir} "
                           "(AUGLOSS_FAIL_ONCE)")


def unwritable(path: str | Path) -> str | None:
    """Why ``path`` (a directory, maybe not created yet) cannot be written, or None.

    Checked before any job runs, without creating anything: the nearest existing ancestor must be
    a directory this user may write into.
    """
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() or parent.is_symlink():
            break
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable by this user"
    return None


def job_threads(setting: int | str, cores: int, gpu_limit: int | None, gpus_per_job: int,
                cluster: bool = False) -> int:
    """Threads of one job of a GPU stage whose config says ``threads: setting``.

    An integer is taken as given. ``auto`` shares the run's cores among the GPU jobs that run at
    once: ``--cores 8 --resources gpu=4`` gives four 1-GPU jobs 2 threads each, so four run
    together (a job asking 8 threads under ``--cores 8`` would run alone and leave three GPUs
    idle). Without a GPU limit, for CPU jobs (``gpu: 0``) or ``--resources gpu=0``, a job gets
    every core. On a cluster ``--cores`` caps one job's threads, and ``auto`` takes that cap.
    """
    if setting != "auto":
        return int(setting)
    cores = max(1, int(cores or 1))
    if cluster or not gpus_per_job or not gpu_limit:
        return cores
    at_once = max(1, int(gpu_limit) // min(int(gpus_per_job), int(gpu_limit)))
    return max(1, cores // at_once)



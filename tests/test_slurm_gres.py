"""The README's "GRES-only sites" advice, checked with the SLURM executor plugin's own code.

The sbatch arguments for a GPU rule come from the rule's resources (``gpu: 1`` from the config)
with the profile's ``set-resources`` on top. The plugin adds ``--gpus=N`` whenever ``gpu`` is
not 0, so ``gres`` alone submits ``--gres=... --gpus=1``; the advice also sets ``gpu: 0``.
"""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from augloss.experiment import Experiment

slurm = pytest.importorskip("snakemake_executor_plugin_slurm")
from snakemake.iocontainers import ResourceList  # noqa: E402
from snakemake_executor_plugin_slurm.submit_string import get_submit_command  # noqa: E402
from snakemake_executor_plugin_slurm.utils import set_gres_string  # noqa: E402
from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "profile.yaml"


def profile_advice() -> dict:
    """The ``set-resources`` keys that profile.yaml's GRES-only comment block gives."""
    lines = PROFILE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "GRES-only sites" in line)
    block = []
    for line in lines[start + 1:]:
        m = re.match(r"^#\s{4,}(\w+: .*)$", line)
        if not m:
            break
        block.append(m[1])
    return yaml.safe_load("\n".join(block))


def readme_row() -> str:
    return next(line for line in (REPO / "README.md").read_text().splitlines()
                if line.startswith("| GRES-only sites |"))


def rule_resources(section: str = "transfer") -> dict:
    """A GPU rule's own resources for ``config.yaml`` (callables at attempt 1)."""
    exp = Experiment.from_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    return {k: (v(None, 1) if callable(v) else v) for k, v in exp.resources(section).items()}


def job(resources: dict, threads: int = 8) -> SimpleNamespace:
    return SimpleNamespace(resources=ResourceList(fromdict=resources), threads=threads,
                           name="train_transfer")


def sbatch(resources: dict) -> str:
    """The sbatch command the plugin builds for a job with ``resources`` (as its executor
    does: get_submit_command, then set_gres_string)."""
    j = job(resources)
    params = {"run_uuid": "uuid", "slurm_logfile": "log", "comment_str": "rule_train_transfer",
              "account": "-A 'acct'", "partition": "-p 'gpu'", "workdir": "/w"}
    return get_submit_command(j, params) + set_gres_string(j)


def test_the_profile_and_the_readme_give_the_same_advice():
    advice = profile_advice()
    assert advice == {"gres": "gpu:a100:1", "gpu": 0, "cpus_per_task": 8}
    row = readme_row()
    for key, value in advice.items():
        text = f'{key}: "{value}"' if isinstance(value, str) else f"{key}: {value}"
        assert f"`{text}`" in row, text
    assert "`--gres=gpu:a100:1 --cpus-per-task=8`" in row


def test_the_rule_itself_asks_for_a_gpu():
    # What makes "replace gpu by gres" wrong: the rule's gpu resource stays unless overridden.
    assert rule_resources()["gpu"] == 1


def test_gres_alone_still_submits_gpus():
    # The old advice (only gres in set-resources) as the plugin submits it.
    res = {**rule_resources(), "gres": "gpu:a100:1"}
    assert set_gres_string(job(res)).split() == ["--gres=gpu:a100:1", "--gpus=1"]


def test_the_advice_submits_exactly_the_gres():
    res = {**rule_resources(), "cpus_per_gpu": 8, **profile_advice()}
    assert set_gres_string(job(res)).split() == ["--gres=gpu:a100:1"]
    call = sbatch(res)
    assert "--gres=gpu:a100:1" in call.split() and "--cpus-per-task=8" in call.split()
    assert "--gpus" not in call and "--cpus-per-gpu" not in call, call


def test_the_job_step_asks_for_no_gpus_and_the_advised_cpus():
    # Inside the allocation the jobstep plugin runs the job with srun: no --gpus=N for gpu 0,
    # and --cpus-per-task from cpus_per_task (SLURM_GPUS is unset under --gres).
    from snakemake_executor_plugin_slurm_jobstep import get_gpu_setting

    res = {**rule_resources(), "cpus_per_gpu": 8, **profile_advice()}
    assert get_gpu_setting(job(res)) == ""
    assert get_cpu_setting(job(res), None) == "--cpus-per-task=8"
    assert get_gpu_setting(job({**rule_resources(), "gres": "gpu:a100:1"})) == "--gpus=1"

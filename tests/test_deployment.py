"""Software deployment: --sdm conda (envs/augloss.yaml), --sdm apptainer (containers/), and
scripts that import the workflow's own augloss without it being installed.

Conda channels and container registries are out of reach here: these tests check what can be
checked without them (the files, and a real Snakemake job in an environment without augloss).
"""

import ast
import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from tests.helpers import REPO, job_counts, load

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _plain(reqs) -> set[tuple[str, str]]:
    return {(r.name.lower(), str(r.specifier)) for r in map(Requirement, reqs)}


def test_the_conda_env_holds_the_dependencies_and_not_the_package():
    env = yaml.safe_load((REPO / "envs" / "augloss.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert not [p for p in pip if p.startswith("-e") or "../" in p or p.startswith(".")]
    # The same ranges as the library (without the Python-version markers: the env is 3.11),
    # less the SLURM executor plugin, which only the head node's Snakemake loads.
    library = {r for r in _plain(PROJECT["dependencies"]) if "executor-plugin" not in r[0]}
    assert _plain(pip) == library
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert Requirement("python").specifier.contains(python.split("=")[1] + ".0")
    # Every rule that runs code names it.
    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        assert text.count("script:") == text.count('conda:\n        "../envs/augloss.yaml"') + \
            text.count('conda:\n            "../envs/augloss.yaml"'), smk.name


def test_the_container_installs_the_tested_versions_and_the_workflow_names_it(tmp_path):
    definition = (REPO / "containers" / "augloss.def").read_text()
    assert "Bootstrap: docker" in definition and "constraints.txt" in definition
    for line in definition.split("%files", 1)[1].split("%post", 1)[0].split("\n"):
        if line.strip():
            assert (REPO / line.split()[0]).is_file(), line  # every file it copies exists
    snakefile = (REPO / "Snakefile").read_text()
    assert "container: container_image()" in snakefile
    schema = yaml.safe_load((REPO / "config.schema.yaml").read_text())
    assert (REPO / Path(schema["properties"]["container"]["default"]).parent).is_dir()
    assert "containers/*.sif" in (REPO / ".gitignore").read_text().splitlines()


def test_every_script_imports_the_workflows_own_augloss_first():
    for path in sorted((REPO / "scripts").glob("*.py")):
        if path.name == "_augloss_path.py":
            continue
        imports = [n for n in ast.parse(path.read_text()).body
                   if isinstance(n, (ast.Import, ast.ImportFrom))]
        first = imports[0]
        assert isinstance(first, ast.Import) and first.names[0].name == "_augloss_path", path.name


def _bare_venv(tmp_path: Path) -> Path:
    """A Python with every dependency of augloss importable but augloss itself not installed:
    a new venv whose site-packages lists ours as a plain path (the editable install's finder,
    a .pth hook there, is not run)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    target = subprocess.run([py, "-c", "import site; print(site.getsitepackages()[0])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(target, "deps.pth").write_text("\n".join(ours) + "\n")
    return py


def test_a_job_runs_the_workflows_own_augloss_installed_or_not(tmp_path):
    py = _bare_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([py, "-c", "import augloss"], capture_output=True, text=True, env=env,
                           cwd=tmp_path)
    assert probe.returncode != 0 and "No module named 'augloss'" in probe.stderr
    # The workflow, copied elsewhere (as a user's clone), runs a real job in that environment.
    wf = tmp_path / "workflow"
    for name in ("augloss", "scripts", "rules", "envs", "demo", "report"):
        shutil.copytree(REPO / name, wf / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Snakefile", "config.schema.yaml", "config.yaml"):
        shutil.copy(REPO / name, wf / name)
    init = wf / "augloss" / "__init__.py"  # mark the copy, to see which augloss a job ran
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "0+copy"'))
    cfg = load(REPO / "demo" / "config.yaml")
    cfg["experiment"] = "bare"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [py, "-m", "snakemake", "results/bare/data/digits.json",
           "results/bare/provenance/environment.json", "--snakefile", str(wf / "Snakefile"),
           "--directory", str(tmp_path), "--cores", "1", "--configfile", str(tmp_path / "c.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert job_counts(proc.stderr)["prepare_dataset"] == 1
    environment = tmp_path / "results/bare/provenance/environment.json"
    assert json.loads(environment.read_text())["augloss"] == "0+copy"
    # Another augloss installed in the job's environment does not shadow the workflow's own.
    site_dir = Path(subprocess.run([py, "-c", "import site; print(site.getsitepackages()[0])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    shutil.copytree(wf / "augloss", site_dir / "augloss")
    init = site_dir / "augloss" / "__init__.py"
    init.write_text(init.read_text().replace('"0+copy"', '"0+installed"'))
    proc = subprocess.run([*cmd, "--forcerun", "environment"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads(environment.read_text())["augloss"] == "0+copy"

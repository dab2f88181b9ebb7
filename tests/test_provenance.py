"""Provenance for every stage: job provenance (without torch), the science packages, the
environment listing each package once, and the audit of packages, data, devices and jobs."""

import hashlib
import json
import subprocess
import sys

import pandas as pd
import pytest

from augloss import provenance, runtime
from augloss.tables import audit, collect
from helpers import REPO, write_runs

RUNS = {("cifar10", "base", "ce"): {0: 0.90, 1: 0.91, 2: 0.92}}
PACKAGES = {"augloss": "0.1.0", "torch": "2.14.1", "timm": "1.0.31", "numpy": "2.4.6"}


# --- job provenance ------------------------------------------------------------------------------

def test_job_provenance_needs_no_torch_and_records_packages():
    code = (
        "import sys, json, time\n"
        "sys.modules['torch'] = None  # any import of torch fails\n"
        "from augloss.provenance import job_provenance\n"
        "p = job_provenance(time.time() - 1, time.time(), {'data': {'train': 'ab'}})\n"
        "q = job_provenance(0.0, 1.0, {}, device='cpu')\n"
        "print(json.dumps([p, q]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    p, q = json.loads(out.stdout)
    for prov in (p, q):
        assert prov["device"] == "cpu" and prov["gpu_name"] == ""
        assert prov["packages"]["torch"] and prov["packages"]["augloss"] == prov["augloss"]
        for key in ("git_commit", "git_dirty", "python", "platform", "hostname",
                    "cuda_visible_devices", "slurm_job_id", "gpus_requested", "started",
                    "ended"):
            assert key in prov, key
    assert p["data"] == {"train": "ab"} and q["started"] == "1970-01-01T00:00:00.000+00:00"


def test_job_provenance_on_cuda_without_torch_still_writes(tmp_path):
    code = ("import sys, json\nsys.modules['torch'] = None\n"
            "from augloss.provenance import job_provenance\n"
            "print(json.dumps(job_provenance(0.0, 1.0, {}, device='cuda')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    prov = json.loads(out.stdout)
    assert prov["device"] == "cuda" and prov["gpu_name"].startswith("unknown")


def test_job_provenance_merges_what_the_job_asked_for(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "current", lambda: {"gpus_requested": 1, "device": "cpu",
                                                     "cpu_fallback": False}, raising=False)
    p = provenance.job_provenance(0.0, 1.0, {})
    assert (p["gpus_requested"], p["device"], p["cpu_fallback"]) == (1, "cpu", False)
    assert provenance.job_provenance(0.0, 1.0, {"gpus_requested": 2})["gpus_requested"] == 2
    written = provenance.write_job_provenance(tmp_path / "j" / "provenance.json", 0.0,
                                              {"data": {"val": "cd"}})
    assert json.loads((tmp_path / "j" / "provenance.json").read_text()) == written
    monkeypatch.setattr(runtime, "current", lambda: None, raising=False)  # outside a job
    assert provenance.job_provenance(0.0, 1.0, {})["gpus_requested"] is None


def test_job_provenance_inside_a_job_records_its_request(tmp_path):
    with runtime.job_context(str(tmp_path / "job.log"), 1, 0, uses_torch=False) as device:
        p = provenance.job_provenance(0.0, 1.0, {})
    assert p["device"] == device == "cpu"
    if hasattr(runtime, "current"):
        assert (p["gpus_requested"], p["cpu_fallback"]) == (0, False)


def test_training_provenance_records_the_packages_too():
    torch = pytest.importorskip("torch")
    p = provenance.provenance(torch.device("cpu"), 0.0, 1.0, {"config_hash": "h"})
    assert p["packages"] == provenance.science_packages()
    assert p["packages"]["torch"] and p["device"] == "cpu" and p["config_hash"] == "h"
    assert "gpus_requested" in p


def test_science_packages_and_manifest_digest(tmp_path):
    packages = provenance.science_packages()
    assert set(packages) <= set(provenance.SCIENCE_PACKAGES)
    assert {"augloss", "torch", "numpy", "pandas", "pillow"} <= set(packages)
    assert "snakemake" not in packages  # cannot change a number; environment.json has it
    manifest = tmp_path / "cifar10.json"
    manifest.write_text(json.dumps({"dataset": "cifar10", "files": {}, "splits": {
        "train": {"size": 10, "classes": 2, "digest": "a" * 64},
        "test": {"size": 5, "classes": 2, "digest": "b" * 64}}}))
    assert provenance.manifest_digest(manifest) == {"test": "b" * 16, "train": "a" * 16}


# --- environment.json ----------------------------------------------------------------------------

class _Dist:
    def __init__(self, name, version):
        self.metadata, self.version = {"Name": name}, version


def test_environment_lists_each_package_once(monkeypatch, tmp_path):
    env = provenance.environment()
    names = [p.split("==")[0].lower().replace("_", "-") for p in env["pip_freeze"]]
    dup = {n for n in names if names.count(n) > 1}
    assert dup == set(env["conflicting_versions"])
    assert any(p.startswith("torch==") for p in env["pip_freeze"])
    assert env["packages"] == provenance.science_packages()
    # distributions() yields a package once per sys.path entry: listed once; two versions of
    # one name are both kept and marked.
    import importlib.metadata

    fake = [_Dist("torch", "2.14.1"), _Dist("torch", "2.14.1"), _Dist("Torch", "2.14.1"),
            _Dist("scikit_learn", "1.9"), _Dist("scikit-learn", "1.8"), _Dist("", "0")]
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter(fake))
    freeze, conflicts = provenance.installed()
    assert freeze == ["scikit_learn==1.8", "scikit_learn==1.9", "torch==2.14.1"]
    assert conflicts == {"scikit-learn": ["1.9", "1.8"]}
    from augloss import workflow

    workflow.write_environment(str(tmp_path / "environment.json"))
    written = json.loads((tmp_path / "environment.json").read_text())
    assert written["pip_freeze"] == freeze and "packages" in written


# --- the audit: packages, data, devices ----------------------------------------------------------

def _runs(tmp_path, per_seed):
    """Three seeds of one cell; ``per_seed[seed]``: (provenance fields, data digests)."""
    write_runs(tmp_path, runs=RUNS)
    for seed, (prov, data) in per_seed.items():
        d = tmp_path / "transfer" / "cifar10" / "base" / "ce" / str(seed)
        m = json.loads((d / "metrics.json").read_text())
        (d / "metrics.json").write_text(json.dumps({**m, "data": data}))
        base = {"git_commit": "abc", "git_dirty": False, "device": "cuda", "gpu_name": "H100",
                "packages": PACKAGES}
        (d / "provenance.json").write_text(json.dumps({**base, **prov}))
    return audit.audit(collect.collect([tmp_path], allow_mixed=True)).iloc[0]


DATA = {"train": "t1", "val": "v1", "test": "s1"}


def test_audit_shows_packages_and_data_and_flags_nothing_when_uniform(tmp_path):
    row = _runs(tmp_path, {s: ({"gpus_requested": 1}, DATA) for s in range(3)})
    assert row["packages"] == "augloss==0.1.0 numpy==2.4.6 timm==1.0.31 torch==2.14.1"
    assert row["data_digest"] == "test=s1 train=t1 val=v1"
    assert row["gpus_requested"] == "1" and row["device"] == "cuda (H100)"
    assert row["flags"] == ""
    df = collect.collect([tmp_path])
    assert {"packages", "data_digest", "gpus_requested"} <= set(df.columns)


def test_audit_flags_mixed_package_versions_and_data(tmp_path):
    row = _runs(tmp_path, {0: ({}, DATA),
                           1: ({"packages": {**PACKAGES, "torch": "2.13.0"}}, DATA),
                           2: ({}, {**DATA, "train": "t2"})})
    assert "mixed package versions: torch 2.14.1 / 2.13.0" in row["flags"]
    assert "mixed data: train t1 / t2" in row["flags"]
    assert "torch==2.13.0" in row["packages"] and "torch==2.14.1" in row["packages"]


def test_a_run_that_recorded_fewer_packages_is_not_mixed(tmp_path):
    """An older run recorded torch/timm only: the packages both recorded are compared, and a
    cell of equal versions is not flagged because one run recorded more names."""
    row = _runs(tmp_path, {0: ({"packages": None, "torch": "2.14.1", "timm": "1.0.31"}, DATA),
                           1: ({}, DATA), 2: ({}, DATA)})
    assert "mixed package versions" not in row["flags"]
    row = _runs(tmp_path / "b", {0: ({"packages": None, "torch": "2.13.0"}, DATA),
                                 1: ({}, DATA), 2: ({}, DATA)})
    assert "mixed package versions: torch 2.13.0 / 2.14.1" in row["flags"]


def test_audit_names_old_provenance_packages(tmp_path):
    """Older provenance files recorded torch/timm/... at the top level."""
    row = _runs(tmp_path, {s: ({"packages": None, "torch": "2.14.1", "timm": "1.0.31"}, DATA)
                           for s in range(3)})
    assert row["packages"] == "timm==1.0.31 torch==2.14.1" and row["flags"] == ""


def test_audit_flags_cpu_instead_of_gpu_and_mixed_devices(tmp_path):
    row = _runs(tmp_path, {0: ({"gpus_requested": 1}, DATA),
                           1: ({"gpus_requested": 1, "device": "cpu", "gpu_name": ""}, DATA),
                           2: ({"gpus_requested": 1}, DATA)})
    assert "ran on the CPU although given 1 GPU: " in row["flags"]
    assert "ce/1" in row["flags"].split("although given 1 GPU: ")[1]
    assert "mixed devices: cpu, cuda (H100)" in row["flags"]
    allowed = {"gpus_requested": 1, "device": "cpu", "gpu_name": "", "cpu_fallback": True}
    row = _runs(tmp_path, {s: (allowed, DATA) for s in range(3)})
    assert "ran on the CPU although given 1 GPU: " in row["flags"]
    assert row["flags"].endswith("(cpu_fallback: true in the config)")


def test_audit_does_not_flag_cpu_runs_that_asked_for_no_gpu_or_recorded_nothing(tmp_path):
    cpu = {"device": "cpu", "gpu_name": ""}
    row = _runs(tmp_path, {0: ({**cpu, "gpus_requested": 0}, DATA), 1: (cpu, DATA),
                           2: (cpu, DATA)})
    assert row["flags"] == "" and row["device"] == "cpu"


# --- the audit: searches and selections ----------------------------------------------------------

def _job(path, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    prov = {"augloss": "0.1.0", "git_commit": "abc", "git_dirty": False, "device": "cuda",
            "gpu_name": "NVIDIA H100", "gpus_requested": 1, "packages": PACKAGES,
            "started": "s", "ended": "e", "data": {"train": "t1", "val": "v1"}, **fields}
    path.write_text(json.dumps(prov))
    return str(path)


def test_audit_jobs_rows_and_flags(tmp_path):
    r = tmp_path / "results" / "x"
    files = [_job(r / "search" / "base" / "provenance.json"),
             _job(r / "search" / "base" / "random" / "provenance.json", device="cpu",
                  gpu_name=""),
             _job(r / "correlation" / "provenance.json", git_dirty=True),
             _job(r / "transfer" / "select_provenance.json", device="cpu", gpu_name="",
                  gpus_requested=0, data={"cifar10": {"train": "t1"}})]
    keys = [audit.job_key(f, r) for f in files]
    assert keys == ["search/base", "search/base/random", "correlation",
                    "transfer/select_provenance"]
    jobs = audit.audit_jobs({**dict(zip(keys, files)),
                             "evolved_losses": str(r / "search" / "nope.json")})
    j = jobs.set_index("job")
    assert list(j.index) == sorted(keys + ["evolved_losses"])
    # the searches are compared with each other: one ran on the CPU, so both are flagged
    across = "mixed devices across the searches: cpu, cuda (NVIDIA H100)"
    assert j.loc["search/base", "flags"] == across
    assert j.loc["search/base", "device"] == "cuda (NVIDIA H100)"
    assert j.loc["search/base", "packages"] == \
        "augloss==0.1.0 numpy==2.4.6 timm==1.0.31 torch==2.14.1"
    assert j.loc["search/base", "data_digest"] == "train=t1 val=v1"
    assert j.loc["search/base/random", "flags"] == \
        f"ran on the CPU although given 1 GPU; {across}"
    assert j.loc["correlation", "flags"] == "uncommitted changes in the code"
    assert j.loc["transfer/select_provenance", "flags"] == ""
    assert j.loc["transfer/select_provenance", "data_digest"] == "cifar10: train=t1"
    assert j.loc["evolved_losses", "flags"] == "no provenance.json"


def test_write_audit_has_a_jobs_section_and_names_the_resolved_config(tmp_path):
    write_runs(tmp_path / "runs")
    a = audit.audit(collect.collect([tmp_path / "runs"]))
    jobs = audit.audit_jobs({"search/base": _job(tmp_path / "s" / "provenance.json",
                                                 device="cpu", gpu_name="")})
    cfg = tmp_path / "config.resolved.yaml"
    cfg.write_text("experiment: x\n")
    sha = hashlib.sha256(cfg.read_bytes()).hexdigest()[:16]
    out = tmp_path / "audit"
    audit.write_audit(a, out / "audit.md", out / "audit.csv", out / "audit.html", jobs=jobs,
                      resolved_config=str(cfg))
    md = (out / "audit.md").read_text()
    assert f"Resolved config: {cfg} (sha256 {sha})" in md
    assert "# Searches and selections\n\n## search/base\n" in md
    assert "- **flags: ran on the CPU although given 1 GPU**" in md
    assert md.split("# Searches and selections")[0].count("\n## ") == len(a)
    csv = pd.read_csv(out / "audit.csv", keep_default_na=False)
    assert list(csv.columns[:14]) == ["stage", "dataset", "augmentation", "loss", "display",
                                      "n_runs", "seeds", "config_hash", "code_version",
                                      "git_commit", "device", "preprocessing", "run_dirs",
                                      "flags"]
    assert list(csv["section"]) == ["cells"] * len(a) + ["jobs"]
    assert list(csv["n_runs"])[:len(a)] == [str(n) for n in a["n_runs"]]
    assert "1 search/selection job(s); 1 flagged." in md
    last = csv.iloc[-1]
    assert (last["job"], last["stage"], last["device"]) == ("search/base", "search", "cpu")
    assert "torch==2.14.1" in last["packages"] and last["data_digest"] == "train=t1 val=v1"
    html = (out / "audit.html").read_text()
    assert "<h3>Searches and selections</h3>" in html and f"sha256 {sha}" in html
    assert html.count("<tr>") == len(a) + 1 + len(jobs) + 1
    # Without jobs or a resolved config: as before (one table, the cells' rows only).
    audit.write_audit(a, out / "audit.md", out / "audit.csv", out / "audit.html")
    assert (out / "audit.html").read_text().count("<tr>") == len(a) + 1
    assert len(pd.read_csv(out / "audit.csv")) == len(a)
    assert "Resolved config" not in (out / "audit.md").read_text()
    audit.write_audit(a, out / "audit.md", out / "audit.csv", resolved_config=tmp_path / "no")
    assert f"Resolved config: {tmp_path / 'no'} (missing)" in (out / "audit.md").read_text()

"""augloss.workflow and augloss.runtime: loss resolution, transfer selection, slugs, injected
failures, the job context."""

import json

import pytest

from augloss import names, provenance, runtime, workflow
from augloss.config import LossSpec
from augloss.experiment import baseline_loss


def test_slug():
    assert names.slug("digits:0-4") == "digits_0-4"
    assert names.slug("imagefolder:/data/my set") == "imagefolder_data_my_set"
    assert names.slug("cifar10") == "cifar10"


def _best(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"losses": [
        {"expression": "square(y - p)", "key": "k1"}, {"expression": "abs(y - p)", "key": "k2"}]}))
    return str(path)


def _baseline(**entry):
    """A config baseline as a job carries it: schema defaults filled, then described."""
    return baseline_loss({"label_smoothing": 0.0, "class_weights": None, **entry})


def test_resolve_ce_baselines_and_evolved(tmp_path):
    assert workflow.resolve_loss("ce", None, None) == LossSpec("ce", "ce")
    ls = workflow.resolve_loss("ce_ls", _baseline(name="ce_ls", loss="ce", label_smoothing=0.1),
                               None)
    assert ls.identity() == {"name": "ce_ls", "expression": "ce", "label_smoothing": 0.1,
                             "class_weights": None}
    mine = workflow.resolve_loss("mine", _baseline(name="mine", expression="abs(y - p)"),
                                 None)
    assert mine.expression == "abs(y - p)"
    focal = workflow.resolve_loss("focal", _baseline(name="focal"), None)
    assert focal.expression == "focal" and focal.origin == "baseline"
    # The job's loss is the one the config check parsed: an expression wins over `loss`.
    both = _baseline(name="x", loss="focal", expression="abs(y - p)", class_weights=[1, 2])
    assert workflow.resolve_loss("x", both, None).identity() == {
        "name": "x", "expression": "abs(y - p)", "label_smoothing": 0.0,
        "class_weights": [1.0, 2.0]}
    best = _best(tmp_path)
    e = workflow.resolve_loss("evolved-cutout-2", None, best)
    assert e.expression == "abs(y - p)" and e.origin == "search:cutout" and e.key == "k2"
    with pytest.raises(ValueError, match="holds only 2 losses"):
        workflow.resolve_loss("evolved-cutout-3", None, best)
    with pytest.raises(ValueError, match="unknown loss"):
        workflow.resolve_loss("mystery", None, None)


def _metrics(tmp_path, loss, expression, value, i):
    path = tmp_path / f"m{loss}{i}.json"
    path.write_text(json.dumps({"loss": loss, "expression": expression, "final_val_acc": value,
                                "label_smoothing": 0.0}))
    return str(path)


def test_select_transfer_ranks_evolved_losses_by_validation_accuracy(tmp_path):
    files = [_metrics(tmp_path, "ce", "-(y * ln(p))", 0.99, 0),
             _metrics(tmp_path, "evolved-base-1", "square(y - p)", 0.5, 0),
             _metrics(tmp_path, "evolved-base-1", "square(y - p)", 0.7, 1),
             _metrics(tmp_path, "evolved-cutout-1", "abs(y - p)", 0.8, 0),
             _metrics(tmp_path, "evolved-mixup-1", "abs(y - p)", 0.75, 0),  # same loss
             _metrics(tmp_path, "evolved-all-1", "y * p", None, 0)]  # diverged
    sel = workflow.select_losses(files, 2, "final_val_acc", "finetune.from_transfer")
    assert [s["loss"] for s in sel["selected"]] == ["evolved-cutout-1", "evolved-base-1"]
    assert sel["selected"][1]["mean"] == pytest.approx(0.6)
    assert [r["loss"] for r in sel["ranking"]][-1] == "evolved-all-1"
    # fine-tuning trains a selected loss under its own name, from its search's best.json
    best = _write(tmp_path / "best.json", {"losses": [{"expression": "abs(y - p)",
                                                       "key": "K1"}]})
    e = workflow.resolve_loss(sel["selected"][0]["loss"], None, str(best))
    assert (e.name, e.expression, e.origin) == ("evolved-cutout-1", "abs(y - p)", "search:cutout")
    with pytest.raises(ValueError, match="unknown loss 'transfer-best-1'"):
        workflow.resolve_loss("transfer-best-1", None, None)
    with pytest.raises(ValueError, match="only 3 distinct"):
        workflow.select_losses(files, 4, "final_val_acc", "finetune.from_transfer")


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_injected_failure_fires_once(tmp_path, monkeypatch):
    runtime.maybe_fail("train_transfer", tmp_path)  # not named: nothing happens
    monkeypatch.setenv("AUGLOSS_FAIL_ONCE", "train_transfer")
    with pytest.raises(RuntimeError, match="injected one-off failure"):
        runtime.maybe_fail("train_transfer", tmp_path)
    runtime.maybe_fail("train_transfer", tmp_path)  # the retry passes
    runtime.maybe_fail("search", tmp_path)  # another rule: nothing happens


def test_injected_failure_can_target_one_job(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGLOSS_FAIL_ONCE", "train_transfer@base/ce/seed0")
    other = tmp_path / "digits" / "mixup" / "ce" / "seed0"
    runtime.maybe_fail("train_transfer", other)
    assert not other.exists()  # no marker written for a job that was not named
    target = tmp_path / "digits" / "base" / "ce" / "seed0"
    with pytest.raises(RuntimeError, match="base/ce/seed0"):
        runtime.maybe_fail("train_transfer", target)
    runtime.maybe_fail("train_transfer", target)


def test_environment_records_packages_and_git():
    env = provenance.environment()
    assert any(p.startswith("torch==") for p in env["pip_freeze"])
    assert env["snakemake"].startswith("9.") and "git_commit" in env


def test_table_jobs_do_not_import_torch(tmp_path):
    """Tables and audit run ~10 jobs; each would pay ~2 s to import torch for nothing."""
    import subprocess
    import sys

    code = ("import sys\nfrom augloss import runtime, workflow\n"
            "from augloss.tables import audit, claims, collect, comparison, plots, render, search\n"
            f"with runtime.job_context({str(tmp_path / 'job.log')!r}, 1, 0, uses_torch=False) "
            "as dev:\n    assert dev == 'cpu'\n"
            "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_finished_run_is_restored_only_under_its_own_key(tmp_path):
    """A cell's job (seeds_in_one_job) restores a seed that finished before only when the run's
    identity, the code and the data all match; a half-kept copy (no key yet) never matches."""
    from augloss import runs

    run = tmp_path / "seed0"
    run.mkdir()
    (run / "metrics.json").write_text('{"seed": 0, "test_acc": 0.9}')
    (run / "provenance.json").write_text('{"device": "cpu"}')
    runs.keep_finished(run, "K1")
    (run / "metrics.json").unlink()  # what Snakemake does before rerunning the job
    (run / "provenance.json").unlink()
    assert runs.restore_finished(run, "K2") is None and not (run / "metrics.json").exists()
    assert runs.restore_finished(run, "K1") == {"seed": 0, "test_acc": 0.9}
    assert (run / "provenance.json").read_text() == '{"device": "cpu"}'
    (run / runs.FINISHED / "key").unlink()
    assert runs.restore_finished(run, "K1") is None
    assert runs.restore_finished(tmp_path / "never", "K1") is None


def test_the_finished_key_covers_the_job_the_code_and_the_data(tmp_path):
    from augloss import runs

    w = tmp_path / "w.safetensors"
    w.write_bytes(b"w")

    job = runs.Job(stage="transfer", dataset="digits", augmentation="base",
                   loss={"name": "ce", "expression": "ce"}, model={"name": "wrn"},
                   train={"epochs": 1}, seed=0)
    key = runs.finished_key(job, None, "d1")
    assert key == runs.finished_key(job, None, "d1")
    assert key != runs.finished_key(job, None, "d2")  # other data
    assert key != runs.finished_key(job, str(w), "d1")  # other start weights
    from dataclasses import replace
    assert key != runs.finished_key(replace(job, seed=1), None, "d1")
    assert key != runs.finished_key(replace(job, train={"epochs": 2}), None, "d1")


def test_kept_copies_are_never_collected_as_runs(tmp_path):
    """The copies in .finished/ are not named metrics.json: a tree walk for runs skips them."""
    from augloss import runs

    run = tmp_path / "transfer" / "d" / "base" / "ce" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    (run / "provenance.json").write_text("{}")
    runs.keep_finished(run, "K")
    assert list(tmp_path.rglob("metrics.json")) == [run / "metrics.json"]
    assert sorted(tmp_path.rglob("*.json")) == [run / "metrics.json", run / "provenance.json"]


def test_the_finished_key_covers_the_start_weights_bytes(tmp_path):
    """A rerun pretraining (or a re-fetched weights file) keeps the file's name but not its
    bytes: the key changes, so no seed is restored from the old weights."""
    from augloss import runs

    w = tmp_path / "weights.safetensors"
    w.write_bytes(b"old")
    job = runs.Job(stage="finetune", dataset="digits", augmentation="base",
                   loss={"name": "ce", "expression": "ce"}, model={"name": "wrn"},
                   train={"epochs": 1}, seed=0)
    before = runs.finished_key(job, str(w), "d1")
    w.write_bytes(b"new")
    assert runs.finished_key(job, str(w), "d1") != before
    hub = runs.Job(**{**job.__dict__, "model": {"name": "wrn", "weights": str(w)}})
    key = runs.finished_key(hub, None, "d1")
    w.write_bytes(b"newer")
    assert runs.finished_key(hub, None, "d1") != key
    script = tmp_path / "train.py"
    script.write_text("a")
    key = runs.finished_key(job, None, "d1", code_files=(str(script),))
    script.write_text("b")
    assert runs.finished_key(job, None, "d1", code_files=(str(script),)) != key

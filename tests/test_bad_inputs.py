"""The bad-input corpus: every case fails before any job runs, naming the culprit."""

import copy

import pytest
import yaml

from tests.helpers import REPO, smk

DEMO = yaml.safe_load((REPO / "demo" / "config.yaml").read_text())


def _set(path, value):
    def edit(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


def _del(path):
    def edit(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        del node[last]
    return edit


def _baseline(**entry):
    return _set("transfer.baselines", [entry])


CASES = {
    "unknown augmentation": (_set("augmentations", ["base", "cutmix"]), "cutmix"),
    "unknown transfer dataset": (_set("transfer.datasets", ["mnist"]), "mnist"),
    "unknown search dataset": (_set("search.dataset", "svhn"), "svhn"),
    "unknown model": (_set("transfer.model", {"name": "resnet50"}), "resnet50"),
    "unknown loss name": (_baseline(name="f", loss="focall"), "focall"),
    "attribute access": (_baseline(name="f", expression="p.__class__"), "attribute access"),
    "dunder name": (_baseline(name="f", expression="__import__('os')"), "__import__"),
    "call of a non-operator": (_baseline(name="f", expression="open(p)"), "unknown name 'open'"),
    "10k-deep nesting": (_baseline(name="f", expression="(" * 4000 + "p" + ")" * 4000),
                         "nested deeper"),
    "1 MB expression": (_baseline(name="f", expression="p+" * 500_000 + "p"), "expression"),
    "unknown function in expression": (_baseline(name="f", expression="pow(p, y)"), "pow"),
    "negative epochs": (_set("transfer.train.epochs", -3), "epochs"),
    "zero epochs": (_set("finetune.train.epochs", 0), "epochs"),
    "non-integer epochs": (_set("transfer.train.epochs", 2.5), "epochs"),
    "negative seed": (_set("transfer.seeds", [-1]), "seeds"),
    "non-integer seed": (_set("finetune.seeds", ["a"]), "seeds"),
    "duplicate seeds": (_set("transfer.seeds", [0, 0]), "seeds"),
    "zero population": (_set("search.algorithm.population", 0), "population"),
    "non-integer population": (_set("search.algorithm.population", 4.5), "population"),
    "top-k larger than the population": (_set("search.algorithm.top_k", 9), "top_k"),
    "missing required section": (_del("transfer"), "transfer"),
    "missing required key": (_del("search.fitness"), "fitness"),
    "misspelled top-level key": (_set("tranfer", {}), "tranfer"),
    "misspelled nested key": (_set("search.algorithm.popsize", 3), "popsize"),
    "misspelled recipe key": (_set("transfer.train.epoch", 3), "epoch"),
    "wrong type: augmentations": (_set("augmentations", "base"), "augmentations"),
    "wrong type: datasets": (_set("transfer.datasets", "digits"), "datasets"),
    "unknown optimizer": (_set("transfer.train.optimizer", "lion"), "lion"),
    "bad mixup mode": (_set("augment.mixup_mode", "labels"), "labels"),
    "label smoothing >= 1": (_baseline(name="f", loss="ce", label_smoothing=1.5),
                             "label_smoothing"),
    "reserved baseline name": (_baseline(name="ce"), "name"),
    "evolved per augmentation > top_k": (_set("transfer.evolved_per_augmentation", 5),
                                         "evolved_per_augmentation"),
    "fine-tune picks more than exist": (_set("finetune.from_transfer", 50), "from_transfer"),
    "correlation top_n > top_k": (_set("correlation.top_n", 7), "correlation.top_n"),
    "experiment name with a slash": (_set("experiment", "../x"), "experiment"),
    "weighted CE without weights": (_baseline(name="w", loss="weighted_ce"), "class_weights"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_fails_before_any_job_and_names_the_culprit(tmp_path, case):
    edit, culprit = CASES[case]
    cfg = copy.deepcopy(DEMO)
    edit(cfg)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = smk(tmp_path, "--cores", "1", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert culprit in out, out[-3000:]
    assert not (tmp_path / "results").exists()


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


# --- bad inputs met at run time ----------------------------------------------------------------

def test_missing_dataset_fails_only_its_job_and_says_where_to_put_it(tmp_path):
    cfg = copy.deepcopy(DEMO)
    cfg["finetune"]["datasets"] = ["imagefolder:my_images"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    manifest = "results/demo/data/imagefolder_my_images.json"
    proc = smk(tmp_path, manifest, "--cores", "1", "--configfile", str(tmp_path / "bad.yaml"),
               check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "my_images/train/<class>/<image>" in out and "ImageFolder layout" in out
    log = (tmp_path / "results/demo/logs/data/imagefolder_my_images.log").read_text()
    assert "DatasetMissing" in log
    assert not (tmp_path / manifest).exists()


def test_unwritable_results_directory_fails_before_any_job(tmp_path):
    (tmp_path / "results").write_text("a file where the results directory should be")
    proc = smk(tmp_path, "--cores", "1", "--configfile", str(REPO / "demo" / "config.yaml"),
               check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "results directory results/demo cannot be written: results is not a directory" in out
    assert "Job stats" not in out and (tmp_path / "results").is_file()  # nothing scheduled


def test_unwritable_names_the_blocking_directory(tmp_path, monkeypatch):
    from augloss.runtime import unwritable

    assert unwritable(tmp_path / "results" / "demo") is None  # created later, parent writable
    (tmp_path / "file").write_text("x")
    assert unwritable(tmp_path / "file" / "demo") == f"{tmp_path / 'file'} is not a directory"
    monkeypatch.setattr("os.access", lambda path, mode: False)  # as a user without rights
    assert unwritable(tmp_path / "results" / "demo") == f"{tmp_path} is not writable by this user"

"""The paper-shaped smoke run (tests/configs/paper-smoke.yaml) end to end: config.yaml's DAG with
the real WRN-28-10 and EfficientNetV2-S on synthetic data of the real shapes.

Marked ``smoke`` (deselected by ``make test``; ``make smoke`` and CI run it): about a quarter of
an hour on two cores. It checks what only this run can show: every stage, selection and table of
the paper's experiment on the real models at their real sizes and class counts.
"""

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, smk

pytestmark = pytest.mark.smoke
CONFIG = REPO / "tests" / "configs" / "paper-smoke.yaml"
TECHNIQUES = set(yaml.safe_load((REPO / "config.yaml").read_text())["augmentations"])
CLASSES = {"synthetic:cifar10": 10, "synthetic:cifar100": 100, "synthetic:stanford_cars": 196,
           "synthetic:flowers102": 102, "synthetic:caltech101": 101}


@pytest.fixture(scope="module")
def run(tmp_path_factory, request):
    work = tmp_path_factory.mktemp("paper-smoke")
    start = time.monotonic()
    smk(work, "--cores", "2", "--configfile", str(CONFIG))
    wall = time.monotonic() - start
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print(f"\npaper-smoke: snakemake --cores 2 finished in {wall:.0f} s")
    return work / "results" / "paper-smoke"


def metrics(results: Path, stage: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / stage).rglob("metrics.json"))]


def parameters(name: str, classes: int) -> int:
    from augloss import models

    if name == "wrn":
        return models.count_parameters(models.create("wrn", classes, depth=28, width=10))
    import timm

    return models.count_parameters(timm.create_model("tf_efficientnetv2_s", num_classes=classes))


def test_every_table_plot_and_audit_is_written(run):
    for table in ("search", "correlation", "transfer", "finetune", "claims", "specificity",
                  "surrogate_validity"):
        for ext in ("md", "csv", "tex", "html"):
            assert (run / "tables" / f"{table}.{ext}").stat().st_size > 0
    for plot in ("evolution", "correlation", "transfer_delta", "finetune_delta",
                 "transfer_curves", "finetune_curves", "probe_curves"):
        assert (run / "plots" / f"{plot}.png").stat().st_size > 0
    assert (run / "audit" / "audit.csv").stat().st_size > 0
    transfer = (run / "tables" / "transfer.md").read_text()
    assert "synthetic" in transfer and "cifar100" in transfer


def test_five_searches_feed_the_transfer_stage(run):
    evolved = json.loads((run / "search" / "evolved.json").read_text())["losses"]
    assert {e["name"].split("-")[1] for e in evolved} <= TECHNIQUES
    for aug in TECHNIQUES:
        assert json.loads((run / "search" / aug / "best.json").read_text())
    runs = metrics(run, "transfer")
    losses = {m["loss"] for m in runs}
    assert {"ce", "ce_ls", "focal", "poly1"} <= losses
    assert {e["name"] for e in evolved} <= losses
    cells = {(m["dataset"], m["augmentation"], m["loss"]) for m in runs}
    assert len(cells) == len(runs) == 2 * 5 * len(losses)  # every dataset x technique x loss


def test_transfer_trains_the_real_wrn_28_10(run):
    for m in metrics(run, "transfer"):
        assert m["status"] == "completed" and m["model"] == "wrn"
        assert m["num_parameters"] == parameters("wrn", CLASSES[m["dataset"]]), m["dataset"]


def test_finetune_takes_the_transfer_selection_to_the_real_efficientnetv2_s(run):
    selection = json.loads((run / "transfer" / "selection.json").read_text())
    assert [s["rank"] for s in selection["selected"]] == [1, 2]
    runs = metrics(run, "finetune")
    paths = sorted((run / "finetune").rglob("metrics.json"))
    # runs are keyed by the selected losses' own names (a new selection reruns only its new
    # losses), and each trained the loss its directory names
    assert {p.parts[-3] for p in paths} == {"ce", *(s["loss"] for s in selection["selected"])}
    for path, m in zip(paths, runs):
        assert m["loss"] == path.parts[-3], path
    assert {m["dataset"] for m in runs} == {"synthetic:stanford_cars", "synthetic:flowers102",
                                           "synthetic:caltech101"}
    assert {m["augmentation"] for m in runs} == TECHNIQUES and len(runs) == 3 * 5 * 3
    weights = json.loads((run / "data" / "weights.json").read_text())
    assert "NOT pretrained" in weights["source"]
    for m in runs:
        assert m["status"] == "completed"
        assert m["num_parameters"] == parameters("efficientnetv2_s", CLASSES[m["dataset"]])
        pre = m["preprocessing"]
        # the weights' own pipeline: 300 px, mean = std = 0.5, bicubic
        assert pre["image_size"] == 300 and pre["overridden"] == []
        assert pre["tag"] == "tf_efficientnetv2_s.in1k" and pre["pretrained"] == "synthetic"
        assert pre["weights_file"] == Path(weights["file"]).name

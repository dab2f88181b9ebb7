"""augloss.registry: one spec per built-in dataset and model, and every table of code behind the
specs (loaders, stand-in writers, model builders) keyed exactly by them."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from augloss import data, models, names, registry, synthetic

ROOT = Path(__file__).resolve().parents[1]


def test_every_dataset_has_a_loader_and_every_loader_a_dataset():
    assert set(data.LOADERS) == set(registry.DATASETS)


def test_every_stand_in_has_a_writer_and_every_writer_a_stand_in():
    assert set(synthetic.WRITERS) == set(registry.stand_ins())
    streams = [registry.DATASETS[n].stand_in.stream for n in registry.stand_ins()]
    assert len(set(streams)) == len(streams)  # each stand-in draws from its own random stream
    for name in registry.stand_ins():
        assert synthetic.spec_of(name).classes == registry.DATASETS[name].classes


def test_every_model_has_a_builder_and_every_builder_a_model():
    assert set(models.BUILDERS) == set(registry.MODELS)


def test_the_schemas_model_names_are_the_registrys():
    schema = yaml.safe_load((ROOT / "config.schema.yaml").read_text())
    name = schema["$defs"]["model"]["properties"]["name"]
    assert name["pattern"] == registry.model_pattern()
    for m in registry.MODELS.values():
        assert m.form.split(":")[0] in name["description"]


def test_the_schema_lists_no_datasets():
    """Adding a dataset never touches the schema: it enumerates none (names.check_dataset)."""
    enums = []

    def walk(node):
        if isinstance(node, dict):
            enums.extend(node.get("enum", []))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load((ROOT / "config.schema.yaml").read_text()))
    assert not set(enums) & set(registry.DATASETS)


def test_timm_names_come_from_the_registry():
    assert names.timm_name({"name": "efficientnetv2_s", "tag": "in1k"}) == \
        "tf_efficientnetv2_s.in1k"
    assert names.timm_name({"name": "timm:test_efficientnet"}) == "test_efficientnet"
    assert names.timm_name({"name": "wrn"}) is None
    assert names.weights_dir({"name": "timm:x", "pretrained": "synthetic"}, "d") == \
        Path("d/synthetic/weights/x")


@pytest.mark.parametrize("call", [
    lambda: names.check_dataset("mnist"),
    lambda: data.load("mnist"),
    lambda: data.load("cifar10:x"),
    lambda: data.load("imagefolder"),
])
def test_unknown_datasets_are_refused_naming_the_known_ones(call):
    with pytest.raises(ValueError, match=r"unknown dataset .*datasets are digits, cifar10, "
                                         r".*imagefolder:<path>, synthetic:<dataset>"):
        call()


@pytest.mark.parametrize("call", [
    lambda tmp: names.check_dataset("synthetic:imagenet"),
    lambda tmp: data.load("synthetic:imagenet", tmp),
    lambda tmp: data.load("synthetic:digits", tmp),
    lambda tmp: synthetic.check("imagenet"),
    lambda tmp: synthetic.write("imagenet", tmp),
])
def test_unknown_stand_ins_are_refused_naming_the_known_ones(call, tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'synthetic:.*'; synthetic datasets "
                                         r"are synthetic:cifar10, synthetic:cifar100, "):
        call(tmp_path)
    assert not (tmp_path / "synthetic").exists()


@pytest.mark.parametrize("call", [
    lambda: models.create("resnet", 10),
    lambda: models.create("timm", 10),
    lambda: models.create("wrn:x", 10),
    lambda: names.timm_name({"name": "resnet"}),
])
def test_unknown_models_are_refused_naming_the_known_ones(call):
    with pytest.raises(ValueError, match=r"unknown model .*models are surrogate, wrn, "
                                         r"efficientnetv2_s, timm:<name>"):
        call()


def test_the_registry_and_names_import_no_torch():
    code = ("import sys\nimport augloss.names, augloss.registry, augloss.manifest\n"
            "names = augloss.names\nnames.check_dataset('synthetic:cifar10')\n"
            "names.timm_name({'name': 'efficientnetv2_s'})\n"
            "heavy = sorted(m for m in ('torch', 'torchvision', 'timm', 'numpy') "
            "if m in sys.modules)\nassert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]

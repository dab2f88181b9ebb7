"""augloss.experiment.Experiment, augloss.names and augloss.config: the torch-free parse layer."""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from augloss import names
from augloss.config import LossSpec
from augloss.experiment import Experiment, canonical, deep_merge
from augloss.schema import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _config(name="config.yaml"):
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture(params=["config.yaml", "demo/config.yaml"])
def config(request):
    return _config(request.param)


def test_names_round_trip():
    assert names.evolved("cutout", 2) == "evolved-cutout-2"
    parsed = names.parse_loss("evolved-randaugment-12")
    assert (parsed.kind, parsed.augmentation, parsed.rank) == ("evolved", "randaugment", 12)
    assert str(parsed) == "evolved-randaugment-12"
    assert names.parse_loss("transfer-best-3").kind == "named"  # no rank slots: by name
    assert names.parse_loss("ce_ls").kind == "named"
    assert names.parse_loss("evolved-cutout").kind == "named"
    assert names.display("evolved-mixup-1") == "evolved[mixup]#1"
    assert names.display("focal") == "focal"
    assert names.technique_order("all") == 4 and names.technique_order("zzz") == 5


def test_dataset_names_are_checked_in_one_place():
    for ok in ("cifar10", "digits:0-4", "imagefolder:/x/y", "stanford_cars"):
        names.check_dataset(ok)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*imagefolder:<path>"):
        names.check_dataset("mnist")
    assert names.slug("digits:0-4") == "digits_0-4"


def test_paper_experiment_lists_the_paper_jobs():
    x = Experiment.from_config(_config())
    assert x.results == "results/paper"
    assert x.losses("transfer") == ["ce", "ce_ls", "focal", "poly1", "evolved-base-1",
                                    "evolved-cutout-1", "evolved-mixup-1",
                                    "evolved-randaugment-1", "evolved-all-1"]
    # fine-tuning's evolved losses are the transfer selection's, by their own names, known
    # once select_transfer ran
    assert x.losses("finetune") == ["ce"]
    assert x.losses("finetune", ["evolved-mixup-1"]) == ["ce", "evolved-mixup-1"]
    assert set(x.all_datasets()) == {"cifar10", "cifar100", "stanford_cars", "flowers102",
                                     "caltech101"}
    assert x.seeds() == {"transfer": [0, 1, 2], "finetune": [0, 1, 2]}


def test_upstream_names_what_a_loss_reads():
    x = Experiment.from_config(_config())
    assert x.upstream("transfer", "evolved-mixup-1") == ("best", "mixup")
    assert x.upstream("finetune", "evolved-cutout-1") == ("best", "cutout")
    assert x.upstream("transfer", "ce") is None and x.upstream("finetune", "ce_ls") is None


def test_search_job_carries_the_main_runs_input_pipeline():
    job = Experiment.from_config(_config()).search_job("base")
    assert (job["fitness"]["image_size"], job["fitness"]["normalize"]) == (80, "tf")
    demo = Experiment.from_config(_config("demo/config.yaml")).search_job("base")
    assert (demo["fitness"]["image_size"], demo["fitness"]["normalize"]) == (8, "unit")


def test_search_job_applies_overrides_and_is_canonical(config):
    config = copy.deepcopy(config)
    config["search"]["overrides"] = {"cutout": {"algorithm": {"children": 3},
                                                "fitness": {"metric": "max"}}}
    x = Experiment.from_config(config)
    job = x.search_job("cutout")
    assert job["algorithm"]["children"] == 3 and job["fitness"]["metric"] == "max"
    assert x.search_job("base")["algorithm"]["children"] == \
        config["search"]["algorithm"]["children"]
    assert list(job) == sorted(job)  # key order never triggers a rerun
    assert job["fitness"]["model"] == config["search"]["model"]


def test_train_jobs_carry_everything_a_run_depends_on(config):
    x = Experiment.from_config(config)
    slug = next(iter(x.datasets("finetune")))
    job = x.train_job("finetune", slug, "mixup", "ce", "1")
    assert job["seed"] == 1 and job["dataset"] == config["finetune"]["datasets"][0]
    assert job["augment"] == {**x.config["augment"], **x.config["finetune"]["augment"]}
    # the config's recipe, every key it leaves out filled from the stage's own defaults
    assert job["train"] == {**job["train"], **config["finetune"]["train"]}
    assert job["train"] == x.config["finetune"]["train"] and job["baseline"] is None
    assert job["preprocessing"] == config["finetune"]["preprocessing"]  # from the weights
    t = x.train_job("transfer", next(iter(x.datasets("transfer"))), "base", "ce", 0)
    assert t["augment"] == {**x.config["augment"], **x.config["transfer"]["augment"],
                            **x.config["transfer"]["augment_by_dataset"].get(t["dataset"], {})}
    assert t["preprocessing"] is None
    assert (t["train_split"], job["train_split"]) == \
        (x.config["transfer"]["train_split"], x.config["finetune"]["train_split"])


def test_a_job_trains_one_run_or_every_seed_of_its_cell(config):
    x = Experiment.from_config(config)
    slug = next(iter(x.datasets("transfer")))
    one = x.train_jobs("transfer", slug, "cutout", "ce", "1")
    assert one == [x.train_job("transfer", slug, "cutout", "ce", 1)]
    cell = x.train_jobs("transfer", slug, "cutout", "ce")
    assert [j["seed"] for j in cell] == config["transfer"]["seeds"]
    assert cell == [x.train_job("transfer", slug, "cutout", "ce", s)
                    for s in config["transfer"]["seeds"]]
    for stage in ("transfer", "finetune"):
        grouped = config[stage].get("seeds_in_one_job", False)
        assert x.runs_per_job(stage) == (len(config[stage]["seeds"]) if grouped else 1)
    # The paper config runs one GPU job per seed; the CPU demo one process per cell.
    assert x.seeds_in_one_job("transfer") == (config["experiment"] == "demo")
    # Each run names its own directory, which is the rule's output path for its seed: the
    # script never pairs jobs with outputs by position.
    patterns = [x.run_dir("transfer", "{dataset}", "{aug}", "{loss}", s)
                for s in x.job_seeds("transfer")]
    wildcards = {"dataset": slug, "aug": "cutout", "loss": "ce", "seed": 1}
    jobs = cell if x.seeds_in_one_job("transfer") else one
    assert [p.format(**wildcards) for p in patterns] == [j["out_dir"] for j in jobs]
    assert all(j["out_dir"].endswith(f"/seed{j['seed']}") for j in cell)


def test_gpu_resources_grow_memory_with_the_attempt(config):
    res = Experiment.from_config(config).resources("transfer")
    assert res["gpu"] == config["transfer"]["gpu"]
    assert res["mem_mb"](None, 2) == 2 * config["transfer"]["mem_mb"]
    assert res["mem_mb"](None, 9) == 2 * config["transfer"]["mem_mb"]  # capped: timeouts retry
    # A job that trains 3 runs one after another asks for 3 runs' time, not more memory.
    three = Experiment.from_config(config).resources("transfer", 3)
    assert three["runtime"] == 3 * res["runtime"] == 3 * config["transfer"]["runtime"]
    assert three["mem_mb"](None, 1) == res["mem_mb"](None, 1)


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["transfer"].update(evolved_per_augmentation=9), "transfer.evolved_per_augmentation"),
    (lambda c: c["correlation"].update(top_n=99), "correlation.top_n"),
    # the surrogate-validity table needs a fresh score of every loss that reaches transfer
    (lambda c: (c["transfer"].update(evolved_per_augmentation=3),
                c["correlation"].update(top_n=2)), "correlation.top_n"),
    (lambda c: c["finetune"].update(from_transfer=99), "finetune.from_transfer"),
    (lambda c: c["transfer"]["datasets"].append("mnist"), "transfer.datasets[2]"),
    (lambda c: c["search"].update(dataset="svhn"), "search.dataset"),
    (lambda c: c["transfer"]["train"].update(epochs=0), "transfer.train.epochs"),  # the schema
    (lambda c: c["search"]["algorithm"].update(population=0), "search.algorithm.population"),
    (lambda c: c["search"]["algorithm"].update(initial_pool=2), "search (augmentation base)"),
    (lambda c: c["transfer"]["baselines"].append({"name": "focal"}), "transfer.baselines"),
    (lambda c: c["transfer"]["baselines"].append({"name": "x", "expression": "sin(y"}),
     "transfer.baselines[3]"),
    (lambda c: c["finetune"].update(model={"name": "wrn"}), "finetune.preprocessing"),
])
def test_cross_field_errors_name_the_key(edit, key):
    config = _config()
    edit(config)
    with pytest.raises(ConfigError, match="^config: " + re.escape(key) + ": "):
        Experiment.from_config(config)


def test_canonical_and_deep_merge():
    assert list(canonical({"b": 1, "a": {"d": 2, "c": 3}})["a"]) == ["c", "d"]
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = deep_merge(base, {"a": {"b": 5}, "d": [2]})
    assert merged == {"a": {"b": 5, "c": 2}, "d": [2]} and base["a"]["b"] == 1


def test_loss_spec_identity_leaves_out_the_origin():
    a = LossSpec("evolved-base-1", "abs(y - p)", origin="search:base", key="k")
    b = LossSpec.from_dict({"name": "evolved-base-1", "expression": "abs(y - p)"})
    assert a.identity() == b.identity() and a != b
    assert LossSpec.from_dict({"name": "focal"}).expression == "focal"
    with pytest.raises(ValueError, match="loss: unknown key"):
        LossSpec.from_dict({"name": "x", "weight": 2})


def test_workflow_parse_never_imports_torch(tmp_path):
    """A dry run of the paper config builds the DAG without torch (or torchvision, timm)."""
    code = (
        "import sys\n"
        "from snakemake.cli import main\n"
        "try:\n"
        f"    main(['-n', '-q', '--directory', {str(tmp_path)!r}, '-s', "
        f"{str(ROOT / 'Snakefile')!r}, '--configfile', {str(ROOT / 'config.yaml')!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def _properties(node, path="config"):
    """Every (path, schema) of a named key in the schema."""
    if isinstance(node, dict):
        for key, sub in (node.get("properties") or {}).items():
            yield f"{path}.{key}", sub
            yield from _properties(sub, f"{path}.{key}")
        for key in ("oneOf", "anyOf", "allOf"):
            for i, sub in enumerate(node.get(key, [])):
                yield from _properties(sub, path)
        for key in ("$defs", "additionalProperties", "items"):
            sub = node.get(key)
            if isinstance(sub, dict):
                if key == "$defs":
                    for name, d in sub.items():
                        yield from _properties(d, f"$defs.{name}")
                else:
                    yield from _properties(sub, path)


def test_every_schema_key_is_described():
    schema = yaml.safe_load((ROOT / "config.schema.yaml").read_text())
    keys = list(_properties(schema))
    assert len(keys) > 100
    missing = [path for path, sub in keys if "description" not in sub]
    assert not missing, missing


def test_schema_and_names_agree_on_the_techniques():
    schema = yaml.safe_load((ROOT / "config.schema.yaml").read_text())
    assert tuple(schema["$defs"]["augmentation"]["enum"]) == names.TECHNIQUES


# Layers, lowest first: a module imports only from its own layer or below.
LAYERS = [
    {"names", "config", "io", "losses", "provenance", "gpu", "stats", "optim", "progress",
     "compat", "techniques", "schema", "runtime", "registry", "manifest", "rankstats",
     "checks"},
    {"data", "synthetic", "augment", "batch_augment", "tf_randaugment", "models", "population",
     "batches"},
    {"train", "runs"},
    {"search"},
    {"tables", "workflow", "experiment"},
    {"cli", "__main__"},
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.startswith("augloss.") else ""
    return next((i for i, layer in enumerate(LAYERS) if top in layer), -1)


def test_no_module_imports_upward():
    import ast

    bad = []
    for path in sorted((ROOT / "augloss").rglob("*.py")):
        mod = "augloss." + ".".join(path.relative_to(ROOT / "augloss").with_suffix("").parts)
        mod = mod.removesuffix(".__init__")
        own = _layer(mod)
        if own < 0:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + ([f"{node.module}.{a.name}" for a in node.names]
                                           if node.module == "augloss" else [])
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if _layer(t) > own:
                    bad.append(f"{mod} imports {t}")
    assert not bad, bad


def test_every_module_has_a_layer():
    tops = {p.stem if p.name != "__init__.py" else p.parent.name
            for p in (ROOT / "augloss").glob("*.py")} | {
        p.name for p in (ROOT / "augloss").iterdir() if p.is_dir() and p.name != "__pycache__"}
    tops.discard("augloss")
    assert tops <= set().union(*LAYERS), tops - set().union(*LAYERS)


def test_no_file_points_outside_the_repository():
    """The repository stands alone: its docs hold the facts it relies on."""
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    files = out.stdout.split() if out.returncode == 0 else []
    assert files, "not a git checkout"
    hits = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".gz"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if "../shared" in text and name != "tests/test_experiment.py":
            hits.append(name)
    assert not hits, hits


def _best(tmp_path, aug, entries):
    path = tmp_path / f"{aug}.json"
    path.write_text(json.dumps({"losses": [{"key": k, "expression": x} for k, x in entries]}))
    return str(path)


def test_a_loss_two_searches_selected_trains_once_under_its_first_name(tmp_path):
    from augloss.workflow import evolved_losses

    best = {"base": _best(tmp_path, "base", [("k1", "a"), ("k2", "b")]),
            "cutout": _best(tmp_path, "cutout", [("k3", "c"), ("k1", "a")]),
            "mixup": _best(tmp_path, "mixup", [("k1", "a"), ("k4", "d")])}
    order = ["evolved-base-1", "evolved-base-2", "evolved-cutout-1", "evolved-cutout-2",
             "evolved-mixup-1", "evolved-mixup-2"]
    sel = evolved_losses(best, order)
    assert [e["name"] for e in sel["losses"]] == ["evolved-base-1", "evolved-base-2",
                                                   "evolved-cutout-1", "evolved-mixup-2"]
    assert sel["losses"][0]["selected_by"] == ["evolved-base-1", "evolved-cutout-2",
                                               "evolved-mixup-1"]
    assert sel["aliases"] == {"evolved-base-1": ["evolved-cutout-2", "evolved-mixup-1"]}
    assert names.display("evolved-base-1", sel["aliases"]["evolved-base-1"]) == \
        "evolved[base]#1 = evolved[cutout]#2 = evolved[mixup]#1"
    with pytest.raises(ValueError, match="holds only 2 losses"):
        evolved_losses(best, ["evolved-base-3"])
    exp = Experiment.from_config(_config())
    assert exp.losses("transfer", ["evolved-base-1"])[-1] == "evolved-base-1"
    assert exp.losses("transfer")[-5:] == exp.evolved_names() == \
        [f"evolved-{a}-1" for a in names.TECHNIQUES]


def test_one_stage_vocabulary():
    """names.STAGES is the list; experiment.STAGES describes each, upstream before downstream."""
    from augloss import experiment

    assert tuple(experiment.STAGES) == names.STAGES
    for i, (name, s) in enumerate(experiment.STAGES.items()):
        assert s.name == name
        assert s.receives == "search" or s.receives in names.STAGES[:i], name
        if s.receives != "search":
            assert experiment.STAGES[s.receives].selects, f"{name} reads an unselected stage"
    assert experiment.stage("pretrain") is experiment.STAGES[experiment.PRETRAIN_SECTION]
    with pytest.raises(ValueError, match="unknown stage 'prescreen'; stages are transfer, "):
        experiment.stage("prescreen")
    with pytest.raises(ValueError, match="unknown stage"):
        x0 = Experiment.from_config(_config())
        x0.upstream("search", "ce")
    x = Experiment.from_config(_config())
    assert x.receiver("transfer") == "finetune"
    assert x.selection_params("transfer") == {"top_k": x.config["finetune"]["from_transfer"],
                                              "metric": x.config["finetune"]["selection_metric"],
                                              "key": "finetune.from_transfer"}


def test_stage_lists_are_derived_not_restated():
    """Rules, tables and the CLI take the stages from names.STAGES / EXP: a literal list of
    stages (e.g. the tables' old wildcard constraint "transfer|finetune") would silently leave a
    new stage out."""
    literal = re.compile(r"transfer\|finetune|[\"']transfer[\"'],\s*[\"']finetune[\"']|"
                         r"[\"']finetune[\"'],\s*[\"']pretrain[\"']")
    files = [ROOT / "Snakefile", *(ROOT / "rules").glob("*.smk"), *(ROOT / "scripts").glob("*.py"),
             *(p for p in (ROOT / "augloss").rglob("*.py") if p.name != "names.py")]
    hits = [str(p.relative_to(ROOT)) for p in files if literal.search(p.read_text())]
    assert hits == []
    tables_smk = (ROOT / "rules" / "tables.smk").read_text()
    assert 'stage="|".join(STAGES)' in tables_smk and "stages=STAGES" in tables_smk
    from augloss import cli

    stage_choices = [a.choices for p in cli.parser()._subparsers._group_actions[0].choices.values()
                     for a in p._actions if a.dest == "stage"]
    assert stage_choices and all(tuple(c) == names.STAGES for c in stage_choices)


@pytest.mark.parametrize("key, value", [("dataset", "digits:0-4"), ("data_root", "/elsewhere"),
                                        ("device", "cuda")])
def test_an_override_cannot_move_a_search_off_its_data_or_device(key, value):
    """search.overrides.<aug>.fitness merges into the fitness, but the dataset, data root and
    device are the search's own (the manifest its job checks is of that dataset): an override
    of them is refused at the dry run, naming it, rather than silently ignored."""
    config = _config("demo/config.yaml")
    config["search"]["overrides"] = {"cutout": {"fitness": {key: value}}}
    with pytest.raises(ConfigError, match=rf"search\.overrides\.cutout\.fitness\.{key}: "):
        Experiment.from_config(config)
    config["search"]["overrides"] = {"cutout": {"fitness": {"threshold_scale": 0.5}}}
    x = Experiment.from_config(config)
    job = x.search_job("cutout")
    assert (job["fitness"]["dataset"], job["fitness"]["data_root"], job["fitness"]["device"]) \
        == (job["dataset"], job["data_root"], x.config["search"]["device"])
    assert job["fitness"]["threshold_scale"] == 0.5 != \
        x.search_job("base")["fitness"]["threshold_scale"]
    assert x.correlation_job()["fitness"] == x.fitness()


def test_an_override_that_turns_on_a_screen_takes_the_screens_own_defaults():
    """A screen that is off (null) and turned on by an override gets every key it leaves out
    from that screen's own defaults, never the training dataclass's WRN values."""
    from augloss.workflow import fitness

    config = _config()
    config["search"]["fitness"]["prefilter"] = None
    config["search"]["overrides"] = {"cutout": {"fitness": {"prefilter": {"epochs": 4}}}}
    x = Experiment.from_config(config)
    full = Experiment.from_config(_config())
    got = fitness(x.fitness("cutout"), "cpu").recipe("prefilter").to_dict()
    want = fitness(full.fitness("cutout"), "cpu").recipe("prefilter").to_dict()
    assert got == {**want, "epochs": 4} and got["optimizer"] == "adam" and got["lr"] == 0.001
    assert x.fitness("base")["prefilter"] is None


def test_weights_belong_to_the_fine_tune_section_only():
    from augloss import experiment

    demo, paper = Experiment.from_config(_config("demo/config.yaml")), Experiment.from_config(
        _config())
    assert demo.weights_stages("pretrain") == [experiment.PRETRAIN_SECTION]
    assert demo.weights_stages("hub") == []  # the demo's model has no published weights
    assert paper.weights_stages("pretrain") == []
    assert paper.weights_stages("hub") == [experiment.PRETRAIN_SECTION]


def test_a_stage_without_a_receiver_is_named(monkeypatch):
    from augloss import experiment

    x = Experiment.from_config(_config())
    fed = [s.receives for s in experiment.STAGES.values() if s.receives != "search"]
    assert x.selecting_stages == fed  # every stage another receives from, and only those
    last = names.STAGES[-1]
    with pytest.raises(ValueError, match=f"no stage receives {last}'s selection; .*"
                                         f"{last} <- {experiment.STAGES[last].receives}"):
        x.receiver(last)
    assert x.selection_params("transfer")["key"] == "finetune.from_transfer"
    assert experiment.searched_stage() == names.STAGES[0] == "transfer"


def test_a_baseline_job_carries_the_loss_its_check_parsed():
    config = _config()
    config["transfer"]["baselines"].append({"name": "mine", "loss": "focal",
                                            "expression": "abs(y - p)"})
    x = Experiment.from_config(config)
    b = x.baselines("transfer")
    assert b["mine"] == {"name": "mine", "expression": "abs(y - p)", "label_smoothing": 0.0,
                         "class_weights": None}
    assert b["ce_ls"]["expression"] == "ce" and b["ce_ls"]["label_smoothing"] == 0.1
    assert b["focal"]["expression"] == "focal"  # the registry entry of its own name
    slug = next(iter(x.datasets("transfer")))
    assert x.train_job("transfer", slug, "base", "mine", 0)["baseline"] == b["mine"]


@pytest.mark.parametrize("device, gpu", [("cpu", 1), ("cuda", 0)])
def test_the_search_device_agrees_with_its_gpus(device, gpu):
    """search.device: cpu with a GPU would hold it idle; cuda without one uses an unclaimed
    GPU: both are refused at the dry run, naming search.device."""
    config = _config()
    config["search"].update(device=device, gpu=gpu)
    with pytest.raises(ConfigError, match=r"search\.device: "):
        Experiment.from_config(config)

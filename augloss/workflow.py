"""Glue between the Snakemake rules and the library: what each thin script calls.

Nothing here reads Snakemake's config: every function takes plain values, so the workflow's
``params:`` carry everything a job depends on and changing a setting reruns exactly its jobs.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from augloss import names
from augloss.config import FitnessConfig, LossSpec, SearchConfig, TrainConfig
from augloss.io import read_json, write_json
from augloss.losses.registry import resolve
from augloss.names import slug  # noqa: F401 (the workflow's name for it)
from augloss.provenance import environment

log = logging.getLogger("augloss.workflow")

@contextlib.contextmanager
def job_context(log_path: str, threads: int, gpus: int, uses_torch: bool = True,
                offline: bool = True) -> Iterator[str]:
    """Log to ``log_path``, use ``threads`` CPU threads, claim ``gpus`` distinct GPUs.

    Yields the torch device string (``cuda`` when GPUs were claimed, else ``cpu``). Jobs that
    never touch torch (tables, audit) pass ``uses_torch=False`` and skip its ~2 s import. Every
    job runs with the hub offline (``HF_HUB_OFFLINE=1``) except the head node's downloads
    (``offline=False``: prepare_dataset, prefetch_weights).
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
        with gpu_slots(int(gpus)) as ids:
            device = "cpu"
            if uses_torch:
                import torch

                torch.set_num_threads(max(1, int(threads)))
                device = "cuda" if ids and torch.cuda.is_available() else "cpu"
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


# --- the experiment: config -> names, checks and job parameters -------------------------------

class ConfigError(ValueError):
    """A config value the schema cannot check (a cross-field rule); the message names the key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config: {key}: {message}")


def load_config(config: dict, schema_file: str | os.PathLike) -> dict:
    """``config`` checked against the JSON schema, with every schema default filled in.

    Snakemake's ``validate`` fills only defaults it meets directly under ``properties``: those
    reached through ``$ref`` (every stage's ``threads``, ``retries``, ...) stay missing and the
    rules fail with a ``KeyError``. Here every default is filled, except inside mappings the
    schema marks ``x-partial`` (overrides, where an absent key means "inherit", not "default").
    An invalid config raises :class:`ConfigError` naming the key in one line.
    """
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_file).read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if errors:
        raise _schema_error(jsonschema.exceptions.best_match(errors), schema)
    return fill_defaults(copy.deepcopy(config), schema, schema)


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_error(err, schema: dict) -> ConfigError:
    """One line naming the key: the missing one for ``required``, else the offending one."""
    key = _key(err.absolute_path)
    if err.validator == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        node = _resolve(err.schema, schema).get("properties", {}).get(missing[0], {})
        what = _resolve(node, schema).get("description", "")
        return ConfigError(_key([*err.absolute_path, missing[0]]),
                           f"required key missing{f' ({what})' if what else ''}; "
                           "config.schema.yaml describes every key")
    if err.validator == "additionalProperties":
        return ConfigError(key, f"{err.message}; config.schema.yaml lists the allowed keys")
    message = err.message if len(err.message) <= 300 else err.message[:300] + "..."
    return ConfigError(key, message)


def _resolve(node, root: dict):
    """A schema node with its local ``$ref`` followed (sibling keys such as ``default`` win)."""
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def fill_defaults(instance, schema: dict, root: dict):
    """Fill ``instance`` (in place, and returned) with the defaults of ``schema``, recursively."""
    schema = _resolve(schema, root)
    if not isinstance(instance, dict) or schema.get("x-partial"):
        return instance
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            fill_defaults(instance[key], sub, root)
    for branch in schema.get("oneOf", []):
        branch = _resolve(branch, root)
        if "properties" in branch:
            fill_defaults(instance, branch, root)
    return instance


def canonical(obj):
    """Sorted-key copy: Snakemake compares params by their text, so key order must not count."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    return obj


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in, recursively for dicts (copies; inputs untouched)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else copy.deepcopy(v)
    return out


@dataclass(frozen=True)
class Experiment:
    """What the rules need from a validated config: names, wildcard values and job params.

    Build it with :meth:`from_config`, which runs every cross-field check first.
    """

    config: dict

    @classmethod
    def from_config(cls, config: dict) -> "Experiment":
        exp = cls(config)
        exp.check()
        return exp

    # --- names ------------------------------------------------------------------------------
    @property
    def results(self) -> str:
        return f"results/{self.config['experiment']}"

    @property
    def augmentations(self) -> list[str]:
        return list(self.config["augmentations"])

    def baselines(self, stage: str) -> dict[str, dict]:
        return {b["name"]: b for b in self.config[stage]["baselines"]}

    def datasets(self, stage: str) -> dict[str, str]:
        """``{slug: dataset name}`` of ``stage`` (transfer, finetune)."""
        return {names.slug(d): d for d in self.config[stage]["datasets"]}

    @property
    def pretrain(self) -> dict | None:
        return self.config["finetune"]["pretrain"]

    def all_datasets(self) -> dict[str, str]:
        """Every dataset some rule reads, by slug (the prepare rule's wildcard values)."""
        out = {names.slug(self.config["search"]["dataset"]): self.config["search"]["dataset"]}
        out.update(self.datasets("transfer"))
        out.update(self.datasets("finetune"))
        if self.pretrain is not None:
            out[names.slug(self.pretrain["dataset"])] = self.pretrain["dataset"]
        return out

    def evolved_names(self) -> list[str]:
        """Every search's losses that go on to transfer, in technique then rank order."""
        k = self.config["transfer"]["evolved_per_augmentation"]
        return [names.evolved(a, r) for a in self.augmentations for r in range(1, k + 1)]

    def losses(self, stage: str, evolved: list[str] | None = None) -> list[str]:
        """The loss wildcard values of ``stage``: ce, the baselines, then the generated names.

        ``evolved``: the transfer stage's evolved losses once the searches are done, each
        loss once (:func:`evolved_losses`); default: every name of :meth:`evolved_names`.
        """
        c = self.config[stage]
        if stage == "transfer":
            generated = self.evolved_names() if evolved is None else list(evolved)
        else:
            generated = [names.transfer_best(k) for k in range(1, c["from_transfer"] + 1)]
        return [names.CE, *self.baselines(stage), *generated]

    def seeds(self) -> dict[str, list[int]]:
        return {s: list(self.config[s]["seeds"]) for s in ("transfer", "finetune")}

    # --- job parameters (everything a job depends on; canonical so key order never reruns) ---
    def _fitness(self) -> dict:
        s = self.config["search"]
        return {**s["fitness"], "model": s["model"], "augment": self.config["augment"],
                "image_size": s.get("image_size", 80), "normalize": s.get("normalize", "tf")}

    def _search_job(self, aug: str, strategy: str = "evolution") -> dict:
        s = self.config["search"]
        over = s.get("overrides", {}).get(aug, {})
        algorithm = deep_merge(s["algorithm"], over.get("algorithm", {}))
        if strategy != "evolution":
            algorithm["strategy"] = strategy
        return {"augmentation": aug, "dataset": s["dataset"],
                "data_root": self.config["data_root"], "seed": s["seed"],
                "device": s["device"], "algorithm": algorithm,
                # the fitness noise is measured once per augmentation, by the evolution
                "noise_seeds": s["noise_seeds"] if strategy == "evolution" else 1,
                "fitness": deep_merge(self._fitness(), over.get("fitness", {}))}

    def search_job(self, aug: str, strategy: str = "evolution") -> dict:
        """The ``search`` rule's ``params.job`` for augmentation ``aug``; ``strategy="random"``
        is the random-search baseline's job (same evaluator and budget)."""
        return canonical(self._search_job(aug, strategy))

    @property
    def random_baseline(self) -> bool:
        """Whether a random search runs beside each evolution (``search.baseline: random``)."""
        return self.config["search"].get("baseline", "none") == "random"

    def correlation_job(self) -> dict:
        s = self.config["search"]
        return canonical({"top_n": self.config["correlation"]["top_n"],
                          "batch": s["algorithm"].get("batch_children", 1),
                          "augmentations": self.augmentations, "dataset": s["dataset"],
                          "data_root": self.config["data_root"], "seed": s["seed"],
                          "device": s["device"], "fitness": self._fitness()})

    def stage_augment(self, stage: str) -> dict:
        """The augmentation parameters of ``stage`` (fine-tuning overrides some)."""
        if stage in ("finetune", "pretrain"):
            return {**self.config["augment"], **self.config["finetune"]["augment"]}
        return self.config["augment"]

    def train_job(self, stage: str, dataset: str, aug: str, loss: str, seed: int) -> dict:
        """One run of a transfer or fine-tune job (``params.jobs``); ``dataset`` is the wildcard (a slug)."""
        c = self.config[stage]
        return canonical({"stage": stage, "dataset": self.datasets(stage)[dataset],
                          "augmentation": aug, "loss": loss,
                          "baseline": self.baselines(stage).get(loss), "model": c["model"],
                          "train": c["train"], "seed": int(seed),
                          "augment": self.stage_augment(stage),
                          "preprocessing": self.preprocessing(stage),
                          "data_root": self.config["data_root"]})

    def seeds_in_one_job(self, stage: str) -> bool:
        """Whether one job of ``stage`` trains every seed of a cell (``<stage>.seeds_in_one_job``)."""
        return bool(self.config[stage].get("seeds_in_one_job", False))

    def runs_per_job(self, stage: str) -> int:
        """Runs one job of ``stage`` trains: every seed of a cell, or one."""
        return len(self.config[stage]["seeds"]) if self.seeds_in_one_job(stage) else 1

    def train_jobs(self, stage: str, dataset: str, aug: str, loss: str,
                   seed: int | str | None = None) -> list[dict]:
        """``params.jobs`` of a training job: its one run (``seed`` given), else every seed of
        the cell in config order (the ``seeds_in_one_job`` rule, whose outputs list the seeds in
        the same order)."""
        seeds = [seed] if seed is not None else self.config[stage]["seeds"]
        return [self.train_job(stage, dataset, aug, loss, s) for s in seeds]

    @property
    def hub_weights(self) -> bool:
        """Whether fine-tuning starts from published pretrained weights that the head node
        fetches once (``prefetch_weights``): a timm model with ``pretrained: true`` and no local
        ``weights`` file of its own."""
        m = self.config["finetune"]["model"]
        return bool(m.get("pretrained")) and not m.get("weights") and \
            names.timm_name(m) is not None

    def preprocessing(self, stage: str) -> dict | None:
        """Fine-tuning's overrides of the weights' own preprocessing ({}: all from the weights);
        None for the CIFAR-size stages and where the config sets it to null."""
        if stage not in ("finetune", "pretrain"):
            return None
        return self.config["finetune"].get("preprocessing", {})

    def pretrain_job(self) -> dict:
        p = self.pretrain
        model = {k: v for k, v in self.config["finetune"]["model"].items() if k != "weights"}
        return canonical({"stage": "pretrain", "dataset": p["dataset"],
                          "augmentation": p.get("augmentation", "base"), "loss": names.CE,
                          "baseline": None, "model": model, "train": p["train"], "seed": 0,
                          "augment": self.stage_augment("pretrain"),
                          "preprocessing": self.preprocessing("pretrain"),
                          "data_root": self.config["data_root"]})

    def upstream(self, stage: str, loss: str) -> tuple[str, str | None] | None:
        """The upstream output a loss wildcard needs: ``("best", aug)`` (a search's top-k),
        ``("selection", None)`` (the transfer selection) or None (ce and baselines)."""
        parsed = names.parse_loss(loss)
        if stage == "transfer" and parsed.kind == "evolved":
            return ("best", parsed.augmentation)
        if stage == "finetune" and parsed.kind == "transfer-best":
            return ("selection", None)
        return None

    def resources(self, stage: str, runs: int = 1) -> dict:
        """``resources:`` of a GPU rule of ``stage`` whose jobs train ``runs`` runs one after
        another (the runtime is ``<stage>.runtime`` per run); a retry gets twice the memory (not
        more: a search that hit its time limit retries many times and needs no more memory)."""
        c = self.config[stage]
        return {"gpu": c["gpu"], "runtime": c["runtime"] * runs,
                "mem_mb": lambda wildcards, attempt: c["mem_mb"] * min(attempt, 2)}

    # --- cross-field checks ----------------------------------------------------------------
    def check(self) -> None:
        """Every rule the schema cannot state; raises :class:`ConfigError` naming the key."""
        for aug in self.augmentations:
            self._check_search(aug)
        _check_dataset("search.dataset", self.config["search"]["dataset"])
        for stage in ("transfer", "finetune"):
            self._check_stage(stage)
        n_evolved = len(self.augmentations) * self.config["transfer"]["evolved_per_augmentation"]
        if self.config["finetune"]["from_transfer"] > n_evolved:
            raise ConfigError("finetune.from_transfer",
                              f"{self.config['finetune']['from_transfer']} is more than the "
                              f"{n_evolved} evolved losses of the transfer stage")
        if self.pretrain is not None:
            _check_dataset("finetune.pretrain.dataset", self.pretrain["dataset"])

    def _check_search(self, aug: str) -> None:
        job = self._search_job(aug)
        try:
            algo = SearchConfig.from_dict(job["algorithm"])
            FitnessConfig.from_dict({**job["fitness"], "dataset": job["dataset"],
                                     "data_root": "."})
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"search (augmentation {aug})", str(exc)) from None
        per_aug = self.config["transfer"]["evolved_per_augmentation"]
        if per_aug > algo.top_k:
            raise ConfigError("transfer.evolved_per_augmentation",
                              f"{per_aug} is more than search.algorithm.top_k ({algo.top_k})")
        if self.config["correlation"]["top_n"] > algo.top_k:
            raise ConfigError("correlation.top_n",
                              f"more than search.algorithm.top_k ({algo.top_k})")

    def _check_stage(self, stage: str) -> None:
        c = self.config[stage]
        for i, name in enumerate(c["datasets"]):
            _check_dataset(f"{stage}.datasets[{i}]", name)
        try:
            TrainConfig.from_dict(c["train"])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{stage}.train", str(exc)) from None
        baseline_names = [b["name"] for b in c["baselines"]]
        if len(set(baseline_names)) != len(baseline_names):
            raise ConfigError(f"{stage}.baselines", "baseline names must be unique")
        for i, b in enumerate(c["baselines"]):
            text = b.get("expression")
            try:
                resolve(text if text is not None else b.get("loss", b["name"]),
                        b.get("label_smoothing", 0.0), b.get("class_weights"))
            except ValueError as exc:
                raise ConfigError(f"{stage}.baselines[{i}]", str(exc)) from None
        model = c["model"]["name"]
        if stage == "finetune" and self.preprocessing(stage) is not None and \
                model != "efficientnetv2_s" and not model.startswith("timm:"):
            raise ConfigError("finetune.preprocessing",
                              f"model {model!r} has no pretrained config to take it from; "
                              "set finetune.preprocessing: null")


def _check_dataset(key: str, name: str) -> None:
    try:
        names.check_dataset(name)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


# --- datasets -------------------------------------------------------------------------------

def prepare_dataset(name: str, root: str, splits: list[str]) -> dict:
    """Download (where possible) and check every split; return a manifest of their digests."""
    from augloss import data

    manifest = {"dataset": name, "splits": {}}
    on_disk = []
    for split in splits:
        ds = data.load(name, root, split, download=True)
        manifest["splits"][split] = {"size": len(ds), "classes": ds.num_classes,
                                     "digest": ds.digest()}
        on_disk += ds.on_disk()
    manifest["files"] = data.file_digests(on_disk, root)
    return manifest


def prefetched_weights(manifest_file: str) -> str:
    """The weights file ``prefetch_weights`` recorded, checked against its size and SHA-256."""
    from augloss import data

    m = read_json(manifest_file)
    path = Path(m["file"])
    data.verify_files({path.name: {"size": m["size"], "sha256": m["sha256"]}}, path.parent,
                      f"pretrained weights {m['model']}")
    return str(path)


def verify_dataset(manifest_file: str, root: str) -> None:
    """Before a job trains on a dataset: every file it is read from still has the size and
    SHA-256 that prepare_dataset recorded (raises :class:`augloss.data.DataMismatch` naming the
    first file that differs)."""
    from augloss import data

    manifest = read_json(manifest_file)
    data.verify_files(manifest.get("files", {}), root, manifest["dataset"])


# --- losses ---------------------------------------------------------------------------------

def resolve_loss(name: str, baseline: dict | None, best_json: str | None,
                 selection_json: str | None) -> LossSpec:
    """The loss a training job uses, from its wildcard value (forms: :mod:`augloss.names`).

    ``ce`` and baseline names come from config (``baseline``); ``evolved-<aug>-<k>`` from the
    search's ``best.json``; ``transfer-best-<k>`` from the transfer stage's ``selection.json``.
    """
    if name == names.CE:
        return LossSpec(names.CE, "ce")
    if baseline is not None:
        return LossSpec(name, baseline.get("expression") or baseline.get("loss", name),
                        float(baseline.get("label_smoothing", 0.0)),
                        baseline.get("class_weights"))
    parsed = names.parse_loss(name)
    if parsed.kind == "evolved":
        if not best_json:
            raise ValueError(f"loss {name}: the search's best.json is missing")
        e = _best_entry(best_json, name)
        return LossSpec(name, e["expression"], origin=f"search:{parsed.augmentation}",
                        key=e["key"])
    if parsed.kind == "transfer-best":
        if not selection_json:
            raise ValueError(f"loss {name}: the transfer selection is missing")
        sel = read_json(selection_json)["selected"]
        if parsed.rank > len(sel):
            raise ValueError(f"loss {name}: {selection_json} selected only {len(sel)} losses")
        e = sel[parsed.rank - 1]
        return LossSpec(e["loss"], e["expression"], float(e.get("label_smoothing") or 0.0),
                        origin=f"transfer:{name}")
    raise ValueError(f"unknown loss {name!r}: not ce, a configured baseline, "
                     f"evolved-<augmentation>-<rank> or transfer-best-<rank>")


def _best_entry(best_json: str, name: str) -> dict:
    """The entry of evolved loss ``name`` (``evolved-<aug>-<rank>``) in its search's best.json."""
    best = read_json(best_json)["losses"]
    rank = names.parse_loss(name).rank
    if rank > len(best):
        raise ValueError(f"loss {name}: {best_json} holds only {len(best)} losses; lower "
                         f"transfer.evolved_per_augmentation or raise search.algorithm.top_k")
    return best[rank - 1]


def evolved_losses(best_files: dict[str, str], evolved_names: list[str]) -> dict:
    """Each evolved loss that goes on to transfer, once: ``{"losses": [{"name", "key",
    "expression", "selected_by"}], "aliases": {name: [other names]}}``.

    Two searches may select the same loss (the same canonical key); it is trained once per
    cell and seed under its first name (technique then rank order of ``evolved_names``), and
    the tables name every search that selected it.
    """
    by_key: dict[str, dict] = {}
    for name in evolved_names:
        e = _best_entry(best_files[names.parse_loss(name).augmentation], name)
        entry = by_key.setdefault(e["key"], {"name": name, "key": e["key"],
                                             "expression": e["expression"], "selected_by": []})
        entry["selected_by"].append(name)
    losses = list(by_key.values())
    return {"losses": losses,
            "aliases": {e["name"]: e["selected_by"][1:] for e in losses
                        if len(e["selected_by"]) > 1}}


def select_transfer(metrics_files: list[str], top_k: int, metric: str) -> dict:
    """Rank the evolved losses of the transfer stage by mean ``metric`` over all its cells.

    Selection uses validation accuracy by default (``final_val_acc``): choosing on test accuracy
    would leak the test set into the fine-tune stage. A diverged run scores 0 (as in the tables).
    """
    import pandas as pd

    rows = [read_json(f) for f in metrics_files]
    # A diverged run scores 0, as in the tables: its last finite accuracy earns no credit.
    df = pd.DataFrame([{"loss": r["loss"], "expression": r["expression"],
                        "label_smoothing": r.get("label_smoothing", 0.0),
                        "value": 0.0 if r.get("diverged") else r.get(metric)} for r in rows])
    evolved = df[df["loss"].map(names.is_evolved)]
    if evolved.empty:
        raise ValueError("no evolved losses among the transfer runs to select from")
    ranked = (evolved.groupby(["loss", "expression"], as_index=False)
              .agg(mean=("value", lambda v: float(pd.to_numeric(v).fillna(0.0).mean())),
                   runs=("value", "size"), label_smoothing=("label_smoothing", "first"))
              .sort_values(["mean", "loss"], ascending=[False, True], kind="stable"))
    # One entry per expression: two searches may find the same loss.
    ranked = ranked.drop_duplicates("expression")
    if len(ranked) < top_k:
        raise ValueError(f"only {len(ranked)} distinct evolved losses for "
                         f"finetune.from_transfer = {top_k}")
    selected = [{"rank": i + 1, "loss": r.loss, "expression": r.expression,
                 "label_smoothing": r.label_smoothing, "mean": r.mean, "runs": int(r.runs)}
                for i, r in enumerate(ranked.head(top_k).itertuples())]
    return {"metric": metric, "selected": selected,
            "ranking": [{"loss": r.loss, "mean": r.mean} for r in ranked.itertuples()]}


# --- provenance -------------------------------------------------------------------------------

def write_environment(path: str) -> None:
    """``provenance/environment.json``: packages, Python, platform, snakemake, git state."""
    write_json(path, environment())

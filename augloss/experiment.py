"""The experiment a config describes: names, wildcard values, cross-field checks, job parameters.

Torch-free: the Snakefile builds one :class:`Experiment` at parse time and the rules read the
config only through it. Every job parameter is complete and canonical, so the workflow's
``params:`` carry everything a job depends on and changing a setting reruns exactly its jobs.

A **stage** is one of :data:`augloss.names.STAGES` (transfer, finetune), each described once in
:data:`STAGES`: where its evolved losses come from, how its config says how many, whether its
losses are ranked for the next stage, whether it starts from pretrained weights. The rules, the
tables' wildcard constraint, the CLI and the checks all derive from that table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from augloss import checks, names
from augloss.config import AugmentConfig, FitnessConfig, SearchConfig, TrainConfig
from augloss.losses.registry import REGISTRY, resolve
from augloss.schema import SCHEMA_FILE, ConfigError, deep_merge, load_config, recipe_default

#: The search's recipes (``search.fitness.<phase>``), each with its own per-key defaults.
PHASES = ("prescreen", "prefilter", "main")


@dataclass(frozen=True)
class Stage:
    """What the workflow needs to know of one training stage.

    ``receives``: ``"search"`` (each search's top losses, named ``evolved-<aug>-<k>``) or the name
    of the stage whose selection it trains (the selected losses, under their own names). ``count_key``: the key of
    this stage's config section that says how many (per augmentation for a search). ``selects``:
    a ``select_<stage>`` rule (``rules/select.smk``, one per selecting stage) ranks this stage's
    evolved losses for the stage that receives them, which states ``selection_metric`` and its
    ``count_key`` in its own section. ``pretrained``: it starts from pretrained weights and
    follows their preprocessing (``<stage>.preprocessing``); the fetched published weights and
    the demo's pretraining job belong to :data:`PRETRAIN_SECTION`'s stage only.
    """

    name: str
    receives: str
    count_key: str
    selects: bool
    pretrained: bool


#: Every training stage, in pipeline order (the keys equal :data:`augloss.names.STAGES`).
STAGES = {
    "transfer": Stage("transfer", receives="search", count_key="evolved_per_augmentation",
                      selects=True, pretrained=False),
    "finetune": Stage("finetune", receives="transfer", count_key="from_transfer",
                      selects=False, pretrained=True),
}

#: The demo's pretraining job reads its recipe from this stage's section and shares its inputs.
PRETRAIN_SECTION = "finetune"


def stage(name: str) -> Stage:
    """The descriptor of training stage ``name``; ``pretrain`` (the demo's pretraining job, not
    a stage) gets the descriptor of the stage whose section configures it."""
    key = PRETRAIN_SECTION if name == "pretrain" else name
    if key not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)} "
                         f"(and pretrain, {PRETRAIN_SECTION}'s pretraining job)")
    return STAGES[key]


def searched_stage() -> str:
    """The stage that trains the searches' winners (the one whose ``receives`` is the search)."""
    return next(s.name for s in STAGES.values() if s.receives == "search")


def baseline_loss(entry: dict) -> dict:
    """A config baseline as the loss a job trains: ``name``, ``expression`` (text or a registry
    name: ``expression``, else ``loss``, else the baseline's own name), ``label_smoothing`` and
    ``class_weights`` (schema defaults filled by :meth:`Experiment.from_config`), and
    ``orient: True`` only where set (so the params, and jobs, of other baselines stay)."""
    text = entry.get("expression")
    return {"name": entry["name"],
            "expression": text if text is not None else entry.get("loss", entry["name"]),
            "label_smoothing": float(entry["label_smoothing"]),
            "class_weights": entry["class_weights"],
            **({"orient": True} if entry.get("orient") else {})}


def canonical(obj):
    """Sorted-key copy: Snakemake compares params by their text, so key order must not count."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    return obj


@dataclass(frozen=True)
class Experiment:
    """What the rules need from a config: names, wildcard values and job params.

    Build it with :meth:`from_config`, which fills every schema default and runs every
    cross-field check first, so no method here needs a fallback value.
    """

    config: dict

    @classmethod
    def from_config(cls, config: dict,
                    schema_file: str | os.PathLike = SCHEMA_FILE) -> "Experiment":
        """``config`` validated against the schema with its defaults filled, then checked.

        ``schema_file`` defaults to the checkout's ``config.schema.yaml`` (the workflow passes
        its own); an installed wheel has no schema and no Snakefile, so pass one there."""
        exp = cls(load_config(config, schema_file))
        exp.check()
        return exp

    # --- names ------------------------------------------------------------------------------
    @property
    def results(self) -> str:
        return f"results/{self.config['experiment']}"

    @property
    def augmentations(self) -> list[str]:
        return list(self.config["augmentations"])

    @property
    def stages(self) -> list[str]:
        """The training stages, in pipeline order."""
        return list(names.STAGES)

    @property
    def data_root(self) -> str:
        return self.config["data_root"]

    @property
    def search_dataset(self) -> str:
        return self.config["search"]["dataset"]

    @property
    def container(self) -> str:
        return self.config["container"]

    def baselines(self, stage: str) -> dict[str, dict]:
        """``{name: the loss it trains}`` (:func:`baseline_loss`) of a stage's baselines."""
        return {b["name"]: baseline_loss(b) for b in self.config[stage]["baselines"]}

    def datasets(self, stage: str) -> dict[str, str]:
        """``{slug: dataset name}`` of ``stage`` (transfer, finetune)."""
        return {names.slug(d): d for d in self.config[stage]["datasets"]}

    @property
    def pretrain(self) -> dict | None:
        return self.config[PRETRAIN_SECTION]["pretrain"]

    def all_datasets(self) -> dict[str, str]:
        """Every dataset some rule reads, by slug (the prepare rule's wildcard values)."""
        out = {names.slug(self.search_dataset): self.search_dataset}
        for s in self.stages:
            out.update(self.datasets(s))
        if self.pretrain is not None:
            out[names.slug(self.pretrain["dataset"])] = self.pretrain["dataset"]
        return out

    def evolved_names(self) -> list[str]:
        """Every search's losses that go on to transfer, in technique then rank order."""
        k = self._count(searched_stage())
        return [names.evolved(a, r) for a in self.augmentations for r in range(1, k + 1)]

    def _count(self, stage_name: str) -> int:
        """How many losses ``stage_name`` receives (per augmentation when from the searches)."""
        return int(self.config[stage_name][stage(stage_name).count_key])

    def losses(self, stage_name: str, evolved: list[str] | None = None) -> list[str]:
        """The loss wildcard values of a stage: ce, the baselines, then the generated names.

        ``evolved``: the evolved losses the stage trains, each once and by its own name: a
        stage fed by the searches gets :func:`augloss.workflow.evolved_losses` once they are
        done (default: every :meth:`evolved_names`); a stage fed by another stage's selection
        gets the selected losses once ``select_<stage>`` ran (default: none yet). Runs are
        keyed by the loss's name, never by a rank slot, so a new selection reruns only the
        runs of the losses it newly selects.
        """
        s = stage(stage_name)
        if evolved is not None:
            generated = list(evolved)
        elif s.receives == "search":
            generated = self.evolved_names()
        else:  # the upstream selection's losses are known once its checkpoint ran
            generated = []
        return [names.CE, *self.baselines(stage_name), *generated]

    def seeds(self, stage_name: str | None = None):
        """The seeds of ``stage_name`` in config order; without one, ``{stage: seeds}``."""
        if stage_name is None:
            return {s: self.seeds(s) for s in self.stages}
        return [int(s) for s in self.config[stage_name]["seeds"]]

    # --- per-stage settings that rules need -------------------------------------------------
    def retries(self, section: str) -> int:
        """``retries:`` of the jobs of config section ``section`` (search, transfer, finetune)."""
        return int(self.config[section]["retries"])

    def threads_setting(self, section: str) -> int | str:
        return self.config[section]["threads"]

    def gpus_per_job(self, section: str) -> int:
        return int(self.config[section]["gpu"])

    def table_params(self) -> dict:
        """The comparison tables' metric and mixed-code switch (``tables``)."""
        t = self.config["tables"]
        return {"metric": t["metric"], "allow_mixed": t["allow_mixed"]}

    def selection_params(self, stage_name: str) -> dict:
        """The selection of ``stage_name``'s evolved losses for the stage that receives them:
        how many it takes and the metric that ranks them."""
        nxt = self.receiver(stage_name)
        return {"top_k": self._count(nxt), "metric": self.config[nxt]["selection_metric"],
                "key": f"{nxt}.{stage(nxt).count_key}"}

    @property
    def selecting_stages(self) -> list[str]:
        """The stages whose evolved losses a selection rule ranks (``select_<stage>``)."""
        return [s for s in self.stages if stage(s).selects]

    def receiver(self, stage_name: str) -> str:
        """The stage that trains ``stage_name``'s selection."""
        for s in STAGES.values():
            if s.receives == stage_name:
                return s.name
        raise ValueError(f"no stage receives {stage_name}'s selection; stages and what they "
                         "receive: " + ", ".join(f"{s.name} <- {s.receives}"
                                                 for s in STAGES.values()))

    # --- job parameters (everything a job depends on; canonical so key order never reruns) ---
    def fitness(self, aug: str | None = None) -> dict:
        """The search's fitness, complete: the dict :class:`FitnessConfig` takes, with
        ``aug``'s overrides (``search.overrides.<aug>.fitness``) merged in, then the data and
        device, which no override may change (the manifest the job checks is the search's own);
        ``device: auto`` is the job's own (:func:`augloss.workflow.fitness`)."""
        s = self.config["search"]
        settings = {**s["fitness"], "model": s["model"], "augment": self.search_augment(),
                    "image_size": s["image_size"], "normalize": s["normalize"]}
        if aug is not None:
            over = s["overrides"].get(aug, {}).get("fitness", {})
            settings = deep_merge(settings, over)
            for phase in PHASES:  # a screen an override turns on takes its own defaults
                if isinstance(over.get(phase), dict):
                    settings[phase] = {**recipe_default(("search", "fitness", phase)),
                                       **settings[phase]}
        return {**settings, "dataset": s["dataset"], "data_root": self.data_root,
                "device": s["device"]}

    def _search_job(self, aug: str, strategy: str = "evolution") -> dict:
        s = self.config["search"]
        over = s["overrides"].get(aug, {})
        algorithm = deep_merge(s["algorithm"], over.get("algorithm", {}))
        if strategy != "evolution":
            algorithm["strategy"] = strategy
        return {"augmentation": aug, "dataset": s["dataset"],
                "data_root": self.data_root, "seed": s["seed"], "algorithm": algorithm,
                # the evolution and the random search each score CE and their best on the
                # same fresh seeds, so their winners pair by seed (CE's scores are one cache)
                "noise_seeds": s["noise_seeds"],
                "fitness": self.fitness(aug)}

    def search_job(self, aug: str, strategy: str = "evolution") -> dict:
        """The ``search`` rule's ``params.job`` for augmentation ``aug``; ``strategy="random"``
        is the random-search baseline's job (same evaluator and budget)."""
        return canonical(self._search_job(aug, strategy))

    @property
    def search_lockstep(self) -> bool:
        """Whether one job runs every augmentation's search in lockstep (``search.lockstep``)."""
        return bool(self.config["search"]["lockstep"])

    @property
    def random_baseline(self) -> bool:
        """Whether a random search runs beside each evolution (``search.baseline: random``)."""
        return self.config["search"]["baseline"] == "random"

    def correlation_job(self) -> dict:
        """The ``correlation_study`` rule's ``params.job``: the losses (each search's top
        ``top_n``, CE and the baselines the transfer stage trains), the number of fresh seeds
        (:func:`augloss.search.seeds.fresh_seeds` of ``search.seed``) and the bootstrap."""
        s, c = self.config["search"], self.config["correlation"]
        return canonical({"top_n": c["top_n"], "seeds": c["seeds"],
                          "bootstrap": c["bootstrap"], "bootstrap_seed": c["bootstrap_seed"],
                          "baselines": list(self.baselines(searched_stage()).values()),
                          # the algorithm's defaults live in SearchConfig (the schema has none)
                          "batch": SearchConfig.from_dict(s["algorithm"]).batch_children,
                          "augmentations": self.augmentations, "dataset": s["dataset"],
                          "data_root": self.data_root, "seed": s["seed"],
                          "fitness": self.fitness()})

    def validity_params(self) -> dict:
        """The surrogate-validity table's metric, mixed-code switch, stage (the one the
        searches feed) and bootstrap (the correlation study's)."""
        c = self.config["correlation"]
        return {**self.table_params(), "resamples": c["bootstrap"],
                "seed": c["bootstrap_seed"], "stage": searched_stage()}

    def augment(self, stage_name: str, dataset: str | None = None) -> dict:
        """The augmentation parameters of a stage's runs on ``dataset`` (a name): ``augment``,
        then the stage's ``augment``, then its ``augment_by_dataset`` entry of ``dataset``.
        ``pretrain`` (the demo's pretraining job) takes its section's stage-wide values."""
        section = self.config[stage(stage_name).name]
        out = {**self.config["augment"], **section["augment"]}
        if dataset is not None:
            out.update(section["augment_by_dataset"].get(dataset, {}))
        return out

    def search_augment(self) -> dict:
        """The augmentation parameters of the searches' main fitness run: ``augment`` with
        ``search.augment`` over it."""
        return {**self.config["augment"], **self.config["search"]["augment"]}

    def train_split(self, stage_name: str) -> str:
        """The split a stage's runs train on (``<stage>.train_split``); the pretraining job
        trains on ``train``."""
        return "train" if stage_name == "pretrain" else self.config[stage_name]["train_split"]

    def seeds_in_one_job(self, stage_name: str) -> bool:
        """Whether one job of a stage trains every seed of a cell (``<stage>.seeds_in_one_job``)."""
        return bool(self.config[stage_name]["seeds_in_one_job"])

    def job_seeds(self, stage_name: str) -> list:
        """The seeds in a training rule's output paths: the cell's every seed
        (``seeds_in_one_job``), else the ``{seed}`` wildcard."""
        return self.seeds(stage_name) if self.seeds_in_one_job(stage_name) else ["{seed}"]

    def runs_per_job(self, stage_name: str) -> int:
        """Runs one job of a stage trains: every seed of a cell, or one."""
        return len(self.job_seeds(stage_name))

    def run_dir(self, stage_name: str, dataset: str, aug: str, loss: str, seed) -> str:
        """The directory of one run (``dataset`` a slug; any part may be a ``{wildcard}``)."""
        return f"{self.results}/{stage_name}/{dataset}/{aug}/{loss}/seed{seed}"

    def train_job(self, stage_name: str, dataset: str, aug: str, loss: str, seed: int) -> dict:
        """One run of a training stage; ``dataset`` is the wildcard (a slug)."""
        c = self.config[stage_name]
        name = self.datasets(stage_name)[dataset]
        return canonical({"stage": stage_name, "dataset": name,
                          "augmentation": aug, "loss": loss,
                          "baseline": self.baselines(stage_name).get(loss), "model": c["model"],
                          "train": c["train"], "seed": int(seed),
                          "train_split": self.train_split(stage_name),
                          "augment": self.augment(stage_name, name),
                          "preprocessing": self.preprocessing(stage_name),
                          "data_root": self.data_root,
                          "out_dir": self.run_dir(stage_name, dataset, aug, loss, seed)})

    def train_jobs(self, stage_name: str, dataset: str, aug: str, loss: str,
                   seed: int | str | None = None) -> list[dict]:
        """``params.jobs`` of a training job: its one run (``seed`` given), else every seed of
        the cell in config order; each names its output directory (``out_dir``), so the script
        needs no pairing with the rule's outputs."""
        seeds = [seed] if seed is not None else self.seeds(stage_name)
        return [self.train_job(stage_name, dataset, aug, loss, s) for s in seeds]

    @property
    def hub_weights(self) -> bool:
        """Whether fine-tuning starts from published pretrained weights that the head node
        fetches once (``prefetch_weights``): a timm model with ``pretrained: true`` and no local
        ``weights`` file of its own."""
        m = self.weights_model
        return bool(m.get("pretrained")) and not m.get("weights") and \
            names.timm_name(m) is not None

    def weights_stages(self, source: str) -> list[str]:
        """The stages that load weights from ``source``: ``pretrain`` (the demo's pretraining
        job) or ``hub`` (the published weights ``prefetch_weights`` fetches). Both belong to
        :data:`PRETRAIN_SECTION`'s model only: another pretrained stage never loads them."""
        present = {"pretrain": self.pretrain is not None, "hub": self.hub_weights}[source]
        return [PRETRAIN_SECTION] if present else []

    @property
    def weights_model(self) -> dict:
        """The model entry whose pretrained weights the head node fetches."""
        return self.config[PRETRAIN_SECTION]["model"]

    def preprocessing(self, stage_name: str) -> dict | None:
        """A pretrained stage's overrides of the weights' own preprocessing ({}: all from the
        weights); None for the other stages and where the config sets it to null."""
        if not stage(stage_name).pretrained:
            return None
        return self.config[stage(stage_name).name]["preprocessing"]

    def pretrain_job(self) -> dict:
        p = self.pretrain
        model = {k: v for k, v in self.config[PRETRAIN_SECTION]["model"].items()
                 if k != "weights"}
        return canonical({"stage": "pretrain", "dataset": p["dataset"],
                          "augmentation": p["augmentation"], "loss": names.CE,
                          "baseline": None, "model": model, "train": p["train"], "seed": 0,
                          "augment": self.augment("pretrain"),
                          "preprocessing": self.preprocessing("pretrain"),
                          "data_root": self.data_root, "out_dir": f"{self.results}/pretrain"})

    def upstream(self, stage_name: str, loss: str) -> tuple[str, str] | None:
        """The upstream output a loss wildcard reads: ``("best", aug)`` for an evolved loss
        (its search's ``best.json``, in every stage: a selection only says which evolved losses
        a stage trains) or None (ce and baselines)."""
        stage(stage_name)  # an unknown stage raises
        parsed = names.parse_loss(loss)
        if parsed.kind == "evolved":
            return ("best", parsed.augmentation)
        return None

    def resources(self, section: str, runs: int = 1) -> dict:
        """``resources:`` of a GPU rule of config section ``section`` whose jobs train ``runs``
        runs one after another (the runtime is ``<section>.runtime`` per run); a retry gets
        twice the memory (not more: a search that hit its time limit retries many times and
        needs no more memory)."""
        c = self.config[section]
        # cpu_fallback is a resource, not a param: it never changes what a job computes on a
        # GPU, so switching it must not rerun finished jobs (a CPU run records its device)
        return {"gpu": c["gpu"], "runtime": c["runtime"] * runs,
                "cpu_fallback": int(self.config["cpu_fallback"]),
                "mem_mb": lambda wildcards, attempt: c["mem_mb"] * min(attempt, 2)}

    # --- cross-field checks ----------------------------------------------------------------
    def check(self) -> None:
        """Every rule the schema cannot state; raises :class:`ConfigError` naming the key."""
        checks.check_config(self.config)  # models, overrides, class weights, slugs, job count
        self._check_search_augment()
        for aug in self.augmentations:
            self._check_search(aug)
        _check_dataset("search.dataset", self.search_dataset)
        for s in self.stages:
            self._check_stage(s)
        for s in self.stages:
            self._check_receives(s)
            self._check_split(s)
        metric = self.config["tables"]["metric"]
        for s in self.stages:
            if "val" in metric and self.train_split(s) == "trainval":
                raise ConfigError("tables.metric",
                                  f"{metric}, but {s}.train_split is trainval: those runs "
                                  f"train on the validation images and record no validation "
                                  f"accuracy (use test_acc, or train_split: train)")
        if self.pretrain is not None:
            _check_dataset(f"{PRETRAIN_SECTION}.pretrain.dataset", self.pretrain["dataset"])

    def _check_receives(self, stage_name: str) -> None:
        """A stage fed by another's selection takes at most as many losses as that one trains."""
        upstream = stage(stage_name).receives
        if upstream == "search":
            return
        available = len(self.augmentations) * self._count(upstream) \
            if stage(upstream).receives == "search" else self._count(upstream)
        wanted = self._count(stage_name)
        if wanted > available:
            raise ConfigError(f"{stage_name}.{stage(stage_name).count_key}",
                              f"{wanted} is more than the {available} evolved losses of the "
                              f"{upstream} stage")

    #: Keys of ``search.augment`` the search sets elsewhere or never uses: its main run's size
    #: and scaling are ``search.image_size`` and ``search.normalize``; it never fine-tunes.
    SEARCH_OWN = {"image_size": "search.image_size", "normalize": "search.normalize",
                  "mean": "search.normalize", "std": "search.normalize",
                  "finetune": None, "crop": None, "crop_pct": None}

    def _check_search_augment(self) -> None:
        """``search.augment`` holds augmentation parameters only, and they combine with the
        search's own size and scaling into a valid pipeline."""
        for key in self.config["search"]["augment"]:
            if key in self.SEARCH_OWN:
                where = self.SEARCH_OWN[key]
                raise ConfigError(f"search.augment.{key}",
                                  f"not a search setting here: set {where}" if where else
                                  "fine-tuning only; the search trains with pad-crop")
        s = self.config["search"]
        try:
            AugmentConfig(**{**self.search_augment(), "image_size": s["image_size"],
                             "normalize": s["normalize"]})
        except (ValueError, TypeError) as exc:
            raise ConfigError("search.augment", f"{exc} (with search.normalize: "
                              f"{s['normalize']})") from None

    def _check_split(self, stage_name: str) -> None:
        """A stage whose evolved losses a later stage selects by validation accuracy keeps its
        validation images out of training."""
        if self.train_split(stage_name) != "trainval" or not stage(stage_name).selects:
            return
        nxt = self.receiver(stage_name)
        if self._count(nxt) == 0:  # nothing is selected from these runs
            return
        metric = self.config[nxt]["selection_metric"]
        count = f"{nxt}.{stage(nxt).count_key}"
        if "val" in metric:
            raise ConfigError(f"{stage_name}.train_split",
                              f"trainval trains on the validation images that {nxt}."
                              f"selection_metric ({metric}) ranks {stage_name}'s losses by; "
                              f"keep train (the validation set held out), or set {count}: 0 "
                              f"so that nothing is selected from these runs (docs/fidelity.md, "
                              f"'Training split')")
        raise ConfigError(f"{stage_name}.train_split",
                              f"trainval with {nxt}.selection_metric: {metric} selects on the "
                          f"test set the losses {nxt} trains; keep train and a validation "
                          f"metric, or set {count}: 0")

    def _check_search(self, aug: str) -> None:
        s = self.config["search"]
        if s["device"] == "cpu" and int(s["gpu"]) > 0:
            raise ConfigError("search.device", f"cpu while search.gpu is {s['gpu']}: the "
                              "searches would hold GPUs and compute on the CPU (auto: the "
                              "job's own device; gpu: 0 for the CPU)")
        if str(s["device"]).startswith("cuda") and int(s["gpu"]) == 0:
            raise ConfigError("search.device", f"{s['device']} while search.gpu is 0: the "
                              "searches would use a GPU no job claimed (auto, or gpu: 1)")
        job = self._search_job(aug)
        try:
            algo = SearchConfig.from_dict(job["algorithm"])
            FitnessConfig.from_dict({**job["fitness"], "data_root": "."})
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"search (augmentation {aug})", str(exc)) from None
        first = searched_stage()
        per_aug = self._count(first)
        if per_aug > algo.top_k:
            raise ConfigError(f"{first}.{stage(first).count_key}",
                              f"{per_aug} is more than search.algorithm.top_k ({algo.top_k})")
        if self.config["correlation"]["top_n"] > algo.top_k:
            raise ConfigError("correlation.top_n",
                              f"more than search.algorithm.top_k ({algo.top_k})")
        if self.config["correlation"]["top_n"] < per_aug:
            # the surrogate-validity table needs a fresh surrogate score of every loss that
            # reaches the first stage
            raise ConfigError("correlation.top_n",
                              f"{self.config['correlation']['top_n']} is less than "
                              f"{first}.{stage(first).count_key} ({per_aug}): the correlation "
                              f"study must score every loss that reaches {first}")

    def _check_stage(self, stage_name: str) -> None:
        c = self.config[stage_name]
        for i, name in enumerate(c["datasets"]):
            _check_dataset(f"{stage_name}.datasets[{i}]", name)
        try:
            TrainConfig.from_dict(c["train"])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{stage_name}.train", str(exc)) from None
        baseline_names = [b["name"] for b in c["baselines"]]
        if len(set(baseline_names)) != len(baseline_names):
            raise ConfigError(f"{stage_name}.baselines", "baseline names must be unique")
        for i, b in enumerate(self.baselines(stage_name).values()):
            if b.get("orient") and b["expression"] in REGISTRY:
                raise ConfigError(f"{stage_name}.baselines[{i}].orient",
                                  f"{b['expression']!r} is a registry loss, oriented already; "
                                  f"orient applies to expression text")
            try:
                resolve(b["expression"], b["label_smoothing"], b["class_weights"])
            except ValueError as exc:
                raise ConfigError(f"{stage_name}.baselines[{i}]", str(exc)) from None
        unknown = sorted(set(c["augment_by_dataset"]) - set(c["datasets"]))
        if unknown:
            raise ConfigError(f"{stage_name}.augment_by_dataset",
                              f"{', '.join(map(repr, unknown))} is not among "
                              f"{stage_name}.datasets ({', '.join(c['datasets'])})")
        for name in c["datasets"]:
            key = f"{stage_name}.augment_by_dataset.{name}" \
                if name in c["augment_by_dataset"] else f"{stage_name}.augment"
            settings = self.augment(stage_name, name)
            if stage(stage_name).pretrained and self.preprocessing(stage_name) is not None:
                # the weights' own mean/std replace normalize in the job (checked there)
                settings = {**settings, "normalize": "mean_std", "mean": (0.5,) * 3,
                            "std": (0.5,) * 3}
            try:
                AugmentConfig(**settings)
            except (ValueError, TypeError) as exc:
                raise ConfigError(key, str(exc)) from None
        model = c["model"]["name"]
        if stage(stage_name).pretrained and self.preprocessing(stage_name) is not None and \
                names.timm_name(c["model"]) is None:
            raise ConfigError(f"{stage_name}.preprocessing",
                              f"model {model!r} has no pretrained config to take it from; "
                              f"set {stage_name}.preprocessing: null")


def _check_dataset(key: str, name: str) -> None:
    try:
        names.check_dataset(name)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None

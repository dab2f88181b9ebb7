"""Every configuration dataclass, torch-free: the workflow validates configs at parse time.

* :class:`TrainConfig`: a training recipe (used by :mod:`augloss.train`);
* :class:`AugmentConfig`: the techniques' parameters (:mod:`augloss.augment`);
* :class:`SearchConfig`, :class:`FitnessConfig`: a search and how it scores (:mod:`augloss.search`);
* :class:`LossSpec`: the loss a training job trains with, from the workflow to :class:`augloss.runs.Job`.

Unknown keys are refused by name (:func:`augloss.io.dataclass_from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from augloss.io import config_hash, dataclass_from_dict

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "constant")
PIPELINES = ("auto", "tensor", "loader")
MIXUP_MODES = ("targets", "losses")
FITNESS_METRICS = ("final", "max")
NORMALIZE = ("unit", "imagenet", "tf", "cifar", "mean_std")
RANDAUGMENT_IMPLS = ("tf", "torchvision")
PAD_MODES = ("constant", "reflect")
CUTOUT_FILLS = ("zero", "mean")
CROPS = ("random_resized", "square")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
DIVERGED_POLICIES = ("keep", "discard")
STRATEGIES = ("evolution", "random")
# The seed of each evaluation of a search: its own (augloss.search.seeds.evaluation_seed) or
# the search seed for every one (a loss found again gets its cached score back).
EVALUATION_SEEDS = ("per_evaluation", "search_seed")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CIFAR per-channel statistics of the WRN code (szagoruyko/wide-residual-networks, pytorch/main.py)
# and of DeVries & Taylor's Cutout code: [125.3, 123.0, 113.9] / 255, [63.0, 62.1, 66.7] / 255.
CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
# Bump when a change to training or scoring code changes a candidate's fitness: evaluation-cache
# entries of another version are never reused (augloss.search.evaluator).
FITNESS_VERSION = 3  # 3: mixup's lam drawn on the host (no device sync per step)


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (a recipe). Field defaults are the WRN standard recipe's."""

    epochs: int = 200
    steps_per_epoch: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    schedule: str = "cosine"
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.2
    lr_floor: float = 0.0
    total_steps: int | None = None  # schedule length (default epochs x steps per epoch)
    grad_clip: float | None = None
    abort: tuple[tuple[int, float], ...] = ()
    fail_below: float | None = None
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    num_workers: int = 0
    evaluate_test: bool = True
    # Data path: "tensor" keeps the training set as one uint8 tensor on the device and augments
    # whole batches (augloss.batch_augment); "loader" is the per-sample torchvision DataLoader;
    # "auto" takes the tensor path wherever it applies (in-memory 32 px data, not fine-tuning).
    pipeline: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "abort", tuple((int(e), float(a)) for e, a in self.abort))
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
            "eval_batch_size": self.eval_batch_size >= 1, "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0, "warmup_steps": self.warmup_steps >= 0,
            "num_workers": self.num_workers >= 0,
            "steps_per_epoch": self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            "total_steps": self.total_steps is None or self.total_steps >= 1,
            "optimizer": self.optimizer in OPTIMIZERS, "schedule": self.schedule in SCHEDULES,
            "pipeline": self.pipeline in PIPELINES,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"train.{key}: invalid value {getattr(self, key)!r}")
        for key in ("epochs", "batch_size", "eval_batch_size", "warmup_steps", "num_workers"):
            if not isinstance(getattr(self, key), int) or isinstance(getattr(self, key), bool):
                raise ValueError(f"train.{key} must be an integer, got {getattr(self, key)!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return dataclass_from_dict(cls, d, "train")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"], d["milestones"] = list(self.betas), list(self.milestones)
        d["abort"] = [list(a) for a in self.abort]
        return d


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of the techniques and the input pipeline (none is from the paper).

    ``pad`` and ``cutout_size`` are pixels of a 32-px image and scale with ``image_size``;
    ``pad_mode`` pads the random crop with zeros (``constant``) or by reflection (the WRN
    code). ``cutout_fill``: ``zero`` (black, before normalisation) or ``mean`` (the
    normalisation's mean colour, i.e. zero after it, as DeVries & Taylor's code).
    ``normalize``: ``unit`` (x / 255), ``imagenet`` (ImageNet mean/std), ``tf`` ((x - 127.5) /
    128, the earlier code's surrogate), ``cifar`` (the WRN and Cutout code's CIFAR mean/std) or
    ``mean_std`` (``mean`` / ``std`` given, in [0, 1] units; what a pretrained model's own
    config resolves to). ``interpolation`` and ``crop_pct`` shape the resizes (fine-tuning
    evaluates a centre crop of side ``image_size`` from the image resized to ``image_size /
    crop_pct``); ``crop`` is fine-tuning's training crop: ``random_resized`` (torchvision's
    scale 0.08-1) or ``square`` (the earlier code: a random square of the shorter side, resized).
    ``randaugment_impl``: ``tf`` (the earlier code's TF Model Garden RandAugment,
    :mod:`augloss.tf_randaugment`; ``randaugment_m`` on its 0-10 level scale, translate and
    cutout constants in pixels, not scaled) or ``torchvision`` (``v2.RandAugment``, 31 bins).
    """

    image_size: int = 32
    finetune: bool = False  # fine-tuning's crop (``crop``) instead of pad-crop
    pad: int = 4
    pad_mode: str = "constant"
    cutout_size: int = 16
    cutout_fill: str = "zero"
    mixup_alpha: float = 1.0
    mixup_mode: str = "targets"
    randaugment_impl: str = "torchvision"
    randaugment_n: int = 2
    randaugment_m: int = 9
    randaugment_translate: float = 100.0
    randaugment_cutout: float = 40.0
    normalize: str = "unit"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    crop: str = "random_resized"

    def __post_init__(self):
        for key in ("mean", "std"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, tuple(float(v) for v in getattr(self, key)))
        if self.mixup_mode not in MIXUP_MODES:
            raise ValueError(f"mixup_mode must be one of {MIXUP_MODES}, got {self.mixup_mode!r}")
        for key, allowed in (("normalize", NORMALIZE), ("randaugment_impl", RANDAUGMENT_IMPLS),
                             ("pad_mode", PAD_MODES), ("cutout_fill", CUTOUT_FILLS),
                             ("crop", CROPS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if self.cutout_fill == "mean" and self.mean_std() is None:
            raise ValueError("cutout_fill: mean fills with the normalisation's mean colour; "
                             "normalize: unit has none (use zero, or another normalize)")
        if self.randaugment_translate < 0 or self.randaugment_cutout < 0:
            raise ValueError("randaugment_translate and randaugment_cutout must be >= 0")
        if (self.normalize == "mean_std") != (self.mean is not None and self.std is not None):
            raise ValueError("normalize: mean_std needs mean and std (and only it uses them)")
        if self.normalize == "mean_std" and (len(self.mean) != 3 or len(self.std) != 3
                                             or min(self.std) <= 0):
            raise ValueError("mean and std need three values each, std > 0")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, "
                             f"got {self.interpolation!r}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        for key in ("image_size", "cutout_size", "randaugment_n", "pad"):
            if int(getattr(self, key)) < 0 or (key == "image_size" and self.image_size < 1):
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}")
        if self.mixup_alpha <= 0:
            raise ValueError(f"mixup_alpha must be > 0, got {self.mixup_alpha}")
        if not 0 <= self.randaugment_m <= 30:
            raise ValueError(f"randaugment_m must be in 0..30, got {self.randaugment_m}")

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(mean, std) applied after scaling to [0, 1]; None for ``unit``."""
        if self.normalize == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        if self.normalize == "tf":  # (x - 127.5) / 128 = (x / 255 - 0.5) / (128 / 255)
            return (0.5,) * 3, (128 / 255,) * 3
        if self.normalize == "cifar":
            return CIFAR_MEAN, CIFAR_STD
        if self.normalize == "mean_std":
            return self.mean, self.std
        return None

    def cutout_value(self) -> tuple[int, ...]:
        """The uint8 colour Cutout fills its hole with: black, or the normalisation's mean
        rounded to uint8 (within half a grey level of zero after normalisation)."""
        if self.cutout_fill == "zero":
            return (0, 0, 0)
        return tuple(int(round(m * 255)) for m in self.mean_std()[0])

    def scaled(self, pixels: int) -> int:
        """``pixels`` of a 32-px image at this config's ``image_size``."""
        return int(round(pixels * self.image_size / 32))

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("mean", "std"):
            d[key] = None if d[key] is None else list(d[key])
        return d


@dataclass(frozen=True)
class SearchConfig:
    """Regularized-evolution constants (defaults: the authors' earlier code)."""

    population: int = 100
    initial_pool: int = 1000
    children: int = 4000
    tournament: int = 20
    max_mutation_attempts: int = 2500
    max_evaluations: int = 7
    phenotype_threshold: float = 0.01
    gradient_fingerprint: bool = False
    fingerprint_tolerance: float = 1e-3
    faithful_quirks: bool = False
    top_k: int = 5
    log_every: int = 10
    report_every: int = 100
    # Children bred per step from as many tournaments and trained together as one stacked
    # surrogate (augloss.population). 1 is the faithful algorithm (one child per step).
    batch_children: int = 1
    # Initial-pool candidates screened together on the stacked surrogate, each under its own
    # evaluation seed and batches: every candidate gets the result it gets alone (bit for bit
    # on the CPU, to float rounding on CUDA), so the history equals the one-at-a-time run's.
    # How the pool is computed, not what: left out of the search's config hash.
    pool_batch: int = 1
    # "random": every child is a fresh random valid genome instead of a tournament winner's
    # mutant; the same pool, evaluator and budget (the workflow's search.baseline: random).
    strategy: str = "evolution"
    # "per_evaluation": every training call draws its own seed from (search seed, augmentation,
    # evaluation index), so a loss found again is trained again under fresh noise, as the
    # earlier code's unseeded runs were (faithful). "search_seed": every evaluation under the
    # search seed, so a loss found again gets its cached score back (one draw of the noise).
    evaluation_seeds: str = "per_evaluation"
    # False: each augmentation's search draws pool, tournaments and mutations from a stream of
    # its own (independent replicates); True: one stream and one initial pool for all of them.
    shared_stream: bool = False

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"search.strategy must be one of {STRATEGIES}, "
                             f"got {self.strategy!r}")
        if self.evaluation_seeds not in EVALUATION_SEEDS:
            raise ValueError(f"search.algorithm.evaluation_seeds must be one of "
                             f"{', '.join(EVALUATION_SEEDS)}, got {self.evaluation_seeds!r}")
        if not isinstance(self.shared_stream, bool):
            raise ValueError(f"search.algorithm.shared_stream must be true or false, "
                             f"got {self.shared_stream!r}")
        positive = ("population", "initial_pool", "tournament", "max_mutation_attempts",
                    "max_evaluations", "top_k", "log_every", "report_every", "batch_children",
                    "pool_batch")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"search.{key} must be a positive integer, got {value!r}")
        if not isinstance(self.children, int) or isinstance(self.children, bool) \
                or self.children < 0:
            raise ValueError(f"search.children must be a non-negative integer, "
                             f"got {self.children!r}")
        if self.initial_pool < self.population:
            raise ValueError(f"search.initial_pool ({self.initial_pool}) must be >= "
                             f"search.population ({self.population})")
        if self.top_k > self.population:
            raise ValueError(f"search.top_k ({self.top_k}) must not exceed "
                             f"search.population ({self.population})")
        if self.phenotype_threshold < 0 or self.fingerprint_tolerance <= 0:
            raise ValueError("search.phenotype_threshold must be >= 0 and "
                             "search.fingerprint_tolerance > 0")

    @classmethod
    def from_dict(cls, d: dict) -> "SearchConfig":
        return dataclass_from_dict(cls, d, "search")


@dataclass(frozen=True)
class FitnessConfig:
    """How a candidate is scored: the surrogate, the data and the three training recipes.

    ``prescreen`` (FF1) scores the initial pool, ``prefilter`` is FF2's short screen and ``main``
    FF2's training run; both screens train without augmentation, the main run under the
    search's technique. ``threshold_scale`` multiplies every abort/fail threshold. ``metric``:
    the ``max`` validation accuracy over epochs (the earlier code) or the one at the ``final``
    epoch; both are recorded. ``image_size`` and ``normalize`` are the main run's input (the
    earlier code: 80 px, ``(x - 127.5) / 128``); the screens train on the data's own size,
    scaled ``x / 255``. ``diverged``: ``keep`` stops a run at its first non-finite loss and
    scores it by the epochs that ran (the earlier code's ``TerminateOnNaN``); ``discard``
    scores it 0.
    """

    dataset: str = "cifar10"
    data_root: str = "data"
    train_split: str = "train"
    val_split: str = "val"
    model: dict = field(default_factory=lambda: {"name": "surrogate"})
    prescreen: dict | None = None
    prefilter: dict | None = None
    main: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)
    metric: str = "max"
    threshold_scale: float = 1.0
    device: str = "cpu"
    image_size: int = 80
    normalize: str = "tf"
    diverged: str = "keep"

    def __post_init__(self):
        if self.metric not in FITNESS_METRICS:
            raise ValueError(f"fitness.metric must be one of {FITNESS_METRICS}, "
                             f"got {self.metric!r}")
        if self.diverged not in DIVERGED_POLICIES:
            raise ValueError(f"fitness.diverged must be one of {DIVERGED_POLICIES}, "
                             f"got {self.diverged!r}")
        if self.threshold_scale < 0:
            raise ValueError("fitness.threshold_scale must be >= 0")
        for key in ("prescreen", "prefilter", "main"):
            recipe = getattr(self, key)
            if recipe is not None:
                TrainConfig.from_dict(recipe)  # validates, naming the key
        self.phase_augment("main")  # validates image_size and normalize

    @classmethod
    def from_dict(cls, d: dict) -> "FitnessConfig":
        return dataclass_from_dict(cls, d, "fitness")

    def recipe(self, phase: str) -> TrainConfig:
        d = dict(getattr(self, phase))
        s = self.threshold_scale
        d["abort"] = [[e, a * s] for e, a in d.get("abort", [])]
        if d.get("fail_below") is not None:
            d["fail_below"] = d["fail_below"] * s
        d["evaluate_test"] = False
        return TrainConfig.from_dict(d)

    def phase_augment(self, phase: str) -> AugmentConfig:
        """The input pipeline of ``phase``: the main run's augmentation at the search's size and
        scaling; the screens' is only their size and x / 255 (they train unaugmented, so no
        augmentation parameter enters their pipeline or their cache key)."""
        if phase != "main":
            keep = ("image_size", "interpolation")
            return AugmentConfig(**{k: v for k, v in self.augment.items() if k in keep},
                                 normalize="unit")
        return AugmentConfig(**{**self.augment, "image_size": self.image_size,
                                "normalize": self.normalize})

    def phase_hash(self, phase: str, data_digest: str) -> str:
        """What an evaluation of ``phase`` depends on, besides the loss, technique and seed."""
        return config_hash({"version": FITNESS_VERSION, "stage": phase,
                            "recipe": self.recipe(phase).to_dict(), "model": self.model,
                            "augment": self.phase_augment(phase).to_dict(),
                            "metric": self.metric, "diverged": self.diverged,
                            "dataset": self.dataset, "data": data_digest,
                            "train_split": self.train_split, "val_split": self.val_split})


@dataclass(frozen=True)
class LossSpec:
    """The loss of one training job, resolved from its wildcard (:func:`augloss.workflow.resolve_loss`).

    ``expression`` is expression text or a registry name (:func:`augloss.losses.get` takes both);
    ``origin`` says where it came from (``baseline`` or ``search:<aug>``). ``orient``: train
    the integrity test's orientation of an expression (negated when the test flips it; a loss
    that fails the test is an error), decided in the job (:func:`augloss.losses.orientation`);
    false trains it as written. Registry names are oriented already.
    """

    name: str
    expression: str
    label_smoothing: float = 0.0
    class_weights: tuple[float, ...] | None = None
    origin: str = "baseline"
    key: str | None = None  # the canonical key, for evolved losses
    orient: bool = False

    def identity(self) -> dict:
        """What makes two jobs' losses the same (part of a run's hash; no origin). ``orient``
        counts only when true: a loss without it has the identity it had before the key."""
        out = {"name": self.name, "expression": self.expression,
               "label_smoothing": self.label_smoothing,
               "class_weights": None if self.class_weights is None else list(self.class_weights)}
        if self.orient:
            out["orient"] = True
        return out

    def __post_init__(self):
        if not isinstance(self.orient, bool):
            raise ValueError(f"loss {self.name}: orient must be true or false, "
                             f"got {self.orient!r}")
        if self.class_weights is not None:
            object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        object.__setattr__(self, "label_smoothing", float(self.label_smoothing))

    def to_dict(self) -> dict:
        return {**self.identity(), "origin": self.origin, "key": self.key}

    @classmethod
    def from_dict(cls, d: dict) -> "LossSpec":
        """From a dict; a missing ``expression`` means the registry entry of ``name``."""
        d = dict(d)
        d["expression"] = d.get("expression") or d.get("name", "ce")
        d.setdefault("name", "ce")
        return dataclass_from_dict(cls, d, "loss")

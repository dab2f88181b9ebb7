"""Models; the one door is :func:`create`. Every model returns logits (the loss applies softmax).

* ``surrogate`` - the authors' earlier code's ResNet9v2 (``build_resnet9_v2``): Conv3x3(8) ->
  Block(16) -> Block(32) -> global average pool -> Dropout(0.5) -> Linear. A block is
  pre-activation: BN-swish-Conv3x3(stride 2) -> BN-swish-Conv3x3 -> BN-swish-Conv3x3, plus a
  Conv1x1(stride 2) shortcut on the raw input; no BN/activation after the last block. Keras
  defaults are kept (framework defaults, not stated by the authors): BN momentum 0.99 (PyTorch
  0.01), eps 1e-3, Glorot-uniform weights, zero biases, 'same' padding with biases.
* ``wrn`` - WideResNet (Zagoruyko & Komodakis 2016), options ``depth`` (28), ``width`` (10),
  ``dropout`` (0.0): WRN-28-10 has ~36.5 M parameters on CIFAR-10.
* ``efficientnetv2_s`` - timm ``tf_efficientnetv2_s`` (TF-ported weights); option ``tag`` picks
  the pretrained weights (``in1k``, ``in21k_ft_in1k``, ...; timm's default without it).
  ``pretrained=True`` loads timm's weights (``"synthetic"``: a seeded random initialisation
  that :func:`prefetch_weights` writes, for the smoke run); ``weights="path"`` loads a local
  state-dict file (``.safetensors``, ``.pth``; ``weights_only`` loading) for offline clusters; the
  classifier is always re-initialised for the new classes (num_classes -1 in the overlay never
  matches).
* ``timm:<name>`` - any timm model with the same options (the demo uses ``timm:test_efficientnet``).

The names and their torch-free facts (timm's architecture name) are the registry's
(:data:`augloss.registry.MODELS`); :data:`BUILDERS` holds the code of each, by spec name.

:func:`data_config` and :func:`preprocessing` give a timm model's own input pipeline (size,
mean/std, interpolation, crop) from its pretrained config, for fine-tuning.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from augloss import registry, synthetic
from augloss.io import atomic_path
from augloss.manifest import file_digests
from augloss.names import timm_name, weights_dir


# --- surrogate ------------------------------------------------------------------------------

class PreActBlock(nn.Module):
    """The surrogate's pre-activation block (public: :mod:`augloss.population` groups it)."""

    def __init__(self, c_in: int, c_out: int, bn_momentum: float):
        super().__init__()

        def bn(c: int) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(c, eps=1e-3, momentum=bn_momentum)

        self.main = nn.Sequential(
            bn(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
            bn(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
            bn(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=2)

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


class Surrogate(nn.Module):
    """ResNet9v2 of the authors' earlier code (widths 8/16/32, swish, dropout 0.5).

    ``bn_momentum`` 0.01 is Keras' 0.99; short runs (the demo) need a faster 0.1, or the
    running statistics stay near their initial values and evaluation is at chance.
    """

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (8, 16, 32),
                 dropout: float = 0.5, bn_momentum: float = 0.01):
        super().__init__()
        w0, w1, w2 = (int(w) for w in widths)
        self.stem = nn.Conv2d(3, w0, 3, padding=1)
        self.blocks = nn.Sequential(PreActBlock(w0, w1, bn_momentum),
                                    PreActBlock(w1, w2, bn_momentum))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(w2, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)  # Keras glorot_uniform
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = x.mean(dim=(2, 3))
        return self.head(self.dropout(x))


# --- WideResNet -----------------------------------------------------------------------------

class _WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float, bn_momentum: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, momentum=bn_momentum)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=bn_momentum)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = None if c_in == c_out and stride == 1 else \
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x):
        o = torch.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = self.conv2(self.dropout(torch.relu(self.bn2(o))))
        return o + shortcut


class WideResNet(nn.Module):
    """WRN-depth-width for 32x32 inputs (pre-activation basic blocks).

    ``bn_momentum`` is PyTorch's 0.1; runs of a few dozen steps (the demo) need a faster one, or
    the running statistics lag the weights and evaluation is near chance.
    """

    def __init__(self, num_classes: int = 10, depth: int = 28, width: int = 10,
                 dropout: float = 0.0, bn_momentum: float = 0.1):
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"wrn depth must be 6n + 4 (e.g. 16, 22, 28, 40), got {depth}")
        if width < 1:
            raise ValueError(f"wrn width must be >= 1, got {width}")
        n = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.stem = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        layers = []
        for g, stride in enumerate((1, 2, 2)):
            for i in range(n):
                layers.append(_WideBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1],
                                         stride if i == 0 else 1, dropout, bn_momentum))
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(widths[3], momentum=bn_momentum)
        self.head = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = torch.relu(self.bn(self.blocks(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


# --- timm -----------------------------------------------------------------------------------

def _timm(name: str, num_classes: int, pretrained: bool = False, weights: str | None = None,
          drop_rate: float = 0.0, tag: str | None = None, **options) -> nn.Module:
    import timm

    if tag:
        name = f"{name}.{tag}"

    if pretrained == "synthetic" and not weights:
        raise ValueError(f"{name}: pretrained: synthetic weights are written by the "
                         f"prefetch_weights rule (augloss.models.prefetch_weights); pass that "
                         f"file as `weights`")
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"pretrained weights file {path} not found: download the timm weights for "
                f"{name!r} on a machine with network access (timm.create_model({name!r}, "
                f"pretrained=True) caches them under ~/.cache/huggingface) and copy the "
                f"model.safetensors file to {path}")
        model = timm.create_model(name, pretrained=True, num_classes=num_classes,
                                  drop_rate=drop_rate,
                                  pretrained_cfg_overlay={"file": str(path), "num_classes": -1},
                                  **options)
        return model
    return timm.create_model(name, pretrained=pretrained, num_classes=num_classes,
                             drop_rate=drop_rate, **options)


def prefetch_weights(model: dict, root: str | Path) -> dict:
    """Download the pretrained weights of ``model`` (a config entry) once into
    :func:`weights_dir`, through the Hugging Face hub (timm's ``hf_hub_id``) or, for weights
    not on the hub, timm's release URL. Returns the weights manifest: file, size, SHA-256 and
    source. Runs on the head node (a local rule); training jobs then load this file only."""
    from timm.models import get_pretrained_cfg

    name = timm_name(model)
    if name and model.get("pretrained") == "synthetic":  # the smoke run: no download at all
        return write_synthetic_weights(name, weights_dir(model, root))
    cfg = get_pretrained_cfg(name) if name else None
    if cfg is None:
        raise ValueError(f"no pretrained weights known to timm for {model['name']!r} "
                         f"({name}); give a local file as model option `weights`")
    folder = weights_dir(model, root)
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.hf_hub_id:
        from huggingface_hub import hf_hub_download

        source = f"hf-hub:{cfg.hf_hub_id}"
        path = Path(hf_hub_download(cfg.hf_hub_id, cfg.hf_hub_filename or "model.safetensors",
                                    local_dir=str(folder)))
    elif cfg.url:
        from torch.hub import download_url_to_file

        source, path = cfg.url, folder / Path(cfg.url).name
        if not path.is_file():
            download_url_to_file(cfg.url, str(path), progress=False)  # temp file + rename
    else:
        raise ValueError(f"timm's pretrained config of {name} names no hub id or URL")
    digest = file_digests([str(path)], path.parent)[path.name]
    return {"model": name, "file": str(path), "source": source, **digest}


def write_synthetic_weights(architecture: str, folder: str | os.PathLike) -> dict:
    """Write a seeded random initialisation of timm model ``architecture`` (with its tag; its pretrained config's
    head, e.g. 1,000 ImageNet classes) as ``folder/model.safetensors`` (``folder`` is
    :func:`augloss.names.weights_dir`, under ``<data_root>/synthetic``); returns the weights
    manifest. The smoke run's ``pretrained: synthetic``: nothing in it is pretrained."""
    import timm

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(synthetic.SEED)
            model = timm.create_model(architecture, pretrained=False)
        save_weights(model, path)
    digest = file_digests([str(path)], path.parent)[path.name]
    return {"model": architecture, "file": str(path),
            "source": f"synthetic: a random initialisation (torch seed {synthetic.SEED}), "
                      f"NOT pretrained",
            **digest}


#: The builder of every built-in model, by its :data:`augloss.registry.MODELS` name
#: (tests/test_registry.py: one per spec): ``builder(num_classes, **options)``, a timm one
#: ``builder(architecture, num_classes, **options)``.
BUILDERS = {"surrogate": Surrogate, "wrn": WideResNet, "efficientnetv2_s": _timm, "timm": _timm}


def create(name: str, num_classes: int, **options) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes; ``options`` are the model's keywords.
    An unknown name raises ValueError naming every known model."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    spec, _ = registry.model(name)
    build = BUILDERS[spec.name]
    if spec.timm:
        return build(registry.timm_architecture(name), num_classes, **options)
    return build(num_classes, **options)


# --- preprocessing from the weights ------------------------------------------------------------

PREPROCESSING_KEYS = ("image_size", "mean", "std", "interpolation", "crop_pct")


def data_config(model: nn.Module) -> dict:
    """The input pipeline of ``model``'s pretrained weights, by timm's ``resolve_data_config``:
    ``{"input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode"}`` (JSON values)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    return {"input_size": [int(v) for v in cfg["input_size"]],
            "interpolation": str(cfg["interpolation"]),
            "mean": [float(v) for v in cfg["mean"]], "std": [float(v) for v in cfg["std"]],
            "crop_pct": float(cfg["crop_pct"]), "crop_mode": str(cfg.get("crop_mode", "center"))}


def weights_tag(model: nn.Module) -> str | None:
    """``architecture.tag`` of a timm model's pretrained config (e.g.
    ``tf_efficientnetv2_s.in1k``), or None for a model without one."""
    pc = getattr(model, "pretrained_cfg", None) or {}
    arch, tag = pc.get("architecture"), pc.get("tag")
    return f"{arch}.{tag}" if arch and tag else arch


def preprocessing(model: nn.Module, overrides: dict | None = None) -> dict:
    """The fine-tuning input pipeline: every key of :data:`PREPROCESSING_KEYS` from the model's
    pretrained config, except those in ``overrides`` (listed under ``overridden``), plus the
    weights' ``tag``. Raises ValueError naming an unknown override key."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(PREPROCESSING_KEYS))
    if unknown:
        raise ValueError(f"finetune.preprocessing: unknown key(s) {', '.join(unknown)}; "
                         f"keys are {', '.join(PREPROCESSING_KEYS)}")
    if getattr(model, "pretrained_cfg", None) is None:
        raise ValueError("finetune.preprocessing: the model has no pretrained config "
                         "(only timm models do); leave preprocessing out for this model")
    dc = data_config(model)
    out = {"image_size": dc["input_size"][-1], "mean": dc["mean"], "std": dc["std"],
           "interpolation": dc["interpolation"], "crop_pct": dc["crop_pct"]}
    out.update(overrides)
    return {**out, "overridden": sorted(overrides), "tag": weights_tag(model)}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write the model's state dict as safetensors, atomically (a timm-loadable weights file)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))


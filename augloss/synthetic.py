"""Synthetic stand-ins of the paper's datasets and weights, for the paper-shaped smoke run.

``synthetic:<dataset>`` (e.g. ``synthetic:cifar10``) is a handful of generated images with the
real dataset's image shapes and class count, written in the real dataset's **own on-disk
layout** under ``<data_root>/synthetic/`` and then read by the real loader
(:func:`augloss.data.load`): CIFAR's pickled batches (read back by the restricted unpickler),
Flowers-102's ``.mat`` label files and JPEGs, Caltech-101's category folders, Stanford Cars'
devkit annotations. Every stage downstream of loading (manifests with file hashes, the
fine-tuning input pipeline at the weights' own size, the real models' heads) therefore runs
exactly as it does on the real data. The pixels carry no information about the real data: each
class is a colour plus noise, so numbers trained on them say nothing about the paper.

They are never reachable by accident: a config must name ``synthetic:<dataset>``, and the files
live under ``<data_root>/synthetic/``, a folder no real loader reads.

``pretrained: synthetic`` on a timm fine-tuning model makes ``prefetch_weights`` write a seeded
random initialisation of the architecture (its full ImageNet head included) as a safetensors
file under ``<data_root>/synthetic/weights/`` (:func:`augloss.models.write_synthetic_weights`,
seeded by :data:`SEED`), loaded by the fine-tuning jobs through the same offline path as
published weights: nothing in it is pretrained.

Which datasets have a stand-in, and its sizes, is the registry's
(:class:`augloss.registry.StandIn`); each layout's writer is in :data:`WRITERS`, by name.

Everything is a pure function of :data:`SEED` and :data:`VERSION`: two writes give
byte-identical files (the ``.mat`` headers' creation time is replaced by a fixed text).
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from augloss import registry
from augloss.io import atomic_path

SEED = 0
VERSION = 1  # bump when the generated files change
FOLDER = registry.SYNTHETIC  # under data_root


@dataclass(frozen=True)
class Spec(registry.StandIn):
    """What a synthetic dataset holds: its stand-in's image sizes and counts (the registry's)
    and the real dataset's ``classes``."""

    classes: int = 0


def root(data_root: str | os.PathLike) -> Path:
    """Where synthetic datasets and weights live: ``<data_root>/synthetic``."""
    return Path(data_root) / FOLDER


def check(name: str) -> str:
    """The real dataset behind ``synthetic:<name>``; ValueError naming every stand-in for one
    without a stand-in."""
    registry.stand_in(name)
    return name


def spec_of(name: str) -> Spec:
    """What ``synthetic:<name>`` holds (ValueError naming every stand-in for an unknown one)."""
    real = registry.stand_in(name)
    return Spec(**asdict(real.stand_in), classes=real.classes)


def write(name: str, data_root: str | os.PathLike) -> Path:
    """Write synthetic ``name`` into ``<data_root>/synthetic`` (once; a marker written last
    says it is complete) and return that folder, the root its real loader reads."""
    what = spec_of(name)
    base = root(data_root)
    marker = base / f".{name}.v{VERSION}.done"
    if marker.is_file():
        return base
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([SEED, what.stream])
    WRITERS[name](name, base, what, rng)
    with atomic_path(marker) as tmp:
        Path(tmp).write_text(f"synthetic {name}, version {VERSION}, seed {SEED}\n")
    return base


# --- images -----------------------------------------------------------------------------------

def _colours(n: int) -> np.ndarray:
    """A distinct colour per class (fixed, not drawn)."""
    k = np.arange(n)
    return np.stack([(k * 97) % 256, (k * 57 + 85) % 256, (k * 151 + 170) % 256], 1)


def _image(label: int, spec: Spec, rng: np.random.Generator) -> np.ndarray:
    """An ``[H, W, 3]`` uint8 image of class ``label``: its colour plus noise."""
    (h0, w0), (h1, w1) = spec.size
    h, w = int(rng.integers(h0, h1 + 1)), int(rng.integers(w0, w1 + 1))
    colour = _colours(spec.classes)[label].astype(np.int16)
    noise = rng.integers(-40, 41, size=(h, w, 3), dtype=np.int16)
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def _labels(n: int, spec: Spec) -> np.ndarray:
    """``n`` labels cycling over the labelled classes, spread across all ``spec.classes``."""
    used = spec.labelled or min(n, spec.classes)
    picks = (np.arange(used) * spec.classes) // used
    return picks[np.arange(n) % used]


def _jpeg(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="JPEG", quality=90)


def _mat(path: Path, content: dict) -> None:
    """``scipy.io.savemat`` with its header's creation time replaced: reproducible bytes."""
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, content)
    raw = bytearray(buf.getvalue())
    raw[:116] = b"MATLAB 5.0 MAT-file, written by augloss.synthetic".ljust(116)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(bytes(raw))


# --- the real layouts -------------------------------------------------------------------------

def _cifar(name: str, base: Path, spec: Spec, rng: np.random.Generator) -> None:
    fmt = registry.CIFAR[name]
    train_files, test_files = fmt.train_files, fmt.test_files
    label_key, meta_file, names_key = fmt.label_key, fmt.meta_file, fmt.names_key
    out = base / fmt.folder
    out.mkdir(parents=True, exist_ok=True)

    def batch(path: Path, n: int, first: int) -> None:
        labels = rng.permutation(_labels(n, spec))
        x = np.stack([_image(int(c), spec, rng).transpose(2, 0, 1).reshape(-1) for c in labels])
        content = {"batch_label": f"synthetic {path.name}", label_key: labels.tolist(),
                   "data": x, "filenames": [f"synthetic_{first + i:05d}.png" for i in range(n)]}
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(pickle.dumps(content, protocol=2))

    per = spec.train // len(train_files)
    for i, f in enumerate(train_files):
        batch(out / f, per, i * per)
    for f in test_files:
        batch(out / f, spec.test, spec.train)
    meta = {names_key: [f"synthetic class {c}" for c in range(spec.classes)]}
    if name == "cifar100":
        meta["coarse_label_names"] = [f"synthetic superclass {c}" for c in range(20)]
    with atomic_path(out / meta_file) as tmp:
        Path(tmp).write_bytes(pickle.dumps(meta, protocol=2))


def _flowers(name: str, base: Path, spec: Spec, rng: np.random.Generator) -> None:
    out = base / "flowers-102"
    n = spec.train + spec.val + spec.test
    labels = np.concatenate([_labels(k, spec) for k in (spec.train, spec.val, spec.test)])
    for i, c in enumerate(labels, start=1):
        _jpeg(out / "jpg" / f"image_{i:05d}.jpg", _image(int(c), spec, rng))
    ids = np.arange(1, n + 1)
    _mat(out / "imagelabels.mat", {"labels": (labels + 1)[None].astype(np.uint8)})
    _mat(out / "setid.mat", {"trnid": ids[:spec.train][None].astype(np.uint16),
                             "valid": ids[spec.train:spec.train + spec.val][None].astype(np.uint16),
                             "tstid": ids[spec.train + spec.val:][None].astype(np.uint16)})


def _caltech(name: str, base: Path, spec: Spec, rng: np.random.Generator) -> None:
    out = base / "caltech101" / "101_ObjectCategories"
    labels = _labels(spec.train, spec)
    for c in range(spec.classes):
        (out / f"class_{c:03d}").mkdir(parents=True, exist_ok=True)
    counts = {}
    for c in labels:
        counts[c] = counts.get(c, 0) + 1
        _jpeg(out / f"class_{c:03d}" / f"image_{counts[c]:04d}.jpg", _image(int(c), spec, rng))
    # torchvision drops this folder (not a class) but requires it
    _jpeg(out / "BACKGROUND_Google" / "image_0001.jpg", _image(0, spec, rng))


def _cars(name: str, base: Path, spec: Spec, rng: np.random.Generator) -> None:
    out = base / "stanford_cars"
    names = np.array([f"Synthetic car class {c:03d}" for c in range(spec.classes)], dtype=object)
    _mat(out / "devkit" / "cars_meta.mat", {"class_names": names[None]})
    for split, n, annos in (("train", spec.train, out / "devkit" / "cars_train_annos.mat"),
                            ("test", spec.test, out / "cars_test_annos_withlabels.mat")):
        labels = _labels(n, spec)
        rows = []
        for i, c in enumerate(labels, start=1):
            pixels = _image(int(c), spec, rng)
            fname = f"{i:05d}.jpg"
            _jpeg(out / f"cars_{split}" / fname, pixels)
            h, w = pixels.shape[:2]
            rows.append((1, 1, w, h, int(c) + 1, fname))
        dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"),
                 ("class", "O"), ("fname", "O")]
        _mat(annos, {"annotations": np.array(rows, dtype=dtype)[None]})


#: The layout writer of every stand-in, by dataset name (tests/test_registry.py: one for each
#: registry spec with a stand-in), called as ``writer(name, folder, spec, rng)``.
WRITERS = {"cifar10": _cifar, "cifar100": _cifar, "flowers102": _flowers,
           "caltech101": _caltech, "stanford_cars": _cars}

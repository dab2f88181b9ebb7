"""Datasets and their splits; the one door is :func:`load`.

Every dataset yields ``(image, label)`` with ``image`` a ``uint8`` tensor ``[3, H, W]`` (RGB).
Small datasets (digits, CIFAR) are held in memory as one tensor; the fine-tuning datasets are
lists of image files decoded on access.

Splits (``train``, ``val``, ``test``; ``trainval`` = train + val where both come from one pool):

=================  ================================================================================
``digits``         scikit-learn's bundled 8x8 digits (1,797 images) at their own 8x8, as RGB. A fixed
                   stratified permutation (seed 0, independent of the run seed): per class 2/3
                   train, 1/6 val, 1/6 test. ``digits:0-4`` keeps classes 0..4 (relabelled from 0),
                   ``digits:5-9`` classes 5..9: the demo's pretrain / fine-tune halves.
``cifar10/100``    train = training images 0..44,999, val = 45,000..49,999 (the authors' earlier
                   code, no shuffle), test = the official test set.
``flowers102``     the official train / val / test (1,020 / 1,020 / 6,149).
``caltech101``     torchvision's 101 categories (background dropped); a seeded per-class split:
                   30 train, ``min(5, (n - 30) // 2)`` val, the rest test.
``stanford_cars``  official train / test; val is a seeded 10 % per-class carve-out of train.
``imagefolder:P``  ``P/train``, ``P/val``, ``P/test`` in torchvision ImageFolder layout; without
                   ``P/val``, a seeded 10 % per-class carve-out of train.
``synthetic:D``    a few generated images of dataset ``D``'s real shapes and class count, written
                   in ``D``'s own layout under ``root/synthetic`` and read by ``D``'s loader (the
                   paper-shaped smoke run; :mod:`augloss.synthetic`).
=================  ================================================================================

CIFAR is downloaded with torchvision's own URL and checksum and read by a restricted unpickler
that accepts nothing but numpy arrays; nothing else on disk is ever unpickled.

The names and their facts are the registry's (:data:`augloss.registry.DATASETS`, torch-free, so
the workflow checks config names without torch); :data:`LOADERS` holds each one's loader.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle  # only through _SafeUnpickler below
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from augloss import compat, registry, synthetic

SPLITS = ("train", "val", "test", "trainval")
SPLIT_SEED = 0  # fixed: splits must not change with the run seed
log = logging.getLogger("augloss.data")


class DatasetMissing(FileNotFoundError):
    """The dataset is not on disk and cannot be downloaded; the message says what to put where."""


@dataclass
class ImageSet(torch.utils.data.Dataset):
    """A split of a dataset: in-memory ``images`` [N, 3, H, W] uint8, or a list of ``files``."""

    name: str
    split: str
    labels: torch.Tensor  # int64 [N]
    classes: list[str]
    images: torch.Tensor | None = None
    files: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # other files read (archives, label files)

    def __post_init__(self):
        n = len(self.images) if self.images is not None else len(self.files)
        if n != len(self.labels):
            raise ValueError(f"{self.name}/{self.split}: {n} images but {len(self.labels)} labels")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.images is not None:
            return self.images[i], int(self.labels[i])
        from PIL import Image

        with Image.open(self.files[i]) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous(), int(self.labels[i])

    def digest(self) -> str:
        """sha256 identifying the split's content (image bytes or file names, and labels)."""
        h = hashlib.sha256(f"{self.name}/{self.split}/{self.num_classes}".encode())
        if self.images is not None:
            h.update(self.images.contiguous().numpy().tobytes())
        else:
            h.update("\n".join(os.path.basename(f) for f in self.files).encode())
        h.update(self.labels.numpy().astype("<i8").tobytes())
        return h.hexdigest()

    def subset(self, index: Sequence[int] | np.ndarray, split: str) -> "ImageSet":
        index = np.asarray(index, dtype=np.int64)
        return ImageSet(self.name, split, self.labels[torch.from_numpy(index)].clone(),
                        list(self.classes),
                        images=None if self.images is None else self.images[index].clone(),
                        files=[self.files[i] for i in index] if self.images is None else [],
                        sources=list(self.sources))

    def on_disk(self) -> list[str]:
        """Every file this split was read from (sources, then the image files)."""
        return [*self.sources, *self.files]


def load(name: str, root: str | os.PathLike = "data", split: str = "train",
         download: bool = True) -> ImageSet:
    """Load split ``split`` of dataset ``name`` from ``root`` (downloading where possible)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    spec = registry.dataset(name)  # ValueError naming every known dataset
    if registry.is_stand_in(name):
        return _synthetic(name, Path(root), split, download)
    return LOADERS[spec.name](name, Path(root), split, download)


def _by_split(split: str, parts: dict[str, np.ndarray]) -> np.ndarray:
    if split == "trainval":
        return np.sort(np.concatenate([parts["train"], parts["val"]]))
    return parts[split]


def _stratified(labels: np.ndarray, sizes, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Per-class seeded split; ``sizes(n)`` gives (train, val) counts, the rest is test."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_train, n_val = sizes(len(idx))
        out["train"].extend(idx[:n_train])
        out["val"].extend(idx[n_train:n_train + n_val])
        out["test"].extend(idx[n_train + n_val:])
    return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in out.items()}


# --- digits ---------------------------------------------------------------------------------

def _digits(name: str, root: Path, split: str, download: bool) -> ImageSet:
    keep = list(range(10))
    if ":" in name:
        spec = name.split(":", 1)[1]
        try:
            lo, hi = (int(x) for x in spec.split("-"))
        except ValueError:
            raise ValueError(f"dataset {name!r}: expected digits:LO-HI, e.g. digits:0-4") from None
        if not 0 <= lo <= hi <= 9:
            raise ValueError(f"dataset {name!r}: class range must lie within 0-9")
        keep = list(range(lo, hi + 1))
    pixels, labels = _digits_arrays()
    mask = np.isin(labels, keep)
    # The 0..16 intensities as 0..255 at the images' own 8x8 (a pipeline's image_size resizes
    # them like any dataset's), grey replicated to RGB.
    x = torch.from_numpy(pixels[mask].reshape(-1, 8, 8).astype(np.float32) / 16.0)[:, None]
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    labels = labels[mask] - keep[0]
    parts = _stratified(labels, lambda n: (round(n * 2 / 3), round(n / 6)))
    idx = _by_split(split, parts)
    return ImageSet(name, split, torch.from_numpy(labels[idx]), [str(c) for c in keep],
                    images=images[torch.from_numpy(idx)].clone())


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (pixels [1797, 64], labels [1797]).

    Read straight from the CSV file scikit-learn ships, found without importing scikit-learn
    (its import costs a second in every workflow job); ``load_digits`` is the fallback.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is not None and path.exists():
        raw = np.loadtxt(path, delimiter=",", dtype=np.float64)
        return raw[:, :-1], raw[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data, d.target.astype(np.int64)


# --- synthetic stand-ins -------------------------------------------------------------------

def _synthetic(name: str, root: Path, split: str, download: bool) -> ImageSet:
    """``synthetic:<real>``: written (``download``) into ``root/synthetic`` in the real layout,
    then read by the real dataset's own loader from there."""
    from dataclasses import replace

    real = synthetic.check(name.split(":", 1)[1])
    base = synthetic.write(real, root) if download else synthetic.root(root)
    try:
        ds = load(real, base, split, download=False)
    except DatasetMissing as exc:
        raise DatasetMissing(f"{name}: not written under {base}/ yet; the prepare_dataset "
                             f"rule writes it (augloss.data.load(..., download=True)). ({exc})"
                             ) from None
    return replace(ds, name=name)


# --- CIFAR ----------------------------------------------------------------------------------

class _SafeUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batch format and refuses every global but numpy's array rebuild."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # how protocol-2 pickles written by Python 3 store bytes

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        data = _SafeUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a CIFAR batch (a dict was expected)")
    data = {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}
    if isinstance(data.get("data"), np.ndarray) and data["data"].dtype == object:
        raise ValueError(f"{path}: object arrays are not accepted")
    return data


def _cifar(name: str, root: Path, split: str, download: bool) -> ImageSet:
    fmt = registry.CIFAR[name]
    folder, train_files, test_files = fmt.folder, list(fmt.train_files), list(fmt.test_files)
    label_key, meta_file, names_key = fmt.label_key, fmt.meta_file, fmt.names_key
    base = root / folder
    needed = train_files + test_files + [meta_file]
    if not all((base / f).exists() for f in needed) and download:
        _download_cifar(name, root)
    missing = [f for f in needed if not (base / f).exists()]
    if missing:
        from torchvision import datasets

        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        raise DatasetMissing(
            f"{name}: missing {', '.join(str(base / f) for f in missing)}. Download {cls.url} "
            f"(md5 {cls.tgz_md5}) and extract it into {root}/ so that {base}/ holds "
            f"{', '.join(needed)}; or rerun with network access (download=True).")
    files = test_files if split == "test" else train_files
    xs, ys = [], []
    for f in files:
        batch = _read_cifar_batch(base / f)
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    meta = _read_cifar_batch(base / meta_file)
    classes = [str(c) for c in meta[names_key]]
    if split != "test":
        n = len(y)
        cut = n - n // 10  # 45,000 of 50,000: the earlier code's split, no shuffle
        parts = {"train": np.arange(cut), "val": np.arange(cut, n)}
        idx = _by_split(split, parts)
        x, y = x[idx], y[idx]
    return ImageSet(name, split, torch.from_numpy(y.copy()), classes,
                    images=torch.from_numpy(np.ascontiguousarray(x)),
                    sources=[str(base / f) for f in [*files, meta_file]])


def _download_cifar(name: str, root: Path) -> None:
    from torchvision import datasets
    from torchvision.datasets.utils import check_integrity, download_url

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root.mkdir(parents=True, exist_ok=True)
    archive = root / cls.filename
    try:
        if not check_integrity(str(archive), cls.tgz_md5):
            download_url(cls.url, str(root), cls.filename, cls.tgz_md5)
    except Exception:  # no network: the caller reports exactly what is missing
        return
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")


# --- file datasets --------------------------------------------------------------------------

def _flowers(name: str, root: Path, split: str, download: bool) -> ImageSet:
    from scipy.io import loadmat
    from torchvision import datasets

    base = root / "flowers-102"
    needed = [base / "imagelabels.mat", base / "setid.mat", base / "jpg"]
    if download and not all(p.exists() for p in needed):
        try:  # torchvision's own download (URL + md5); its loader is not used afterwards
            datasets.Flowers102(str(root), split="train", download=True)
        except Exception as exc:  # no network: report below what is missing
            log.warning("flowers102 download failed: %s", exc)
    if not all(p.exists() for p in needed):
        raise DatasetMissing(
            f"flowers102: not found under {base}/. Put jpg/image_00001.jpg ... image_08189.jpg "
            f"(from 102flowers.tgz), imagelabels.mat and setid.mat from "
            f"https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ there.")
    set_ids = loadmat(base / "setid.mat", squeeze_me=True)
    all_labels = np.atleast_1d(loadmat(base / "imagelabels.mat", squeeze_me=True)["labels"])
    key = {"train": ["trnid"], "val": ["valid"], "test": ["tstid"],
           "trainval": ["trnid", "valid"]}[split]
    ids = np.concatenate([np.atleast_1d(set_ids[k]) for k in key]).astype(np.int64)
    files = [str(base / "jpg" / f"image_{i:05d}.jpg") for i in ids]
    labels = torch.from_numpy(all_labels[ids - 1].astype(np.int64) - 1)
    return ImageSet("flowers102", split, labels, [str(i) for i in range(102)], files=files,
                    sources=[str(base / "imagelabels.mat"), str(base / "setid.mat")])


def _caltech(name: str, root: Path, split: str, download: bool) -> ImageSet:
    from torchvision import datasets

    try:
        d = datasets.Caltech101(str(root), target_type="category", download=download)
    except Exception as exc:
        base = root / "caltech101"
        raise DatasetMissing(
            f"caltech101: not found under {base}/ ({exc}). Download caltech-101.zip from "
            f"https://data.caltech.edu/records/mzrjq-6wc02 and extract 101_ObjectCategories.tar.gz "
            f"into {base}/ so that {base}/101_ObjectCategories/<class>/image_0001.jpg exist.") \
            from exc
    base = Path(d.root) / "101_ObjectCategories"
    files = [str(base / d.categories[c] / f"image_{i:04d}.jpg") for c, i in zip(d.y, d.index)]
    labels = np.asarray(d.y, dtype=np.int64)
    parts = _stratified(labels, lambda n: (min(30, n - 1), max(0, min(5, (n - 30) // 2))))
    idx = _by_split(split, parts)
    return ImageSet("caltech101", split, torch.from_numpy(labels[idx]), list(d.categories),
                    files=[files[i] for i in idx])


#: What to do when Stanford Cars is missing (its official URL is dead; pytorch/vision#7545).
CARS_HELP = (
    "stanford_cars: not found under {base}/ ({exc}). Its official URL is dead, so torchvision "
    "cannot download it; put a copy there in torchvision's layout:\n"
    "  {base}/cars_train/*.jpg, {base}/cars_test/*.jpg,\n"
    "  {base}/devkit/cars_meta.mat, {base}/devkit/cars_train_annos.mat,\n"
    "  {base}/cars_test_annos_withlabels.mat (the test labels).\n"
    "The Kaggle mirror 'jessicali9530/stanford-cars-dataset' has the images but (1) nests "
    "each folder in itself (cars_train/cars_train/*.jpg): move the images up one level; "
    "(2) its .mat files do not match torchvision's: take devkit/ from car_devkit.tgz "
    "(attached to pytorch/vision issue #7545); (3) it has no cars_test_annos_withlabels.mat: "
    "that issue's thread links a copy. The README's 'Stanford Cars' section has the steps.")


def _cars(name: str, root: Path, split: str, download: bool) -> ImageSet:
    """Stanford Cars cannot be downloaded (its URL is dead): ``download`` changes nothing."""
    from torchvision import datasets

    base = root / "stanford_cars"
    try:
        d = datasets.StanfordCars(str(root), split="test" if split == "test" else "train")
    except Exception as exc:
        raise DatasetMissing(CARS_HELP.format(base=base, exc=exc)) from exc
    samples = compat.stanford_cars_samples(d)
    files = [s[0] for s in samples]
    labels = np.asarray([s[1] for s in samples], dtype=np.int64)
    if split != "test":
        parts = _stratified(labels, lambda n: (n - max(1, n // 10), max(1, n // 10)))
        idx = _by_split(split, parts)
        files, labels = [files[i] for i in idx], labels[idx]
    devkit = [str(p) for p in sorted(base.glob("devkit/*.mat")) + sorted(base.glob("*.mat"))]
    return ImageSet("stanford_cars", split, torch.from_numpy(labels), list(d.classes), files=files,
                    sources=devkit)


def _imagefolder(name: str, root: Path, split: str, download: bool) -> ImageSet:
    """``imagefolder:<path>``: read from ``<path>`` (not under ``root``); nothing to download."""
    from torchvision import datasets

    path = Path(name.split(":", 1)[1])

    if not (path / "train").is_dir():
        raise DatasetMissing(f"{name}: expected {path}/train/<class>/<image> (and optionally "
                             f"{path}/val/, {path}/test/) in torchvision ImageFolder layout")
    train = datasets.ImageFolder(str(path / "train"))
    classes = list(train.classes)

    def read(folder: str) -> tuple[list[str], np.ndarray]:
        d = datasets.ImageFolder(str(path / folder))
        if d.classes != classes:
            raise ValueError(f"{name}: classes of {folder}/ differ from train/")
        return [s[0] for s in d.samples], np.asarray([s[1] for s in d.samples], dtype=np.int64)

    files, labels = read("train")
    if split == "test":
        if not (path / "test").is_dir():
            raise DatasetMissing(f"{name}: no {path}/test/ folder")
        files, labels = read("test")
    elif (path / "val").is_dir():
        if split in ("val", "trainval"):
            vf, vl = read("val")
            files, labels = (vf, vl) if split == "val" else (files + vf, np.concatenate([labels, vl]))
    else:
        parts = _stratified(labels, lambda n: (n - max(1, n // 10), max(1, n // 10)))
        idx = _by_split(split, parts)
        files, labels = [files[i] for i in idx], labels[idx]
    return ImageSet(name, split, torch.from_numpy(labels), classes, files=files)


#: The loader of every built-in dataset, by its :data:`augloss.registry.DATASETS` name; each is
#: called as ``loader(name, root, split, download)`` (tests/test_registry.py: one per spec).
LOADERS = {"digits": _digits, "cifar10": _cifar, "cifar100": _cifar, "flowers102": _flowers,
           "caltech101": _caltech, "stanford_cars": _cars, "imagefolder": _imagefolder}

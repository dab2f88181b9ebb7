"""Datasets: digits, and the real loaders on miniature files in each dataset's native format."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from augloss import data
from augloss.data import DatasetMissing


def test_digits_splits_are_disjoint_stratified_and_fixed():
    parts = {s: data.load("digits", split=s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [1198, 299, 300]
    for ds in parts.values():
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (3, 8, 8)
        assert ds.num_classes == 10 and set(ds.labels.tolist()) == set(range(10))
    keys = {s: {bytes(x.numpy().tobytes()) for x in parts[s].images} for s in parts}
    # Some digits images are exact duplicates of others; most must not repeat across splits.
    assert len(keys["train"] & keys["test"]) < 10
    assert data.load("digits", split="train").digest() == parts["train"].digest()
    tv = data.load("digits", split="trainval")
    assert len(tv) == 1198 + 299


def test_digits_class_ranges_are_relabelled():
    lo, hi = data.load("digits:0-4"), data.load("digits:5-9")
    assert lo.classes == ["0", "1", "2", "3", "4"] and hi.classes == ["5", "6", "7", "8", "9"]
    assert set(lo.labels.tolist()) == set(hi.labels.tolist()) == set(range(5))
    with pytest.raises(ValueError, match="digits:LO-HI"):
        data.load("digits:x")
    with pytest.raises(ValueError, match="within 0-9"):
        data.load("digits:3-12")


def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.load("mnist")
    with pytest.raises(ValueError, match="unknown split"):
        data.load("digits", split="training")


def _write_cifar(root, n_per_batch=20, name="cifar10"):
    rng = np.random.default_rng(0)
    if name == "cifar10":
        base = root / "cifar-10-batches-py"
        base.mkdir(parents=True)
        for i in range(1, 6):
            batch = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                     b"labels": [int(x) for x in rng.integers(0, 10, n_per_batch)]}
            (base / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
        test = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                b"labels": [int(x) for x in rng.integers(0, 10, n_per_batch)]}
        (base / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
        meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
        (base / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    else:
        base = root / "cifar-100-python"
        base.mkdir(parents=True)
        for split, n in (("train", 5 * n_per_batch), ("test", n_per_batch)):
            d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"fine_labels": [int(x) for x in rng.integers(0, 100, n)]}
            (base / split).write_bytes(pickle.dumps(d, protocol=2))
        (base / "meta").write_bytes(pickle.dumps(
            {b"fine_label_names": [f"f{i}".encode() for i in range(100)]}, protocol=2))
    return base


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loader_on_a_miniature_set(tmp_path, name):
    base = _write_cifar(tmp_path, name=name)
    train = data.load(name, tmp_path, "train", download=False)
    val = data.load(name, tmp_path, "val", download=False)
    test = data.load(name, tmp_path, "test", download=False)
    assert (len(train), len(val), len(test)) == (90, 10, 20)  # 9/10 train, last 1/10 val
    assert train.num_classes == (10 if name == "cifar10" else 100)
    # The earlier code's split: the first 90 % in file order, then the rest, no shuffle.
    first = pickle.loads((base / ("data_batch_1" if name == "cifar10" else "train")).read_bytes())
    np.testing.assert_array_equal(train.images[0].numpy().reshape(-1), first[b"data"][0])
    key = b"labels" if name == "cifar10" else b"fine_labels"
    assert train.labels[:5].tolist() == first[key][:5]
    assert len(data.load(name, tmp_path, "trainval", download=False)) == 100


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_cifar_reader_refuses_anything_but_arrays(tmp_path):
    base = _write_cifar(tmp_path)
    (base / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        data.load("cifar10", tmp_path, "train", download=False)


def test_missing_cifar_says_what_to_put_where(tmp_path):
    with pytest.raises(DatasetMissing) as info:
        data.load("cifar10", tmp_path, "train", download=False)
    msg = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in msg
    assert "cifar-10-python.tar.gz" in msg


def _jpg(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def test_flowers_loader_on_a_miniature_set(tmp_path):
    base = tmp_path / "flowers-102"
    for i in range(1, 13):
        _jpg(base / "jpg" / f"image_{i:05d}.jpg", i)
    savemat(base / "imagelabels.mat", {"labels": np.array([1, 2, 3] * 4)})
    savemat(base / "setid.mat", {"trnid": np.array([1, 2, 3, 4]), "valid": np.array([5, 6, 7]),
                                 "tstid": np.array([8, 9, 10, 11, 12])})
    train = data.load("flowers102", tmp_path, "train", download=False)
    assert len(train) == 4 and train.labels.tolist() == [0, 1, 2, 0]
    assert len(data.load("flowers102", tmp_path, "val", download=False)) == 3
    test = data.load("flowers102", tmp_path, "test", download=False)
    assert len(test) == 5 and test.num_classes == 102
    img, label = test[0]
    assert img.shape == (3, 12, 10) and img.dtype == torch.uint8 and label == 1


def test_missing_flowers_and_caltech_and_cars(tmp_path):
    with pytest.raises(DatasetMissing, match="setid.mat"):
        data.load("flowers102", tmp_path, "train", download=False)
    with pytest.raises(DatasetMissing, match="101_ObjectCategories"):
        data.load("caltech101", tmp_path, "train", download=False)
    with pytest.raises(DatasetMissing, match="cars_train_annos.mat") as exc:
        data.load("stanford_cars", tmp_path, "train")
    # The mirror's known layout problems and where the missing pieces are.
    msg = str(exc.value)
    for fragment in ("cars_train/cars_train/*.jpg", "car_devkit.tgz", "#7545",
                     "cars_test_annos_withlabels.mat", "jessicali9530/stanford-cars-dataset"):
        assert fragment in msg, fragment


def test_caltech_loader_on_a_miniature_set(tmp_path):
    base = tmp_path / "caltech101" / "101_ObjectCategories"
    for cls, n in (("BACKGROUND_Google", 3), ("ant", 35), ("bee", 40)):
        for i in range(1, n + 1):
            _jpg(base / cls / f"image_{i:04d}.jpg", i)
    parts = {s: data.load("caltech101", tmp_path, s, download=False)
             for s in ("train", "val", "test")}
    assert parts["train"].classes == ["ant", "bee"]
    assert [len(parts[s]) for s in ("train", "val", "test")] == [60, 2 + 5, 3 + 5]
    assert sorted(parts["train"].labels.tolist()) == [0] * 30 + [1] * 30
    files = [set(parts[s].files) for s in parts]
    assert not (files[0] & files[1]) and not (files[0] & files[2]) and not (files[1] & files[2])
    again = data.load("caltech101", tmp_path, "train", download=False)
    assert again.files == parts["train"].files  # the split is fixed


def test_stanford_cars_loader_on_a_miniature_set(tmp_path):
    base = tmp_path / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat",
            {"class_names": np.array(["car A", "car B"], dtype=object)})
    annos = np.zeros(20, dtype=[("fname", "O"), ("class", "O")])
    for i in range(20):
        annos[i] = (f"{i:05d}.jpg", 1 + i % 2)
        _jpg(base / "cars_train" / f"{i:05d}.jpg", i)
    savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": annos})
    test_annos = np.zeros(4, dtype=[("fname", "O"), ("class", "O")])
    for i in range(4):
        test_annos[i] = (f"{i:05d}.jpg", 1 + i % 2)
        _jpg(base / "cars_test" / f"{i:05d}.jpg", 100 + i)
    savemat(base / "cars_test_annos_withlabels.mat", {"annotations": test_annos})
    train = data.load("stanford_cars", tmp_path, "train")
    val = data.load("stanford_cars", tmp_path, "val")
    test = data.load("stanford_cars", tmp_path, "test")
    assert (len(train), len(val), len(test)) == (18, 2, 4)
    assert train.classes == ["car A", "car B"] and not set(train.files) & set(val.files)
    assert sorted(val.labels.tolist()) == [0, 1]


def test_imagefolder(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(10):
            _jpg(tmp_path / "ds" / "train" / cls / f"{i}.png", i)
        for i in range(3):
            _jpg(tmp_path / "ds" / "test" / cls / f"{i}.png", 50 + i)
    name = f"imagefolder:{tmp_path / 'ds'}"
    train, val, test = (data.load(name, split=s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (18, 2, 6)
    assert train.classes == ["cat", "dog"]
    x, y = train[0]
    assert x.shape == (3, 12, 10)
    with pytest.raises(DatasetMissing, match="ImageFolder layout"):
        data.load(f"imagefolder:{tmp_path / 'nope'}")


def test_digits_are_read_from_scikit_learns_own_file():
    from sklearn.datasets import load_digits

    pixels, labels = data._digits_arrays()
    d = load_digits()
    assert np.array_equal(pixels, d.data) and np.array_equal(labels, d.target)

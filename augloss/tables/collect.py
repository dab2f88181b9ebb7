"""Collecting finished runs into one tidy table.

* :func:`collect` reads every ``metrics.json`` (with its ``provenance.json``) into one tidy
  DataFrame, one row per run, and refuses cells whose runs disagree in configuration or code
  version unless ``allow_mixed`` (:func:`check_consistency`).
* :func:`describe_preprocessing`: the one-line preprocessing of a fine-tune run;
  :func:`describe_packages` / :func:`describe_digests`: its package versions and data digests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

#: The column holding the number of images behind each metric (its resolution).
ITEMS = {"test_acc": "test_n", "final_val_acc": "val_n", "best_val_acc": "val_n"}
REQUIRED = ("stage", "dataset", "augmentation", "loss", "seed", "status", "config_hash",
            "code_version")
CELL = ["stage", "dataset", "augmentation", "loss"]


class TableError(ValueError):
    """Inputs that cannot make a trustworthy table; the message names the files."""


def collect(paths: Iterable[str | Path], allow_mixed: bool = False) -> pd.DataFrame:
    """One row per run from ``metrics.json`` files (or directories searched for them)."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise TableError(f"{p}: no such file or directory")
        files.extend(sorted(p.rglob("metrics.json")) if p.is_dir() else [p])
    if not files:
        raise TableError("no metrics.json files found")
    rows = []
    for f in sorted(set(files)):
        try:
            m = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise TableError(f"{f}: unreadable metrics file ({exc})") from exc
        missing = [k for k in REQUIRED if k not in m]
        if missing:
            raise TableError(f"{f}: missing key(s) {', '.join(missing)}")
        prov_path = f.with_name("provenance.json")
        prov = {}
        if prov_path.exists():
            try:
                prov = json.loads(prov_path.read_text())
            except ValueError as exc:
                raise TableError(f"{prov_path}: unreadable ({exc})") from exc
        rows.append({
            **{k: m[k] for k in REQUIRED}, "expression": m.get("expression"),
            "loss_key": m.get("loss_key"), "model": m.get("model"),
            "test_acc": m.get("test_acc"), "final_val_acc": m.get("final_val_acc"),
            "best_val_acc": m.get("best_val_acc"), "diverged": bool(m.get("diverged")),
            "val_n": m.get("val_n"), "test_n": m.get("test_n"),
            # runs before the key was recorded all trained on the train split
            "train_split": m.get("train_split", "train"), "train_n": m.get("train_n"),
            "run_dir": str(f.parent), "git_commit": prov.get("git_commit", ""),
            "git_dirty": prov.get("git_dirty"), "device": prov.get("device", ""),
            "gpu_name": prov.get("gpu_name", ""),
            "preprocessing": describe_preprocessing(m.get("preprocessing")),
            "packages": describe_packages(prov), "data_digest": describe_digests(m.get("data")),
            "gpus_requested": prov.get("gpus_requested"),
            "cpu_fallback": prov.get("cpu_fallback"),
        })
    df = pd.DataFrame(rows)
    df["seed"] = df["seed"].astype(int)
    if not allow_mixed:
        check_consistency(df)
    return df.sort_values(CELL + ["seed", "run_dir"], kind="stable").reset_index(drop=True)


#: Science packages older provenance files recorded as top-level keys (before ``packages``).
_OLD_PACKAGE_KEYS = ("torch", "torchvision", "timm", "numpy")


def describe_packages(prov: dict) -> str:
    """A run's package versions as one stable string, ``name==version`` sorted by name
    (``packages`` of its provenance.json; older files: their torch/torchvision/timm/numpy)."""
    packages = prov.get("packages")
    if not isinstance(packages, dict):
        packages = {k: prov[k] for k in _OLD_PACKAGE_KEYS if prov.get(k)}
    return " ".join(f"{k}=={v}" for k, v in sorted(packages.items()))


def describe_digests(data) -> str:
    """A run's (or job's) data digests as one stable string: ``train=ab12 val=cd34`` (splits
    sorted; a job's ``{dataset: {split: digest}}`` becomes ``dataset: train=.. val=..; ...``)."""
    if not isinstance(data, dict) or not data:
        return ""
    nested = any(isinstance(v, dict) for v in data.values())
    parts = [f"{k}: {describe_digests(v)}" if isinstance(v, dict) else f"{k}={v}"
             for k, v in sorted(data.items(), key=lambda kv: str(kv[0])) if v is not None]
    return ("; " if nested else " ").join(parts)


def describe_preprocessing(pre: dict | None) -> str:
    """One line for a fine-tune run's recorded preprocessing ('' for other stages)."""
    if not pre:
        return ""

    def triple(v):
        return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"

    source = f"file {pre['weights_file']} with {pre['tag']}'s config" if pre.get("weights_file") \
        else (pre.get("tag") or "?")
    over = ", ".join(pre.get("overridden") or []) or "none"
    return (f"{source}: {pre['image_size']} px, {pre['interpolation']}, crop_pct "
            f"{pre['crop_pct']:.4g}, mean {triple(pre['mean'])}, std {triple(pre['std'])}; "
            f"overridden by the config: {over}")


def check_consistency(df: pd.DataFrame) -> None:
    """Raise :class:`TableError` naming the files of any cell with mixed configs or code."""
    problems = []
    for cell, g in df.groupby(CELL, sort=True):
        for col, what in (("config_hash", "configurations"), ("code_version", "code versions"),
                          ("git_commit", "git commits")):
            values = sorted(set(g[col].astype(str)))
            if len(values) > 1:
                files = ", ".join(f"{r}/metrics.json ({v})" for r, v in zip(g["run_dir"], g[col]))
                problems.append(f"cell {'/'.join(map(str, cell))} mixes {what}: {files}")
        dup = g["seed"][g["seed"].duplicated()]
        if len(dup):
            files = ", ".join(f"{r}/metrics.json" for r in g["run_dir"][g["seed"].isin(dup)])
            problems.append(f"cell {'/'.join(map(str, cell))} has seed(s) "
                            f"{sorted(set(dup))} more than once: {files}")
    if problems:
        raise TableError("inconsistent runs (pass allow_mixed=True / --allow-mixed to accept):\n"
                         + "\n".join(problems))

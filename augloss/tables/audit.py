"""The audit trail: one row per table cell with its runs, seeds, config hash, code version,
device, package versions, data digests, preprocessing and flags (:func:`audit`); one row per
search, correlation study, checkpoint and selection job (:func:`audit_jobs`); written as
``audit.md``, ``audit.csv`` and an HTML page (:func:`write_audit`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from augloss.io import atomic_write_text
from augloss.tables.collect import CELL, describe_digests, describe_packages
from augloss.tables.comparison import display_name
from augloss.tables.render import html_page

# --- shared checks --------------------------------------------------------------------------------

def _pairs(text: str) -> dict[str, str]:
    """``"torch==2.1 numpy==2.0"`` or ``"train=ab val=cd"`` -> ``{name: value}``."""
    out = {}
    for part in str(text or "").split():
        name, sep, value = part.partition("==" if "==" in part else "=")
        if sep:
            out[name] = value
    return out


def _mixed(values: Iterable[str], what: str) -> str:
    """``"<what>: torch 2.14.1 / 2.13.0, timm ..."`` for the names whose value differs between
    the given ``name==v`` / ``split=v`` strings ('' when none differs; empty strings, i.e.
    nothing recorded, are ignored)."""
    recorded = [_pairs(v) for v in values if v]
    if len(recorded) < 2:
        return ""
    # only names every run recorded: an older run that recorded fewer packages is not "mixed"
    names = sorted(set.intersection(*(set(r) for r in recorded)))
    parts = []
    for name in names:
        seen = list(dict.fromkeys(r[name] for r in recorded))
        if len(seen) > 1:
            parts.append(f"{name} {' / '.join(seen)}")
    return f"{what}: {', '.join(parts)}" if parts else ""


def _device_label(device, gpu) -> str:
    device = "" if device is None or pd.isna(device) else str(device)
    gpu = "" if gpu is None or pd.isna(gpu) else str(gpu)
    return device + (f" ({gpu})" if gpu and device else "")


def _gpus(value) -> int | None:
    """A recorded ``gpus_requested`` as an int (None when not recorded: older runs)."""
    try:
        return None if value is None or pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None


def _cpu_instead_of_gpu(devices: Sequence, requested: Sequence, fallback: Sequence,
                        names: Sequence[str] | None = None) -> list[str]:
    """Flags for jobs given GPUs that ran on the CPU, one per number of GPUs given."""
    by_count: dict[int, list[str]] = {}
    allowed = False
    for i, (dev, req, fb) in enumerate(zip(devices, requested, fallback)):
        n = _gpus(req)
        if n and str(dev).split(":")[0] == "cpu":
            by_count.setdefault(n, []).append(names[i] if names else "")
            allowed |= str(fb) == "True"
    flags = []
    for n, which in sorted(by_count.items()):
        flag = f"ran on the CPU although given {n} GPU{'s' if n > 1 else ''}"
        if names:
            flag += ": " + ", ".join(which)
        flags.append(flag + (" (cpu_fallback: true in the config)" if allowed else ""))
    return flags


def _col(g: pd.DataFrame, col: str) -> pd.Series:
    return g[col] if col in g else pd.Series([None] * len(g), index=g.index)


# --- table cells ----------------------------------------------------------------------------------

#: audit.csv's columns for the cells (the first 14 as before packages and data were audited).
AUDIT_FIELDS = ["stage", "dataset", "augmentation", "loss", "display", "n_runs", "seeds",
                "config_hash", "code_version", "git_commit", "device", "preprocessing",
                "run_dirs", "flags", "packages", "data_digest", "gpus_requested", "train_split"]

def audit(df: pd.DataFrame, expected_seeds: dict[str, Sequence[int]] | None = None,
          aliases: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """One row per table cell: its runs, seeds, config hash, code version, device, package
    versions, data digests, and flags (``aliases``: other names of a trained loss, as in the
    tables)."""
    aliases = aliases or {}
    rows = []
    for cell, g in df.groupby(CELL, sort=True):
        stage = cell[0]
        seeds = sorted(int(s) for s in g["seed"])
        flags = []
        if expected_seeds and stage in expected_seeds:
            missing = sorted(set(expected_seeds[stage]) - set(seeds))
            if missing:
                flags.append(f"missing seeds {missing}")
        if g["diverged"].any():
            flags.append(f"{int(g['diverged'].sum())} diverged run(s): "
                         + ", ".join(g["run_dir"][g["diverged"]]))
        other = g[(g["status"] != "completed") & ~g["diverged"]]
        if len(other):
            flags.append("status " + ", ".join(f"{s} ({r})" for s, r in
                                                 zip(other["status"], other["run_dir"])))
        for col, what in (("code_version", "mixed code versions"),
                          ("git_commit", "mixed git commits"),
                          ("config_hash", "mixed configurations"),
                          ("preprocessing", "mixed preprocessing"),
                          ("train_split", "mixed training splits")):
            if len(set(_col(g, col).astype(str))) > 1:
                flags.append(what)
        packages = [str(p) for p in _col(g, "packages").fillna("")]
        digests = [str(d) for d in _col(g, "data_digest").fillna("")]
        flags += [f for f in (_mixed(packages, "mixed package versions"),
                              _mixed(digests, "mixed data")) if f]
        labels = [_device_label(d, n) for d, n in zip(g["device"], g["gpu_name"])]
        devices = sorted(set(labels) - {""})
        if len(devices) > 1:
            flags.append("mixed devices: " + ", ".join(devices))
        requested = _col(g, "gpus_requested")
        flags += _cpu_instead_of_gpu(list(g["device"]), list(requested),
                                     list(_col(g, "cpu_fallback")), list(g["run_dir"]))
        if g["git_dirty"].fillna(False).astype(bool).any():
            flags.append("uncommitted changes in the code")
        rows.append({"stage": stage, "dataset": cell[1], "augmentation": cell[2],
                     "loss": cell[3], "display": display_name(cell[3], aliases.get(cell[3], ())),
                     "n_runs": len(g), "seeds": " ".join(map(str, seeds)),
                     "config_hash": " ".join(sorted(set(g["config_hash"].astype(str)))),
                     "code_version": " ".join(sorted(set(g["code_version"].astype(str)))),
                     "git_commit": " ".join(sorted(set(g["git_commit"].astype(str)))),
                     "device": " ".join(sorted(set(labels))),
                     "preprocessing": " | ".join(sorted(set(g["preprocessing"].astype(str)))),
                     "run_dirs": " ".join(g["run_dir"]), "flags": "; ".join(flags),
                     "packages": " | ".join(sorted(set(packages) - {""})),
                     "data_digest": " | ".join(sorted(set(digests) - {""})),
                     "gpus_requested": " ".join(sorted({str(n) for n in map(_gpus, requested)
                                                        if n is not None})),
                     "train_split": " ".join(sorted(set(_col(g, "train_split")
                                                        .fillna("train").astype(str))))})
    return pd.DataFrame(rows, columns=AUDIT_FIELDS)


# --- jobs other than training runs ----------------------------------------------------------------

def job_key(path: str | Path, root: str | Path) -> str:
    """``<root>/search/base/provenance.json`` -> ``search/base``; another file name under
    ``root`` -> its path without suffix; a path outside ``root`` -> the path as given."""
    p = Path(path)
    try:
        rel = p.resolve().relative_to(Path(root).resolve())
    except ValueError:
        return str(path)
    if rel.name == "provenance.json":
        return rel.parent.as_posix()
    return rel.with_suffix("").as_posix()


JOB_FIELDS = ["job", "code_version", "git_commit", "git_dirty", "device", "gpus_requested",
              "packages", "data_digest", "provenance", "flags"]


def audit_jobs(provenance_files: dict[str, str]) -> pd.DataFrame:
    """One row per job that is not a training run (keys such as ``search/base``,
    ``search/base/random``, ``correlation``, ``evolved_losses``, ``select_transfer``; values:
    its provenance.json): code, device and GPU, package versions, data digests, and flags (no
    provenance, CPU although given GPUs, uncommitted code)."""
    rows = []
    for job, path in sorted(provenance_files.items()):
        flags = []
        try:
            prov = json.loads(Path(path).read_text())
        except FileNotFoundError:
            prov, flags = {}, ["no provenance.json"]
        except (OSError, ValueError) as exc:
            prov, flags = {}, [f"unreadable provenance.json ({type(exc).__name__})"]
        flags += _cpu_instead_of_gpu([prov.get("device", "")], [prov.get("gpus_requested")],
                                     [prov.get("cpu_fallback")])
        if prov.get("git_dirty"):
            flags.append("uncommitted changes in the code")
        n = _gpus(prov.get("gpus_requested"))
        rows.append({"job": job, "code_version": prov.get("augloss", ""),
                     "git_commit": prov.get("git_commit", ""),
                     "git_dirty": bool(prov.get("git_dirty")),
                     "device": _device_label(prov.get("device", ""), prov.get("gpu_name", "")),
                     "gpus_requested": "" if n is None else str(n),
                     "packages": describe_packages(prov) if prov else "",
                     "data_digest": describe_digests(prov.get("data")),
                     "provenance": str(path), "flags": "; ".join(flags)})
    searches = [r for r in rows if r["job"].startswith("search/")]
    across = [f for f in (_mixed([r["packages"] for r in searches],
                                 "mixed package versions across the searches"),
                          _mixed([r["data_digest"] for r in searches],
                                 "mixed data across the searches")) if f]
    devices = sorted({r["device"] for r in searches if r["device"]})
    if len(devices) > 1:
        across.append("mixed devices across the searches: " + ", ".join(devices))
    for r in searches:  # the cross-augmentation claim compares the searches with each other
        r["flags"] = "; ".join(f for f in [r["flags"], *across] if f)
    return pd.DataFrame(rows, columns=JOB_FIELDS)


# --- writing --------------------------------------------------------------------------------------

AUDIT_COLUMNS = [("stage", "stage"), ("dataset", "dataset"), ("augmentation", "augmentation"),
                 ("display", "loss"), ("seeds", "seeds"), ("n_runs", "runs"),
                 ("config_hash", "config hash"), ("code_version", "code"),
                 ("git_commit", "git commit"), ("device", "device"),
                 ("packages", "packages"), ("data_digest", "data"),
                 ("preprocessing", "preprocessing"), ("flags", "flags")]
JOB_COLUMNS = [("job", "job"), ("code_version", "code"), ("git_commit", "git commit"),
               ("device", "device"), ("gpus_requested", "GPUs requested"),
               ("packages", "packages"), ("data_digest", "data"), ("flags", "flags")]
JOBS_TITLE = "Searches and selections"


def config_line(resolved_config: str | Path) -> str:
    """``Resolved config: <path> (sha256 <first 16>)`` (or ``(missing)``)."""
    try:
        digest = hashlib.sha256(Path(resolved_config).read_bytes()).hexdigest()[:16]
    except OSError:
        return f"Resolved config: {resolved_config} (missing)"
    return f"Resolved config: {resolved_config} (sha256 {digest})"


def _flagged(a: pd.DataFrame) -> int:
    return int((a["flags"] != "").sum()) if len(a) else 0


def _html_rows(a: pd.DataFrame, columns) -> list[list[str]]:
    rows = a.sort_values("flags", key=lambda f: f == "", kind="stable") if len(a) else a
    return [[f"**{v}**" if col == "flags" and v else str(v) for col, _ in columns
             for v in [getattr(r, col)]] for r in rows.itertuples()]


def _csv(a: pd.DataFrame, jobs: pd.DataFrame | None) -> str:
    """The cells' rows (their columns first, as before), then the jobs' rows (``section``
    "jobs", ``stage`` the job's kind, ``job`` its key, the rest in the same columns)."""
    if jobs is None or not len(jobs):
        return a.to_csv(index=False, lineterminator="\n")
    cells = a.assign(section="cells", job="", git_dirty="")
    j = jobs.assign(section="jobs", stage=jobs["job"].str.split("/").str[0],
                    run_dirs=jobs["provenance"]).drop(columns=["provenance"])
    columns = list(a.columns) + [c for c in ("section", "job", "git_dirty")
                                 if c not in a.columns]
    both = pd.concat([cells, j], ignore_index=True).reindex(columns=columns)
    both["n_runs"] = both["n_runs"].astype("Int64")  # a job's row: empty, the cells' stay ints
    return both.to_csv(index=False, lineterminator="\n")


def write_audit(a: pd.DataFrame, md_path: str | Path, csv_path: str | Path,
                html_path: str | Path | None = None, jobs: pd.DataFrame | None = None,
                resolved_config: str | Path | None = None) -> None:
    """``audit.md`` (a section per cell, then one per job of ``jobs`` (:func:`audit_jobs`)
    under "Searches and selections"), ``audit.csv`` (the cells' rows, then the jobs') and,
    given ``html_path``, an HTML page (a table of cells, flagged first, and one of jobs) for the
    report. ``resolved_config`` (the workflow's ``config.resolved.yaml``) is named with its
    SHA-256 at the top."""
    atomic_write_text(csv_path, _csv(a, jobs))
    has_jobs = jobs is not None and len(jobs) > 0
    header = [config_line(resolved_config)] if resolved_config else []
    summary = f"{len(a)} table cells; {_flagged(a)} flagged."
    if has_jobs:
        summary += f" {len(jobs)} search/selection job(s); {_flagged(jobs)} flagged."
    if html_path is not None:
        title = "Audit: where every number comes from"
        sections = [(title, [h for _, h in AUDIT_COLUMNS], _html_rows(a, AUDIT_COLUMNS),
                     [*header, f"{summary} Each cell's run directories are in audit.csv "
                      "(run_dirs) and audit.md."])]
        if has_jobs:
            sections.append((JOBS_TITLE, [h for _, h in JOB_COLUMNS],
                             _html_rows(jobs, JOB_COLUMNS),
                             ["Each job's provenance.json is in audit.csv and audit.md."]))
        atomic_write_text(html_path, html_page(title, sections))
    lines = ["# Audit: where every number comes from", ""]
    if header:
        lines += [*header, ""]
    lines += [summary, ""]
    for r in a.itertuples():
        lines.append(f"## {r.stage} / {r.dataset} / {r.augmentation} / {r.display}")
        lines.append("")
        lines.append(f"- seeds: {r.seeds} ({r.n_runs} runs)")
        lines.append(f"- config hash: `{r.config_hash}`; code: {r.code_version} "
                     f"(git {r.git_commit or 'unknown'})")
        requested = getattr(r, "gpus_requested", "")
        lines.append(f"- device: {r.device or 'unknown'}"
                     + (f"; GPUs requested: {requested}" if requested else ""))
        lines.append(f"- packages: {getattr(r, 'packages', '') or 'not recorded'}")
        lines.append(f"- data: {getattr(r, 'data_digest', '') or 'not recorded'}")
        lines.append(f"- trained on: {getattr(r, 'train_split', '') or 'train'}")
        if r.preprocessing:
            lines.append(f"- preprocessing: {r.preprocessing}")
        lines.append(f"- runs: {', '.join(f'`{d}`' for d in r.run_dirs.split())}")
        lines.append(f"- **flags: {r.flags}**" if r.flags else "- flags: none")
        lines.append("")
    if has_jobs:
        lines += [f"# {JOBS_TITLE}", ""]
        for r in jobs.itertuples():
            lines += [f"## {r.job}", "",
                      f"- code: {r.code_version or 'unknown'} (git {r.git_commit or 'unknown'}"
                      f"{', uncommitted changes' if r.git_dirty else ''})",
                      f"- device: {r.device or 'unknown'}"
                      + (f"; GPUs requested: {r.gpus_requested}" if r.gpus_requested else ""),
                      f"- packages: {r.packages or 'not recorded'}",
                      f"- data: {r.data_digest or 'not recorded'}",
                      f"- provenance: `{r.provenance}`",
                      f"- **flags: {r.flags}**" if r.flags else "- flags: none", ""]
    atomic_write_text(md_path, "\n".join(lines))

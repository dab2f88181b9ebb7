"""The ``augloss`` command: check a loss, regenerate a table, audit finished runs.

    augloss loss "-(y * ln(p))"          # canonical form, LaTeX, PyTorch source, integrity verdict
    augloss tables RUNS... --stage transfer --out results/x/tables/transfer
    augloss audit RUNS... --out results/x/audit/audit

``python -m augloss`` is the same command. Every subcommand has ``--help``; choices (stages,
metrics, what to show) are validated by argparse, and a malformed expression is reported with
its position, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from augloss.names import STAGES

METRICS = ("test_acc", "final_val_acc", "best_val_acc")
SHOW = ("canonical", "latex", "torch", "integrity")


def _loss(args: argparse.Namespace) -> int:
    from augloss.losses import LossSyntaxError, integrity, resolve

    try:
        expr, name = resolve(args.expression)
    except LossSyntaxError as err:
        print(f"augloss loss: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"augloss loss: {err}", file=sys.stderr)
        return 2
    show = args.show or list(SHOW)
    lines = [f"expression: {expr}" + (f"  (registry name {name!r})" if name else "")]
    if "canonical" in show:
        lines += [f"canonical:  {expr.canonical()}",
                  f"key:        {expr.key[:16]}  (sha256 of the canonical text)",
                  f"leaves:     {', '.join(sorted(expr.leaves()))}; depth {expr.depth}, "
                  f"{expr.size()} nodes"]
    if "latex" in show:
        lines.append(f"latex:      {expr.latex()}")
    if "integrity" in show:
        verdict = integrity(expr, faithful_quirks=args.faithful_quirks)
        if verdict.ok:
            how = "negated to point the right way" if verdict.flip else "as written"
            quirk = f"; {verdict.quirk} quirk" if verdict.quirk else ""
            lines.append(f"integrity:  passes ({how}{quirk})")
        else:
            lines.append(f"integrity:  fails: {verdict.reason}")
    if "torch" in show:
        lines += ["pytorch:", expr.to_torch_source(args.name).rstrip()]
    print("\n".join(lines))
    return 0


def _tables(args: argparse.Namespace) -> int:
    from augloss.tables import audit, collect, comparison, plots

    df = collect.collect(args.runs, allow_mixed=args.allow_mixed)
    t = comparison.comparison(df, args.stage, args.metric)
    for path in comparison.write_comparison(t, args.out):
        print(path)
    out = Path(args.out)
    print(plots.plot_delta_heatmap(t, out.with_name(out.name + "_delta.png")))
    if not args.no_audit:
        _write_audit(audit.audit(df[df["stage"] == args.stage]), out.name + "_audit", out)
    return 0


def _write_audit(a, name: str, out: Path) -> None:
    """NAME.{md,csv,html} beside ``out`` (as the workflow's audit rule writes them); prints
    each path."""
    from augloss.tables.audit import write_audit

    paths = [out.with_name(f"{name}.{ext}") for ext in ("md", "csv", "html")]
    write_audit(a, *paths)
    for path in paths:
        print(path)


def _audit(args: argparse.Namespace) -> int:
    from augloss.tables import audit, collect

    df = collect.collect(args.runs, allow_mixed=True)  # a mix is what the audit flags
    if args.stage:
        df = df[df["stage"] == args.stage]
    out = Path(args.out)
    a = audit.audit(df)
    _write_audit(a, out.name, out)
    flagged = int((a["flags"] != "").sum()) if len(a) else 0
    print(f"{len(a)} table cells, {flagged} flagged", file=sys.stderr)
    return 1 if flagged and args.strict else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="augloss", description="Evolved loss functions for image augmentation: check a "
        "loss, regenerate tables and audit finished runs (the workflow itself runs under "
        "Snakemake).")
    sub = p.add_subparsers(dest="command", required=True, metavar="{loss,tables,audit}")

    q = sub.add_parser("loss", help="parse a loss; print its canonical form, LaTeX, PyTorch "
                       "source and integrity verdict",
                       description="Parse a loss expression over y (target), p (softmax) and "
                       "the constants, or a registry name (ce, focal, poly1, ...).")
    q.add_argument("expression", help='expression text, e.g. "-(y * ln(p))", or a registry name')
    q.add_argument("--show", action="append", choices=SHOW,
                   help="print only this part (repeatable; default: all)")
    q.add_argument("--name", default="evolved_loss",
                   help="function name in the PyTorch source (default: evolved_loss)")
    q.add_argument("--faithful-quirks", action="store_true",
                   help="judge integrity with the earlier code's orientation quirks")
    q.set_defaults(func=_loss)

    t = sub.add_parser("tables", help="rebuild a stage's table (Markdown, CSV, LaTeX, HTML), "
                       "its delta heatmap and audit from finished runs",
                       description="Rebuild one stage's comparison against cross-entropy from "
                       "the metrics.json files of finished runs (whatever has finished).")
    t.add_argument("runs", nargs="+", help="metrics.json files or directories holding them")
    t.add_argument("--stage", required=True, choices=STAGES)
    t.add_argument("--metric", default="test_acc", choices=METRICS)
    t.add_argument("--out", required=True,
                   help="output prefix, e.g. results/x/tables/transfer (.md/.csv/.tex/.html added)")
    t.add_argument("--allow-mixed", action="store_true",
                   help="accept cells whose runs differ in configuration or code version")
    t.add_argument("--no-audit", action="store_true",
                   help="skip PREFIX_audit.{md,csv,html}")
    t.set_defaults(func=_tables)

    a = sub.add_parser("audit", help="where every table cell's number comes from: runs, seeds, "
                       "hashes, code, devices and flags",
                       description="Audit finished runs: one entry per table cell with its "
                       "runs, seeds, config hash, code version, device and flags.")
    a.add_argument("runs", nargs="+", help="metrics.json files or directories holding them")
    a.add_argument("--stage", choices=STAGES, help="only this stage (default: every stage)")
    a.add_argument("--out", required=True, help="output prefix (.md, .csv and .html added)")
    a.add_argument("--strict", action="store_true", help="exit 1 when a cell is flagged")
    a.set_defaults(func=_audit)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The ``augloss`` command: check a loss, regenerate a table, audit finished runs.

    augloss loss "-(y * ln(p))"          # canonical form, LaTeX, integrity verdict, PyTorch source
    augloss loss --orient "y * ln(p)"    # ... of the loss as orient: true trains it
    augloss tables RUNS... --stage transfer --out results/x/tables/transfer
    augloss audit RUNS... --out results/x/audit/audit --strict --config config.yaml
    augloss plan --delta 0.2 --seed-sd 0.15 --cells 10 --losses 8   # seeds a Δ needs
    augloss cost results/x/search/base --bench results/bench/report.json   # GPU-hours of 5 searches

``python -m augloss`` is the same command (``--version`` prints the version). Every subcommand
has ``--help``. Exit status 2: a usage error (argparse's choices and types) or a malformed
expression (reported with its position). Exit status 1: a data error (a missing path, no
metrics.json, a stage without runs, malformed JSON or YAML, an unwritable ``--out``), a loss
that fails the integrity test, or ``audit --strict`` with a flagged cell. Every error is one
line on stderr, ``augloss <command>: error: <message>``, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from augloss import __version__
from augloss.names import STAGES

METRICS = ("test_acc", "final_val_acc", "best_val_acc")
SHOW = ("canonical", "key", "latex", "torch", "integrity")


class DataError(ValueError):
    """Input the command cannot use (exit status 1); the message is one line."""


def _error(command: str, message: object) -> None:
    """``augloss <command>: error: <message>`` on stderr, on one line."""
    text = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    print(f"augloss {command}: error: {text}", file=sys.stderr)


def _os_message(err: OSError) -> str:
    """'<reason>: <path>' for an OSError (without the '[Errno N]' prefix)."""
    if err.strerror and err.filename is not None:
        return f"{err.strerror}: {err.filename}"
    return str(err)


def _loss(args: argparse.Namespace) -> int:
    # The package's eager names (parser, printer, registry) are torch-free; the integrity test
    # imports torch, so it is imported only when asked for: by --show integrity, or by the
    # PyTorch source with --orient (what trains then depends on the test's verdict).
    from augloss.losses import Call, LossSyntaxError, resolve

    if args.orient and args.faithful_quirks:
        print("augloss loss: error: --orient shows how a baseline with orient: true trains, "
              "which jobs decide with the corrected integrity test; --faithful-quirks applies "
              "to the search's genomes only", file=sys.stderr)
        return 2
    try:
        expr, name = resolve(args.expression)
    except (LossSyntaxError, ValueError) as err:
        print(f"augloss loss: error: {err}", file=sys.stderr)
        return 2
    show = args.show or list(SHOW)
    lines = [f"expression: {expr}" + (f"  (registry name {name!r})" if name else "")]
    if "canonical" in show:
        lines += [f"canonical:  {expr.canonical()}",
                  f"leaves:     {', '.join(sorted(expr.leaves()))}; depth {expr.depth}, "
                  f"{expr.size()} nodes"]
    if "key" in show:
        lines.append(f"key:        {expr.key}  (sha256 of the canonical text)")
    if "latex" in show:
        lines.append(f"latex:      {expr.latex()}")
    verdict = None
    if "integrity" in show or ("torch" in show and args.orient and name is None):
        try:
            from augloss.losses.integrity import integrity
        except ImportError as err:
            _error("loss", f"the integrity test needs torch ({err}); --show canonical, key, "
                   "latex or torch (without --orient) print without it")
            return 1
        verdict = integrity(expr, faithful_quirks=args.faithful_quirks)
    if "integrity" in show:
        if verdict.ok:
            how = "points the wrong way: the test negates it" if verdict.flip else "as written"
            quirk = f"; {verdict.quirk} quirk" if verdict.quirk else ""
            lines.append(f"integrity:  passes ({how}{quirk})")
        else:
            lines.append(f"integrity:  fails: {verdict.reason}")
    # What training would use (augloss.losses.orientation): a registry name as defined; an
    # expression as written, or with --orient (a baseline's orient: true) as the test orients it.
    trained, refused, warning = expr, None, None
    if name is not None:
        how = f"registry name {name!r}: oriented already, orient does not apply"
    elif verdict is None:
        how = "as written, orient: false; the integrity test not run"
    elif not verdict.ok:
        how = "as written, orient: false" if not args.orient else None
        if args.orient:
            refused = (f"{expr} fails the integrity test ({verdict.reason}): --orient "
                       f"(orient: true) trains only a loss the test orients")
    elif verdict.flip and args.orient:
        trained = Call("neg", (expr,))
        how = "negated to point the right way, orient: true"
    elif verdict.flip:
        how = "as written, orient: false"
        warning = (f"{expr} points the wrong way by the integrity test and trains as written; "
                   f"set orient: true on its baseline (here: --orient) to train "
                   f"{Call('neg', (expr,))}")
    else:
        how = "as written" + (", orient: true" if args.orient else "")
    if "integrity" in show or "torch" in show:
        if refused is not None:
            lines.append("trains as:  nothing (refused)")
        else:
            lines.append(f"trains as:  {trained}  ({how})")
        if warning is not None:
            lines.append(f"warning:    {warning}")
    if "torch" in show and refused is None:
        lines += ["pytorch:", trained.to_torch_source(args.name).rstrip()]
    print("\n".join(lines))
    if refused is not None:
        _error("loss", refused)
        return 1
    if verdict is not None and not verdict.ok and "integrity" in show:
        _error("loss", f"{expr} fails the integrity test: {verdict.reason}")
        return 1
    return 0


def _check_out(out: Path) -> None:
    """Raise :class:`DataError` when the files of output prefix ``out`` cannot be written."""
    from augloss.runtime import unwritable

    if not out.name or out.name in (".", ".."):
        raise DataError(f"--out {str(out)!r} names no file prefix")
    why = unwritable(out.parent)
    if why is not None:
        raise DataError(f"cannot write --out {out}: {why}")


def _collect(runs: list[str], allow_mixed: bool):
    """:func:`augloss.tables.collect.collect`, its "nothing found" naming the paths searched."""
    from augloss.tables.collect import TableError, collect

    try:
        return collect(runs, allow_mixed=allow_mixed)
    except TableError as err:
        if str(err) == "no metrics.json files found":
            raise DataError(f"no metrics.json files found under {' '.join(runs)}") from None
        raise


def _tables(args: argparse.Namespace) -> int:
    from augloss.tables import audit, claims, comparison, plots

    _check_out(Path(args.out))
    df = _collect(args.runs, allow_mixed=args.allow_mixed)
    t = comparison.comparison(df, args.stage, args.metric)
    for path in comparison.write_comparison(t, args.out):
        print(path)
    out = Path(args.out)
    for path in claims.write_claims(claims.claims([t]), out.with_name(out.name + "_claims"),
                                    [t]):
        print(path)
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


def expected_seeds(df, seeds: list[int] | None = None, config: str | None = None,
                   infer: bool = False) -> tuple[dict[str, list[int]] | None, str]:
    """The seeds each stage of ``df`` should have, and where they come from: ``seeds`` for
    every stage, the experiment config file ``config``'s per stage, or (``infer``) the union of
    the seeds that stage's runs have; None when none of these is given."""
    stages = sorted(set(df["stage"])) if len(df) else []
    if seeds is not None:
        return {s: list(seeds) for s in stages}, "--seeds"
    if config is not None:
        return _load_experiment(config).seeds(), f"--config {config}"
    if infer:
        return {s: sorted({int(x) for x in df["seed"][df["stage"] == s]}) for s in stages}, \
            "inferred: every seed a cell of the stage has"
    return None, ""


def _audit(args: argparse.Namespace) -> int:
    from augloss.tables import audit

    out = Path(args.out)
    _check_out(out)
    df = _collect(args.runs, allow_mixed=True)  # a mix is what the audit flags
    if args.stage:
        df = df[df["stage"] == args.stage]
        if not len(df):
            raise DataError(f"no runs of stage {args.stage!r} under {' '.join(args.runs)}")
    expected, source = expected_seeds(df, args.seeds, args.config, infer=args.strict)
    a = audit.audit(df, expected_seeds=expected)
    _write_audit(a, out.name, out)
    flagged = int((a["flags"] != "").sum()) if len(a) else 0
    seeds = "; ".join(f"{s} {' '.join(map(str, v))}" for s, v in (expected or {}).items())
    print(f"{len(a)} table cells, {flagged} flagged"
          + (f" (expected seeds: {seeds}; {source})" if expected else ""), file=sys.stderr)
    return 1 if flagged and args.strict else 0


def _plan(args: argparse.Namespace) -> int:
    from augloss import stats

    text = plan_text(stats.plan(args.delta / 100, args.seed_sd / 100, args.cells, args.losses,
                                tau=args.tau / 100, alpha=args.alpha, power=args.power,
                                max_seeds=args.max_seeds), args.seeds)
    if args.out:
        from augloss.io import atomic_write_text

        atomic_write_text(args.out, text)
    print(text, end="")
    return 0


def plan_text(p, current: int | None = None) -> str:
    """The planner's answer in Markdown (:func:`augloss.stats.plan`, inputs in fractions)."""
    from augloss import stats

    def seeds(n):
        return str(n) if n is not None else f"more than {p.max_seeds}"

    d_sd = p.seed_sd * 2 ** 0.5
    lines = [
        f"# Seeds per cell for a true Δ of {100 * p.delta:.3g} pp",
        "",
        f"Assumed: one run's accuracy varies by {100 * p.seed_sd:.3g} pp over seeds (a paired "
        f"difference by {100 * d_sd:.3g} pp), {p.cells} cells per loss, {p.losses} losses "
        f"compared with cross-entropy, between-cell sd of the true Δ τ = {100 * p.tau:.3g} pp; "
        f"two-sided α = {p.alpha:g}, power {100 * p.power:.0f} %.",
        "",
        "| test | level | seeds per cell |",
        "|---|---|---|",
        f"| one cell (paired t; Holm's first step over the loss's {p.cells} cells) "
        f"| α / {p.cells} = {p.alpha / max(1, p.cells):.3g} | {seeds(p.per_cell_seeds)} |",
        f"| pooled over the {p.cells} cells (the primary endpoint; Holm's first step over "
        f"{p.losses} losses) | α / {p.losses} = {p.alpha / max(1, p.losses):.3g} | "
        + (seeds(p.pooled_seeds) if p.cells >= 2 else "untestable (one cell)") + " |",
    ]
    if p.tau == 0 and p.cells >= 2:
        rows = []
        for f in (0.5, 1.0, 2.0):
            q = stats.plan(p.delta, p.seed_sd, p.cells, p.losses, tau=f * p.seed_sd,
                           alpha=p.alpha, power=p.power, max_seeds=p.max_seeds)
            rows.append(f"| τ = {100 * q.tau:.3g} pp | " + (
                seeds(q.pooled_seeds) if q.pooled_seeds is not None or q.pooled_limit >= p.power
                else f"unreachable (at most {100 * q.pooled_limit:.0f} % power)") + " |")
        lines += ["", "The pooled answer assumes the same true Δ in every cell (τ = 0). If the "
                  "true Δ varies between cells (the claims table estimates τ²), the pooled "
                  "test needs:", "", "| between-cell sd of the true Δ | seeds per cell |",
                  "|---|---|", *rows]
    if p.cells >= 2 and p.pooled_seeds is None and p.pooled_limit < p.power:
        lines += ["", f"The pooled test cannot reach {100 * p.power:.0f} % power with "
                  f"{p.cells} cells at any number of seeds: the between-cell spread τ alone "
                  f"limits it to {100 * p.pooled_limit:.0f} %. Add cells (datasets, "
                  f"augmentations), not seeds."]
    if current:
        a_cell = p.alpha / max(1, p.cells)
        a_pool = p.alpha / max(1, p.losses)
        pw_cell = stats.power_of(p.delta, d_sd, current, a_cell)
        pw_pool = stats.power_of(p.delta, (p.tau ** 2 + d_sd ** 2 / current) ** 0.5,
                                 p.cells, a_pool) if p.cells >= 2 else float("nan")
        lines += ["", f"With {current} seeds per cell: power {100 * pw_cell:.0f} % per cell, "
                  + (f"{100 * pw_pool:.0f} % pooled." if pw_pool == pw_pool
                     else "pooled untestable.")]
    return "\n".join(lines) + "\n"


def _load_experiment(config: str):
    """The :class:`augloss.experiment.Experiment` of config file ``config``; a
    :class:`DataError` names the file when it is not valid YAML or not a valid config."""
    import yaml

    from augloss.experiment import Experiment

    try:
        data = yaml.safe_load(Path(config).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DataError(f"{config}: not valid YAML: "
                        f"{getattr(err, 'problem', None) or err}{where}") from None
    try:
        return Experiment.from_config(data)
    except ValueError as err:
        raise DataError(f"{config}: {err}") from None


def _read_report(path: str) -> dict:
    """A benchmark report (``python -m benchmarks``'s report.json); a :class:`DataError`
    names the file when it is not JSON or not a report."""
    import json

    try:
        report = json.loads(Path(path).read_text())
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(report, dict) or not isinstance(report.get("figures"), dict):
        raise DataError(f"{path}: not a benchmark report (no 'figures' object; write one "
                        f"with python -m benchmarks)")
    return report


def _cost(args: argparse.Namespace) -> int:
    from augloss.search import cost

    measured = [cost.measure(d) for d in args.searches]  # CostError names the file
    print("\n\n".join(cost.describe(m) for m in measured))
    if args.bench is None:
        return 0
    report = _read_report(args.bench)
    config = args.config or "config.yaml"
    exp = _load_experiment(config)
    from augloss.config import FitnessConfig, SearchConfig

    configs = {}
    for aug in exp.augmentations:
        job = exp.search_job(aug)
        configs[aug] = (SearchConfig.from_dict(job["algorithm"]),
                        FitnessConfig.from_dict({**job["fitness"], "data_root": "."}))
    if args.val_n is not None:
        val_n, val_from = args.val_n, "--val-n"
    else:
        known = [m for m in measured if m["val_n"] is not None]
        if not known:
            raise DataError("the number of validation images is unknown (no summary.json of "
                            f"{' '.join(args.searches)} records val_n): pass --val-n")
        val_n, val_from = known[0]["val_n"], f"{known[0]['sources']['summary']}'s val_n"
    try:
        projection = cost.project_searches(measured, configs, report, val_n)
    except cost.MissingFigure as err:
        raise DataError(f"{args.bench}: {err}") from None
    print(f"\nprojected cost of {config}'s {len(configs)} searches (modelled, not measured; "
          f"step costs from {args.bench}, val_n {val_n} from {val_from}):")
    print(cost.describe_projection(projection))
    print(cost.describe_assumptions(projection))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="augloss", description="Evolved loss functions for image augmentation: check a "
        "loss, regenerate tables and audit finished runs (the workflow itself runs under "
        "Snakemake).")
    p.add_argument("--version", action="version", version=f"augloss {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{loss,tables,audit,plan,cost}")

    q = sub.add_parser("loss", help="parse a loss; print its canonical form, LaTeX, PyTorch "
                       "source and integrity verdict",
                       description="Parse a loss expression over y (target), p (softmax) and "
                       "the constants, or a registry name (ce, focal, poly1, ...); a loss as "
                       "the authors' earlier code printed it parses too. The integrity line "
                       "gives the test's verdict, 'trains as' what training uses (as written, "
                       "or with --orient as the test orients it) and the PyTorch source is "
                       "that loss's.")
    q.add_argument("expression", help='expression text, e.g. "-(y * ln(p))", or a registry name')
    q.add_argument("--show", action="append", choices=SHOW,
                   help="print only this part (repeatable; default: all)")
    q.add_argument("--name", default="evolved_loss",
                   help="function name in the PyTorch source (default: evolved_loss)")
    q.add_argument("--faithful-quirks", action="store_true",
                   help="judge integrity with the earlier code's orientation quirks")
    q.add_argument("--orient", action="store_true",
                   help="print the loss as a baseline with orient: true trains it: negated "
                   "where the integrity test flips it (default: as written, orient: false)")
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
    a.add_argument("--strict", action="store_true",
                   help="exit 1 when a cell is flagged; without --seeds or --config, a cell "
                   "lacking a seed that another cell of its stage has is flagged too")
    e = a.add_mutually_exclusive_group()
    e.add_argument("--seeds", type=_seed_list, metavar="0,1,2",
                   help="the seeds every cell should have (any stage): a missing one is flagged")
    e.add_argument("--config", metavar="FILE",
                   help="the experiment's config (config.yaml, demo/config.yaml): each stage's "
                   "seeds there are expected; a missing one is flagged")
    a.set_defaults(func=_audit)

    n = sub.add_parser("plan", help="seeds per cell that a target Δ needs, per cell and pooled",
                       description="Plan the seeds: given a true Δ and the seed-to-seed sd "
                       "of one run's accuracy (both in percentage points), the seeds per "
                       "cell that the per-cell and the pooled tests need for the power "
                       "asked, at Holm's first step.")
    n.add_argument("--delta", type=_positive, required=True, help="target Δ in pp, e.g. 0.2")
    n.add_argument("--seed-sd", type=_positive, required=True,
                   help="sd of one run's accuracy over seeds in pp (CIFAR: 0.1-0.2)")
    n.add_argument("--cells", type=_count, default=10,
                   help="cells per loss: datasets x augmentations (default 10: CIFAR-10/100 "
                   "x 5)")
    n.add_argument("--losses", type=_count, default=8,
                   help="losses compared with CE in the stage (Holm's family for the pooled "
                   "test; default 8: 5 evolved + 3 baselines)")
    n.add_argument("--tau", type=_non_negative, default=0.0,
                   help="between-cell sd of the true Δ in pp (default 0: the same Δ "
                   "everywhere)")
    n.add_argument("--alpha", type=_probability, default=0.05,
                   help="two-sided significance level before Holm (default 0.05)")
    n.add_argument("--power", type=_probability, default=0.8,
                   help="the power asked for (default 0.8)")
    n.add_argument("--seeds", type=_count, help="also report the power at this many seeds")
    n.add_argument("--max-seeds", type=_count, default=1000,
                   help="give up above this many seeds per cell (default 1000)")
    n.add_argument("--out", help="also write the answer to this Markdown file")
    n.set_defaults(func=_plan)

    c = sub.add_parser("cost", help="what searches cost: measured per search, and projected "
                       "for the config's searches with a benchmark report's step costs",
                       description="Print each search's measured cost model (evaluations, "
                       "pass rates, epochs run, cache hits and, from its cost.json, seconds "
                       "per trained candidate and per epoch). With --bench, project the "
                       "config's searches from those rates and the report's seconds per "
                       "training step and per validation image: a model, not a measurement.")
    c.add_argument("searches", nargs="+", metavar="SEARCH_DIR",
                   help="search directories (history.jsonl, summary.json, cost.json), e.g. "
                   "results/x/search/base")
    c.add_argument("--bench", metavar="REPORT",
                   help="a benchmark report (python -m benchmarks: results/bench/report.json) "
                   "whose cost_step_s_* and cost_val_s_per_image_* figures give the seconds")
    c.add_argument("--config", metavar="FILE",
                   help="the experiment whose searches are projected (default: config.yaml)")
    c.add_argument("--val-n", type=_count, metavar="N",
                   help="validation images per epoch (default: the measured search's val_n "
                   "from its summary.json)")
    c.set_defaults(func=_cost)
    return p


def _number(text: str, ok, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"{text!r} must be {what}")
    return v


def _positive(text: str) -> float:
    return _number(text, lambda v: v > 0 and v == v and v != float("inf"), "positive")


def _non_negative(text: str) -> float:
    return _number(text, lambda v: v >= 0 and v != float("inf"), "non-negative")


def _probability(text: str) -> float:
    return _number(text, lambda v: 0 < v < 1, "between 0 and 1")


def _seed_list(text: str) -> list[int]:
    parts = [x.strip() for x in text.split(",")]
    if not parts or not all(x.isdigit() for x in parts):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of seeds (e.g. 0,1,2)")
    return sorted({int(x) for x in parts})


def _count(text: str) -> int:
    v = _number(text, lambda v: v >= 1 and v == int(v), "a positive integer")
    return int(v)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a data error prints one line and returns 1 (usage errors exit 2)."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except OSError as err:  # FileNotFoundError, PermissionError, NotADirectoryError, ...
        _error(args.command, _os_message(err))
    except ValueError as err:  # collect's TableError, json.JSONDecodeError, ConfigError, ...
        _error(args.command, err)
    return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

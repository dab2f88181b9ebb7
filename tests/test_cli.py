"""The ``augloss`` command: loss, tables, audit."""

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from augloss import cli
from augloss.tables import audit, collect
from tests.helpers import write_runs

REPO = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", "augloss", *args], capture_output=True,
                          text=True, cwd=REPO)


def test_loss_prints_canonical_latex_torch_and_the_integrity_verdict():
    proc = run("loss", "-(y * ln(p))")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "expression: -(y * ln(p))" in out and "canonical:  -(" in out
    assert "\\ln" in out and "integrity:  passes" in out
    source = out.split("pytorch:\n", 1)[1]
    tree = ast.parse(source)  # valid Python, never executed
    assert "evolved_loss" in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_loss_takes_a_registry_name_and_prints_only_what_is_asked(capsys):
    assert cli.main(["loss", "focal", "--show", "latex", "--name", "mine"]) == 0
    out = capsys.readouterr().out
    assert "registry name 'focal'" in out and "latex:" in out
    assert "canonical:" not in out and "pytorch:" not in out and "integrity:" not in out
    assert cli.main(["loss", "ce", "--show", "torch", "--name", "mine"]) == 0
    assert "def mine(" in capsys.readouterr().out


def test_loss_reports_a_failed_integrity_test(capsys):
    # A parabola in p with its minimum at p = 0.5: the test rejects it, exit status 1.
    assert cli.main(["loss", "square(p + p + -1)", "--show", "integrity"]) == 1
    out, err = capsys.readouterr()
    assert "integrity:  fails: minimum at q index" in out
    assert err.startswith("augloss loss: error: ") and "minimum at q index" in err


def _printed_source(out: str) -> str:
    return out.split("pytorch:\n", 1)[1].rstrip()


def test_loss_prints_the_source_of_what_trains_as_written_with_a_warning(capsys):
    from augloss.losses import parse

    assert cli.main(["loss", "y * ln(p)"]) == 0
    out = capsys.readouterr().out
    assert "integrity:  passes (points the wrong way: the test negates it)" in out
    assert "trains as:  y * ln(p)  (as written, orient: false)" in out
    warning = next(line for line in out.splitlines() if line.startswith("warning:"))
    assert "points the wrong way" in warning and "orient: true" in warning
    assert "-(y * ln(p))" in warning
    assert _printed_source(out) == parse("y * ln(p)").to_torch_source().rstrip()


def test_loss_with_orient_prints_the_source_of_the_negated_loss(capsys):
    from augloss.losses import Call, orientation, parse

    assert cli.main(["loss", "--orient", "y * ln(p)"]) == 0
    out = capsys.readouterr().out
    negated = Call("neg", (parse("y * ln(p)"),))
    assert "trains as:  -(y * ln(p))  (negated to point the right way, orient: true)" in out
    assert "warning:" not in out
    assert _printed_source(out) == negated.to_torch_source().rstrip()
    assert orientation("y * ln(p)", orient=True).trained == negated  # what a job trains
    # --show torch alone judges the loss too when --orient decides what trains
    assert cli.main(["loss", "--orient", "y * ln(p)", "--show", "torch"]) == 0
    out = capsys.readouterr().out
    assert "integrity:" not in out and _printed_source(out) == negated.to_torch_source().rstrip()


def test_loss_orient_is_harmless_on_right_way_and_registry_losses(capsys):
    from augloss.losses import parse

    for argv in (["loss", "-(y * ln(p))"], ["loss", "--orient", "-(y * ln(p))"]):
        assert cli.main(argv) == 0
        out = capsys.readouterr().out
        assert "trains as:  -(y * ln(p))  (as written" in out and "warning:" not in out
        assert _printed_source(out) == parse("-(y * ln(p))").to_torch_source().rstrip()
    assert cli.main(["loss", "--orient", "focal", "--show", "torch"]) == 0
    out = capsys.readouterr().out
    assert "registry name 'focal': oriented already" in out


def test_loss_orient_refuses_a_loss_that_fails_the_integrity_test(capsys):
    assert cli.main(["loss", "--orient", "square(p + p + -1)"]) == 1
    out, err = capsys.readouterr()
    assert "trains as:  nothing (refused)" in out and "pytorch:" not in out
    assert one_line_error(err, "loss") and "--orient (orient: true)" in err


def test_loss_reads_the_earlier_codes_printed_notation(capsys):
    assert cli.main(["loss", "(y)*(ln(|yhat|))", "--show", "canonical"]) == 0
    assert "expression: y * ln(p)" in capsys.readouterr().out
    assert cli.main(["loss", "ln(|yhat)"]) == 2
    assert "at position 8" in capsys.readouterr().err


@pytest.mark.parametrize("expr, fragment", [
    ("-(y * ln(p)", "position"),
    ("sin(y)", "does not use p"),
    ("crossentropy", "unknown loss name"),
])
def test_a_bad_loss_exits_2_with_the_reason(expr, fragment, capsys):
    assert cli.main(["loss", expr]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["loss", "ce", "--show", "everything"],
    ["tables", "x", "--stage", "search", "--out", "o"],
    ["tables", "x", "--stage", "transfer", "--metric", "loss", "--out", "o"],
    ["audit", "x", "--stage", "pretrain", "--out", "o"],
    ["frobnicate"],
    [],
])
def test_choices_are_validated(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err or "required" in err


@pytest.mark.parametrize("sub", ["loss", "tables", "audit"])
def test_every_subcommand_has_help(sub):
    proc = run(sub, "--help")
    assert proc.returncode == 0 and f"usage: augloss {sub}" in proc.stdout


def test_tables_regenerates_a_table_with_heatmap_and_audit(tmp_path, capsys):
    write_runs(tmp_path / "runs")
    assert cli.main(["tables", str(tmp_path / "runs"), "--stage", "transfer",
                     "--out", str(tmp_path / "t" / "transfer")]) == 0
    for name in ("transfer.md", "transfer.csv", "transfer.tex", "transfer_delta.png",
                 "transfer.html", "transfer_audit.md", "transfer_audit.csv",
                 "transfer_audit.html"):
        assert (tmp_path / "t" / name).stat().st_size > 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "t" / "transfer.md") in printed
    assert "| ce " in (tmp_path / "t" / "transfer.md").read_text()


def test_audit_writes_every_cell_and_strict_fails_on_a_flag(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs")
    out = tmp_path / "a" / "audit"
    assert cli.main(["audit", str(runs), "--out", str(out)]) == 0
    a = audit.audit(collect.collect([runs], allow_mixed=True))
    assert (out.with_suffix(".md")).read_text().count("\n## ") == len(a)
    assert out.with_suffix(".html").read_text().count("<tr>") == len(a) + 1  # + the header
    assert "0 flagged" in capsys.readouterr().err
    # A run with uncommitted code changes flags its cell; --strict turns that into exit 1.
    prov = next(runs.rglob("provenance.json"))
    prov.write_text(json.dumps({**json.loads(prov.read_text()), "git_dirty": True}))
    assert cli.main(["audit", str(runs), "--out", str(out)]) == 0
    assert cli.main(["audit", str(runs), "--out", str(out), "--strict"]) == 1
    assert "uncommitted changes" in out.with_suffix(".md").read_text()


# --- errors: one line on stderr, exit 1 for data, 2 for usage ----------------------------------

def one_line_error(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"augloss {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def data_error_cases(tmp_path):
    runs = write_runs(tmp_path / "runs")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("not a directory\n")
    bad = tmp_path / "bad" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text('{"stage": "transfer", ')
    (tmp_path / "bad.yaml").write_text("transfer: [0, 1\n")
    out = str(tmp_path / "out" / "t")
    unwritable = str(tmp_path / "a_file" / "sub" / "t")  # under a file: even root cannot
    return {
        "missing path": (["tables", str(tmp_path / "nope"), "--stage", "transfer", "--out", out],
                         "nope: no such file or directory"),
        "empty directory": (["tables", str(tmp_path / "empty"), "--stage", "transfer",
                             "--out", out], "no metrics.json files found under"),
        "stage without runs": (["tables", str(runs), "--stage", "finetune", "--out", out],
                               "no runs of stage 'finetune'"),
        "unwritable --out": (["tables", str(runs), "--stage", "transfer", "--out", unwritable],
                             "is not a directory"),
        "malformed JSON": (["tables", str(bad), "--stage", "transfer", "--out", out],
                           "unreadable metrics file"),
        "audit missing path": (["audit", str(tmp_path / "nope"), "--out", out],
                               "no such file or directory"),
        "audit empty directory": (["audit", str(tmp_path / "empty"), "--out", out],
                                  "no metrics.json files found"),
        "audit stage without runs": (["audit", str(runs), "--stage", "finetune", "--out", out],
                                     "no runs of stage 'finetune'"),
        "audit unwritable --out": (["audit", str(runs), "--out", unwritable],
                                   "is not a directory"),
        "audit malformed JSON": (["audit", str(bad), "--out", out], "unreadable metrics file"),
        "audit missing --config": (["audit", str(runs), "--out", out, "--config",
                                    str(tmp_path / "nope.yaml")], "No such file or directory"),
        "audit malformed --config": (["audit", str(runs), "--out", out, "--config",
                                      str(tmp_path / "bad.yaml")], "not valid YAML"),
        "audit invalid --config": (["audit", str(runs), "--out", out, "--config",
                                    str(tmp_path / "a_file")], "is not of type 'object'"),
    }


CASES = ["missing path", "empty directory", "stage without runs", "unwritable --out",
         "malformed JSON", "audit missing path", "audit empty directory",
         "audit stage without runs", "audit unwritable --out", "audit malformed JSON",
         "audit missing --config", "audit malformed --config", "audit invalid --config"]


@pytest.mark.parametrize("case", CASES)
def test_a_data_error_is_one_line_and_exit_1(case, tmp_path, capsys):
    argv, fragment = data_error_cases(tmp_path)[case]
    assert cli.main(argv) == 1
    line = one_line_error(capsys.readouterr().err, argv[0])
    assert fragment in line
    assert not (tmp_path / "out").exists()  # nothing written


def test_data_errors_print_no_traceback_from_the_console_command(tmp_path):
    cases = data_error_cases(tmp_path)
    for case in ("missing path", "unwritable --out", "audit empty directory"):
        argv, fragment = cases[case]
        proc = run(*argv)
        assert proc.returncode == 1, (case, proc.stderr)
        assert fragment in one_line_error(proc.stderr, argv[0]) and proc.stdout == ""


def test_inconsistent_runs_are_reported_on_one_line(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs")
    m = next(runs.rglob("metrics.json"))
    m.write_text(json.dumps({**json.loads(m.read_text()), "config_hash": "other"}))
    assert cli.main(["tables", str(runs), "--stage", "transfer",
                     "--out", str(tmp_path / "t" / "x")]) == 1
    assert "mixes configurations" in one_line_error(capsys.readouterr().err, "tables")


@pytest.mark.parametrize("argv, fragment", [
    (["audit", "x", "--out", "o", "--seeds", "0,x"], "comma-separated list of seeds"),
    (["audit", "x", "--out", "o", "--seeds", ""], "comma-separated list of seeds"),
    (["audit", "x", "--out", "o", "--seeds", "0", "--config", "c.yaml"], "not allowed with"),
])
def test_a_usage_error_exits_2(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert fragment in capsys.readouterr().err


def test_version():
    import augloss

    proc = run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"augloss {augloss.__version__}\n"


# --- audit --strict and missing seeds ----------------------------------------------------------

SAME_SEEDS = {(d, a, loss): {0: 0.9, 1: 0.91, 2: 0.92}
              for d in ("cifar10",) for a in ("base", "cutout") for loss in ("ce", "focal")}


def audit_md(out) -> str:
    return Path(f"{out}.md").read_text()


def test_strict_flags_a_deleted_seed(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs", runs=SAME_SEEDS)
    out = tmp_path / "a" / "audit"
    assert cli.main(["audit", str(runs), "--out", str(out), "--strict"]) == 0
    assert "0 flagged" in capsys.readouterr().err
    shutil.rmtree(runs / "transfer" / "cifar10" / "cutout" / "focal" / "1")
    assert cli.main(["audit", str(runs), "--out", str(out), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "4 table cells, 1 flagged" in err and "transfer 0 1 2" in err
    assert "missing seeds [1]" in audit_md(out)
    a = audit.audit(collect.collect([runs], allow_mixed=True))  # the audit alone cannot know
    assert (a["flags"] == "").all()


def test_expected_seeds_from_an_option_or_the_config(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs", runs=SAME_SEEDS)
    shutil.rmtree(runs / "transfer" / "cifar10" / "base" / "ce" / "2")
    out = str(tmp_path / "a" / "audit")
    # Stated expectations flag the cell in the audit even without --strict (exit 0).
    assert cli.main(["audit", str(runs), "--out", out, "--seeds", "0,1,2"]) == 0
    assert "1 flagged" in capsys.readouterr().err and "missing seeds [2]" in audit_md(out)
    assert cli.main(["audit", str(runs), "--out", out, "--seeds", "0,1,2,3", "--strict"]) == 1
    assert "4 table cells, 4 flagged" in capsys.readouterr().err
    assert "missing seeds [2, 3]" in audit_md(out)
    # config.yaml's transfer seeds are 0, 1, 2; the demo's are 0, 1.
    assert cli.main(["audit", str(runs), "--out", out, "--strict",
                     "--config", str(REPO / "config.yaml")]) == 1
    assert "1 flagged" in capsys.readouterr().err
    assert cli.main(["audit", str(runs), "--out", out, "--strict",
                     "--config", str(REPO / "demo" / "config.yaml")]) == 0
    assert "0 flagged" in capsys.readouterr().err and "missing seeds" not in audit_md(out)


def test_expected_seeds_helper_per_stage(tmp_path):
    runs = write_runs(tmp_path / "r", runs=SAME_SEEDS)
    write_runs(tmp_path / "r", stage="finetune", runs={("flowers", "base", "ce"): {4: 0.8}})
    df = collect.collect([runs], allow_mixed=True)
    assert cli.expected_seeds(df) == (None, "")
    inferred, _ = cli.expected_seeds(df, infer=True)
    assert inferred == {"finetune": [4], "transfer": [0, 1, 2]}
    assert cli.expected_seeds(df, seeds=[7])[0] == {"finetune": [7], "transfer": [7]}


# --- loss: torch-free parts, integrity exit status ---------------------------------------------

NO_TORCH = ("import sys; sys.modules['torch'] = None; from augloss.cli import main; "
            "rc = main(sys.argv[1:]); assert 'torch' not in sys.modules or "
            "sys.modules['torch'] is None; raise SystemExit(rc)")


@pytest.mark.parametrize("show, fragment", [
    ("canonical", "canonical:  -(ln(p) * (square(1 - p) * y))"),
    ("latex", r"latex:      -\left(y"),
    ("key", "key:        a0fd6fc3"),
])
def test_loss_show_works_without_torch(show, fragment):
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, "loss", "focal", "--show", show],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert fragment in proc.stdout and proc.stderr == ""


def test_loss_integrity_without_torch_is_one_line_exit_1():
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, "loss", "focal"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    assert "needs torch" in one_line_error(proc.stderr, "loss")


def test_key_is_the_full_sha256_of_the_canonical_text(capsys):
    from augloss.losses import resolve

    assert cli.main(["loss", "ce", "--show", "key"]) == 0
    out = capsys.readouterr().out
    assert f"key:        {resolve('ce')[0].key} " in out and "canonical:" not in out


def test_a_loss_failing_the_integrity_test_exits_1_with_the_reason():
    proc = run("loss", "square(p + p + -1)")
    assert proc.returncode == 1
    line = one_line_error(proc.stderr, "loss")
    assert "fails the integrity test: minimum at q index 500" in line
    assert "integrity:  fails" in proc.stdout and "pytorch:" in proc.stdout


# --- the README's commands ---------------------------------------------------------------------

def readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text.split(heading, 1)[1]
    return section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")


def snakemake_commands(block: str) -> list[list[str]]:
    return [line.split() for line in block.splitlines()
            if line.startswith("python -m snakemake")]


def test_readme_regenerates_every_table_for_the_config_and_the_demo():
    rules = set(re.findall(r"^rule (\w+):", (REPO / "rules" / "tables.smk").read_text(), re.M))
    tables = {r for r in rules if r.startswith("table_")} | {"audit"}
    assert {"table_claims", "table_specificity", "table_surrogate_validity"} <= tables
    cmds = snakemake_commands(readme_block("### Regenerating tables only"))
    assert len(cmds) == 2
    for cmd in cmds:
        forced = cmd[cmd.index("--forcerun") + 1:]
        assert set(forced) == tables, sorted(tables ^ set(forced))
    assert "--configfile" not in cmds[0]
    demo = cmds[1]
    assert demo[demo.index("--configfile") + 1] == "demo/config.yaml"
    # --configfile takes several files: a target after it would be read as one
    assert demo[demo.index("--configfile") + 2].startswith("--")


def test_readme_report_commands_for_the_config_and_the_demo():
    cmds = snakemake_commands(readme_block("### Auditing"))
    assert [c[c.index("--report") + 1].endswith(".html") for c in cmds] == [True, True]
    assert "--configfile" not in cmds[0]
    assert cmds[1][cmds[1].index("--configfile") + 1] == "demo/config.yaml"


def test_loss_refuses_orient_with_the_faithful_quirks(capsys):
    """Jobs orient a baseline with the corrected test, so the CLI never shows another one."""
    assert cli.main(["loss", "--orient", "--faithful-quirks", "y * ln(p)"]) == 2
    err = capsys.readouterr().err
    assert "corrected integrity test" in err and "\n" == err[-1] and err.count("\n") == 1


# --- cost ---------------------------------------------------------------------------------------

def _cost_search(root, aug="base"):
    """A finished search of ``aug``: 4 screens, 2 re-scored members, 3 children."""
    d = root / aug
    d.mkdir(parents=True)
    entries = [
        *[{"phase": "pool", "stage": "prescreen", "status": "accepted", "epochs_run": 10}] * 3,
        {"phase": "pool", "stage": "prescreen", "status": "aborted", "epochs_run": 7},
        {"phase": "rescore", "stage": "prefilter", "status": "failed-prefilter", "epochs_run": 8},
        {"phase": "rescore", "stage": "main", "status": "accepted", "epochs_run": 10},
        {"phase": "evolve", "iteration": 0, "stage": "prefilter", "status": "failed-prefilter",
         "epochs_run": 8},
        {"phase": "evolve", "iteration": 0, "stage": "main", "status": "accepted",
         "epochs_run": 10},
        {"phase": "evolve", "iteration": 1, "stage": "main", "status": "aborted",
         "epochs_run": 8},
        {"phase": "evolve", "iteration": 2, "stage": "main", "status": "accepted",
         "epochs_run": 10}]
    (d / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    (d / "summary.json").write_text(json.dumps({
        "augmentation": aug, "val_n": 5000,
        "recipes": {"prescreen": {"epochs": 10, "abort": [[6, 0.35]]},
                    "prefilter": {"epochs": 8}, "main": {"epochs": 10, "abort": [[7, 0.22]]}}}))
    (d / "cost.json").write_text(json.dumps({
        "version": 1, "device": "cpu", "threads": 2, "phases": {
            "main": {"requested": 4, "cache_hits": 1, "trainings": 3, "calls": 3, "epochs": 28,
                     "steps": 2800, "seconds": 14.0}}}))
    return d


def _bench(tmp_path, drop=None):
    from augloss.names import TECHNIQUES

    names = ["cost_step_s_prescreen", "cost_step_s_prefilter",
             *[f"cost_step_s_main_{a}" for a in TECHNIQUES],
             *[f"cost_val_s_per_image_{s}" for s in ("prescreen", "prefilter", "main")]]
    figures = {n: {"min": 0.001, "median": 0.002, "max": 0.003, "n": 3}
               for n in names if n != drop}
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"machine": {"device": "cuda (NVIDIA H200)", "threads": 16},
                                "settings": {}, "figures": figures}))
    return path


def test_cost_prints_the_measured_model_and_projects_the_configs_searches(tmp_path, capsys):
    d = _cost_search(tmp_path)
    assert cli.main(["cost", str(d)]) == 0
    out = capsys.readouterr().out
    assert "prescreen: 4 evaluations, passed (not failed, aborted or diverged) 75.0 %" in out and "cpu, 2 threads" in out
    assert "projection" not in out
    assert cli.main(["cost", str(d), "--bench", str(_bench(tmp_path)),
                     "--config", str(REPO / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "all 5 searches:" in out and "hours" in out and "val_n 5000" in out
    assert "projection for mixup (rates from" in out and "cuda (NVIDIA H200)" in out
    assert "assumes:" in out and "modelled, not measured" in out


def test_cost_subcommand_has_help():
    proc = run("cost", "--help")
    assert proc.returncode == 0 and "usage: augloss cost" in proc.stdout


def test_cost_errors_name_the_file(tmp_path, capsys):
    d = _cost_search(tmp_path)
    bench = _bench(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    (tmp_path / "bad.yaml").write_text("search: [0, 1\n")
    cases = [
        (["cost", str(tmp_path / "nope")], str(tmp_path / "nope" / "history.jsonl")),
        (["cost", str(d), "--bench", str(tmp_path / "missing.json")], "missing.json"),
        (["cost", str(d), "--bench", str(bad)], f"{bad}: not valid JSON"),
        (["cost", str(d), "--bench", str(tmp_path / "bad.yaml")], "bad.yaml: not valid JSON"),
        (["cost", str(d), "--bench", str(bench), "--config", str(tmp_path / "none.yaml")],
         "none.yaml"),
        (["cost", str(d), "--bench", str(bench), "--config", str(tmp_path / "bad.yaml")],
         "bad.yaml: not valid YAML"),
    ]
    for argv, fragment in cases:
        assert cli.main(argv) == 1, argv
        assert fragment in one_line_error(capsys.readouterr().err, "cost"), argv
    (d / "summary.json").unlink()  # no val_n, no recipes
    assert cli.main(["cost", str(d), "--bench", str(bench),
                     "--config", str(REPO / "config.yaml")]) == 1
    assert "pass --val-n" in one_line_error(capsys.readouterr().err, "cost")


def test_cost_names_the_report_and_the_figure_it_lacks(tmp_path, capsys):
    d = _cost_search(tmp_path)
    bench = _bench(tmp_path, drop="cost_val_s_per_image_prefilter")
    assert cli.main(["cost", str(d), "--bench", str(bench),
                     "--config", str(REPO / "config.yaml")]) == 1
    line = one_line_error(capsys.readouterr().err, "cost")
    assert f"{bench}: the benchmark report has no cost_val_s_per_image_prefilter" in line

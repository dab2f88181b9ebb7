"""The ``augloss`` command: loss, tables, audit."""

import ast
import json
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
    # A parabola in p with its minimum at p = 0.5: the test rejects it.
    assert cli.main(["loss", "square(p + p + -1)", "--show", "integrity"]) == 0
    assert "integrity:  fails: minimum at q index" in capsys.readouterr().out


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

"""The package's import graph: no cycles, and no module reaching into another's private names.

Both are read from the source with :mod:`ast` (nothing is imported), so an import hidden inside a
function counts as much as one at the top: a function-local import that closes a cycle still
makes the two modules one unit that cannot be read, tested or replaced apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "augloss"

#: Cycles allowed to stay, each with its reason. Keep this minimal: an entry that is no longer
#: a cycle fails :func:`test_the_allowed_cycles_still_exist`, so it is removed with its cause.
ALLOWED_CYCLES = {
    # Op.fn (ops) reads KERNELS (kernels, which imports torch) on first call, and kernels takes
    # the operator table from ops: the table stays torch-free for the workflow's parse-time
    # checks of loss expressions.
    frozenset({"augloss.losses.ops", "augloss.losses.kernels"}),
}


def module_name(path: Path) -> str:
    """``augloss/losses/ops.py`` -> ``augloss.losses.ops``; a package's ``__init__`` -> it."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _known(name: str, known: set[str]) -> str | None:
    """The longest prefix of dotted ``name`` that is an augloss module (None: not ours)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def _from_base(node: ast.ImportFrom, mod: str, is_package: bool) -> str:
    """The absolute module of ``from <base> import ...``, relative forms resolved."""
    if not node.level:
        return node.module or ""
    package = mod if is_package else mod.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(mod: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """``(target module, imported name or "", line)`` for every import anywhere in ``path``.

    ``from augloss import data`` and ``from augloss.losses import ops`` point at the submodule
    (it is what gets imported); ``from augloss.losses import Expr`` at the package.
    ``importlib.import_module("augloss.x")`` with a constant name counts too.
    """
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(t, "", node.lineno) for a in node.names if (t := _known(a.name, known))]
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, mod, path.name == "__init__.py")
            for a in node.names:
                target = _known(f"{base}.{a.name}", known) if f"{base}.{a.name}" in known \
                    else _known(base, known)
                if target:
                    out.append((target, "" if target.endswith(f".{a.name}") else a.name,
                                node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "import_module" and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            if target := _known(node.args[0].value, known):
                out.append((target, "", node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {t for t, _, _ in imports(m, p, known) if t != m} for m, p in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def _path_through(edges: dict[str, set[str]], component: list[str]) -> str:
    """One import cycle inside ``component``, spelled ``a -> b -> a`` for the failure message."""
    inside, start = set(component), component[0]
    trail, seen = [start], {start}
    while True:
        nxt = sorted(edges[trail[-1]] & inside)
        step = next((n for n in nxt if n == start), None) or next(
            (n for n in nxt if n not in seen), nxt[0])
        trail.append(step)
        if step == start or step in trail[:-1]:
            return " -> ".join(trail[trail.index(step):] if step != start else trail)
        seen.add(step)


def test_the_graph_sees_imports_inside_functions_and_relative_ones(tmp_path):
    code = ("from augloss import data\nfrom . import ops\nfrom .expr import parse\n"
            "def f():\n    import augloss.models\n    from augloss.losses import Expr\n")
    path = tmp_path / "augloss" / "losses" / "genome.py"
    path.parent.mkdir(parents=True)
    path.write_text(code)
    known = {"augloss", "augloss.data", "augloss.models", "augloss.losses",
             "augloss.losses.ops", "augloss.losses.expr", "augloss.losses.genome"}
    got = {t for t, _, _ in imports("augloss.losses.genome", path, known)}
    assert got == {"augloss.data", "augloss.losses.ops", "augloss.losses.expr",
                   "augloss.models", "augloss.losses"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    edges = graph()
    bad = [c for c in cycles(edges) if frozenset(c) not in ALLOWED_CYCLES]
    assert not bad, "import cycles: " + "; ".join(
        f"{', '.join(c)} (e.g. {_path_through(edges, c)})" for c in bad)


def test_the_allowed_cycles_still_exist():
    found = {frozenset(c) for c in cycles(graph())}
    stale = [sorted(c) for c in ALLOWED_CYCLES if c not in found]
    assert not stale, f"no longer cycles, remove from ALLOWED_CYCLES: {stale}"


# --- private names ------------------------------------------------------------------------------

def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(path: Path, mod: str | None, known: set[str]) -> list[str]:
    """Where ``path`` imports or reads a ``_private`` name of another augloss module:
    ``from augloss.m import _x``, ``m._x`` / ``getattr(m, "_x")`` with ``m`` bound to an augloss
    module (``import augloss.m as m``, ``from augloss import m``), or ``augloss.m._x``."""
    tree = ast.parse(path.read_text(), str(path))
    where = path.relative_to(ROOT)
    bad, bound = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _from_base(node, mod or "", path.name == "__init__.py")
            for a in node.names:
                target = _known(f"{base}.{a.name}", known)
                if target == f"{base}.{a.name}":
                    bound[a.asname or a.name] = target
                elif _private(a.name) and _known(base, known) not in (None, mod):
                    bad.append(f"{where}:{node.lineno} from {base} import {a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _known(a.name, known) and a.asname:
                    bound[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = ast.unparse(node.value)
            target = bound.get(owner) or (owner if owner in known else None)
            if target and target != mod:
                bad.append(f"{where}:{node.lineno} {owner}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == "getattr" and len(node.args) >= 2 and \
                isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) \
                and _private(node.args[1].value):
            owner = ast.unparse(node.args[0])
            target = bound.get(owner) or (owner if owner in known else None)
            if target and target != mod:
                bad.append(f"{where}:{node.lineno} getattr({owner}, {node.args[1].value!r})")
    return bad


def test_the_private_name_check_sees_each_form(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("from augloss.models import _Block, Surrogate\nfrom augloss import data\n"
                    "import augloss.train as t\nimport augloss.io\n"
                    "def f():\n    data._cifar()\n    t._loader()\n    augloss.io._pause()\n"
                    "    getattr(data, '_x')\n    data.load()\n    x._y\n")
    known = {"augloss", "augloss.models", "augloss.data", "augloss.train", "augloss.io"}
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        bad = private_uses(path, None, known)
    finally:
        ROOT = root
    assert sorted(b.split(" ", 1)[1] for b in bad) == sorted([
        "from augloss.models import _Block", "data._cifar", "t._loader", "augloss.io._pause",
        "getattr(data, '_x')"])


def test_no_module_uses_another_modules_private_names():
    """The library, its benchmarks and the workflow's scripts use only public names of augloss
    modules (tests may reach further)."""
    mods = modules()
    known = set(mods)
    bad = []
    for mod, path in mods.items():
        bad += private_uses(path, mod, known)
    for folder in ("benchmarks", "scripts"):
        for path in sorted((ROOT / folder).glob("*.py")):
            bad += private_uses(path, None, known)
    assert not bad, bad

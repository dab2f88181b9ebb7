"""Packaging: ranges in pyproject.toml, exact tested versions in constraints.txt, Python 3.10+."""

import ast
import importlib
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def test_the_library_states_ranges_and_python_3_10_up():
    assert PROJECT["requires-python"] == ">=3.10"
    for dep in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]:
        req = Requirement(dep)
        assert "==" not in str(req.specifier), f"{dep}: a pin belongs in constraints.txt"
        assert req.specifier, f"{dep}: give a range"
    versions = {re.search(r"3\.(\d+)$", c)[0] for c in PROJECT["classifiers"]
                if c.startswith("Programming Language :: Python :: 3.")}
    assert versions == {"3.10", "3.11", "3.12", "3.13"}


def test_constraints_pin_every_dependency_inside_its_range():
    pins = _constraints()
    for dep in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]:
        req = Requirement(dep)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no exact version in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (dep, pins[name])
    # The versions installed here are the tested ones.
    from importlib.metadata import version

    for name in ("torch", "torchvision", "timm", "snakemake", "pandas", "numpy"):
        assert version(name) == pins[name], name


def test_make_and_ci_install_with_the_constraints():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt -e '\.\[test\]'", make)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_licence_and_console_command():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    module, _, func = PROJECT["scripts"]["augloss"].partition(":")
    assert callable(getattr(importlib.import_module(module), func))


def test_the_package_parses_as_python_3_10():
    """No syntax newer than 3.10 (except*, PEP 695 generics, ...) in what `pip install` ships."""
    for path in sorted((ROOT / "augloss").rglob("*.py")):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))

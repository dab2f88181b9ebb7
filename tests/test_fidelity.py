"""docs/fidelity.md: every switch it names exists; config.yaml is faithful where it says so."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "fidelity.md"


def _schema() -> dict:
    return yaml.safe_load((ROOT / "config.schema.yaml").read_text())


def _resolve(schema: dict, node: dict) -> list[dict]:
    """The node and what it refers to ($ref, oneOf branches)."""
    out = [node]
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        out += _resolve(schema, schema["$defs"][name])
    for branch in node.get("oneOf", []):
        out += _resolve(schema, branch)
    return out


def schema_has(path: str) -> bool:
    schema = _schema()
    nodes = [schema]
    for part in path.split("."):
        nodes = [n["properties"][part] for node in nodes for n in _resolve(schema, node)
                 if part in n.get("properties", {})]
        if not nodes:
            return False
    return True


def switches() -> list[str]:
    """Every dotted key in the Switch column of the document's tables."""
    found = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if "Switch" in cells:  # a header row
            continue
        # The Switch column is the second to last in every table.
        found += re.findall(r"`([a-z_]+(?:\.[a-z_]+)*)`", cells[-2])
    return found


def test_the_document_names_switches():
    assert len(switches()) >= 25


@pytest.mark.parametrize("key", sorted(set(switches())))
def test_every_switch_named_exists_in_the_schema(key):
    assert schema_has(key), f"docs/fidelity.md names {key!r}, which the schema does not have"


def test_the_checker_refuses_a_missing_key():
    assert schema_has("search.fitness.main.amp") and schema_has("finetune.preprocessing")
    assert not schema_has("search.fitness.main.colour") and not schema_has("search.nothing")


def test_paper_config_is_faithful_where_the_document_says_so():
    c = yaml.safe_load((ROOT / "config.yaml").read_text())
    s = c["search"]
    assert (s["image_size"], s["normalize"]) == (80, "tf")
    assert (s["fitness"]["metric"], s["fitness"]["diverged"]) == ("max", "keep")
    for stage in ("main", "prescreen", "prefilter"):  # the screens inherit the main recipe
        assert s["fitness"][stage]["amp"] is False
    a = s["algorithm"]
    assert (a["faithful_quirks"], a["gradient_fingerprint"], a["batch_children"]) == \
        (False, False, 1)
    assert s.get("baseline", "none") == "none"
    t = c["transfer"]["train"]
    assert (t["schedule"], t["milestones"], t["gamma"]) == ("step", [60, 120, 160], 0.2)
    assert c["finetune"]["model"]["tag"] == "in1k" and c["finetune"]["preprocessing"] == {}


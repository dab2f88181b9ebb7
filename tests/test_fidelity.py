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
        nodes = [n["properties"][part] if part in n.get("properties", {}) else
                 n["additionalProperties"]  # a mapping of free keys (augment_by_dataset)
                 for node in nodes for n in _resolve(schema, node)
                 if part in n.get("properties", {}) or
                 isinstance(n.get("additionalProperties"), dict)]
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



def stated_defaults() -> list[tuple[str, str]]:
    """(switch, value) of every row whose config.yaml column begins with a value in backticks
    and whose Switch column names exactly one key."""
    rows = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if "Switch" in cells:
            continue
        keys = re.findall(r"`([a-z_0-9]+(?:\.[a-z_0-9]+)*)`", cells[-2])
        value = re.match(r"(?:α = )?`([^`]+)`", cells[1])
        if len(keys) == 1 and value:
            rows.append((keys[0], value.group(1)))
    return rows


def _resolved_paper_config() -> dict:
    from augloss.experiment import Experiment

    return Experiment.from_config(yaml.safe_load((ROOT / "config.yaml").read_text())).config


def _lookup(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def test_the_document_states_defaults_of_many_switches():
    assert len(stated_defaults()) >= 20


@pytest.mark.parametrize("key, value", stated_defaults())
def test_every_default_the_document_states_is_config_yamls(key, value):
    """The value in backticks is config.yaml's, every schema default filled in (and, for a
    shared augment key, the search's effective value)."""
    assert not _mismatches([(key, value)]), \
        f"docs/fidelity.md says {key} is {value!r} in config.yaml"


def _mismatches(rows: list[tuple[str, str]]) -> list[str]:
    config = _resolved_paper_config()
    from augloss.experiment import Experiment

    search = Experiment(config).search_augment()
    bad = []
    for key, value in rows:
        expected = yaml.safe_load(value)
        if _lookup(config, key) != expected:
            bad.append(key)
        # a shared augment value is the search's too, unless search.augment overrides it
        elif key.startswith("augment.") and search[key.split(".", 1)[1]] != expected:
            bad.append(f"{key} (search)")
    return bad


def test_the_default_check_catches_a_wrong_statement():
    rows = stated_defaults()
    assert not _mismatches(rows)
    doctored = [(k, "9") if k == "augment.randaugment_m" else (k, v) for k, v in rows]
    assert _mismatches(doctored) == ["augment.randaugment_m"]
    assert _mismatches([("transfer.augment_by_dataset.cifar100.cutout_size", "16")])


KINDS = {"faithful", "fix", "reference", "unknown", "ours", "option", "gap"}


def kinds() -> list[tuple[str, str]]:
    """(what, kind) of every row of a table with a Kind column."""
    out, header = [], None
    for line in DOC.read_text().splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if "Switch" in cells:
            header = cells
            continue
        if header and "Kind" in header:
            out.append((cells[0], cells[header.index("Kind")]))
    return out


def test_every_row_is_of_a_defined_kind():
    rows = kinds()
    assert len(rows) > 60
    assert [r for r in rows if r[1] not in KINDS] == []
    legend = DOC.read_text().split("\n## ")[0]  # the introduction
    assert all(f"**{k}**" in legend for k in KINDS)


def test_the_fixes_on_by_default_are_listed_alike_everywhere():
    fixes = [what for what, kind in kinds() if kind == "fix"]
    assert len(fixes) == 6, fixes
    text = DOC.read_text()
    assert "all six *fix* rows" in text
    assert "six \"fix\" rows" in (ROOT / "config.yaml").read_text()
    assert "the six rows of kind *fix*" in (ROOT / "README.md").read_text().replace("\n", " ")

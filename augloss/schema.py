"""The config file's schema: validation naming the key, and every default filled in.

``config.schema.yaml`` (at the repository root, beside the Snakefile) is the one home of every
default of the workflow's config: :meth:`augloss.experiment.Experiment.from_config` always runs
:func:`load_config`, so no code falls back to a default of its own.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

#: The workflow's schema (the repository root holds it, beside the Snakefile).
SCHEMA_FILE = Path(__file__).resolve().parents[1] / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value the schema cannot check (a cross-field rule); the message names the key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config: {key}: {message}")


def load_config(config: dict, schema_file: str | os.PathLike = SCHEMA_FILE) -> dict:
    """``config`` checked against the JSON schema, with every schema default filled in.

    Snakemake's ``validate`` fills only defaults it meets directly under ``properties``: those
    reached through ``$ref`` (every stage's ``threads``, ``retries``, ...) stay missing and the
    rules fail with a ``KeyError``. Here every default is filled, except inside mappings the
    schema marks ``x-partial`` (overrides, where an absent key means "inherit", not "default").
    A mapping marked ``x-merge-default`` (each stage's training recipe) also takes every key it
    leaves out from its own ``default``, so no key falls back to another stage's value.
    An invalid config raises :class:`ConfigError` naming the key in one line.
    """
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_file).read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if errors:
        raise _schema_error(jsonschema.exceptions.best_match(errors), schema)
    return fill_defaults(copy.deepcopy(config), schema, schema)


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_error(err, schema: dict) -> ConfigError:
    """One line naming the key: the missing one for ``required``, else the offending one."""
    key = _key(err.absolute_path)
    if err.validator == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        node = resolve(err.schema, schema).get("properties", {}).get(missing[0], {})
        what = resolve(node, schema).get("description", "")
        return ConfigError(_key([*err.absolute_path, missing[0]]),
                           f"required key missing{f' ({what})' if what else ''}; "
                           "config.schema.yaml describes every key")
    if err.validator == "additionalProperties":
        return ConfigError(key, f"{err.message}; config.schema.yaml lists the allowed keys")
    message = err.message if len(err.message) <= 300 else err.message[:300] + "..."
    return ConfigError(key, message)


def resolve(node, root: dict):
    """A schema node with its local ``$ref`` followed (sibling keys such as ``default`` win)."""
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def fill_defaults(instance, schema: dict, root: dict):
    """Fill ``instance`` (in place, and returned) with the defaults of ``schema``, recursively."""
    schema = resolve(schema, root)
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:  # e.g. every baseline entry gets its label_smoothing default
            fill_defaults(item, schema["items"], root)
        return instance
    if not isinstance(instance, dict) or schema.get("x-partial"):
        return instance
    for key, sub in schema.get("properties", {}).items():
        sub = resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        elif sub.get("x-merge-default") and isinstance(instance.get(key), dict):
            # a recipe's default is also the default of each of its keys: a key left out of
            # a stage's recipe takes that stage's own value, never another stage's
            for k, v in sub["default"].items():
                instance[key].setdefault(k, copy.deepcopy(v))
        if key in instance:
            fill_defaults(instance[key], sub, root)
    for branch in schema.get("oneOf", []):
        branch = resolve(branch, root)
        if "properties" in branch:
            fill_defaults(instance, branch, root)
    return instance


def recipe_default(path: tuple[str, ...], schema_file: str | os.PathLike = SCHEMA_FILE) -> dict:
    """The per-key default (``x-merge-default``) of the recipe at config ``path``, e.g.
    ``("search", "fitness", "prefilter")``: what fills a key that recipe leaves out."""
    import yaml

    root = yaml.safe_load(Path(schema_file).read_text())
    node = root
    for part in path:
        node = resolve(node, root)["properties"][part]
    node = resolve(node, root)
    if not node.get("x-merge-default"):
        raise ValueError(f"{'.'.join(path)} is not a recipe with per-key defaults")
    return copy.deepcopy(node["default"])


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in, recursively for dicts (copies; inputs untouched)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else copy.deepcopy(v)
    return out

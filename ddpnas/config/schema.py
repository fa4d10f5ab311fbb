"""JSON schema of a typed block, in the form a person writes (titles dropped, ``$ref``s used once
written in place): what validation reports against and what :mod:`ddpnas.config.export` writes."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

#: The export for editors (python -m ddpnas.config.export); validation never reads it.
SCHEMA_FILE = "config/config.schema.yaml"
# pydantic writes some bounds under their Field names where a validator wraps the type.
_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}
_REF = "#/$defs/"
# Key order of a written schema: what a reader looks for first (pydantic sorts alphabetically).
_ORDER = (
    "$ref", "description", "type", "enum", "const", "pattern", "minimum", "exclusiveMinimum",
    "maximum", "exclusiveMaximum", "minItems", "uniqueItems", "minProperties", "items",
    "additionalProperties", "required", "default", "properties", "if", "then", "errorMessage",
)  # fmt: skip


def _tidy(node: Any, *, properties: bool = False) -> Any:
    """Drop titles, name bounds as JSON schema does, and write ``anyOf [X, null]`` as
    ``type: [X, "null"]`` (the form a person writes, and Snakemake's validator reads alike)."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    if properties:  # a map of key -> schema: every key is a property name, none a keyword
        return {key: _tidy(value) for key, value in node.items()}
    out = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key == "description":
            value = " ".join(value.split())  # docstrings are wrapped
        out[_BOUNDS.get(key, key)] = _tidy(value, properties=key in ("properties", "$defs"))
    options = out.get("anyOf")
    if options and len(options) == 2 and {"type": "null"} in options:
        (inner,) = (o for o in options if o != {"type": "null"})
        if isinstance(inner.get("type"), str):
            del out["anyOf"]
            out = {**inner, **out, "type": [inner["type"], "null"]}
    rank = {key: i for i, key in enumerate(_ORDER)}
    return dict(sorted(out.items(), key=lambda item: rank.get(item[0], len(rank))))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"][len(_REF) :]] if "$ref" in node else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _resolve(node: Any, defs: dict[str, Any], inline: set[str]) -> Any:
    """Inline the ``$ref``s into ``inline`` (the field's own keys win); rename the others."""
    if isinstance(node, list):
        return [_resolve(item, defs, inline) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _resolve(value, defs, inline) for key, value in node.items()}
    if "$ref" in out:
        name = out.pop("$ref")[len(_REF) :]
        if name in inline:
            return {**_resolve(defs[name], defs, inline), **out}
        out = {"$ref": _REF + _snake(name), **out}
    return out


def model_schema(model: type[BaseModel], *, inline_all: bool = False) -> dict[str, Any]:
    """The tidy JSON schema of a model: a block used once is written in place, a block used
    more than once (or the whole schema with ``inline_all``, e.g. for an options block) goes
    under ``$defs`` once, named in snake case."""
    raw = _tidy(model.model_json_schema())
    defs = raw.pop("$defs", {})
    counts = {name: _refs([raw, defs]).count(name) for name in defs}
    inline = {name for name, n in counts.items() if inline_all or n == 1}
    out = _resolve(raw, defs, inline)
    kept = {_snake(n): _resolve(d, defs, inline) for n, d in defs.items() if n not in inline}
    return {**out, "$defs": kept} if kept else out

"""Config loading and validation against the one JSON schema the pipeline also uses."""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ddpnas.errors import ConfigError

SCHEMA_PATH = "workflow/schemas/config.schema.yaml"


@cache
def schema() -> dict[str, Any]:
    """The config schema (also linked as workflow/schemas/config.schema.yaml)."""
    text = resources.files("ddpnas").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _validator(subschema: dict[str, Any]) -> jsonschema.protocols.Validator:
    root = schema()
    resolved = {**subschema, "$defs": root["$defs"]}
    cls = jsonschema.validators.validator_for(root)
    return cls(resolved)


def _describe(error: jsonschema.ValidationError, where: str) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    key = f"{where}.{path}" if path else where
    if "errorMessage" in error.schema:  # a cross-key rule: its own words beat jsonschema's
        return f"{key}: {error.schema['errorMessage']}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        hint = f"allowed keys: {', '.join(allowed)}" if allowed else "see the schema"
        return f"{key}: {error.message} ({hint})"
    return f"{key}: {error.message}"


def _deref(subschema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` into ``$defs``."""
    if "$ref" in subschema:
        return schema()["$defs"][subschema["$ref"].rsplit("/", 1)[-1]]
    return subschema


def _properties(instance: dict[str, Any], subschema: dict[str, Any]) -> dict[str, Any]:
    """Property schemas, plus those an ``allOf: [{if, then}]`` branch adds for this instance."""
    props = {key: _deref(prop) for key, prop in subschema.get("properties", {}).items()}
    for branch in subschema.get("allOf", []):
        if "if" in branch and _validator(branch["if"]).is_valid(instance):
            for key, prop in branch["then"].get("properties", {}).items():
                props[key] = {**props.get(key, {}), **_deref(prop)}
    return props


def _fill_defaults(instance: Any, subschema: dict[str, Any]) -> Any:
    """Return a copy of ``instance`` with schema defaults filled in, recursing into objects."""
    subschema = _deref(subschema)
    if not isinstance(instance, dict):
        return instance
    out = copy.deepcopy(instance)
    props = _properties(out, subschema)
    for key, prop in props.items():
        if key not in out and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
        if key in out:
            out[key] = _fill_defaults(out[key], prop)
    extra = subschema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in out:
            if key not in props:
                out[key] = _fill_defaults(out[key], extra)
    return out


def validate(instance: Any, subschema: dict[str, Any] | None = None, where: str = "config") -> Any:
    """Validate, then fill defaults; raise ConfigError naming every offending key."""
    subschema = subschema or schema()
    errors = sorted(
        _validator(subschema).iter_errors(instance), key=lambda e: list(e.absolute_path)
    )
    if len(errors) == 1:
        raise ConfigError(f"{_describe(errors[0], where)}; fix it (schema: {SCHEMA_PATH})")
    if errors:
        lines = "\n  ".join(_describe(e, where) for e in errors)
        raise ConfigError(
            f"invalid {where}:\n  {lines}\nFix the key(s) above; the schema is {SCHEMA_PATH}."
        )
    return _fill_defaults(instance, subschema)


def validate_search(spec: Any, name: str = "search") -> dict[str, Any]:
    """Validate one search experiment (the ``searches.<name>`` block)."""
    return validate(spec, {"$ref": "#/$defs/search"}, where=f"searches.{name}")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    return validate(raw if raw is not None else {}, where=str(path))

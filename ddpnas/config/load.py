"""Config loading and validation against the live typed models (plugins included): their JSON
schema names every offending key in one line each, then the models fill the defaults."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import yaml
from pydantic_core import ErrorDetails

from ddpnas.config.models import Config, Search
from ddpnas.config.options import Options
from ddpnas.config.schema import SCHEMA_FILE, model_schema
from ddpnas.errors import ConfigError
from ddpnas.registry import registered, unknown

#: Keys whose value is a registered name.
KINDS = ("strategy", "space")


@cache
def _validator(model: type[Options], names: Any) -> jsonschema.protocols.Validator:
    """Validator of a model's schema, built once per set of registered ``names`` (a search
    block's schema lists them; building it imports the built-ins, so the key may change once)."""
    schema = model_schema(model)
    return jsonschema.validators.validator_for(schema)(schema)


def _describe(error: jsonschema.ValidationError, where: str) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    key = f"{where}.{path}" if path else where
    if "errorMessage" in error.schema:  # a cross-key rule: its own words beat jsonschema's
        return f"{key}: {error.schema['errorMessage']}"
    if error.validator == "enum" and error.absolute_path and error.absolute_path[-1] in KINDS:
        return (
            f"{key}: {unknown(str(error.absolute_path[-1]), error.instance, error.validator_value)}"
        )
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        hint = f"allowed keys: {', '.join(allowed)}" if allowed else "see the schema"
        return f"{key}: {error.message} ({hint})"
    return f"{key}: {error.message}"


def _describe_model(error: ErrorDetails, where: str) -> str:
    key = ".".join(map(str, (where, *error["loc"])))
    if error["type"] == "value_error":  # a validator's own words, without pydantic's prefix
        return f"{key}: {error['ctx']['error']}"
    return f"{key}: {error['msg']}"


def _fail(lines: list[str], where: str) -> ConfigError:
    if len(lines) == 1:
        return ConfigError(f"{lines[0]}; fix it (schema: {SCHEMA_FILE})")
    listed = "\n  ".join(lines)
    return ConfigError(
        f"invalid {where}:\n  {listed}\nFix the key(s) above; the schema is {SCHEMA_FILE}."
    )


def validate(instance: Any, model: type[Options] = Config, where: str = "config") -> dict[str, Any]:
    """Validate against ``model``'s schema, then return the block with its defaults filled in;
    raise ConfigError naming every offending key."""
    errors = sorted(
        _validator(model, registered()).iter_errors(instance), key=lambda e: list(e.absolute_path)
    )
    if errors:
        raise _fail([_describe(e, where) for e in errors], where)
    try:
        return model.model_validate(instance).model_dump()
    except pydantic.ValidationError as exc:  # a rule the schema does not say
        raise _fail([_describe_model(e, where) for e in exc.errors()], where) from None


def validate_search(spec: Any, name: str = "search") -> dict[str, Any]:
    """Validate one search experiment (the ``searches.<name>`` block)."""
    return validate(spec, Search, where=f"searches.{name}")


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

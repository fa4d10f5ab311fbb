"""Building blocks of the typed config: every block (a strategy's or space's options, a top-level
section) is an :class:`Options` model, from which the JSON schema is generated.

Dumping a validated block gives exactly the dict the pipeline hashes into each record's
fingerprint, so the types the user wrote are kept (an integer stays an integer where a number is
allowed) and keys declared with :func:`absent` stay out unless the user set them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WrapValidator,
    model_serializer,
)
from pydantic.json_schema import JsonDict, SkipJsonSchema

from ddpnas.runtime import SEED_LIMIT

T = TypeVar("T")


def _keep_int(value: Any, handler: Callable[[Any], Any]) -> Any:
    """Check the value as a float, but keep an int an int (``100`` must not hash as ``100.0``)."""
    checked = handler(value)
    return value if type(value) is int else checked


#: A JSON number: int or float, kept as given (bounds go in ``Field``).
Number = Annotated[float, WrapValidator(_keep_int)]
#: The type of a key that may be left out (no default is filled in): ``x: bool | Unset = absent()``.
Unset = SkipJsonSchema[None]


def _no_default(schema: JsonDict) -> None:
    schema.pop("default", None)


def absent(description: str | None = None, **constraints: Any) -> Any:
    """A key without a default: left out, it stays out of the dumped config (and its hash)."""
    return Field(None, description=description, json_schema_extra=_no_default, **constraints)


def block(description: str | None = None) -> Any:
    """A nested block whose own defaults fill in when it is left out (schema default ``{}``)."""
    return Field({}, validate_default=True, description=description)


def _unique(values: list[T]) -> list[T]:
    if len({repr(v) for v in values}) != len(values):
        raise ValueError(f"items must be unique, got {values}")
    return values


#: A list whose items must differ: ``UniqueList[int]``.
UniqueList = Annotated[
    list[T], AfterValidator(_unique), Field(json_schema_extra={"uniqueItems": True})
]


class Options(BaseModel):
    """A config block: unknown keys are errors and types are strict (no silent conversion)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_serializer(mode="wrap")
    def _drop_absent(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """Leave out :func:`absent` keys the user did not set."""
        data = handler(self)
        fields = type(self).model_fields
        return {
            key: value
            for key, value in data.items()
            if key in self.model_fields_set or fields[key].json_schema_extra is not _no_default
        }


NonNegative = Annotated[int, Field(ge=0)]
#: A run's seed: what ``--seed`` accepts (``ddpnas.runtime.SEED_LIMIT``).
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]
Positive = Annotated[int, Field(ge=1)]
#: An optional image count (null = all).
Size = Annotated[int | None, Field(ge=1)]
Fraction = Annotated[Number, Field(ge=0, lt=1)]

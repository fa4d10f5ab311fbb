"""The ``searches.<name>`` block: a strategy and a space, each typed by its registered
``Options`` model (``strategy_args``, ``supernet``), plus how the search reads the table or trains.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializeAsAny,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict

from ddpnas.config.options import (
    Number,
    Options,
    Positive,
    Seed,
    Size,
    UniqueList,
    Unset,
    absent,
    block,
)
from ddpnas.config.schema import model_schema
from ddpnas.registry import get_strategy, space_class, spaces, strategies


def _enum_of(registered: Any) -> Any:
    """Schema hook: the names currently in the registry (``strategies`` or ``spaces``)."""

    def extra(schema: JsonDict) -> None:
        schema["enum"] = list(registered())

    return extra


#: The one reward whose dataset has simulated training times in the NAS-Bench-201 table.
TIMED = "cifar10_valid_valid_acc"


class Tabular(Options):
    """How a tabular search reads the NAS-Bench-201 table."""

    noise_std: Number = Field(
        0.0,
        ge=0,
        description="Gaussian noise (accuracy points) added to each lookup, mimicking seed noise.",
    )
    metric: Literal["cifar10_valid_valid_acc", "cifar100_valid_acc", "imagenet16_120_valid_acc"] = (
        Field(
            "cifar10_valid_valid_acc",
            description=(
                "The reward: validation accuracy on the search dataset (cifar10-valid, CIFAR-100 "
                "or ImageNet16-120). The table has training times for cifar10-valid only: a "
                "search on another dataset charges none, so it stops at max_epochs queries."
            ),
        )
    )
    hp: Literal["200", "12"] = Field(
        "200",
        description='Training schedule whose validation accuracy is the reward ("12" for RS).',
    )
    charge_epochs: Positive = Field(
        1, description="Epochs of simulated training time charged per search epoch (12 for RS)."
    )
    charge_valid_epochs: Number = Field(
        0.0,
        ge=0,
        description=(
            "Simulated time of one validation pass charged per query, in training epochs of the "
            "architecture (NAS-Bench-201's simulate_train_eval charges valid-per-time; the table "
            "lacks it; 0.392 = mean valid/train time ratio of the official fixture records)."
        ),
    )


class Train(Options):
    """How a weight-sharing search trains its supernet."""

    train_size: Size = Field(None, description="Images of the 25k train split to use (null = all).")
    valid_size: Size = Field(None, description="Images of the 25k valid split to use (null = all).")
    batch_size: Positive = 64
    lr: Number = Field(0.025, gt=0)
    momentum: Number = Field(0.9, ge=0)
    weight_decay: Number = Field(0.0005, ge=0)
    nesterov: bool = True
    grad_clip: Number = Field(5.0, ge=0)
    lr_min: Number = Field(
        0.001,
        ge=0,
        description="Cosine floor (eta_min); 0.001 in DARTS's and NAS-Bench-201's searches.",
    )
    arch_batch_augment: bool = Field(
        True,
        description=(
            "DARTS's architecture steps draw validation batches with the training transform "
            "(random crop + flip), as DARTS's own search does; false uses plain images."
        ),
    )
    channels_last: bool | None = absent(
        "Memory format of supernet and batches (absent or null: on for CUDA). No default is "
        "filled in, so records and checkpoints of configs without the key are unchanged."
    )
    cuda_graphs: bool | Unset = absent(
        "Capture the training step of each fixed-architecture epoch once and replay it as a CUDA "
        "graph (ddpnas/engine/cuda_graph.py). Absent = off (opt-in until checked on a device by "
        "benchmarks/gpu_check.sh); on the CPU it changes nothing but speed (slightly slower)."
    )


def _branches(schema: JsonDict) -> None:
    """Schema hook of :class:`Search`: per registered space and strategy, the options block it
    takes and the modes it allows (``if``/``then``: only the matching branch fills defaults)."""
    branches: list[JsonDict] = []
    for key, target, registered in (
        ("space", "supernet", spaces()),
        ("strategy", "strategy_args", strategies()),
    ):
        for name, cls in registered.items():
            then: JsonDict = {}
            if len(cls.modes) == 1:
                then["mode"] = {"const": cls.modes[0]}
            then[target] = model_schema(cls.Options, inline_all=True)
            branches.append(
                {
                    "if": {"properties": {key: {"const": name}}, "required": [key]},
                    "then": {"properties": then},
                }
            )
    schema["allOf"] = branches


Picked = Annotated[SerializeAsAny[Options], WithJsonSchema({"type": "object"})]


class Search(Options):
    """A search experiment: one strategy on one space, run once per seed."""

    model_config = Options.model_config | {"json_schema_extra": _branches}

    space: str = Field(json_schema_extra=_enum_of(spaces))
    strategy: str = Field(
        description=(
            "A registered strategy: ddpnas, a baseline run through the same engine, or a plugin's "
            "(the enum lists those installed; each strategy's options follow below)."
        ),
        json_schema_extra=_enum_of(strategies),
    )
    mode: Literal["tabular", "weight_sharing"]
    label: str | Unset = absent("Row name in the tables (default derived from strategy and mode).")
    seeds: UniqueList[Seed] = Field(min_length=1)
    strategy_args: Picked = Field(
        {},
        validate_default=True,
        description="Options of the chosen strategy (see the per-strategy blocks below).",
    )
    tabular: Tabular = block()
    supernet: Picked = Field(
        {},
        validate_default=True,
        description="The supernet size: the chosen space's options (see the per-space blocks).",
    )
    train: Train = block()

    @field_validator("space", "strategy")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        try:
            (space_class if info.field_name == "space" else get_strategy)(name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return name

    @field_validator("strategy_args", mode="before")
    @classmethod
    def _strategy_options(cls, value: Any, info: ValidationInfo) -> Any:
        if "strategy" not in info.data:
            return value
        return get_strategy(info.data["strategy"]).Options.model_validate(value)

    @field_validator("supernet", mode="before")
    @classmethod
    def _space_options(cls, value: Any, info: ValidationInfo) -> Any:
        if "space" not in info.data:
            return value
        return space_class(info.data["space"]).Options.model_validate(value)

    @model_validator(mode="after")
    def _fits(self) -> Search:
        strategy, space = get_strategy(self.strategy), space_class(self.space)
        for kind, cls in (("strategy", strategy), ("space", space)):
            if self.mode not in cls.modes:
                raise ValueError(
                    f"{kind} {cls.name} runs in mode(s) {', '.join(cls.modes)}, not {self.mode}"
                )
        budget = getattr(self.strategy_args, "budget_seconds", None)
        if self.mode == "tabular" and budget is not None and self.tabular.metric != TIMED:
            raise ValueError(
                f"the NAS-Bench-201 table has simulated training times for {TIMED} only, so a "
                f"search rewarded by {self.tabular.metric} cannot spend budget_seconds; set "
                "strategy_args.budget_seconds: null and max_epochs (a number of queries)"
            )
        if strategy.mixed_ops and not space.mixed_ops:
            others = [
                name
                for name, cls in strategies().items()
                if not cls.mixed_ops and set(cls.modes) & set(space.modes)
            ]
            raise ValueError(
                f"{strategy.name}'s mixed ops do not fit the {space.name} space "
                f"({space.why_no_mixed_ops}); use {', '.join(others)} there"
            )
        return self

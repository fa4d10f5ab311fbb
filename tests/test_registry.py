"""The registry: built-ins register themselves with their options, and a new strategy written as
one file (the README's example, run as written) is searchable, validated and in the schema."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO

from ddpnas import registry
from ddpnas.config.export import config_schema
from ddpnas.config.load import validate_search
from ddpnas.config.schema import model_schema
from ddpnas.config.search import Search
from ddpnas.engine.experiment import search_record
from ddpnas.errors import ConfigError
from ddpnas.spaces.nb201 import NB201Space


def test_builtins_are_registered_with_their_facts() -> None:
    assert {"ddpnas", "darts", "enas", "reinforce", "rs", "rsps"} <= set(registry.strategies())
    assert {"nb201", "darts", "mobile"} <= set(registry.spaces())
    theta = {name for name, cls in registry.strategies().items() if cls.logs_theta}
    assert {"ddpnas", "darts", "enas", "reinforce"} <= theta and not {"rs", "rsps"} & theta
    assert registry.get_strategy("rs").modes == ("tabular",)
    assert registry.space_class("darts").modes == ("weight_sharing",)
    with pytest.raises(KeyError, match=r"unknown strategy 'nope'; known: darts, .*entry-point"):
        registry.get_strategy("nope")


def test_a_taken_name_is_refused() -> None:
    class Other(registry.get_strategy("rs")):
        pass

    with pytest.raises(ValueError, match="strategy name 'rs' is taken"):
        registry.register_strategy(Other)


def test_constructors_check_options_with_the_model() -> None:
    rs = registry.get_strategy("rs")(NB201Space(), budget_seconds=None, max_epochs=5)
    assert rs.options.max_epochs == 5 and rs.options.budget_seconds is None
    with pytest.raises(ValueError, match="budget_seconds or max_epochs"):
        registry.get_strategy("rs")(NB201Space(), budget_seconds=None)
    with pytest.raises(ValueError, match=r"pruning_stepz\n  Extra inputs are not permitted"):
        registry.get_strategy("ddpnas")(NB201Space(), pruning_stepz=2)


def _readme_strategy() -> str:
    """The first Python block of docs/extending.md."""
    text = (REPO / "docs" / "extending.md").read_text()
    match = re.search(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert match, "docs/extending.md lost its example strategy"
    return match.group(1)


@pytest.fixture
def one_file_strategy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The README's strategy, written to its own file and imported; unregistered afterwards."""
    monkeypatch.setattr(registry, "_STRATEGIES", registry.strategies())
    path = tmp_path / "fixed_queries.py"
    path.write_text(_readme_strategy())
    spec = importlib.util.spec_from_file_location("fixed_queries", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fixed_queries", module)
    spec.loader.exec_module(module)
    return module


def test_one_file_strategy_is_validated_and_in_the_schema(one_file_strategy: ModuleType) -> None:
    assert registry.get_strategy("fixed_queries") is one_file_strategy.FixedQueries
    spec = validate_search(
        {"space": "nb201", "strategy": "fixed_queries", "mode": "tabular", "seeds": [0]}
    )
    assert spec["strategy_args"] == {"queries": 20}
    with pytest.raises(ConfigError, match=r"searches\.x\.strategy_args\.queries: 0 is less than"):
        validate_search({**spec, "strategy_args": {"queries": 0}}, "x")
    with pytest.raises(ConfigError, match=r"searches\.x\.mode: 'tabular' was expected"):
        validate_search({**spec, "mode": "weight_sharing"}, "x")
    for schema in (model_schema(Search), config_schema()["$defs"]["search"]):
        assert "fixed_queries" in schema["properties"]["strategy"]["enum"]
        (branch,) = (
            b["then"]["properties"]
            for b in schema["allOf"]
            if b["if"]["properties"].get("strategy") == {"const": "fixed_queries"}
        )
        assert branch["mode"] == {"const": "tabular"}
        assert branch["strategy_args"]["properties"]["queries"] == {
            "description": "Architectures to query.",
            "type": "integer",
            "minimum": 1,
            "default": 20,
        }


def test_one_file_strategy_searches_the_table(one_file_strategy: ModuleType, bench) -> None:
    spec = {
        "space": "nb201",
        "strategy": "fixed_queries",
        "mode": "tabular",
        "seeds": [0],
        "strategy_args": {"queries": 7},
    }
    record = search_record("toy", spec, seed=0, bench=bench, progress=False)
    again = search_record("toy", spec, seed=0, bench=bench, progress=False)
    seen = [e for h in record["history"] for e in h["evaluated"]]
    assert len(record["history"]) == len(seen) == 7
    best = max(e["valid_acc"] for e in seen)
    assert record["arch"] in {e["arch"] for e in seen if e["valid_acc"] == best}
    assert record["arch"] == again["arch"] and record["spec"]["strategy_args"] == {"queries": 7}

"""Config validation: every shipped config is valid; bad keys fail early, naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SHARED_DATA, SNAKEFILE
from jsonschema import Draft202012Validator, validators

from ddpnas.cli.main import main
from ddpnas.config.export import REGENERATE, render
from ddpnas.config.load import load_config, validate, validate_search
from ddpnas.config.schema import SCHEMA_FILE
from ddpnas.engine.experiment import config_hash
from ddpnas.errors import ConfigError

SHIPPED = ["config.yaml", "ci.yaml", "paper.yaml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(REPO / "config" / name)
    for spec in config["searches"].values():
        if spec["strategy"] == "ddpnas":
            assert spec["strategy_args"]["pruning_step"] >= 1  # defaults were filled
    for name in config["retrain"]["searches"]:
        assert config["searches"][name]["space"] == "darts"


def test_defaults_are_filled_from_the_schema() -> None:
    spec = validate_search(
        {"space": "nb201", "strategy": "ddpnas", "mode": "tabular", "seeds": [0]}
    )
    assert spec["strategy_args"] == {
        "pruning_step": 3,
        "temperature": 100,
        "momentum": 0.9,
        "sampling": "round_robin",
    }
    assert spec["tabular"]["noise_std"] == 0.0


def _ci() -> dict:
    return yaml.safe_load((REPO / "config" / "ci.yaml").read_text())


def test_unknown_key_is_named() -> None:
    config = _ci()
    config["searches"]["nb201-ddpnas-ws"]["train"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"searches\.nb201-ddpnas-ws\.train.*learning_rate"):
        validate(config)


def test_ill_typed_key_is_named() -> None:
    config = _ci()
    config["searches"]["nb201-ddpnas-tabular"]["strategy_args"] = {"pruning_step": "three"}
    with pytest.raises(ConfigError, match=r"strategy_args\.pruning_step.*'three'"):
        validate(config)


def test_cli_rejects_bad_config_before_any_work(tmp_path: Path, capsys) -> None:
    config = _ci()
    config["searchs"] = config.pop("searches")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    out = tmp_path / "out.json"
    code = main(
        ["search", "--config", str(bad), "--experiment", "x", "--seed", "0", "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "searchs" in err and "searches" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"space": "darts", "mode": "tabular"}, "mode"),
        ({"strategy": "rs", "mode": "weight_sharing"}, "mode"),
        ({"supernet": {"C": 8, "layers": 5}}, "layers"),
        (
            {"strategy": "darts", "mode": "weight_sharing", "strategy_args": {"pruning_step": 3}},
            "pruning_step",
        ),
        (
            {"space": "mobile", "strategy": "darts", "mode": "weight_sharing"},
            r"darts's mixed ops do not fit the mobile space .*; use ddpnas, enas, rsps there",
        ),
    ],
)
def test_combinations_that_make_no_sense_are_rejected(change: dict, named: str) -> None:
    spec = {"space": "nb201", "strategy": "ddpnas", "mode": "tabular", "seeds": [0], **change}
    with pytest.raises(ConfigError, match=named):
        validate_search(spec)


def test_strategy_defaults_follow_the_strategy() -> None:
    spec = validate_search(
        {"space": "darts", "strategy": "darts", "mode": "weight_sharing", "seeds": [0]}
    )
    assert spec["strategy_args"]["order"] == 1 and "pruning_step" not in spec["strategy_args"]
    assert spec["supernet"] == {"C": 16, "layers": 8, "affine": False, "track_running_stats": False}


def test_committed_schema_is_generated_from_the_models() -> None:
    committed = (REPO / SCHEMA_FILE).read_text()
    assert committed == render(), f"{SCHEMA_FILE} is out of date; regenerate it: {REGENERATE}"


def test_defaults_fill_as_before_the_typed_config() -> None:
    """Records carry config_hash(spec): the typed models fill a search of every space, strategy
    and mode, and the top-level blocks, exactly as the hand-written schema and its default filler
    did (the fixture was written by that code; the shipped configs were checked the same way)."""
    golden = json.loads((REPO / "tests" / "fixtures" / "filled_defaults.json").read_text())
    for key, pinned in golden["search_hashes"].items():
        space, strategy, mode = key.split("/")
        spec = validate_search({"space": space, "strategy": strategy, "mode": mode, "seeds": [0]})
        assert config_hash(spec, 0) == pinned, f"the defaults of {key} changed"
    minimal = {"space": "nb201", "strategy": "ddpnas", "mode": "tabular", "seeds": [0]}
    filled = validate({"searches": {"x": minimal}})
    filled.pop("cluster")  # added since (issue 19): scheduler requests, in no record's hash
    assert filled == golden["config"]


def _snakemake_fill(config: dict) -> dict:
    """What Snakemake's validate(set_default=True) does with the committed schema."""
    schema = yaml.safe_load((REPO / SCHEMA_FILE).read_text())
    properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, props, instance, subschema):  # snakemake.utils.validate's
        for key, sub in props.items():
            if "default" in sub:
                instance.setdefault(key, sub["default"])
        yield from properties(validator, props, instance, subschema)

    validators.extend(Draft202012Validator, {"properties": set_defaults})(schema).validate(config)
    return config


@pytest.mark.parametrize("name", SHIPPED)
def test_snakemake_fills_the_same_defaults_as_the_cli(name: str) -> None:
    """The per-space and per-strategy blocks (if/then on space and strategy) fill only their own
    defaults, so the pipeline passes each job the spec the CLI would build."""
    raw = yaml.safe_load((REPO / "config" / name).read_text())
    filled = json.dumps(_snakemake_fill(raw), sort_keys=True)
    assert filled == json.dumps(load_config(REPO / "config" / name), sort_keys=True)


def test_each_strategy_gets_its_own_defaults() -> None:
    base = {"space": "nb201", "mode": "tabular", "seeds": [0]}
    config = validate(
        {"searches": {"a": {**base, "strategy": "ddpnas"}, "b": {**base, "strategy": "reinforce"}}}
    )
    assert set(config["searches"]["a"]["strategy_args"]) == {
        "pruning_step",
        "temperature",
        "momentum",
        "sampling",
    }
    assert set(config["searches"]["b"]["strategy_args"]) == {
        "budget_seconds",
        "max_epochs",
        "lr",
        "ema_momentum",
    }


@pytest.mark.parametrize("strategy", ["rs", "reinforce"])
def test_a_budgeted_search_needs_a_way_to_stop(strategy: str) -> None:
    spec = {"space": "nb201", "strategy": strategy, "mode": "tabular", "seeds": [0]}
    spec["strategy_args"] = {"budget_seconds": None}
    with pytest.raises(ConfigError, match=r"strategy_args: budget_seconds: null needs max_epochs"):
        validate_search(spec)
    spec["strategy_args"]["max_epochs"] = 10
    assert validate_search(spec)["strategy_args"]["max_epochs"] == 10


@pytest.mark.slow
def test_pipeline_gives_each_strategy_its_own_defaults(tmp_path: Path) -> None:
    """Snakemake's validate() hands every block left out the same default object; the Snakefile
    fills the typed defaults first, so a REINFORCE block never receives DDPNAS's options."""
    config = _ci()
    config["data"] = {"root": str(SHARED_DATA)}
    del config["searches"]["nb201-reinforce-tabular"]["strategy_args"]
    assert "strategy_args" not in config["searches"]["nb201-ddpnas-tabular"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "-s", str(SNAKEFILE),
         "--directory", str(tmp_path), "--configfile", str(tmp_path / "c.yaml")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    reinforce = '"strategy_args": {"budget_seconds": 12000, "max_epochs": null, "lr": 0.01,'
    assert reinforce in run.stdout


@pytest.mark.parametrize(
    "path",
    [
        ("searches", "nb201-ddpnas-tabular", "seeds"),
        ("imagenet", "search", "seeds"),
        ("report", "figure_seed"),
        ("report", "ranking", "sample_seed"),
        ("report", "bound", "seed"),
        ("generate", "nb201", "seed"),
    ],
    ids=lambda path: ".".join(path),
)
def test_every_seed_in_a_config_is_one_every_generator_takes(path: tuple[str, ...]) -> None:
    """Seeds in [0, 2**63), as ``--seed``: a larger one is named before any work."""
    for seed, ok in ((2**63 - 1, True), (2**63, False)):
        config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        block = config
        for key in path[:-1]:
            block = block.setdefault(key, {})
        block[path[-1]] = [seed] if path[-1] == "seeds" else seed
        if ok:
            validate(config)
        else:
            with pytest.raises(ConfigError, match=".".join(path)):
                validate(config)

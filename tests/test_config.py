"""Config validation: every shipped config is valid; bad keys fail early, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO

from ddpnas.cli import main
from ddpnas.config import load_config, validate, validate_search
from ddpnas.errors import ConfigError


@pytest.mark.parametrize("name", ["config.yaml", "ci.yaml", "paper.yaml"])
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

"""DARTS genotypes: DARTS's text notation (parsed without eval), the JSON form records and
pipeline files hold, old records that hold the text, and derivation from an op distribution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ddpnas.cli.main import main
from ddpnas.errors import ArchError
from ddpnas.report.tables import RETRAIN_KEYS, SEARCH_KEYS
from ddpnas.spaces.darts.genotype import DARTS_V1, DARTS_V2, Genotype, derive_genotype
from ddpnas.spaces.darts.ops import EDGES, OPS
from ddpnas.spaces.darts.space import DartsSpace

SPACE = DartsSpace()
E, K = len(EDGES), len(OPS)


def test_genotype_string_is_darts_notation_and_round_trips() -> None:
    text = str(DARTS_V2)
    assert text == repr(DARTS_V2)
    assert text == (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"
    )
    for genotype in (DARTS_V1, DARTS_V2):
        parsed = Genotype.parse(str(genotype))
        assert parsed == genotype
        assert str(parsed) == str(genotype)
    # DARTS's search logs print the concat as a range.
    logged = str(DARTS_V1).replace("[2, 3, 4, 5]", "range(2, 6)")
    assert Genotype.parse(logged) == DARTS_V1


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("__import__('os').system('echo pwned')", "one call 'Genotype(...)'"),
        (str(DARTS_V2).replace("[2, 3, 4, 5]", "__import__('os').getcwd()", 1), "not a literal"),
        (str(DARTS_V2).replace("dil_conv_3x3", "conv_7x1_1x7"), "conv_7x1_1x7"),
        (str(DARTS_V2).replace("('skip_connect', 0)", "('none', 0)", 1), "'none'"),
        (str(DARTS_V2).replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "node 5"),
        (str(DARTS_V2).replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', '2')"), "'2'"),
        (str(DARTS_V2).replace(", ('dil_conv_3x3', 2)", ""), "got 7"),
        (str(DARTS_V2).replace("('dil_conv_3x3', 2)", "'dil_conv_3x3'"), "not an (op, input)"),
        (str(DARTS_V2).replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 2]"), "distinct"),
        (str(DARTS_V2).replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 9]"), "distinct"),
        (str(DARTS_V2).replace("normal_concat=[2, 3, 4, 5]", "normal_concat=5"), "normal_concat"),
        (str(DARTS_V2).replace(", reduce_concat=[2, 3, 4, 5]", ""), "missing ['reduce_concat']"),
        (str(DARTS_V2).replace("reduce_concat", "reduction_concat"), "reduction_concat"),
        (str(DARTS_V2).replace("normal=", "", 1), "by name"),
        ("Genotype(normal=[", "not a Genotype(...) expression"),
        ("", "not a Genotype(...) expression"),
        ("Genotyp" + str(DARTS_V2)[8:], "one call"),
    ],
)
def test_bad_genotype_strings_are_rejected_without_eval(text: str, why: str) -> None:
    with pytest.raises(ArchError) as info:
        Genotype.parse(text)
    assert why in str(info.value)


def test_genotype_json_is_the_stored_form_and_old_text_records_still_read(
    tmp_path: Path,
) -> None:
    stored = DARTS_V2.to_json()
    assert stored["normal"][:2] == [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]]
    assert stored["normal_concat"] == stored["reduce_concat"] == [2, 3, 4, 5]
    assert json.loads(json.dumps(stored)) == stored  # plain JSON types only
    for genotype in (DARTS_V1, DARTS_V2):
        assert Genotype.from_json(json.loads(json.dumps(genotype.to_json()))) == genotype
        assert Genotype.from_record(genotype.to_json()) == genotype
        assert Genotype.from_record(str(genotype)) == genotype  # a record from before JSON
    pipeline, external = tmp_path / "g.json", tmp_path / "g.txt"
    pipeline.write_text(json.dumps(stored, indent=2) + "\n")
    external.write_text(f"  {DARTS_V1}\n")
    assert Genotype.read(pipeline) == DARTS_V2 and Genotype.read(external) == DARTS_V1


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ([], "got list"),
        ({k: v for k, v in DARTS_V2.to_json().items() if k != "reduce"}, "'reduce'"),
        (DARTS_V2.to_json() | {"extra": 1}, "'extra'"),
        (DARTS_V2.to_json() | {"normal_concat": [2, 3.0]}, "normal_concat"),
        (DARTS_V2.to_json() | {"reduce": [["none", 0]] * 8}, "'none'"),
    ],
)
def test_bad_genotype_json_is_rejected(value: object, why: str) -> None:
    with pytest.raises(ArchError, match="darts genotype") as info:
        Genotype.from_json(value)
    assert why in str(info.value)


def test_genotype_file_that_is_broken_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(DARTS_V2.to_json())[:-5])
    with pytest.raises(ArchError, match=r"g\.json is not valid JSON"):
        Genotype.read(path)


@pytest.mark.parametrize("stored", ["json", "text"])
def test_genotype_command_writes_json_from_new_and_old_records(stored: str, tmp_path: Path) -> None:
    """Records hold the JSON object; records from before that hold DARTS's text and still work."""
    record = dict.fromkeys(SEARCH_KEYS, 0) | {"space": "darts"}
    record["genotype"] = DARTS_V1.to_json() if stored == "json" else str(DARTS_V1)
    (tmp_path / "rec.json").write_text(json.dumps(record))
    out = tmp_path / "g.json"
    assert main(["genotype", "--record", str(tmp_path / "rec.json"), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == DARTS_V1.to_json()
    assert Genotype.read(out) == DARTS_V1


def test_cifar10_table_notes_print_the_genotype_as_darts_does(tmp_path: Path) -> None:
    """Whether the record stores the JSON object or (an old record) the text."""
    env = {"device": "cpu", "hardware": "CPU X", "torch": "2.x"}
    paths = []
    for name, stored in (("new", DARTS_V1.to_json()), ("old", str(DARTS_V2))):
        search = dict.fromkeys(SEARCH_KEYS, 0) | {
            "experiment": name,
            "label": name,
            "spec": {"space": "darts", "strategy": "ddpnas"},
            "environment": env,
            "genotype": stored,
        }
        retrain = dict.fromkeys(RETRAIN_KEYS, 1) | {"test_acc": 0.9, "config": {"epochs": 1}}
        paths.append((tmp_path / f"{name}.json", tmp_path / f"{name}-rt.json"))
        paths[-1][0].write_text(json.dumps(search))
        paths[-1][1].write_text(json.dumps(retrain | {"environment": env}))
    out = tmp_path / "cifar10"
    args = ["report", "cifar10-table", "--out", str(out), "--searches", *(str(s) for s, _ in paths)]
    assert main([*args, "--retrains", *(str(r) for _, r in paths)]) == 0
    md = out.with_suffix(".md").read_text()
    assert f"**new** seed 0: `{DARTS_V1}`;" in md and f"**old** seed 0: `{DARTS_V2}`;" in md


def _theta_for(genotype: Genotype) -> np.ndarray:
    """A theta whose derivation is ``genotype``: 'none' strongest everywhere (so it must be
    ignored), the genotype's ops next, in the genotype's pair order, all else weaker."""
    theta = np.full((E, K), 0.1)
    theta[:, 0] = 1.0
    for c, pairs in enumerate((genotype.normal, genotype.reduce)):
        for p, (op, j) in enumerate(pairs):
            node = p // 2
            edge = 14 * c + node * (node + 3) // 2 + j
            theta[edge, OPS.index(op)] = 0.9 - 0.1 * (p % 2)
    return theta


def test_derive_genotype_recovers_darts_genotypes() -> None:
    for genotype in (DARTS_V1, DARTS_V2):
        assert derive_genotype(_theta_for(genotype), np.ones((E, K), dtype=bool)) == genotype
    assert SPACE.derive_genotype(_theta_for(DARTS_V2), np.ones((E, K), dtype=bool)) == DARTS_V2


def test_derive_genotype_respects_the_mask_and_ties() -> None:
    theta = np.full((E, K), 0.05)
    mask = np.ones((E, K), dtype=bool)
    # Normal node 2 (edges 0: 2<-0 and 1: 2<-1): both edges always kept; ops by surviving theta.
    theta[0, 4], theta[0, 5] = 0.6, 0.5
    mask[0, 4] = False  # pruned: sep_conv_5x5 (0.5) is the best survivor
    theta[1, 6] = 0.7
    # Normal node 3 (edges 2, 3, 4 from nodes 0, 1, 2): edge 2 has only 'none' left.
    mask[2, 1:] = False
    theta[2, 0] = 0.99
    theta[3, 2] = 0.3
    theta[4, 3] = 0.4
    # Reduce node 5 (edges 23..27 from nodes 0..4): a tie between inputs 1 and 3, and a tie
    # between two ops on input 1 (max_pool_3x3 wins: lower index).
    theta[24, 1] = theta[24, 2] = 0.8
    theta[26, 7] = 0.8
    genotype = derive_genotype(theta, mask)
    assert genotype.normal[:4] == (
        ("dil_conv_3x3", 1),
        ("sep_conv_5x5", 0),
        ("skip_connect", 2),
        ("avg_pool_3x3", 1),
    )
    assert genotype.reduce[6:] == (("max_pool_3x3", 1), ("dil_conv_5x5", 3))
    assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)
    # A single surviving op per edge (the end of DDPNAS's pruning) is that edge's op.
    one = np.zeros((E, K), dtype=bool)
    one[np.arange(E), [1 + e % 7 for e in range(E)]] = True
    assert derive_genotype(np.random.default_rng(0).random((E, K)), one).normal[:2] in (
        (("max_pool_3x3", 0), ("avg_pool_3x3", 1)),
        (("avg_pool_3x3", 1), ("max_pool_3x3", 0)),
    )


def test_derive_genotype_errors() -> None:
    theta = np.full((E, K), 1 / K)
    mask = np.ones((E, K), dtype=bool)
    mask[15, 1:] = False  # reduce node 2 keeps only edge 2<-0
    with pytest.raises(ArchError, match="node 2 of the reduce cell has 1 incoming"):
        derive_genotype(theta, mask)
    with pytest.raises(ArchError, match=r"\(28, 8\)"):
        derive_genotype(theta[:14], mask[:14])
    theta[0, 3] = np.nan
    with pytest.raises(ArchError, match="non-finite"):
        derive_genotype(theta, np.ones((E, K), dtype=bool))

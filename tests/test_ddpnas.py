"""DDPNAS distribution, strategy and engine on synthetic scores with known answers."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from toys import SyntheticEvaluator, ToySpace, separated_means

from ddpnas.engine.loop import run_search
from ddpnas.errors import DDPNASError
from ddpnas.strategies import DDPNAS
from ddpnas.strategies.base import rank_strength
from ddpnas.strategies.distribution import JointCategorical


def test_update_matches_the_formula() -> None:
    dist = JointCategorical(1, 3, temperature=10.0, momentum=0.5)
    dist.credit((0,), 0.9)
    dist.credit((1,), 0.5)
    dist.credit((2,), 0.1)
    dist.end_round()
    dist.update(1)
    logits = 10.0 * np.array([0.9, 0.5, 0.1])
    score = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    expected = np.full(3, 1 / 3) + 0.5 * score
    np.testing.assert_allclose(dist.theta[0], expected / expected.sum())
    assert dist.prune() == [2]
    assert dist.mask[0].tolist() == [True, True, False]
    np.testing.assert_allclose(dist.theta[0].sum(), 1.0)
    assert dist.theta[0, 2] == 0.0


def test_scores_average_softmax_over_rounds() -> None:
    dist = JointCategorical(1, 2, temperature=100.0)
    for accs in ([0.8, 0.7], [0.6, 0.7]):
        for k, acc in enumerate(accs):
            dist.credit((k,), acc)
        dist.end_round()
    s1 = np.exp(100 * np.array([0.8, 0.7]))
    s2 = np.exp(100 * np.array([0.6, 0.7]))
    np.testing.assert_allclose(dist.scores(2)[0], (s1 / s1.sum() + s2 / s2.sum()) / 2)
    np.testing.assert_allclose(dist.scores(1)[0], s2 / s2.sum())


def test_larger_accuracy_wins_so_the_best_op_is_never_pruned_first() -> None:
    """Published defect 1: feeding the error made the best op the first one pruned."""
    dist = JointCategorical(2, 4)
    for _ in range(3):
        for k in range(4):
            dist.credit((k, 3 - k), 0.5 + 0.1 * k)
        dist.end_round()
    dist.update(3)
    assert dist.prune() == [0, 3]  # the op with the lowest accuracy on each edge
    assert dist.argmax() == (3, 0)


def test_credit_rejects_percentages_and_pruned_ops() -> None:
    dist = JointCategorical(1, 3)
    with pytest.raises(ValueError, match="fraction"):
        dist.credit((0,), 91.5)
    dist.mask[0, 1] = False
    with pytest.raises(ValueError, match="pruned"):
        dist.credit((1,), 0.5)


@pytest.mark.parametrize("sampling", ["round_robin", "distribution"])
@pytest.mark.parametrize("seed", range(5))
def test_best_op_survives_on_separated_scores(sampling: str, seed: int) -> None:
    space = ToySpace(1, 5)
    mu = separated_means(1, 5, seed, gap=0.1)
    outcome = run_search(
        DDPNAS(space, sampling=sampling), SyntheticEvaluator(mu, noise=0.01, seed=seed), seed=seed
    )
    assert outcome.arch == (int(mu.argmax()),)


def test_round_robin_recovers_most_edges_when_ops_are_confounded() -> None:
    """Six edges credited with one shared accuracy: partners add noise, yet most edges are right.

    Chance is 1/5 per edge; the measured rate with this design was 0.85-0.9 (40 seeds).
    """
    space = ToySpace(6, 5)
    hits = []
    for seed in range(10):
        mu = separated_means(6, 5, seed, gap=0.15)
        outcome = run_search(
            DDPNAS(space), SyntheticEvaluator(mu, noise=0.01, seed=seed), seed=seed
        )
        hits.append(np.mean(np.array(outcome.arch) == mu.argmax(axis=1)))
    assert np.mean(hits) >= 0.75


@pytest.mark.parametrize(("num_ops", "step", "epochs"), [(5, 3, 42), (8, 3, 105), (5, 1, 14)])
def test_stops_after_the_last_prune_without_extra_epochs(
    num_ops: int, step: int, epochs: int
) -> None:
    """Published defect 3: after the last prune the sampler drew from an empty set and crashed."""
    space = ToySpace(3, num_ops)
    strategy = DDPNAS(space, pruning_step=step)
    evaluator = SyntheticEvaluator(separated_means(3, num_ops, 0))
    outcome = run_search(strategy, evaluator, seed=0)
    assert outcome.epochs == epochs == strategy.planned_epochs()
    assert strategy.done() and strategy.dist.mask.sum(axis=1).tolist() == [1, 1, 1]
    assert sum(bool(h["events"]) for h in outcome.history) == num_ops - 1
    with pytest.raises(RuntimeError, match="finished"):
        strategy.propose(np.random.default_rng(0))


def test_round_robin_samples_every_survivor_once_per_round() -> None:
    space = ToySpace(4, 5)
    evaluator = SyntheticEvaluator(separated_means(4, 5, 1))
    run_search(DDPNAS(space), evaluator, seed=3)
    trained = np.array(evaluator.trained)
    start = 0
    for length in [5, 5, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2]:
        block = trained[start : start + length]
        for e in range(4):
            assert len(set(block[:, e])) == length
        start += length
    orders = {tuple(trained[:5, e]) for e in range(4)}
    assert len(orders) > 1, "each edge should get its own random order"


@pytest.mark.parametrize("sampling", ["round_robin", "distribution"])
def test_credit_goes_to_the_architecture_that_was_trained(sampling: str) -> None:
    """Published defect 2: with random sampling the credited arch differed from the trained one."""
    space = ToySpace(6, 5)
    strategy = DDPNAS(space, sampling=sampling, pruning_step=100)  # no update: credits stay open
    evaluator = SyntheticEvaluator(separated_means(6, 5, 2))
    credited: list[tuple[int, ...]] = []
    original = strategy.dist.credit
    strategy.dist.credit = lambda arch, acc: (credited.append(tuple(arch)), original(arch, acc))[1]
    with pytest.raises(DDPNASError, match="did not converge"):
        run_search(strategy, evaluator, seed=4, max_epochs=12)
    assert credited == evaluator.trained
    counts = sum(c for _, c in strategy.dist._rounds) + strategy.dist._open[1]
    trained = np.array(evaluator.trained)
    for e in range(6):
        np.testing.assert_array_equal(counts[e], np.bincount(trained[:, e], minlength=5))


def test_same_seed_same_result_and_different_seeds_differ() -> None:
    space = ToySpace(6, 5)
    mu = separated_means(6, 5, 0, gap=0.02)
    runs = [
        run_search(DDPNAS(space), SyntheticEvaluator(mu, noise=0.05, seed=s), seed=s)
        for s in (7, 7, 8)
    ]
    strip = [[{k: v for k, v in h.items() if k != "seconds"} for h in r.history] for r in runs]
    assert strip[0] == strip[1]
    assert strip[0] != strip[2]


def test_resume_after_a_crash_gives_the_uninterrupted_result(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    space = ToySpace(6, 5)
    mu = separated_means(6, 5, 5, gap=0.02)
    reference = run_search(DDPNAS(space), SyntheticEvaluator(mu, noise=0.05, seed=1), seed=1)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        run_search(
            DDPNAS(space),
            SyntheticEvaluator(mu, noise=0.05, seed=1, crash_at=17),
            seed=1,
            checkpoint=ckpt,
            fingerprint="a",
        )
    resumed = run_search(  # what the pipeline passes: a killed run of the same config resumes
        DDPNAS(space),
        SyntheticEvaluator(mu, noise=0.05, seed=1),
        seed=1,
        checkpoint=ckpt,
        fingerprint="a",
        stale_checkpoint="restart",
    )
    assert resumed.resumed_from == 17
    assert resumed.arch == reference.arch
    strip = [
        [{k: v for k, v in h.items() if k != "seconds"} for h in r.history]
        for r in (reference, resumed)
    ]
    assert strip[0] == strip[1]
    with pytest.raises(DDPNASError, match=r"another config.*--stale-checkpoint restart"):
        run_search(DDPNAS(space), SyntheticEvaluator(mu), seed=1, checkpoint=ckpt, fingerprint="b")
    assert torch.load(ckpt, weights_only=True)["fingerprint"] == "a"  # refused, left alone
    with caplog.at_level(logging.WARNING, logger="ddpnas.io.checkpoints"):
        fresh = run_search(
            DDPNAS(space),
            SyntheticEvaluator(mu, noise=0.05, seed=1),
            seed=1,
            checkpoint=ckpt,
            fingerprint="b",
            stale_checkpoint="restart",
        )
    assert fresh.resumed_from == 0
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in fresh.history] == strip[0]
    assert torch.load(ckpt, weights_only=True)["fingerprint"] == "b"
    assert caplog.messages == [
        f"checkpoint {ckpt} belongs to another config, seed, model or code version: "
        "removed it, starting over"
    ]
    ckpt.write_bytes(b"torn")
    for stale in ("error", "restart"):  # an unreadable file is never removed unasked
        with pytest.raises(DDPNASError, match="unreadable"):
            run_search(
                DDPNAS(space),
                SyntheticEvaluator(mu),
                seed=1,
                checkpoint=ckpt,
                fingerprint="a",
                stale_checkpoint=stale,
            )


def test_checkpoint_of_another_runtime_names_what_differs_and_restarts_on_request(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    space, mu, ckpt = ToySpace(3, 3), separated_means(3, 3, 0, gap=0.02), tmp_path / "run.pt"
    then, now = {"config": "c", "threads": 1}, {"config": "c", "threads": 2}
    run_search(DDPNAS(space), SyntheticEvaluator(mu), seed=0, checkpoint=ckpt, fingerprint=then)
    with pytest.raises(DDPNASError, match=r"written with threads=1 but this run has threads=2"):
        run_search(DDPNAS(space), SyntheticEvaluator(mu), seed=0, checkpoint=ckpt, fingerprint=now)
    with caplog.at_level(logging.WARNING, logger="ddpnas.io.checkpoints"):
        fresh = run_search(
            DDPNAS(space),
            SyntheticEvaluator(mu),
            seed=0,
            checkpoint=ckpt,
            fingerprint=now,
            stale_checkpoint="restart",
        )
    assert fresh.resumed_from == 0 and fresh.epochs > 0
    assert caplog.messages == [
        f"checkpoint {ckpt} was written with threads=1 but this run has threads=2: "
        "removed it, starting over"
    ]


def test_state_dict_round_trip_mid_round() -> None:
    space = ToySpace(3, 4)
    a, b = DDPNAS(space), DDPNAS(space)
    rng = np.random.default_rng(0)
    for _ in range(5):
        plan = a.propose(rng)
        a.observe(plan, {}, [{"valid_acc": 0.5}])
        a.step()
    b.load_state_dict(a.state_dict())
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    assert a.propose(r1) == b.propose(r2)
    np.testing.assert_array_equal(a.dist.theta, b.dist.theta)


def test_preferences_rank_pruned_ops_by_how_long_they_survived() -> None:
    strategy = DDPNAS(ToySpace(2, 4), pruning_step=1)
    outcome = run_search(strategy, SyntheticEvaluator(separated_means(2, 4, 3)), seed=0)
    theta, mask = strategy.preferences()
    assert mask.all()
    survivors = np.array(outcome.arch)
    np.testing.assert_array_equal(theta.argmax(axis=1), survivors)
    order = strategy.dist.pruned_at  # 1, 2, 3 per edge
    for e in range(2):
        pruned = np.flatnonzero(order[e])
        ranked = pruned[np.argsort(theta[e, pruned])]
        np.testing.assert_array_equal(ranked, pruned[np.argsort(order[e, pruned])])


def test_darts_genotype_even_when_none_survives_everywhere() -> None:
    """Every edge ends on 'none'; the genotype takes each node's longest-surviving real ops."""
    from ddpnas.spaces.darts.genotype import Genotype
    from ddpnas.spaces.darts.space import DartsSpace

    space = DartsSpace()
    strategy = DDPNAS(space)
    dist = strategy.dist
    for step, op in enumerate([7, 6, 5, 3, 2, 1, 4], start=1):  # sep_conv_3x3 (4) pruned last
        dist.theta[:, op] = 0.0  # tie-free: prune() removes the smallest theta
        dist.theta[:, [k for k in range(8) if dist.mask[0, k] and k != op]] += 1.0
        assert dist.prune() == [op] * 28
        assert dist.pruned_at[0, op] == step
    assert strategy.done() and set(strategy.result()) == {0}
    genotype = Genotype.from_json(
        space.derived(strategy.result(), *strategy.preferences())["genotype"]
    )
    assert [op for op, _ in genotype.normal + genotype.reduce] == ["sep_conv_3x3"] * 16


def test_preferences_after_survival_rank_by_theta_at_prune_then_accuracy() -> None:
    """Across edges, ops pruned at the same step are ordered by theta just before that prune
    (how decisively they lost), and only then by their mean credited accuracy: here the two keys
    disagree on every pair, so swapping them reverses every comparison."""
    strategy = DDPNAS(ToySpace(2, 3), pruning_step=1)
    dist = strategy.dist
    dist.mask[:] = [[False, False, True], [False, False, True]]
    dist.pruned_at[:] = [[1, 2, 0], [2, 1, 0]]
    dist.theta_at_prune[:] = [[0.30, 0.45, 0.55], [0.40, 0.20, 0.60]]
    accuracy = np.array([[0.5, 0.6, 0.7], [0.8, 0.9, 0.65]])
    dist._rounds = [(accuracy, np.ones((2, 3), dtype=np.int64))]
    theta, _ = strategy.preferences()
    assert theta[:, 2].min() > theta[:, :2].max()  # survivors first
    assert min(theta[0, 1], theta[1, 0]) > max(theta[0, 0], theta[1, 1])  # then later prunes
    assert theta[0, 0] > theta[1, 1]  # pruned first on both edges: theta 0.30 > 0.20
    assert theta[0, 1] > theta[1, 0]  # pruned second: 0.45 > 0.40
    assert theta[1, 2] > theta[0, 2]  # survivors: 0.60 > 0.55


def test_ties_left_after_every_key_follow_the_seeded_order_not_the_index() -> None:
    """All-tied keys: the order comes from the run seed's stream, so it is a permutation that is
    neither the index order nor its reverse, and the same for the same seed."""
    keys = [np.zeros((4, 5)), np.full((4, 5), np.nan)]
    first = rank_strength(keys, np.random.default_rng(3)).ravel()
    again = rank_strength(keys, np.random.default_rng(3)).ravel()
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(np.sort(first), np.arange(1, 21) / 20)
    assert (np.diff(first) > 0).any() and (np.diff(first) < 0).any()
    other = rank_strength(keys, np.random.default_rng(4)).ravel()
    assert not np.array_equal(first, other)
    strategy = DDPNAS(ToySpace(3, 4))  # nothing pruned or credited: every key tied
    strategy.evidence.reset(5)
    theta, _ = strategy.preferences()
    assert (np.diff(theta.ravel()) > 0).any() and (np.diff(theta.ravel()) < 0).any()

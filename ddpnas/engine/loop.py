"""The one search loop shared by every strategy: epochs, checkpoints, resume, seeding, timing.

Each epoch the strategy proposes an :class:`~ddpnas.strategies.base.EpochPlan`; the evaluator
trains the shared weights along it (weight sharing) or charges its simulated cost (tabular) and
validates the architectures the plan names; the strategy observes exactly those results and may
update its state. After every epoch the whole state (strategy, evaluator, RNGs, history, time
spent) is checkpointed atomically, so a run killed at any point resumes to the same result.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from ddpnas.errors import DDPNASError
from ddpnas.io.checkpoints import resume_state, save_checkpoint
from ddpnas.io.progress import on_terminal
from ddpnas.runtime import SEED_LIMIT
from ddpnas.spaces.base import Arch
from ddpnas.strategies.base import Strategy, TrainingPlan

# Bump whenever a strategy's or evaluator's state layout changes: old checkpoints are refused.
CHECKPOINT_VERSION = 3
log = logging.getLogger(__name__)


class Evaluator(Protocol):
    """Trains the shared weights along a plan and scores architectures."""

    def train(
        self, what: Arch | TrainingPlan, epoch: int, generator: torch.Generator
    ) -> dict[str, float]:
        """One epoch of training (tabular: charge its simulated cost); returns train metrics."""

    def evaluate(
        self, arch: Arch, *, images: int | None = None, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """Validation metrics of ``arch`` (``valid_acc`` in [0, 1]), on ``images`` random images."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class SearchOutcome:
    """What a finished search produced."""

    arch: Arch
    history: list[dict[str, Any]]
    wall_seconds: float
    simulated_seconds: float
    resumed_from: int = 0
    #: Epochs (and their simulated time) the answer drew on: all but a query past the budget.
    used_epochs: int | None = None
    used_simulated_seconds: float | None = None

    @property
    def epochs(self) -> int:
        return len(self.history)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """Data order of one epoch, a pure function of (seed, epoch) so resume needs no RNG replay.

    ``stream`` separates independent uses within an epoch (0: training order, 1: validation).
    Folded into torch's seed range, which changes nothing for seeds below ~2**40.
    """
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 4 + stream) % SEED_LIMIT)


@dataclass
class _Progress:
    """What a run carries from epoch to epoch (all of it checkpointed)."""

    rng: np.random.Generator
    history: list[dict[str, Any]]
    wall: float = 0.0
    resumed_from: int = 0


def _resume(
    strategy: Strategy,
    evaluator: Evaluator,
    seed: int,
    ckpt: Path | None,
    fingerprint: str | dict[str, Any],
    stale_checkpoint: str,
) -> _Progress:
    """A fresh start, or the state of ``ckpt`` loaded into the strategy and evaluator."""
    progress = _Progress(np.random.Generator(np.random.PCG64(seed)), [])
    state = resume_state(
        ckpt, version=CHECKPOINT_VERSION, fingerprint=fingerprint, stale=stale_checkpoint
    )
    if state is not None:
        try:
            strategy.load_state_dict(state["strategy"])
            evaluator.load_state_dict(state["evaluator"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise DDPNASError(
                f"checkpoint {ckpt} does not fit this code ({exc!r}); delete it to start over"
            ) from exc
        progress.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        progress.history = state["history"]
        progress.wall = float(state["wall_seconds"])
        progress.resumed_from = len(progress.history)
    strategy.evidence.reset(seed)
    for past in progress.history:  # the evidence is a function of the history: rebuilt
        for seen in past["evaluated"]:
            strategy.evidence.add(strategy.space.str_to_arch(seen["arch"]), seen["valid_acc"])
    return progress


def _epoch(
    strategy: Strategy, evaluator: Evaluator, seed: int, epoch: int, rng: np.random.Generator
) -> dict[str, Any]:
    """One epoch: propose, train, evaluate, observe, step; returns its history entry."""
    start = time.perf_counter()
    plan = strategy.propose(rng)
    train_metrics = {}
    if plan.train is not None:
        train_metrics = evaluator.train(plan.train, epoch, epoch_generator(seed, epoch))
    eval_gen = epoch_generator(seed, epoch, stream=1)
    results = [
        evaluator.evaluate(arch, images=plan.eval_images, generator=eval_gen)
        for arch in plan.evaluate
    ]
    strategy.observe(plan, train_metrics, results)
    for arch, result in zip(plan.evaluate, results, strict=True):
        strategy.evidence.add(arch, result["valid_acc"])
    events = strategy.step()
    trained = plan.train if isinstance(plan.train, tuple) else None
    return {
        "epoch": epoch,
        "arch": None if trained is None else strategy.space.arch_to_str(trained),
        **{k: float(v) for k, v in train_metrics.items()},
        "evaluated": [
            {"arch": strategy.space.arch_to_str(a), **{k: float(v) for k, v in r.items()}}
            for a, r in zip(plan.evaluate, results, strict=True)
        ],
        "events": events,
        "state": strategy.snapshot(),
        "seconds": time.perf_counter() - start,
    }


def _save(
    ckpt: Path,
    strategy: Strategy,
    evaluator: Evaluator,
    progress: _Progress,
    fingerprint: str | dict[str, Any],
) -> None:
    save_checkpoint(
        ckpt,
        {
            "version": CHECKPOINT_VERSION,
            "fingerprint": fingerprint,
            "strategy": strategy.state_dict(),
            "evaluator": evaluator.state_dict(),
            "rng": progress.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "history": progress.history,
            "wall_seconds": progress.wall,
        },
    )


def _shorten(text: str, width: int = 100) -> str:
    """A log's view of a long string (the record keeps it whole)."""
    if len(text) <= width:
        return text
    return text[: width // 2 - 2] + " ... " + text[-(width // 2 - 3) :]


def _per_edge(names: Sequence[str], edges: int) -> str:
    """One name per edge: listed for a few edges, counted for many."""
    if edges <= 8:
        return " ".join(names)
    counts = Counter(names).most_common()
    shown = ", ".join(f"{name} x{n}" for name, n in counts[:4])
    return shown + (f", {len(counts) - 4} more" if len(counts) > 4 else "") + f" (of {edges} edges)"


def theta_summary(theta: Sequence[Sequence[float]], ops: Sequence[str]) -> str:
    """Mean entropy per edge and the top op of each edge of an E x K theta: what a log line
    shows of it (the record keeps every value)."""
    p = np.asarray(theta, dtype=float)
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
    entropy = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
    top = p.argmax(axis=1)
    if len(p) <= 8:
        tops = " ".join(f"{ops[k]} {p[e, k]:.2f}" for e, k in enumerate(top))
    else:
        tops = _per_edge([ops[k] for k in top], len(p))
    return (
        f"theta entropy {entropy.mean():.3f} nats/edge (uniform {np.log(p.shape[1]):.3f}); "
        f"top op per edge: {tops}"
    )


def _events_text(events: dict[str, Any], edges: int) -> str:
    """Events for a log line: pruned ops by name, other short events as they are."""
    parts = []
    for key, value in events.items():
        if key == "pruned":
            parts.append(f"pruned {_per_edge(value, edges)}")
        elif key != "theta_before_prune":  # in the record; the line shows theta's summary
            parts.append(f"{key} {_shorten(str(value), 60)}")
    return "; ".join(parts)


def _log_epoch(strategy: Strategy, entry: dict[str, Any], best: float, planned: int | None) -> None:
    """A log line per epoch instead of a bar when nobody watches a terminal: the epoch, what
    was trained and validated, events, and a summary of theta (whole in the record)."""
    evaluated = len(entry["evaluated"])
    parts = [
        f"{strategy.name} epoch {entry['epoch'] + 1}/{planned or '?'}",
        f"trained {_shorten(entry['arch']) if entry['arch'] else 'a per-batch plan'}",
        f"best valid_acc of {evaluated} evaluated {best:.4f}" if evaluated else "none validated",
        f"{entry['seconds']:.2f}s",
    ]
    if "train_loss" in entry:
        top1 = entry.get("train_acc", float("nan"))
        parts.insert(2, f"train loss {entry['train_loss']:.4f}, top-1 {top1:.4f}")
    events = _events_text(entry["events"], strategy.space.num_edges)
    if events:
        parts.append(events)
    if "theta" in entry["state"]:
        parts.append(theta_summary(entry["state"]["theta"], strategy.space.ops))
    log.info("; ".join(parts))


def run_search(
    strategy: Strategy,
    evaluator: Evaluator,
    *,
    seed: int,
    checkpoint: str | Path | None = None,
    fingerprint: str | dict[str, Any] = "",
    stale_checkpoint: str = "error",
    max_epochs: int = 10_000,
    progress: bool | None = None,
) -> SearchOutcome:
    """Run ``strategy`` to completion, resuming from ``checkpoint`` when it exists.

    ``fingerprint`` identifies the config and seed (and, as a dict, the runtime: see
    :func:`ddpnas.engine.experiment.fingerprint`); a checkpoint written under another fingerprint
    is refused rather than silently mixed into this run, or with ``stale_checkpoint="restart"``
    removed (see :func:`ddpnas.io.checkpoints.resume_state`). ``progress``: a bar (True),
    nothing (False: a caller that reports progress itself), or by default a bar on a terminal
    and else one log line per epoch.
    """
    ckpt = Path(checkpoint) if checkpoint else None
    run = _resume(strategy, evaluator, seed, ckpt, fingerprint, stale_checkpoint)
    planned = strategy.planned_epochs()
    show = on_terminal() if progress is None else progress
    lines = progress is None and not show
    bar = tqdm(
        total=planned,
        initial=len(run.history),
        disable=not show,
        desc=strategy.name,
        unit="epoch",
        leave=False,
    )
    with bar:
        while not strategy.done():
            epoch = len(run.history)
            if epoch >= max_epochs:
                raise DDPNASError(f"{strategy.name} did not converge within {max_epochs} epochs")
            entry = _epoch(strategy, evaluator, seed, epoch, run.rng)
            run.wall += entry["seconds"]
            run.history.append(entry)
            if ckpt is not None:
                _save(ckpt, strategy, evaluator, run, fingerprint)
            best = max((r["valid_acc"] for r in entry["evaluated"]), default=float("nan"))
            bar.set_postfix(valid_acc=f"{best:.3f}")
            if lines:
                _log_epoch(strategy, entry, best, planned)
            bar.update()
    simulated = sum(h.get("sim_seconds", 0.0) for h in run.history)
    used = run.history[: len(run.history) - strategy.unused_epochs()]
    return SearchOutcome(
        strategy.result(),
        run.history,
        run.wall,
        simulated,
        run.resumed_from,
        used_epochs=len(used),
        used_simulated_seconds=sum(h.get("sim_seconds", 0.0) for h in used),
    )

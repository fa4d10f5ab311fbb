"""The one search loop shared by every strategy: epochs, checkpoints, resume, seeding, timing.

Each epoch the strategy proposes an :class:`~ddpnas.strategies.base.EpochPlan`; the evaluator
trains the shared weights along it (weight sharing) or charges its simulated cost (tabular) and
validates the architectures the plan names; the strategy observes exactly those results and may
update its state. After every epoch the whole state (strategy, evaluator, RNGs, history, time
spent) is checkpointed atomically, so a run killed at any point resumes to the same result.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from ddpnas.errors import DDPNASError
from ddpnas.spaces.base import Arch
from ddpnas.strategies.base import Strategy, TrainingPlan
from ddpnas.utils import resume_state, save_checkpoint

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

    @property
    def epochs(self) -> int:
        return len(self.history)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """Data order of one epoch, a pure function of (seed, epoch) so resume needs no RNG replay.

    ``stream`` separates independent uses within an epoch (0: training order, 1: validation).
    """
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 4 + stream)


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
    :func:`ddpnas.experiment.fingerprint`); a checkpoint written under another fingerprint is
    refused rather than silently mixed into this run, or with ``stale_checkpoint="restart"``
    removed (see :func:`ddpnas.utils.resume_state`).
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    history: list[dict[str, Any]] = []
    wall = 0.0
    resumed_from = 0
    ckpt = Path(checkpoint) if checkpoint else None
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
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        history = state["history"]
        wall = float(state["wall_seconds"])
        resumed_from = len(history)
    strategy.evidence.reset(seed)
    for past in history:  # the evidence is a function of the history: rebuilt, not stored
        for seen in past["evaluated"]:
            strategy.evidence.add(strategy.space.str_to_arch(seen["arch"]), seen["valid_acc"])

    planned = strategy.planned_epochs()
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=planned,
        initial=len(history),
        disable=not show,
        desc=strategy.name,
        unit="epoch",
        leave=False,
    )
    with bar:
        while not strategy.done():
            epoch = len(history)
            if epoch >= max_epochs:
                raise DDPNASError(f"{strategy.name} did not converge within {max_epochs} epochs")
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
            seconds = time.perf_counter() - start
            wall += seconds
            trained = plan.train if isinstance(plan.train, tuple) else None
            history.append(
                {
                    "epoch": epoch,
                    "arch": None if trained is None else strategy.space.arch_to_str(trained),
                    **{k: float(v) for k, v in train_metrics.items()},
                    "evaluated": [
                        {
                            "arch": strategy.space.arch_to_str(a),
                            **{k: float(v) for k, v in r.items()},
                        }
                        for a, r in zip(plan.evaluate, results, strict=True)
                    ],
                    "events": events,
                    "state": strategy.snapshot(),
                    "seconds": seconds,
                }
            )
            if ckpt is not None:
                save_checkpoint(
                    ckpt,
                    {
                        "version": CHECKPOINT_VERSION,
                        "fingerprint": fingerprint,
                        "strategy": strategy.state_dict(),
                        "evaluator": evaluator.state_dict(),
                        "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(),
                        "history": history,
                        "wall_seconds": wall,
                    },
                )
            best = max((r["valid_acc"] for r in results), default=float("nan"))
            bar.set_postfix(valid_acc=f"{best:.3f}")
            if not show:  # a log line per epoch instead of a bar when nobody watches a terminal
                log.info(
                    "%s epoch %d/%s trained %s; best valid_acc of %d evaluated %.4f; %.2fs %s",
                    strategy.name,
                    epoch + 1,
                    planned or "?",
                    history[-1]["arch"] or "a per-batch plan",
                    len(results),
                    best,
                    seconds,
                    events or "",
                )
            bar.update()
    simulated = sum(h.get("sim_seconds", 0.0) for h in history)
    return SearchOutcome(strategy.result(), history, wall, simulated, resumed_from)

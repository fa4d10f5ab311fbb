"""The one search loop shared by every strategy: epochs, checkpoints, resume, seeding, timing.

Each epoch the strategy proposes an architecture, the evaluator trains it (weight sharing) or looks
it up (tabular), the strategy observes the metrics of exactly that architecture and may update its
state. After every epoch the whole state (strategy, evaluator, RNGs, history, time spent) is
checkpointed atomically, so a run killed at any point resumes to the same result.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from ddpnas.errors import DDPNASError
from ddpnas.spaces.base import Arch
from ddpnas.strategies.base import Strategy
from ddpnas.utils import atomic_write

CHECKPOINT_VERSION = 1
log = logging.getLogger(__name__)


class Evaluator(Protocol):
    """Trains and scores the architecture a strategy proposed."""

    def train(self, arch: Arch, epoch: int, generator: torch.Generator) -> dict[str, float]:
        """One epoch of training ``arch`` (a no-op for tabular lookups); returns train metrics."""

    def evaluate(self, arch: Arch) -> dict[str, float]:
        """Validation metrics of ``arch``; must include ``valid_acc`` in [0, 1]."""

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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.history)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Data order of one epoch, a pure function of (seed, epoch) so resume needs no RNG replay."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def run_search(
    strategy: Strategy,
    evaluator: Evaluator,
    *,
    seed: int,
    checkpoint: str | Path | None = None,
    fingerprint: str = "",
    max_epochs: int = 10_000,
    progress: bool | None = None,
) -> SearchOutcome:
    """Run ``strategy`` to completion, resuming from ``checkpoint`` when it exists.

    ``fingerprint`` identifies the config and seed; a checkpoint written under another
    fingerprint is refused rather than silently mixed into this run.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    history: list[dict[str, Any]] = []
    wall = 0.0
    resumed_from = 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = _load_checkpoint(ckpt, fingerprint)
        strategy.load_state_dict(state["strategy"])
        evaluator.load_state_dict(state["evaluator"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        history = state["history"]
        wall = float(state["wall_seconds"])
        resumed_from = len(history)

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
            arch = strategy.propose(rng)
            train_metrics = evaluator.train(arch, epoch, epoch_generator(seed, epoch))
            metrics = evaluator.evaluate(arch)
            strategy.observe(arch, metrics)
            events = strategy.step()
            seconds = time.perf_counter() - start
            wall += seconds
            history.append(
                {
                    "epoch": epoch,
                    "arch": strategy.space.arch_to_str(arch),
                    **{k: float(v) for k, v in {**train_metrics, **metrics}.items()},
                    "events": events,
                    "state": strategy.snapshot(),
                    "seconds": seconds,
                }
            )
            if ckpt is not None:
                _save_checkpoint(
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
            bar.set_postfix(valid_acc=f"{metrics['valid_acc']:.3f}")
            if not show:  # a log line per epoch instead of a bar when nobody watches a terminal
                log.info(
                    "%s epoch %d/%s %s valid_acc=%.4f %.2fs %s",
                    strategy.name,
                    epoch + 1,
                    planned or "?",
                    history[-1]["arch"],
                    metrics["valid_acc"],
                    seconds,
                    events or "",
                )
            bar.update()
    simulated = sum(h.get("sim_seconds", 0.0) for h in history)
    return SearchOutcome(strategy.result(), history, wall, simulated, resumed_from)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: say which and what to do
        raise DDPNASError(
            f"checkpoint {path} is unreadable ({exc}); delete it to start over"
        ) from exc
    if state.get("version") != CHECKPOINT_VERSION or state.get("fingerprint") != fingerprint:
        raise DDPNASError(
            f"checkpoint {path} belongs to another config, seed or version; delete it or choose "
            "another --checkpoint path"
        )
    return state

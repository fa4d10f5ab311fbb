"""Arguments and checks shared by several commands, declared once (with their help text)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from ddpnas.errors import DDPNASError
from ddpnas.io.checkpoints import STALE_CHECKPOINT
from ddpnas.io.files import table_paths
from ddpnas.io.locks import Output
from ddpnas.runtime import SEED_LIMIT

# Options that name something a command writes: every command with one declares its outputs
# (a test walks the parsers).
OUTPUT_OPTIONS = (
    "--out", "--out-dir", "--checkpoint", "--supernet-out", "--figure", "--figures",
    "--cells-out", "--table", "--readme",
)  # fmt: skip

DEVICES = ("auto", "cpu", "cuda")


def json_object(text: str | None, flag: str) -> dict:
    """A JSON object given on the command line (``flag`` names it in the error)."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise DDPNASError(f"{flag} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DDPNASError(f"{flag} must be a JSON object")
    return value


def declare_outputs(
    parser: argparse.ArgumentParser, outputs: Callable[[argparse.Namespace], Iterable[Output]]
) -> None:
    """What the command writes, as a function of its arguments: ``ddpnas.cli.main`` checks and
    locks these paths before the command runs (``ddpnas.io.locks.claim``)."""
    parser.set_defaults(outputs=outputs)


def table_outputs(stem: str | Path | None, flag: str = "--out") -> list[Output]:
    """The three files of a table written to ``stem`` (``write_table``): .csv, .md and .tex."""
    if stem is None:
        return []
    return [Output(flag, path) for path in table_paths(stem)]


def add_stale_checkpoint(parser: argparse.ArgumentParser) -> None:
    """``--stale-checkpoint``: what a resumable command does with a checkpoint of another run."""
    parser.add_argument(
        "--stale-checkpoint",
        choices=STALE_CHECKPOINT,
        default="error",
        help="a checkpoint of another config, seed, model, code version or runtime: refuse it "
        "(error, default) or remove it and start over (restart; what the pipeline passes, "
        "since it reruns a job when its inputs change); a killed run resumes either way",
    )


def add_runtime(parser: argparse.ArgumentParser, *, device_default: str | None = None) -> None:
    """``--device`` and ``--threads``, the same on every command that computes."""
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=device_default,
        help="where to compute: auto picks CUDA when a GPU is visible"
        + ("" if device_default else " (default: the config's device)"),
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads (torch.set_num_threads; default: the config's threads); the same "
        "count is needed to resume a checkpoint bit-identically",
    )


def check_seed(seed: int, flag: str) -> None:
    """A seed every generator takes (``ddpnas.runtime.SEED_LIMIT``)."""
    if not 0 <= seed < SEED_LIMIT:
        raise DDPNASError(f"{flag} must be a non-negative integer below 2**63, got {seed}")


def check_numbers(args: argparse.Namespace) -> None:
    """Seeds and thread counts argparse accepts as ints but nothing downstream can use."""
    for dest, seed in vars(args).items():
        if (dest == "seed" or dest.endswith("_seed")) and seed is not None:
            check_seed(seed, "--" + dest.replace("_", "-"))
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise DDPNASError(
            f"--threads must be at least 1, got {args.threads}; leave it out to use the config's"
        )

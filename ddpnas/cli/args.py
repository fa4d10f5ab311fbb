"""Arguments and checks shared by several commands, declared once (with their help text)."""

from __future__ import annotations

import argparse
import json

from ddpnas.errors import DDPNASError
from ddpnas.io.checkpoints import STALE_CHECKPOINT

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


def check_numbers(args: argparse.Namespace) -> None:
    """Seeds and thread counts argparse accepts as ints but nothing downstream can use."""
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed < 2**63:
        raise DDPNASError(f"--seed must be a non-negative integer below 2**63, got {seed}")
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise DDPNASError(
            f"--threads must be at least 1, got {args.threads}; leave it out to use the config's"
        )

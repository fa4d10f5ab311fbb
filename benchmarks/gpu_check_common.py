"""What the parts of the GPU speed check share: the paper config, the time budget and
:class:`Check` (sizes and collected figures). Imported by gpu_check.py and gpu_check_searches.py."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

PAPER = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "paper.yaml").read_text())
BUDGET_S = 570  # the whole check must end within 10 minutes


class Check:
    """Sizes of the parts (paper scale, or toy sizes for --dry-run) and the collected figures."""

    def __init__(self, dry: bool, out: Path, parts: str) -> None:
        self.dry, self.out, self.parts, self.start = dry, out, parts, time.perf_counter()
        self.device = torch.device("cpu" if dry else "cuda")
        self.figures: dict[str, Any] = {}
        self.notes: list[str] = []
        self.split = 16 if dry else None  # images per half of the split (None: all 25k)
        self.short = 16 if dry else 5000
        self.nb201 = {"C": 2, "N": 1} if dry else PAPER["searches"]["nb201-ddpnas-ws"]["supernet"]
        self.darts = {"C": 4, "layers": 3} if dry else PAPER["searches"]["darts-ddpnas"]["supernet"]
        self.net = {"C": 4, "layers": 3} if dry else {"C": 36, "layers": 20}
        self.batch = 8 if dry else 96
        self.steps = 2 if dry else 30
        # a dry run checks the search path with DDPNAS's shortest schedule (14 epochs)
        self.schedule = {"pruning_step": 1} if dry else {}
        self.share = 2 if dry else 4

    def left(self) -> float:
        return BUDGET_S - (time.perf_counter() - self.start)

    def part(self, name: str, needs_s: float, run: Callable[[], None]) -> None:
        if name[0] not in self.parts:
            return
        if not self.dry and self.left() < needs_s:
            self.notes.append(f"{name}: skipped, {self.left():.0f} s left of the budget")
            print(f"\n== {name}: SKIPPED (time budget)", flush=True)
            return
        print(f"\n== {name}", flush=True)
        began = time.perf_counter()
        try:
            run()
        except Exception as exc:  # report and go on: one broken part must not hide the rest
            traceback.print_exc()
            self.notes.append(f"{name}: FAILED ({type(exc).__name__}: {exc})")
        print(f"   ({time.perf_counter() - began:.1f} s)", flush=True)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

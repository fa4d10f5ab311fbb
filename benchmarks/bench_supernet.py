"""Time single-path supernet training against the standalone network of the same arch.

DDPNAS trains the supernet one sampled path at a time; its cost claim holds only if that path costs
about what the standalone net costs. Blocks of steps alternate between the two so that drift
(thermal, other load) hits both alike. Spaces: NAS-Bench-201 (default) and the DARTS cell space
(search network: 16 channels, 8 cells, batch 64 as in the DARTS search; the default DARTS arch puts
each of the 7 non-zero ops on 4 edges, since a sampled 'none' would only make the path cheaper).

    PYTHONPATH=. python benchmarks/bench_supernet.py --device cpu --batch 64 --steps 30
    PYTHONPATH=. python benchmarks/bench_supernet.py --space darts --batch 64 --layers 8

(or without PYTHONPATH once the package is installed with `pip install -e .`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from ddpnas.runtime import device_name
from ddpnas.spaces.base import Arch
from ddpnas.spaces.darts.space import DartsSpace
from ddpnas.spaces.nb201 import NB201Space

DEFAULT_ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|"
    "+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
)
DEFAULT_DARTS_ARCH = DartsSpace().arch_to_str(tuple(1 + e % 7 for e in range(28)))


def make_step(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
) -> Callable[[], None]:
    """One training step (forward, backward, SGD update) as the search loop does it."""
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(forward(x), y).backward()
        opt.step()

    return step


def timed_block(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds per step over a block of consecutive steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def build(args: argparse.Namespace) -> tuple[nn.Module, nn.Module, Arch, str]:
    """Supernet, standalone net with the supernet's BN setting, the arch, and a description."""
    if args.space == "nb201":
        nb201 = NB201Space()
        arch = nb201.str_to_arch(args.arch or DEFAULT_ARCH)
        supernet: nn.Module = nb201.supernet(C=args.C, N=args.N)
        standalone: nn.Module = nb201.standalone(
            arch, C=args.C, N=args.N, affine=False, track_running_stats=False
        )
        return supernet, standalone, arch, f"arch {nb201.arch_to_str(arch)}, C={args.C}, N={args.N}"
    darts = DartsSpace()
    arch = darts.str_to_arch(args.arch or DEFAULT_DARTS_ARCH)
    supernet = darts.supernet(C=args.C, layers=args.layers)
    standalone = darts.standalone(arch, C=args.C, layers=args.layers)
    return (
        supernet,
        standalone,
        arch,
        f"arch {darts.arch_to_str(arch)}, C={args.C}, layers={args.layers}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per network")
    parser.add_argument("--block", type=int, default=5, help="steps per alternating block")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per network")
    parser.add_argument("--space", choices=["nb201", "darts"], default="nb201")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5, help="cells per stage (nb201)")
    parser.add_argument("--layers", type=int, default=8, help="cells in all (darts)")
    parser.add_argument("--arch", help="arch string of the space (default: a fixed mixed arch)")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    supernet, standalone, arch, description = build(args)
    supernet.to(device).train()
    standalone.to(device).train()
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    steps = {
        "supernet (single path)": make_step(supernet, lambda t: supernet(t, arch), x, y),
        "standalone": make_step(standalone, standalone, x, y),
    }
    for step in steps.values():
        timed_block(step, args.warmup, device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(max(1, args.steps // args.block)):
        for name, step in steps.items():
            times[name].append(timed_block(step, args.block, device))

    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    print(
        f"machine: {device_name(device)}; torch {torch.__version__}; "
        f"threads {torch.get_num_threads()}; device {device}"
    )
    print(
        f"{description}, batch {args.batch}, "
        f"{len(times['standalone'])} blocks of {args.block} steps (median over blocks)\n"
    )
    print(f"| {'network':<24} | {'ms/step':>9} | {'images/s':>9} |")
    print(f"|{'-' * 26}|{'-' * 11}|{'-' * 11}|")
    for name, value in ms.items():
        print(f"| {name:<24} | {value:>9.1f} | {1e3 * args.batch / value:>9.0f} |")
    ratio = ms["supernet (single path)"] / ms["standalone"]
    print(f"\nratio supernet / standalone: {ratio:.3f}")


if __name__ == "__main__":
    main()

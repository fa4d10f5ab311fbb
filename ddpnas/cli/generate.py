"""``ddpnas generate``: file formats, theta from a search record, and the command itself.

File formats (so other tools can call the generator):

* ``T.json``: an E x K list of probabilities, 0 = pruned;
* ``C.json``: ``{resource: E x K list of non-negative costs, "fixed": {resource: number}}``;
* ``arch.json``: ``{"arch": [k per edge], "objective": ..., "costs": {...}, ...}``.

From a search record the theta is the last logged distribution in which every edge still has at
least ``min_alive`` surviving ops (default 2), taken before the prune that cut it below: after a
DDPNAS search's final prune one op per edge is left and there is nothing to trade off. Records
log the updated theta right before every prune (``events.theta_before_prune``); for older records
it falls back to the per-epoch snapshots (``state.theta``, taken after the epoch's prune).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ddpnas.cli.args import declare_outputs, json_object, table_outputs
from ddpnas.errors import DDPNASError
from ddpnas.io.files import write_json
from ddpnas.io.locks import Output

if TYPE_CHECKING:  # torch and scipy load only when the command runs, not for every CLI start
    from ddpnas.generation.solver import CostTable, Generated
    from ddpnas.spaces import SearchSpace

#: Display scale and unit of the known resources (others are shown raw).
UNITS = {"macs": (1e6, "M MACs"), "params": (1e6, "M params"), "latency_ms": (1.0, "ms")}


def budget_text(budgets: dict[str, float]) -> str:
    """``macs <= 300.00 M MACs, latency_ms <= 80.00 ms``: budgets in display units."""
    parts = []
    for name, value in budgets.items():
        scale, unit = UNITS.get(name, (1.0, ""))
        parts.append(f"{name} <= {value / scale:.2f} {unit}".rstrip())
    return ", ".join(parts)


def parse_budget(text: str) -> tuple[str, float]:
    """``name=value`` (e.g. ``macs=300e6``) -> (name, value)."""
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not name.strip() or not math.isfinite(number):
        raise DDPNASError(f"malformed budget {text!r}; expected RESOURCE=NUMBER, e.g. macs=300e6")
    return name.strip(), number


def parse_sweep(text: str) -> tuple[str, np.ndarray]:
    """``name=LO:HI:N`` -> (name, N evenly spaced budgets from LO to HI inclusive)."""
    name, sep, spec = text.partition("=")
    parts = spec.split(":")
    try:
        lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
        ok = bool(sep and name.strip() and len(parts) == 3)
    except (ValueError, IndexError):
        ok = False
    if not ok or not (math.isfinite(lo) and math.isfinite(hi)) or n < 1 or hi < lo:
        raise DDPNASError(
            f"malformed sweep {text!r}; expected RESOURCE=LO:HI:N with LO <= HI, N >= 1, "
            "e.g. macs=20e6:220e6:11"
        )
    return name.strip(), np.linspace(lo, hi, n)


def _read_json(path: str | Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DDPNASError(f"cannot read {what} {path}: {exc}") from None


def load_costs(path: str | Path) -> dict[str, tuple[float, np.ndarray]]:
    """Read a C.json costs file (format in the module doc)."""
    raw = _read_json(path, "costs file")
    if not isinstance(raw, dict):
        raise DDPNASError(f"costs file {path} must be a JSON object {{resource: E x K list}}")
    fixed = raw.pop("fixed", {})
    if not isinstance(fixed, dict):
        raise DDPNASError(f"costs file {path}: 'fixed' must map resources to numbers")
    unknown = sorted(set(fixed) - set(raw))
    if unknown:
        raise DDPNASError(f"costs file {path}: 'fixed' names unknown resource(s) {unknown}")
    if not raw:
        raise DDPNASError(f"costs file {path} holds no resource")
    costs = {}
    for name, table in raw.items():
        try:
            costs[name] = (float(fixed.get(name, 0.0)), np.asarray(table, dtype=float))
        except (TypeError, ValueError):
            raise DDPNASError(
                f"costs file {path}: {name!r} is not an E x K list of numbers"
            ) from None
    return costs


def theta_from_record(record: dict[str, Any], min_alive: int = 2) -> tuple[np.ndarray, str]:
    """The last logged theta with >= ``min_alive`` survivors per edge, and where it came from."""
    history = record.get("history") or []
    if not history or "theta" not in (history[0].get("state") or {}):
        raise DDPNASError(
            f"record of {record.get('experiment')} ({record.get('strategy')}) logs no theta; "
            "generate from a DDPNAS (or DARTS/ENAS) search record, or pass --theta"
        )
    for entry in reversed(history):
        candidates = [("after", entry["state"]["theta"])]
        if "theta_before_prune" in entry.get("events", {}):
            candidates.append(("before its prune", entry["events"]["theta_before_prune"]))
        for when, theta in candidates:
            arr = np.asarray(theta, dtype=float)
            if (arr > 0).sum(axis=1).min() >= min_alive:
                return arr, f"theta of epoch {entry['epoch'] + 1} ({when})"
    raise DDPNASError(f"no logged theta has {min_alive} surviving ops on every edge")


def _space_costs(
    space: SearchSpace, args: argparse.Namespace, network: dict
) -> tuple[CostTable, np.ndarray | None]:
    """The space's additive costs, plus latency when asked for (measured here or a table), and
    the choices a published table lacks (excluded with ``--missing exclude``)."""
    costs = dict(space.choice_costs(**network))
    excluded = None
    if args.latency:
        from ddpnas.data.locations import resolve_cache_dir
        from ddpnas.generation.latency import RESOURCE, measured_table, phone_table
        from ddpnas.runtime import resolve_device

        if args.latency == "device":
            costs[RESOURCE] = measured_table(
                space,
                resolve_device(args.device),
                cache_dir=resolve_cache_dir(json_object(args.data, "--data").get("cache")),
                network_kwargs=network,
            )
        else:
            fixed, table, excluded = phone_table(space, args.latency, missing=args.missing)
            costs[RESOURCE] = (fixed, table)
    return costs, excluded


def _measured(space: SearchSpace | None, gen: Generated | None, network: dict) -> dict | None:
    """Costs counted on the built network; None when the space is unknown or not additive."""
    if space is None or gen is None:
        return None
    try:
        return space.measured_costs(gen.arch, **network)
    except DDPNASError:
        return None


def _theta(args: argparse.Namespace) -> tuple[np.ndarray, str, str | None]:
    """(theta, where it came from, space name) from --record or --theta."""
    if args.record:
        record = _read_json(args.record, "search record")
        theta, source = theta_from_record(record, args.min_alive)
        return theta, f"{args.record}: {source}", args.space or record.get("space")
    return _read_json(args.theta, "theta file"), args.theta, args.space


def _problem(
    args: argparse.Namespace, network: dict
) -> tuple[SearchSpace | None, np.ndarray, CostTable, dict[str, float], str]:
    """(space, theta, costs, budgets, theta's source), checked against each other."""
    from ddpnas.generation.solver import check_problem
    from ddpnas.spaces import get_space

    theta, source, space_name = _theta(args)
    try:
        space = get_space(space_name) if space_name else None
    except KeyError as exc:
        raise DDPNASError(str(exc.args[0])) from None
    excluded = None
    if args.costs:
        costs = load_costs(args.costs)
    elif space is not None:
        costs, excluded = _space_costs(space, args, network)
    else:
        raise DDPNASError("give --costs, or a space (--space, or a --record that names one)")
    budgets = dict(parse_budget(b) for b in args.budget or [])
    theta, costs = check_problem(theta, costs, budgets)
    if space is not None and theta.shape != (space.num_edges, space.num_ops):
        raise DDPNASError(
            f"theta is {theta.shape[0]} x {theta.shape[1]}; space {space.name} is "
            f"{space.num_edges} x {space.num_ops}"
        )
    if excluded is not None and excluded.any():
        theta = np.where(excluded, 0.0, theta)
    return space, theta, costs, budgets, source


def run(args: argparse.Namespace) -> None:
    """The ``ddpnas generate`` command (see ``ddpnas generate --help``)."""
    from ddpnas.generation.solver import generate

    network = json_object(args.network, "--network")
    if args.min_alive < 1:
        raise DDPNASError(f"--min-alive must be >= 1, got {args.min_alive}")
    if args.latency and args.costs:
        raise DDPNASError("--latency adds to the space's costs; put latency in --costs instead")
    space, theta, costs, budgets, source = _problem(args, network)
    if args.sweep:
        _run_sweep(args, space, theta, costs, budgets, network, source)
        return
    gen = generate(theta, costs, budgets, args.objective)
    measured = _measured(space, gen, network)
    if measured is not None and args.latency == "device":
        from ddpnas.generation.latency import RESOURCE, network_latency_ms
        from ddpnas.runtime import resolve_device

        measured[RESOURCE] = network_latency_ms(
            space, gen.arch, resolve_device(args.device), network_kwargs=network
        )
    _write_generated(args, space, gen, measured, budgets, source)


def _write_generated(
    args: argparse.Namespace,
    space: SearchSpace | None,
    gen: Generated,
    measured: dict | None,
    budgets: dict[str, float],
    source: str,
) -> None:
    result = {
        "arch": list(gen.arch),
        "arch_str": space.arch_to_str(gen.arch) if space else None,
        "objective": gen.objective,
        "objective_kind": args.objective,
        "costs": gen.costs,
        "measured_costs": measured,
        "budgets": budgets,
        "theta_source": source,
    }
    write_json(args.out, result)
    print(f"architecture: {result['arch_str'] or result['arch']}")
    print(f"objective ({args.objective}): {gen.objective:.6g}")
    for name, total in gen.costs.items():
        again = (
            "" if not measured or name not in measured else f" (re-measured: {measured[name]:.10g})"
        )
        print(f"{name}: {total:.10g}{again}")


def _run_sweep(
    args: argparse.Namespace,
    space: SearchSpace | None,
    theta: np.ndarray,
    costs: CostTable,
    budgets: dict[str, float],
    network: dict,
    source: str,
) -> None:
    from ddpnas.generation.solver import sweep
    from ddpnas.report.generation import all_cell_costs, sweep_display, sweep_figure, sweep_rows
    from ddpnas.report.tables import write_table

    resource, values = parse_sweep(args.sweep)
    if resource not in costs:
        raise DDPNASError(f"sweep over unknown resource {resource!r}; costs: {', '.join(costs)}")
    results = sweep(theta, costs, resource, values, budgets, args.objective)
    measured = [_measured(space, gen, network) for _, gen in results]
    cells = None
    if space is not None and space.name == "nb201" and not args.costs:
        from ddpnas.nasbench.files import load_bench

        bench = load_bench(args.bench, data=json_object(args.data, "--data"))
        cells = all_cell_costs(space, bench, costs)
    df = sweep_rows(space, resource, results, measured, cells)
    name = space.name if space else "custom"
    stem, figure = _sweep_paths(args, name)
    scale, unit = UNITS.get(resource, (1.0, resource))
    notes = _sweep_notes(args, source, budgets, network, cells)
    write_table(
        df,
        sweep_display(df, resource, scale, unit, *_cost_labels(args, space, network)),
        stem,
        f"Generation under a {resource} budget ({name})",
        notes,
    )
    title = f"{name}: architectures generated from theta, {resource} budgets"
    sweep_figure(df, resource, scale, unit, figure, title, cells, args.objective)
    feasible = int(df["feasible"].sum())
    print(f"{feasible}/{len(df)} budgets feasible; wrote {stem}.{{csv,md,tex}} and {figure}")
    if "gap" in df:
        print(f"gap to the true front: mean {df['gap'].mean():.2f}, max {df['gap'].max():.2f}")


def _sweep_paths(args: argparse.Namespace, space: str | None) -> tuple[str, str]:
    """(table stem, figure) of a sweep: the given ones, else named after the space."""
    name = space or "custom"
    return (
        args.table or f"results/tables/generation_{name}",
        args.figure or f"results/figures/generation_{name}.png",
    )


def _outputs(args: argparse.Namespace) -> list[Output]:
    """arch.json, or the sweep's table and figure (named after the record's space)."""
    if not args.sweep:
        if not args.out:
            raise DDPNASError("give --out arch.json (or --sweep to write a table)")
        return [Output("--out", args.out)]
    space = args.space
    if space is None and args.record and not (args.table and args.figure):
        record = _read_json(args.record, "search record")
        space = record.get("space") if isinstance(record, dict) else None
    stem, figure = _sweep_paths(args, space)
    return [*table_outputs(stem, "--table"), Output("--figure", figure)]


def _cost_labels(
    args: argparse.Namespace, space: SearchSpace | None, network: dict
) -> tuple[str, str]:
    """(the network the costs count, where latencies come from when that is another network):
    a published phone table holds its own network's latencies, not the costed one's."""
    counted = ", ".join(f"{k}={v}" for k, v in network.items()) or "the space's default network"
    latency_of = ""
    if args.latency and args.latency != "device":
        table_net = space.latency_table_network if space else ""
        table_net = f" ({table_net})" if table_net else ""
        latency_of = f"phone ms of the phone table's network{table_net}, not the costed one"
    return counted, latency_of


def _sweep_notes(
    args: argparse.Namespace,
    source: str,
    budgets: dict[str, float],
    network: dict,
    cells: Any,
) -> list[str]:
    """The sweep table's notes: theta, objective, costs, latency and the NB201 front."""
    fixed = "".join(f", {r} <= {b:g}" for r, b in budgets.items())
    notes = [
        f"theta: {source}; objective: {args.objective} (sum over edges of "
        f"{'log theta' if args.objective == 'log' else 'theta'}); exact MILP (scipy/HiGHS)"
        f"{fixed}.",
        "Costs are the sum of per-choice costs plus the fixed part; 're-measured' counts the built "
        f"network (network kwargs {json.dumps(network)}).",
    ]
    if args.latency:
        where = "measured on this device" if args.latency == "device" else args.latency
        notes.append(
            f"Latency: additive per-choice estimate ({where}); choices without an entry are "
            f"{'excluded' if args.missing == 'exclude' else 'an error'}, never guessed."
        )
    if cells is not None:
        notes.append(
            "NAS-Bench-201: accuracy = 200-epoch CIFAR-10 test accuracy of the table; the front "
            f"is the best accuracy of all {len(cells)} cells within the same budget, costed as "
            "the generated cells (MACs in the benchmark's FLOPs convention); gap = front - "
            "generated."
        )
    return notes


EXAMPLES = """examples:
  ddpnas generate --record results/config/search/nb201-ddpnas-tabular/seed0.json \\
      --budget macs=100e6 --out arch.json
  ddpnas generate --record results/config/search/nb201-ddpnas-tabular/seed0.json \\
      --sweep macs=10e6:220e6:15 --table generation_nb201 --figure generation_nb201.png
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``ddpnas generate``."""
    gen = sub.add_parser(
        "generate",
        help="the most probable architecture of a theta within resource budgets",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--record", help="search record (JSON); its theta before the last prune")
    source.add_argument("--theta", help="T.json: E x K list of probabilities (0 = pruned)")
    gen.add_argument("--costs", help="C.json: {resource: E x K costs, 'fixed': {resource: n}}")
    gen.add_argument("--space", help="search space (default: the record's); enables re-measuring")
    gen.add_argument("--network", help="standalone network kwargs as JSON (default: the space's)")
    gen.add_argument("--budget", action="append", help="RESOURCE=NUMBER, e.g. macs=300e6; repeat")
    gen.add_argument("--sweep", help="RESOURCE=LO:HI:N: a Pareto table and figure over budgets")
    gen.add_argument(
        "--objective",
        default="log",
        choices=["log", "theta"],
        help="maximise the sum over edges of log theta (log: the architecture's log-probability, "
        "default) or of theta",
    )
    gen.add_argument("--min-alive", type=int, default=2, help="survivors per edge in the theta")
    gen.add_argument("--latency", help="'device' (measured here, cached) or a phone-table YAML")
    gen.add_argument(
        "--missing",
        default="error",
        choices=["error", "exclude"],
        help="a choice the latency table lacks: an error (default) or excluded, never guessed",
    )
    gen.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where re-measured latency runs (--latency device)",
    )
    gen.add_argument("--bench", help="NAS-Bench-201 source for the sweep's true front")
    gen.add_argument("--data", help="the config's data block as JSON (locates the benchmark)")
    gen.add_argument("--out", help="arch.json of the generated architecture")
    gen.add_argument("--table", help="sweep table stem (default results/tables/generation_<space>)")
    gen.add_argument(
        "--figure", help="sweep figure (default results/figures/generation_<space>.png)"
    )
    gen.set_defaults(func=run)
    declare_outputs(gen, _outputs)

"""``ddpnas`` command line: the only entry point the Snakemake rules call."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddpnas.errors import DDPNASError
from ddpnas.utils import json_object as _json_arg

if TYPE_CHECKING:
    from ddpnas.spaces.darts_genotype import Genotype


DEFAULT_CONFIG = "config/config.yaml"


def _writable_stem(stem: str) -> None:
    """The tables' outputs (<stem>.csv, .md, .tex) can be written."""
    from ddpnas.utils import ensure_writable

    ensure_writable(f"{stem}.csv", "--out")


def _check_numbers(args: argparse.Namespace) -> None:
    """Seeds and thread counts argparse accepts as ints but nothing downstream can use."""
    if getattr(args, "seed", None) is not None and args.seed < 0:
        raise DDPNASError(f"--seed must be a non-negative integer, got {args.seed}")
    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise DDPNASError(
            f"--threads must be at least 1, got {args.threads}; leave it out to use the config's"
        )


def add_stale_checkpoint(parser: argparse.ArgumentParser) -> None:
    """``--stale-checkpoint``: what a resumable command does with a checkpoint of another run."""
    from ddpnas.utils import STALE_CHECKPOINT

    parser.add_argument(
        "--stale-checkpoint",
        choices=STALE_CHECKPOINT,
        default="error",
        help="a checkpoint of another config, seed, model, code version or runtime: refuse it "
        "(error, default) or remove it and start over (restart; what the pipeline passes, "
        "since it reruns a job when its inputs change); a killed run resumes either way",
    )


def parse_seeds(text: str) -> list[int]:
    """Seeds as ``0-199``, ``0,3,7`` or a mix (``0-9,20``), in the order given, no repeats."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise DDPNASError(f"--seeds {text!r}: expected e.g. 0-199 or 0,1,2") from None
        if first < 0 or last < first:
            raise DDPNASError(f"--seeds {text!r}: {part.strip()!r} is not an ascending range >= 0")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise DDPNASError(f"--seeds {text!r} repeats a seed")
    return seeds


def _cmd_search(args: argparse.Namespace) -> None:
    from ddpnas.config import load_config
    from ddpnas.experiment import run_experiment, run_experiment_seeds
    from ddpnas.locations import resolve_cache_dir
    from ddpnas.utils import ensure_writable, exclusive

    if args.spec:
        spec = _json_arg(args.spec, "--spec")
        data, device, threads = _json_arg(args.data, "--data"), args.device, args.threads
    else:
        config = load_config(args.config)
        if args.experiment not in config["searches"]:
            known = ", ".join(config["searches"])
            raise DDPNASError(
                f"experiment {args.experiment!r} is not in {args.config}; known: {known}"
            )
        spec = config["searches"][args.experiment]
        data = config["data"]
        device = args.device or config["device"]
        threads = args.threads or config["threads"]
    if args.seeds is not None:
        if args.checkpoint:
            raise DDPNASError("--checkpoint is for one seed; --seeds runs take milliseconds")
        seeds = parse_seeds(args.seeds)
        records = run_experiment_seeds(
            args.experiment, spec, seeds=seeds, out=args.out, data=data, threads=threads
        )
        total = sum(r["search_seconds"] for r in records)
        print(
            f"{args.experiment}: {len(records)} seeds ({seeds[0]}..{seeds[-1]}) in {total:.2f} s "
            f"of search on {records[0]['environment']['hardware']}"
        )
        return
    ensure_writable(args.out, "--out")
    ensure_writable(args.checkpoint, "--checkpoint")
    ensure_writable(args.supernet_out, "--supernet-out")
    if isinstance(spec, dict) and spec.get("mode") == "weight_sharing":
        ensure_writable(resolve_cache_dir(data.get("cache")), "data.cache", is_dir=True)
    with exclusive([args.out, args.checkpoint, args.supernet_out], "--out/--checkpoint"):
        record = run_experiment(
            args.experiment,
            spec,
            seed=args.seed,
            out=args.out,
            checkpoint=args.checkpoint,
            stale_checkpoint=args.stale_checkpoint,
            data=data,
            device=device or "auto",
            threads=threads,
            supernet_out=args.supernet_out,
        )
    print(
        f"{args.experiment} seed {args.seed}: {record['arch']} after {record['epochs']} epochs "
        f"({record['search_seconds']:.1f} s on {record['environment']['hardware']})"
    )


def _cmd_genotype(args: argparse.Namespace) -> None:
    from ddpnas.report.tables import load_runs
    from ddpnas.spaces.darts_genotype import Genotype
    from ddpnas.utils import atomic_write, ensure_writable

    ensure_writable(args.out, "--out")
    (record,) = load_runs([args.record])
    if "genotype" not in record:
        raise DDPNASError(
            f"{args.record} is a {record['space']} search; only DARTS-space searches have one"
        )
    text = json.dumps(Genotype.from_record(record["genotype"]).to_json()) + "\n"
    atomic_write(args.out, lambda tmp: tmp.write_text(text))


def _cmd_retrain(args: argparse.Namespace) -> None:
    import torch

    from ddpnas.config import schema, validate
    from ddpnas.locations import resolve_cache_dir
    from ddpnas.spaces.darts_genotype import Genotype
    from ddpnas.utils import ensure_writable, exclusive

    genotype = Genotype.read(args.genotype)
    block = validate(
        _json_arg(args.retrain, "--retrain"), schema()["properties"]["retrain"], where="retrain"
    )
    data = _json_arg(args.data, "--data")
    ensure_writable(args.out_dir, "--out-dir", is_dir=True)
    ensure_writable(resolve_cache_dir(data.get("cache")), "data.cache", is_dir=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    # torchrun's other ranks share rank 0's lock: only it writes.
    lock = [args.out_dir] if int(os.environ.get("RANK", "0")) == 0 else []
    with exclusive(lock, "--out-dir"):
        _retrain(args, genotype, block, data)


def _retrain(
    args: argparse.Namespace, genotype: Genotype, block: dict[str, Any], data: dict[str, Any]
) -> None:
    from ddpnas.data import load_cifar10
    from ddpnas.locations import resolve_cache_dir, resolve_data_root
    from ddpnas.spaces.darts import DartsSpace
    from ddpnas.train import retrain
    from ddpnas.train_setup import RetrainConfig
    from ddpnas.utils import resolve_device

    train_set, test_set = load_cifar10(
        resolve_data_root(data.get("root")),
        cache_dir=resolve_cache_dir(data.get("cache")),
        download=data.get("download", True),
    )
    space = DartsSpace()
    result = retrain(
        lambda: space.eval_network(genotype, num_classes=10, **block["network"]),
        train_set,
        test_set,
        RetrainConfig(**block["protocol"], seed=args.seed),
        device=resolve_device(args.device),
        out_dir=args.out_dir,
        stale_checkpoint=args.stale_checkpoint,
    )
    print(f"{args.genotype}: test top-1 {result['test_acc']:.4f} after {result['epochs']} epochs")


def _cmd_export_table(args: argparse.Namespace) -> None:
    from ddpnas.nasbench import export_table, load_bench

    bench = load_bench(args.source, backend=args.backend)
    export_table(bench, args.out, indices=args.indices)
    print(f"wrote {args.out}")


def _cmd_lookup(args: argparse.Namespace) -> None:
    from ddpnas.config import load_config
    from ddpnas.nasbench import load_bench

    data = load_config(args.config)["data"] if Path(args.config).exists() else {}
    bench = load_bench(args.source, data=data)
    key: int | str = int(args.arch) if args.arch.isdigit() else args.arch
    print(
        json.dumps(
            {
                "index": bench.index_of(bench.arch_str(key) if isinstance(key, int) else key),
                **bench.query(key, hp=args.hp),
            },
            indent=2,
        )
    )


def _cmd_nb201_table(args: argparse.Namespace) -> None:
    from ddpnas.nasbench import load_bench
    from ddpnas.report.tables import load_runs, nb201_display, nb201_rows, provenance, write_table

    _writable_stem(args.out)
    runs = load_runs(args.runs)
    bench = load_bench(args.bench, data=_json_arg(args.data, "--data"))
    df = nb201_rows(runs, bench)
    release = bench.version("cifar10_test_acc")
    write_table(
        df,
        nb201_display(df),
        args.out,
        f"NAS-Bench-201: searched cells (200-epoch figures, mean ± std and SE over seeds; ours and "
        f"the optimum from {release}, published rows from NAS-Bench-201 v1.0; one release per row)",
        notes=[*provenance(runs), UNCHECKED_NOTE],
    )


UNCHECKED_NOTE = (
    "[unchecked] marks published figures not yet read in their source: treat them as "
    "approximate. Our rows look the searched cell up with the 200-epoch figures."
)


def _cmd_cifar10_table(args: argparse.Namespace) -> None:
    from ddpnas.report.tables import (
        RETRAIN_KEYS,
        cifar10_display,
        cifar10_rows,
        load_runs,
        write_table,
    )
    from ddpnas.spaces.darts_genotype import Genotype

    _writable_stem(args.out)
    searches, retrains = load_runs(args.searches), load_runs(args.retrains, RETRAIN_KEYS)
    if len(searches) != len(retrains):
        raise DDPNASError("--searches and --retrains must pair up (same length, same order)")
    df = cifar10_rows(searches, retrains)
    notes = [
        f"**{s['experiment']}** seed {s['seed']}: `{Genotype.from_record(s['genotype'])}`; "
        f"retrained {r['epochs']} epochs on {r['train_images']} images, "
        f"tested on {r['test_images']}; "
        f"{r['environment']['hardware']}, torch {r['environment']['torch']}."
        for s, r in zip(searches, retrains, strict=True)
    ]
    write_table(
        df,
        cifar10_display(df),
        args.out,
        "CIFAR-10 (DARTS cell space): test error of retrained cells",
        notes=notes,
    )


def _cmd_theta_plot(args: argparse.Namespace) -> None:
    import matplotlib.pyplot as plt

    from ddpnas.report.plots import theta_figure
    from ddpnas.report.tables import load_runs
    from ddpnas.utils import ensure_writable

    suffix = Path(args.out).suffix.lower().lstrip(".")
    formats = sorted(plt.figure().canvas.get_supported_filetypes())
    plt.close("all")
    if suffix and suffix not in formats:
        raise DDPNASError(
            f"--out {args.out}: matplotlib cannot write .{suffix} images; use one of "
            + ", ".join(f".{f}" for f in formats)
        )
    ensure_writable(args.out, "--out")
    (run,) = load_runs([args.run])
    if not run["history"] or any("theta" not in h.get("state", {}) for h in run["history"]):
        raise DDPNASError(
            f"{args.run} ({run['strategy']}) logs no theta; theta-plot shows ddpnas, darts or "
            "enas searches"
        )
    theta_figure(run, args.out)


def _cmd_launch(args: argparse.Namespace) -> None:
    from ddpnas.launch import launch

    command = args.command_args[1:] if args.command_args[:1] == ["--"] else args.command_args
    if not command:
        raise DDPNASError("ddpnas launch needs the command to run after --, e.g. -- retrain ...")
    launch(args.gpus_per_node, command)


def _cmd_bound(args: argparse.Namespace) -> None:
    from ddpnas.config import schema, validate
    from ddpnas.nasbench import load_bench
    from ddpnas.report.bound_report import run_bound_report

    block = _json_arg(args.bound, "--bound")
    if args.seeds is not None:
        block["seeds"] = args.seeds
    bound_schema = schema()["properties"]["report"]["properties"]["bound"]
    block = validate(block, bound_schema, where="report.bound")
    bench = load_bench(args.bench, data=_json_arg(args.data, "--data"))
    df = run_bound_report(block, bench, args.out, args.figures)
    worst = df[df["successive_rejects_exceeded"] | df["hoeffding_exceeded"]]
    print(
        f"wrote {args.out}.{{csv,md,tex}} and figures in {args.figures}: {len(df)} settings, "
        f"{len(worst)} with a bound exceeded"
    )


def _cmd_ranking(args: argparse.Namespace) -> None:
    from ddpnas.nasbench import load_bench
    from ddpnas.report import ranking
    from ddpnas.report.tables import load_runs
    from ddpnas.utils import resolve_device

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = _json_arg(args.data, "--data")
    runs = load_runs(args.runs)
    cells, summary, edges = ranking.ranking_report(
        runs,
        args.supernets,
        data,
        load_bench(args.bench, data=data),
        cells=args.cells,
        sample_seed=args.sample_seed,
        top_k=args.top_k,
        resamples=args.bootstrap,
        device=resolve_device(args.device),
    )
    ranking.write_ranking(runs, cells, summary, edges, args)


def _cmd_costs(args: argparse.Namespace) -> None:
    from ddpnas.report import costs
    from ddpnas.report.tables import RETRAIN_KEYS, load_runs, write_table

    jobs = costs.search_jobs(load_runs(args.searches), args.search_benchmarks)
    if args.retrains:
        jobs += costs.retrain_jobs(
            load_runs(args.retrains, RETRAIN_KEYS),
            load_runs(args.retrain_searches),
            args.retrain_benchmarks,
        )
    df = costs.cost_rows(jobs)
    write_table(
        df,
        costs.cost_display(df),
        args.out,
        "Cost per method and stage (mean over seeds) beside the published search costs",
        notes=[
            "Wall = the job's process wall time from its record; device-hours = wall x devices "
            "(GPU-hours only when a GPU ran the job). Benchmark = Snakemake's benchmark file of "
            f"the same job (second source; they must agree within {costs.AGREEMENT:.0%}). "
            "Simulated = the NAS-Bench-201 training time a tabular search charged (not spent).",
        ],
    )


def _cmd_estimate(args: argparse.Namespace) -> None:
    from ddpnas.config import load_config
    from ddpnas.report.estimate import estimate, estimate_text

    print(estimate_text(estimate(load_config(args.config)), args.config))


def _cmd_timing(args: argparse.Namespace) -> None:
    from ddpnas.report import timing
    from ddpnas.report.tables import write_table

    jobs = timing.read_benchmarks(args.benchmarks)
    df = timing.timing_rows(jobs)
    title = "Where the pipeline's time goes: wall time per rule and experiment"
    notes = timing.timing_notes(df, timing.span_seconds(jobs), args.cores)
    write_table(df, timing.timing_display(df), args.out, title, notes=notes)
    print(f"{args.out}.md: {len(df)} rules/experiments, {df['wall_s'].sum():.0f} s of job time")


def _cmd_readme(args: argparse.Namespace) -> None:
    from ddpnas.report import readme
    from ddpnas.report.tables import load_runs

    records = args.records or sorted(Path(args.tables).parent.glob("search/*/seed*.json"))
    runs = load_runs(records, ("experiment", "seed", "environment"))
    block = readme.render(args.tables, runs, args.config)
    fresh = readme.update(args.readme, block, check=args.check)
    print(f"{args.readme}: results section {'up to date' if fresh else 'regenerated'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddpnas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run one search experiment for one seed (or many)")
    source = search.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML config; with --experiment")
    source.add_argument("--spec", help="the experiment block as JSON (what the pipeline passes)")
    search.add_argument("--experiment", required=True, help="experiment name (searches.<name>)")
    search.add_argument("--data", help="the data block as JSON (with --spec)")
    which = search.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int)
    which.add_argument(
        "--seeds",
        help="tabular experiments: many seeds in this one process, e.g. 0-199 or 0,1,2; "
        "--out is then a pattern with {seed} (and optionally {exp})",
    )
    search.add_argument("--out", required=True, help="search record (JSON), or a pattern")
    search.add_argument("--checkpoint", help="checkpoint file; resumed from when it exists")
    add_stale_checkpoint(search)
    search.add_argument("--device", choices=["auto", "cpu", "cuda"])
    search.add_argument("--threads", type=int)
    search.add_argument(
        "--supernet-out", help="weight sharing: write the final supernet weights here (.pt)"
    )
    search.set_defaults(func=_cmd_search)

    genotype = sub.add_parser("genotype", help="the DARTS genotype of a DARTS-space search record")
    genotype.add_argument("--record", required=True, help="search record (JSON)")
    genotype.add_argument("--out", required=True, help="genotype file (JSON)")
    genotype.set_defaults(func=_cmd_genotype)

    retrain = sub.add_parser("retrain", help="retrain a DARTS genotype from scratch on CIFAR-10")
    retrain.add_argument(
        "--genotype",
        required=True,
        help="genotype file: JSON from 'ddpnas genotype', or DARTS's Genotype(...) text",
    )
    retrain.add_argument("--retrain", help="the config's retrain block as JSON (network, protocol)")
    retrain.add_argument("--data", help="the config's data block as JSON")
    retrain.add_argument("--seed", type=int, default=0)
    retrain.add_argument("--out-dir", required=True, help="metrics.csv, result.json, checkpoint")
    add_stale_checkpoint(retrain)
    retrain.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    retrain.add_argument("--threads", type=int)
    retrain.set_defaults(func=_cmd_retrain)

    launcher = sub.add_parser(
        "launch", help="run a ddpnas command once per GPU: torchrun, across SLURM nodes if any"
    )
    launcher.add_argument("--gpus-per-node", type=int, required=True)
    launcher.add_argument("command_args", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    launcher.set_defaults(func=_cmd_launch)

    nb201 = sub.add_parser("nb201", help="NAS-Bench-201 utilities").add_subparsers(
        dest="nb201_command", required=True
    )
    export = nb201.add_parser("export-table", help="write the compact table from an official file")
    export.add_argument("--source", required=True, help="NATS-tss dir or NAS-Bench-201 .pth")
    export.add_argument("--backend", default="auto", choices=["auto", "nats", "nas201", "table"])
    export.add_argument("--out", required=True, help="output .csv or .csv.gz")
    export.add_argument("--indices", type=int, nargs="+", help="only these indices")
    export.set_defaults(func=_cmd_export_table)
    lookup = nb201.add_parser("lookup", help="print the metrics of one architecture")
    lookup.add_argument("arch", help="official string or index")
    lookup.add_argument("--source", help="benchmark file (default: as the pipeline finds it)")
    lookup.add_argument("--config", default=DEFAULT_CONFIG, help="config whose data block is used")
    lookup.add_argument("--hp", default="200", choices=["200", "12"])
    lookup.set_defaults(func=_cmd_lookup)

    report = sub.add_parser("report", help="tables and figures").add_subparsers(
        dest="report_command", required=True
    )
    table = report.add_parser("nb201-table", help="NAS-Bench-201 table of searched cells")
    table.add_argument("--runs", nargs="+", required=True, help="search records (JSON)")
    table.add_argument("--bench", help="benchmark file used for the lookups")
    table.add_argument("--data", help="the config's data block as JSON (locates the benchmark)")
    table.add_argument("--out", required=True, help="output stem; writes .csv, .md and .tex")
    table.set_defaults(func=_cmd_nb201_table)
    c10 = report.add_parser("cifar10-table", help="CIFAR-10 table of retrained DARTS cells")
    c10.add_argument("--searches", nargs="+", required=True, help="search records (JSON)")
    c10.add_argument("--retrains", nargs="+", required=True, help="retrain result.json files")
    c10.add_argument("--out", required=True, help="output stem; writes .csv, .md and .tex")
    c10.set_defaults(func=_cmd_cifar10_table)
    theta = report.add_parser("theta-plot", help="theta over epochs with pruning events")
    theta.add_argument("--run", required=True, help="one search record (JSON)")
    theta.add_argument("--out", required=True, help="output image (.png, .pdf, .svg)")
    theta.set_defaults(func=_cmd_theta_plot)
    bound = report.add_parser("bound", help="failure bounds vs Monte-Carlo of DDPNAS; figures")
    bound.add_argument("--out", required=True, help="table stem; writes .csv/.md/.tex and _cost.*")
    bound.add_argument("--figures", required=True, help="folder for bound_{T,epochs,cost}.png")
    bound.add_argument("--seeds", type=int, help="Monte-Carlo replicates per setting (override)")
    bound.add_argument("--bound", help="the config's report.bound block as JSON (default: schema)")
    bound.add_argument("--data", help="the config's data block as JSON (locates the benchmark)")
    bound.add_argument("--bench", help="NAS-Bench-201 file (default: located from --data)")
    bound.set_defaults(func=_cmd_bound)

    from ddpnas.imagenet_cli import add_parsers as add_imagenet_parsers

    add_imagenet_parsers(sub)

    from ddpnas.generate_cli import add_parser as add_generate

    add_generate(sub)

    rank = report.add_parser("ranking", help="supernet ranking of NAS-Bench-201 cells vs the table")
    rank.add_argument("--runs", nargs="+", required=True, help="weight-sharing search records")
    rank.add_argument("--supernets", nargs="+", required=True, help="their --supernet-out files")
    rank.add_argument("--data", help="the config's data block as JSON")
    rank.add_argument("--bench", help="benchmark file used for the lookups")
    rank.add_argument("--cells", type=int, default=30, help="stratified sample size")
    rank.add_argument("--sample-seed", type=int, default=0)
    rank.add_argument("--top-k", type=int, default=10)
    rank.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    rank.add_argument("--out", required=True, help="table stem; writes .csv/.md/.tex (+ _edges)")
    rank.add_argument("--figure", required=True, help="scatter plot (.png, .pdf, .svg)")
    rank.add_argument("--cells-out", help="CSV of every scored cell")
    rank.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    rank.add_argument("--threads", type=int)
    rank.set_defaults(func=_cmd_ranking)
    costs = report.add_parser("costs", help="device-hours per method and stage vs published")
    costs.add_argument("--searches", nargs="+", required=True, help="search records (JSON)")
    costs.add_argument(
        "--search-benchmarks", nargs="+", required=True, help="their Snakemake benchmark TSVs"
    )
    costs.add_argument("--retrains", nargs="*", default=[], help="retrain result.json files")
    costs.add_argument("--retrain-searches", nargs="*", default=[], help="their search records")
    costs.add_argument("--retrain-benchmarks", nargs="*", default=[], help="their benchmark TSVs")
    costs.add_argument("--out", required=True, help="output stem; writes .csv, .md and .tex")
    costs.set_defaults(func=_cmd_costs)
    est = report.add_parser("estimate", help="estimated GPU-hours of a config, per stage")
    est.add_argument("--config", required=True, help="YAML config (e.g. config/paper.yaml)")
    est.set_defaults(func=_cmd_estimate)
    timing = report.add_parser("timing", help="wall time per rule from Snakemake's benchmarks")
    timing.add_argument("--benchmarks", default="results/benchmarks", help="benchmark TSV folder")
    timing.add_argument("--cores", type=int, help="--cores of that run")
    timing.add_argument("--out", required=True, help="output stem; writes .csv, .md and .tex")
    timing.set_defaults(func=_cmd_timing)
    readme = report.add_parser("readme", help="regenerate the README's results section")
    readme.add_argument("--tables", default="results/tables", help="folder of *.md tables")
    readme.add_argument("--readme", default="README.md")
    readme.add_argument("--config", default="config/config.yaml", help="config the run used")
    readme.add_argument(
        "--records", nargs="*", help="search records (default: <tables>/../search/*/seed*.json)"
    )
    readme.add_argument(
        "--check", action="store_true", help="exit non-zero when the README differs; write nothing"
    )
    readme.set_defaults(func=_cmd_readme)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; user errors print one clear line and exit 2 without a traceback.

    Run as a program (``argv`` None: the console script, ``python -m``, torchrun), the process
    ends right after the command: every output is already written atomically, and skipping the
    interpreter's teardown of torch (0.5-1 s of CPU) keeps a job's wall time what its record says
    (the cost table checks it against Snakemake's benchmark within 10 %).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        _check_numbers(args)
        args.func(args)
        code = 0
    except DDPNASError as exc:
        print(f"ddpnas: error: {exc}", file=sys.stderr)
        code = 2
    if argv is None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""``ddpnas report ...``: the tables, figures and README section the pipeline's last stage writes.

Each command imports what it needs when it runs, so starting the CLI stays cheap.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ddpnas.cli.args import add_runtime, declare_outputs, json_object, table_outputs
from ddpnas.errors import DDPNASError
from ddpnas.io.locks import Output


def _cmd_nb201_table(args: argparse.Namespace) -> None:
    from ddpnas.nasbench.files import load_bench
    from ddpnas.report.tables import (
        DECISION_NOTE,
        DISCONNECTED_NOTE,
        QUERIES_NOTE,
        load_runs,
        nb201_display,
        nb201_rows,
        provenance,
        write_table,
    )

    runs = load_runs(args.runs)
    bench = load_bench(args.bench, data=json_object(args.data, "--data"))
    df = nb201_rows(runs, bench)
    release = bench.version("cifar10_test_acc")
    write_table(
        df,
        nb201_display(df),
        args.out,
        f"NAS-Bench-201: searched cells (200-epoch figures, mean ± std and SE over seeds; ours and "
        f"the optimum from {release}, published rows from NAS-Bench-201 v1.0; one release per row)",
        notes=[
            *provenance(runs),
            UNCHECKED_NOTE,
            SEARCH_DATA_NOTE,
            QUERIES_NOTE,
            DECISION_NOTE,
            DISCONNECTED_NOTE,
        ],
    )


SEARCH_DATA_NOTE = (
    "Our rows are grouped by the dataset whose validation accuracy steered the search "
    "(Searched on; weight-sharing searches train and validate on CIFAR-10's cifar10-valid split); "
    "every found cell is then looked up on all three datasets. The table holds simulated "
    "training times for cifar10-valid only, so a search on CIFAR-100 or ImageNet16-120 is "
    "budgeted in queries: its CIFAR-10 run's mean number of used queries (Protocol column)."
)
UNCHECKED_NOTE = (
    "[unchecked] marks published figures not yet read in their source: treat them as "
    "approximate. Our rows look the searched cell up with the 200-epoch figures."
)


def _cmd_searches_table(args: argparse.Namespace) -> None:
    from ddpnas.report.search_table import search_display, search_rows
    from ddpnas.report.tables import DECISION_NOTE, load_runs, provenance, write_table

    runs = load_runs(args.runs)
    df = search_rows(runs)
    title = f"{args.title} (the search's own validation accuracy; mean ± std and SE over seeds)"
    write_table(df, search_display(df), args.out, title, notes=[*provenance(runs), DECISION_NOTE])


def _cmd_cifar10_table(args: argparse.Namespace) -> None:
    from ddpnas.report.tables import (
        DECISION_NOTE,
        RETRAIN_KEYS,
        cifar10_display,
        cifar10_rows,
        load_runs,
        write_table,
    )
    from ddpnas.spaces.darts.genotype import Genotype

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
        notes=[*notes, DECISION_NOTE],
    )


def _cmd_theta_plot(args: argparse.Namespace) -> None:
    import matplotlib.pyplot as plt

    from ddpnas.report.plots import theta_figure
    from ddpnas.report.tables import load_runs

    suffix = Path(args.out).suffix.lower().lstrip(".")
    formats = sorted(plt.figure().canvas.get_supported_filetypes())
    plt.close("all")
    if suffix and suffix not in formats:
        raise DDPNASError(
            f"--out {args.out}: matplotlib cannot write .{suffix} images; use one of "
            + ", ".join(f".{f}" for f in formats)
        )
    (run,) = load_runs([args.run])
    if not run["history"] or any("theta" not in h.get("state", {}) for h in run["history"]):
        raise DDPNASError(
            f"{args.run} ({run['strategy']}) logs no theta; theta-plot shows ddpnas, darts or "
            "enas searches"
        )
    theta_figure(run, args.out)


def _cmd_bound(args: argparse.Namespace) -> None:
    from ddpnas.config.load import validate
    from ddpnas.config.report import Bound
    from ddpnas.nasbench.files import load_bench
    from ddpnas.report.bound_tables import run_bound_report

    block = json_object(args.bound, "--bound")
    if args.seeds is not None:
        block["seeds"] = args.seeds
    block = validate(block, Bound, where="report.bound")
    bench = load_bench(args.bench, data=json_object(args.data, "--data"))
    df = run_bound_report(block, bench, args.out, args.figures)
    worst = df[df["successive_rejects_exceeded"] | df["hoeffding_exceeded"]]
    print(
        f"wrote {args.out}.{{csv,md,tex}} and figures in {args.figures}: {len(df)} settings, "
        f"{len(worst)} with a bound exceeded"
    )


def _cmd_ranking(args: argparse.Namespace) -> None:
    from ddpnas.nasbench.files import load_bench
    from ddpnas.report import ranking
    from ddpnas.report.ranking_tables import write_ranking
    from ddpnas.report.tables import load_runs
    from ddpnas.runtime import resolve_device

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = json_object(args.data, "--data")
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
    write_ranking(runs, cells, summary, edges, args)


def _cmd_costs(args: argparse.Namespace) -> None:
    from ddpnas.report import cost_table as costs
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
    from ddpnas.config.load import load_config
    from ddpnas.io.files import atomic_write, ensure_writable
    from ddpnas.report.estimate import check_memory, estimate, estimate_text

    ensure_writable(args.out, "--out")
    config = load_config(args.config)
    if args.gpu_memory_gib is not None:
        config["gpu_memory_gib"] = args.gpu_memory_gib
    df = estimate(config)
    text = estimate_text(df, config, args.config)
    if args.check_memory:
        check_memory(df, config.get("gpu_memory_gib"))
    if args.out:
        atomic_write(args.out, lambda tmp: tmp.write_text(text + "\n"))
    print(text)


def _cmd_timing(args: argparse.Namespace) -> None:
    from ddpnas.report import timing
    from ddpnas.report.tables import write_table

    jobs = timing.read_benchmarks(args.benchmarks)
    df = timing.timing_rows(jobs)
    title = "Where the pipeline's time goes: wall time per rule and experiment"
    notes = timing.timing_notes(df, timing.span_seconds(jobs), args.cores)
    write_table(df, timing.timing_display(df), args.out, title, notes=notes)
    print(f"{args.out}.md: {len(df)} rules/experiments, {df['wall_s'].sum():.0f} s of job time")


def _readme_outputs(args: argparse.Namespace) -> list[Output]:
    """The README (not with --check) and, with --run, the snapshot folder it copies into."""
    if args.check:
        return []
    snapshot = [Output("--snapshot", args.snapshot, is_dir=True)] if args.run else []
    return [Output("--readme", args.readme), *snapshot]


def _cmd_readme(args: argparse.Namespace) -> None:
    from ddpnas.report import readme

    readme.check_markers(args.readme)
    if args.run:
        if args.check:
            raise DDPNASError(
                "--check compares the README with the committed --snapshot; leave out --run"
            )
        readme.write_snapshot(args.run, args.snapshot, args.config)
        print(f"{args.snapshot}: the tables of {args.run}")
    link = readme.readme_link(args.snapshot, args.readme)
    blocks = readme.render(args.snapshot, link), readme.runtime(args.snapshot, link)
    fresh = readme.update(args.readme, *blocks, check=args.check)
    print(f"{args.readme}: results section {'up to date' if fresh else 'regenerated'}")


def _command(
    report: argparse._SubParsersAction, name: str, about: str, func: Any, example: str
) -> argparse.ArgumentParser:
    """One ``report`` subcommand, its help and an example in its epilog."""
    parser = report.add_parser(
        name,
        help=about,
        description=about,
        epilog=f"example:\n  ddpnas report {name} {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def _out(parser: argparse.ArgumentParser, what: str = "writes .csv, .md and .tex") -> None:
    """``--out STEM`` of a command that writes one table (others declare more outputs)."""
    parser.add_argument("--out", required=True, help=f"output stem; {what}")
    declare_outputs(parser, lambda args: table_outputs(args.out))


def _bound_outputs(args: argparse.Namespace) -> list[Output]:
    from ddpnas.report.bound_tables import FIGURES

    figures = [Output("--figures", Path(args.figures) / name) for name in FIGURES.values()]
    return [*table_outputs(args.out), *table_outputs(f"{args.out}_cost"), *figures]


def _ranking_outputs(args: argparse.Namespace) -> list[Output]:
    return [
        *table_outputs(args.out),
        *table_outputs(f"{args.out}_edges"),
        Output("--figure", args.figure),
        Output("--cells-out", args.cells_out),
    ]


def _data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="the config's data block as JSON (locates the benchmark)")
    parser.add_argument("--bench", help="NAS-Bench-201 file (default: located from --data)")


def _table_parsers(report: argparse._SubParsersAction) -> None:
    runs = "--runs results/search/*/seed*.json"
    table = _command(
        report,
        "nb201-table",
        "NAS-Bench-201 table of searched cells",
        _cmd_nb201_table,
        f"{runs} --out results/tables/nb201",
    )
    table.add_argument("--runs", nargs="+", required=True, help="search records (JSON)")
    _data(table)
    _out(table)
    generic = _command(
        report,
        "searches-table",
        "table of searched architectures (any space)",
        _cmd_searches_table,
        "--runs results/search/darts-*/seed*.json --out t",
    )
    generic.add_argument("--runs", nargs="+", required=True, help="search records (JSON)")
    generic.add_argument("--title", default="Searched architectures", help="table title")
    _out(generic)
    c10 = _command(
        report,
        "cifar10-table",
        "CIFAR-10 table of retrained DARTS cells",
        _cmd_cifar10_table,
        "--searches s.json --retrains r/result.json --out results/tables/cifar10",
    )
    c10.add_argument("--searches", nargs="+", required=True, help="search records (JSON)")
    c10.add_argument("--retrains", nargs="+", required=True, help="retrain result.json files")
    _out(c10)
    theta = _command(
        report,
        "theta-plot",
        "theta over epochs with pruning events",
        _cmd_theta_plot,
        "--run results/search/nb201-ddpnas-ws/seed0.json --out theta.png",
    )
    theta.add_argument("--run", required=True, help="one search record (JSON)")
    theta.add_argument("--out", required=True, help="output image (.png, .pdf, .svg)")
    declare_outputs(theta, lambda args: [Output("--out", args.out)])


def _evidence_parsers(report: argparse._SubParsersAction) -> None:
    bound = _command(
        report,
        "bound",
        "failure bounds vs Monte-Carlo of DDPNAS; figures",
        _cmd_bound,
        "--out results/tables/bound --figures results/figures --seeds 100",
    )
    _out(bound, "writes .csv/.md/.tex and _cost.*")
    bound.add_argument("--figures", required=True, help="folder for bound_T.png and bound_cost.png")
    bound.add_argument("--seeds", type=int, help="Monte-Carlo replicates per setting (override)")
    bound.add_argument("--bound", help="the config's report.bound block as JSON (default: schema)")
    _data(bound)
    declare_outputs(bound, _bound_outputs)
    rank = _command(
        report,
        "ranking",
        "supernet ranking of NAS-Bench-201 cells vs the table",
        _cmd_ranking,
        "--runs r.json --supernets r.pt --out results/tables/nb201_ranking --figure f.png",
    )
    rank.add_argument("--runs", nargs="+", required=True, help="weight-sharing search records")
    rank.add_argument("--supernets", nargs="+", required=True, help="their --supernet-out files")
    _data(rank)
    rank.add_argument("--cells", type=int, default=30, help="stratified sample size")
    rank.add_argument("--sample-seed", type=int, default=0, help="seed of the cell sample")
    rank.add_argument("--top-k", type=int, default=10, help="k of the top-k overlap")
    rank.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    _out(rank, "writes .csv/.md/.tex (+ _edges)")
    rank.add_argument("--figure", required=True, help="scatter plot (.png, .pdf, .svg)")
    rank.add_argument("--cells-out", help="CSV of every scored cell")
    add_runtime(rank, device_default="auto")
    declare_outputs(rank, _ranking_outputs)
    costs = _command(
        report,
        "costs",
        "device-hours per method and stage vs published",
        _cmd_costs,
        "--searches s.json --search-benchmarks s.tsv --out results/tables/costs",
    )
    costs.add_argument("--searches", nargs="+", required=True, help="search records (JSON)")
    costs.add_argument(
        "--search-benchmarks", nargs="+", required=True, help="their Snakemake benchmark TSVs"
    )
    costs.add_argument("--retrains", nargs="*", default=[], help="retrain result.json files")
    costs.add_argument("--retrain-searches", nargs="*", default=[], help="their search records")
    costs.add_argument("--retrain-benchmarks", nargs="*", default=[], help="their benchmark TSVs")
    _out(costs)


def _run_parsers(report: argparse._SubParsersAction) -> None:
    est = _command(
        report,
        "estimate",
        "GPU-hours, peak memory per GPU and the paper plan of a config",
        _cmd_estimate,
        "--config config/paper.yaml",
    )
    est.add_argument("--config", required=True, help="YAML config (e.g. config/paper.yaml)")
    est.add_argument(
        "--check-memory",
        action="store_true",
        help="exit 2 naming every job whose peak memory per GPU exceeds gpu_memory_gib",
    )
    est.add_argument(
        "--gpu-memory-gib", type=float, help="GPU memory to check against (default: the config's)"
    )
    est.add_argument("--out", help="also write the estimate here (Markdown)")
    declare_outputs(est, lambda args: [Output("--out", args.out)] if args.out else [])
    timing = _command(
        report,
        "timing",
        "wall time per rule from Snakemake's benchmarks",
        _cmd_timing,
        "--out results/tables/timing --cores 2",
    )
    timing.add_argument("--benchmarks", default="results/benchmarks", help="benchmark TSV folder")
    timing.add_argument("--cores", type=int, help="--cores of that run")
    _out(timing)
    readme = _command(
        report,
        "readme",
        "regenerate the README's results section (from a committed copy of a run's tables)",
        _cmd_readme,
        "--run results/config  (then: ddpnas report readme --check)",
    )
    readme.add_argument(
        "--run",
        help="a finished run's folder (its tables/*.md and search/ records): copy them into "
        "--snapshot first; without it the section is rendered from --snapshot alone",
    )
    readme.add_argument(
        "--snapshot",
        default="results/reference/config",
        help="committed copy of the run's tables (and run.json, its provenance) that the "
        "section is generated from (default: %(default)s)",
    )
    readme.add_argument("--readme", default="README.md", help="the file whose section is written")
    readme.add_argument(
        "--config", default="config/config.yaml", help="config the run used (with --run)"
    )
    readme.add_argument(
        "--check",
        action="store_true",
        help="exit 2 when the README's section differs from --snapshot; write nothing",
    )
    declare_outputs(readme, _readme_outputs)


def add_parsers(report: argparse._SubParsersAction) -> None:
    """The ``report`` subcommands."""
    _table_parsers(report)
    _evidence_parsers(report)
    _run_parsers(report)

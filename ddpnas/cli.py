"""``ddpnas`` command line: the only entry point the Snakemake rules call."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ddpnas.errors import DDPNASError


def _json_arg(text: str | None, flag: str) -> dict:
    """Parse a JSON object given on the command line."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise DDPNASError(f"{flag} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DDPNASError(f"{flag} must be a JSON object")
    return value


def _cmd_search(args: argparse.Namespace) -> None:
    from ddpnas.config import load_config
    from ddpnas.experiment import run_experiment

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
    record = run_experiment(
        args.experiment,
        spec,
        seed=args.seed,
        out=args.out,
        checkpoint=args.checkpoint,
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
    from ddpnas.spaces.darts import Genotype
    from ddpnas.utils import atomic_write

    (record,) = load_runs([args.record])
    if "genotype" not in record:
        raise DDPNASError(
            f"{args.record} is a {record['space']} search; only DARTS-space searches have one"
        )
    text = str(Genotype.parse(record["genotype"])) + "\n"
    atomic_write(args.out, lambda tmp: tmp.write_text(text))


def _cmd_retrain(args: argparse.Namespace) -> None:
    import torch

    from ddpnas.config import schema, validate
    from ddpnas.data import load_cifar10, resolve_cache_dir, resolve_data_root
    from ddpnas.spaces.darts import DartsSpace, Genotype
    from ddpnas.train import RetrainConfig, retrain
    from ddpnas.utils import resolve_device

    try:
        genotype = Genotype.parse(Path(args.genotype).read_text())
    except OSError as exc:
        raise DDPNASError(f"cannot read genotype file {args.genotype}: {exc}") from None
    block = validate(
        _json_arg(args.retrain, "--retrain"), schema()["properties"]["retrain"], where="retrain"
    )
    data = _json_arg(args.data, "--data")
    if args.threads:
        torch.set_num_threads(args.threads)
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
    )
    print(f"{args.genotype}: test top-1 {result['test_acc']:.4f} after {result['epochs']} epochs")


def _cmd_export_table(args: argparse.Namespace) -> None:
    from ddpnas.nasbench import export_table, load_bench

    bench = load_bench(args.source, backend=args.backend)
    export_table(bench, args.out, indices=args.indices)
    print(f"wrote {args.out}")


def _cmd_lookup(args: argparse.Namespace) -> None:
    from ddpnas.nasbench import load_bench

    bench = load_bench(args.source)
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
    from ddpnas.experiment import nb201_source
    from ddpnas.nasbench import load_bench
    from ddpnas.report.tables import load_runs, nb201_display, nb201_rows, provenance, write_table

    runs = load_runs(args.runs)
    bench = load_bench(args.bench or nb201_source(_json_arg(args.data, "--data")))
    df = nb201_rows(runs, bench)
    write_table(
        df,
        nb201_display(df),
        args.out,
        "NAS-Bench-201: searched cells (200-epoch figures, mean ± std over seeds)",
        notes=[*provenance(runs), UNCHECKED_NOTE],
    )


UNCHECKED_NOTE = (
    "[unchecked] marks published figures not yet read in their source: treat them as "
    "approximate. Our rows look the searched cell up with the 200-epoch figures."
)


def _cmd_cifar10_table(args: argparse.Namespace) -> None:
    from ddpnas.report.tables import cifar10_display, cifar10_rows, load_runs, write_table

    searches, retrains = load_runs(args.searches), load_runs(args.retrains)
    if len(searches) != len(retrains):
        raise DDPNASError("--searches and --retrains must pair up (same length, same order)")
    df = cifar10_rows(searches, retrains)
    notes = [
        f"**{s['experiment']}** seed {s['seed']}: `{s['genotype']}`; retrained "
        f"{r['epochs']} epochs on {r['train_images']} images, tested on {r['test_images']}; "
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
    from ddpnas.report.plots import theta_figure
    from ddpnas.report.tables import load_runs

    theta_figure(load_runs([args.run])[0], args.out)


def _cmd_ranking(args: argparse.Namespace) -> None:
    from ddpnas.experiment import nb201_source
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
        load_bench(args.bench or nb201_source(data)),
        cells=args.cells,
        sample_seed=args.sample_seed,
        top_k=args.top_k,
        resamples=args.bootstrap,
        device=resolve_device(args.device),
    )
    ranking.write_ranking(runs, cells, summary, edges, args)


def _cmd_costs(args: argparse.Namespace) -> None:
    from ddpnas.report import costs
    from ddpnas.report.tables import load_runs, write_table

    jobs = costs.search_jobs(load_runs(args.searches), args.search_benchmarks)
    if args.retrains:
        jobs += costs.retrain_jobs(
            load_runs(args.retrains), load_runs(args.retrain_searches), args.retrain_benchmarks
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


def _cmd_readme(args: argparse.Namespace) -> None:
    from ddpnas.report import readme
    from ddpnas.report.tables import load_runs

    records = args.records or sorted(Path(args.tables).parent.glob("search/*/seed*.json"))
    block = readme.render(args.tables, load_runs(records), args.config)
    fresh = readme.update(args.readme, block, check=args.check)
    print(f"{args.readme}: results section {'up to date' if fresh else 'regenerated'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddpnas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run one search experiment for one seed")
    source = search.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML config; with --experiment")
    source.add_argument("--spec", help="the experiment block as JSON (what the pipeline passes)")
    search.add_argument("--experiment", required=True, help="experiment name (searches.<name>)")
    search.add_argument("--data", help="the data block as JSON (with --spec)")
    search.add_argument("--seed", type=int, required=True)
    search.add_argument("--out", required=True, help="search record (JSON)")
    search.add_argument("--checkpoint", help="checkpoint file; resumed from when it exists")
    search.add_argument("--device", choices=["auto", "cpu", "cuda"])
    search.add_argument("--threads", type=int)
    search.add_argument(
        "--supernet-out", help="weight sharing: write the final supernet weights here (.pt)"
    )
    search.set_defaults(func=_cmd_search)

    genotype = sub.add_parser("genotype", help="the DARTS genotype of a DARTS-space search record")
    genotype.add_argument("--record", required=True, help="search record (JSON)")
    genotype.add_argument("--out", required=True, help="genotype text file")
    genotype.set_defaults(func=_cmd_genotype)

    retrain = sub.add_parser("retrain", help="retrain a DARTS genotype from scratch on CIFAR-10")
    retrain.add_argument("--genotype", required=True, help="genotype text file")
    retrain.add_argument("--retrain", help="the config's retrain block as JSON (network, protocol)")
    retrain.add_argument("--data", help="the config's data block as JSON")
    retrain.add_argument("--seed", type=int, default=0)
    retrain.add_argument("--out-dir", required=True, help="metrics.csv, result.json, checkpoint")
    retrain.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    retrain.add_argument("--threads", type=int)
    retrain.set_defaults(func=_cmd_retrain)

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
    lookup.add_argument("--source", help="benchmark file (default: resolved as documented)")
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

"""``ddpnas`` command line: the only entry point the Snakemake rules call.

Each command group lives in its own module of :mod:`ddpnas.cli` and registers its parsers; the
modules import the heavy machinery (torch, scipy) inside the commands, so building the parser
and ``--help`` stay fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from ddpnas._version import __version__
from ddpnas.cli import generate, imagenet, nb201, report, retrain, search
from ddpnas.cli.args import check_numbers
from ddpnas.errors import DDPNASError
from ddpnas.io.locks import claim

EPILOG = """Each command has its own --help with an example. The pipeline (Snakemake) calls these
commands; run `snakemake --cores 2` from the repository root for the whole default run."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddpnas", description=__doc__.split("\n")[0], epilog=EPILOG
    )
    parser.add_argument("--version", action="version", version=f"ddpnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    search.add_parsers(sub)
    retrain.add_parsers(sub)
    nb201.add_parsers(sub)
    report_parser = sub.add_parser("report", help="tables and figures")
    report.add_parsers(report_parser.add_subparsers(dest="report_command", required=True))
    imagenet.add_parsers(sub)
    generate.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; user errors print one clear line and exit 2 without a traceback.

    A command that writes declares its outputs (``outputs``: a function of its arguments, see
    :func:`ddpnas.cli.args.declare_outputs`): they are checked and locked before it starts, and
    the locks (and their files) released when it ends, however it ends.

    Run as a program (``argv`` None: the console script, ``python -m``, torchrun), the process
    ends right after the command: every output is already written atomically, and skipping the
    interpreter's teardown of torch (0.5-1 s of CPU) keeps a job's wall time what its record says
    (the cost table checks it against Snakemake's benchmark within 10 %).
    """
    args = build_parser().parse_args(argv)
    if argv is None:  # a kill (scancel, a cancelled job) unwinds: temp files and locks are removed
        signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        check_numbers(args)
        with claim(args.outputs(args) if getattr(args, "outputs", None) else ()):
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

"""`ledger bench TARGET`: micro-benchmarks of the hot paths, one sub-command per target.

Each target is a module in `consumers.benchmarks` exposing `register(subparsers)`, so a new
target (e.g. `ledger bench ingest`) is one module and one line in BENCH_TARGETS.
"""

from __future__ import annotations

import argparse
import importlib

# Order here is the order of `ledger bench --help`.
BENCH_TARGETS: tuple[str, ...] = (
    "consumers.benchmarks.pricing", "consumers.benchmarks.ingest", "consumers.benchmarks.chain",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure the hot paths (e.g. `ledger bench pricing`)",
        description="Micro-benchmarks; each target prints its figures (or --json).",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for module_name in BENCH_TARGETS:
        importlib.import_module(module_name).register(targets)

"""`ledger bench [--json] [--size S]`: the real workload against raw baselines
(consumers/benchmarks/workload.py); `ledger bench TARGET`: micro-benchmarks of the hot paths,
one sub-command per target.

Each target is a module in `consumers.benchmarks` exposing `register(subparsers)`, so a new
target (e.g. `ledger bench ingest`) is one module and one line in BENCH_TARGETS.
"""

from __future__ import annotations

import argparse
import importlib

from consumers.benchmarks.workload import add_workload_arguments, run_workload

# Order here is the order of `ledger bench --help`.
BENCH_TARGETS: tuple[str, ...] = (
    "consumers.benchmarks.pricing", "consumers.benchmarks.ingest", "consumers.benchmarks.chain",
    "consumers.benchmarks.cost_updates", "consumers.benchmarks.parking",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure the real workload against raw baselines (or one hot path: TARGET)",
        description="Without TARGET: a simulated day through the running services, ingest,"
        " store writes, projection, stop latency and memory, each as a ratio over a raw"
        " baseline of the same run (starts no services). With TARGET: one micro-benchmark;"
        " each prints its figures (or --json).",
    )
    add_workload_arguments(parser)
    parser.set_defaults(handler=run_workload)
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=False)
    for module_name in BENCH_TARGETS:
        importlib.import_module(module_name).register(targets)

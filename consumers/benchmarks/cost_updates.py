"""What sending running costs to the CSMS (`SessionCostUpdated`) costs the write path.

The same simulated day is ingested with the tenants' cost updates on (as configured by the
simulator: a new figure once the cost moved by the step and the interval passed) and off
(`cost_update_step` 0), each into a fresh embedded store, alternating on/off `rounds` times;
the fastest run of each side is kept, so a busy machine moves both the same way. The figure:
`cost_updates_ratio` = messages/s with updates over messages/s without (1.0: free; the
target is >= 0.95, at most 5 % slower). `ledger ingest` runs the very handlers `ledger
consume` runs, and Kafka's share of a message is the same with or without updates, so the
consume path slows by no more than this ratio says; the relay's extra share is the updates
sent (`updates_sent`), each one outbox row like any other command.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

from consumers.cli import CliError
from consumers.commands.ingest import ingest_file, source_for
from consumers.event_file import write_event_file
from consumers.simulation.scenario import SESSIONS_MAX, SimulationOptions, simulate
from consumers.store import open_ledger
from projections.report import current_report

COST_UPDATE_TYPE = "SessionCostUpdated"
# The better of two runs per side already removes most of a busy 2-core machine's noise.
ROUNDS_DEFAULT = 2
SESSIONS_DEFAULT = 100
SIMULATION_SEED = 20261130


@dataclass(frozen=True, slots=True)
class CostUpdateRun:
    messages: int
    updates_sent: int
    seconds_with: float
    seconds_without: float
    cost_updates_ratio: float  # msgs/s with over msgs/s without


def without_cost_updates(lines: list[str]) -> list[str]:
    """The same day with every tenant's cost updates switched off (step 0)."""
    off = []
    for text in lines:
        line = json.loads(text)
        if line.get("type") == "TenantConfigured":
            line["event"]["cost_update_step"] = "0"
            text = json.dumps(line, sort_keys=True, separators=(",", ":"))
        off.append(text)
    return off


def measure_cost_updates(lines: list[str], work_dir: Path,
                         rounds: int = ROUNDS_DEFAULT) -> CostUpdateRun:
    """Ingest `lines` with and without cost updates, `rounds` times each, alternating."""
    sides = {"with": lines, "without": without_cost_updates(lines)}
    best = {side: float("inf") for side in sides}
    updates = {side: 0 for side in sides}
    for number in range(rounds):
        for side, side_lines in sides.items():
            seconds, updates[side] = _ingest(side_lines, work_dir / f"{side}-{number}")
            best[side] = min(best[side], seconds)
    if updates["without"]:
        raise AssertionError(f"{updates['without']} cost updates with the updates switched off")
    return CostUpdateRun(
        messages=len(lines), updates_sent=updates["with"],
        seconds_with=round(best["with"], 3), seconds_without=round(best["without"], 3),
        cost_updates_ratio=round(best["without"] / best["with"], 3),
    )


def _ingest(lines: list[str], directory: Path) -> tuple[float, int]:
    directory.mkdir(parents=True)
    path = directory / "day.jsonl"
    write_event_file(path, lines)
    with closing(open_ledger(f"sqlite:///{directory / 'store.db'}")) as ledger:
        started_s = time.perf_counter()
        ingest_file(ledger, path, source_for(path))
        seconds = time.perf_counter() - started_s
        sent = current_report(ledger)["outbound_commands"]["by_type"].get(COST_UPDATE_TYPE, 0)
    return seconds, int(sent)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cost-updates", help="what sending running costs to the CSMS costs the write path",
        description="Ingest a simulated day into fresh embedded stores with the tenants' cost"
        " updates on and off, alternating, and print msgs/s with over msgs/s without"
        " (cost_updates_ratio; >= 0.95 means at most 5 %% slower).",
    )
    parser.add_argument("--sessions", type=int, default=SESSIONS_DEFAULT,
                        help=f"sessions of the simulated day (default {SESSIONS_DEFAULT})")
    parser.add_argument("--rounds", type=int, default=ROUNDS_DEFAULT,
                        help=f"ingests per side, alternating (default {ROUNDS_DEFAULT})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.sessions <= SESSIONS_MAX:
        raise CliError(f"--sessions must be 1..{SESSIONS_MAX}, got {args.sessions}")
    if args.rounds < 1:
        raise CliError(f"--rounds must be at least 1, got {args.rounds}")
    lines = simulate(SimulationOptions(sessions=args.sessions, seed=SIMULATION_SEED)).lines
    with tempfile.TemporaryDirectory(prefix="ledger-bench-cost-updates-") as work:
        result = measure_cost_updates(lines, Path(work), args.rounds)
    if args.json:
        print(json.dumps(asdict(result), sort_keys=True))
    else:
        print(f"ledger bench cost-updates: {result.messages} messages, {result.updates_sent}"
              f" cost updates sent; {result.seconds_with:.2f} s with, {result.seconds_without:.2f}"
              f" s without: cost_updates_ratio {result.cost_updates_ratio}")
    return 0

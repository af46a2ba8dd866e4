"""What sending running costs to the CSMS (`SessionCostUpdated`) costs the write path.

The same simulated day is ingested with the tenants' cost updates on (as configured by the
simulator: a new figure once the cost moved by the step and the interval passed) and off
(`cost_update_step` 0), each into a fresh embedded store, alternating on/off `rounds` times;
the fastest run of each side is kept, so a busy machine moves both the same way. The figure:
`cost_updates_ratio` = messages/s with updates over messages/s without (1.0: free; the
target is >= 0.95, at most 5 % slower); `cost_updates_cpu_ratio` the same in process CPU
seconds (steadier when other work shares the machine). `ledger ingest` runs the very
handlers `ledger consume` runs, and Kafka's share of a message is the same with or without
updates, so the consume path slows by no more than this ratio says; the relay's extra share
is the updates sent (`updates_sent`), each one outbox row like any other command.

With `--instructions` it also counts what no other process on the machine can move: the
instructions of the same ingest at `--instruction-sessions` sessions (default 30), each side
in a fresh process under `valgrind --tool=callgrind` (valgrind is not a dependency of the
project: `apt-get install valgrind`), less the instructions of the same process stopped
just before the ingest (imports, simulation, the day written out).
`cost_updates_instruction_ratio` = instructions without over with (>= 0.95: at most 5 %
more work per message).

With `--end-to-end` it also runs what the issue asks for through the running services (as
`ledger bench` does: a scratch database and fresh topics per run, consumers/benchmarks/
day.py): the simulated day through consume/relay/project/psp-simulator and then the stop
latencies, once with the tenants' cost updates on and once off, alternating `rounds` times.
`end_to_end_cost_ratio` = the ledger's msgs/s of the day with updates over without (the raw
read of the same records is the same either way, so this is end_to_end_ratio with over
without, free of the raw read's own noise); `stop_latency_cost_ratio` = stop p99 without over
with (the meter update that stops a session then also sends a cost update, ahead of the
stop). Both >= 0.95 mean at most 5 % worse.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

from consumers.benchmarks.day import DayRun, without_cost_updates
from consumers.benchmarks.stack import child_env
from consumers.benchmarks.workload import add_service_arguments, checked_services, day_on_scratch
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
STOP_SAMPLES_DEFAULT = 50  # as `ledger bench` at its default size
# Under callgrind a 30-session ingest takes a few minutes on a 2-core machine; more adds
# time, not precision (instructions do not vary between runs).
INSTRUCTION_SESSIONS_DEFAULT = 30
INSTRUCTION_RUN_DEADLINE_S = 1_800
INSTRUCTION_MODES = ("setup", "with", "without")
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")
# What each callgrind run executes: the day ingested (or not, for `setup`) by a fresh process.
_INSTRUCTION_PROGRAM = ("import sys; from consumers.benchmarks.cost_updates import"
                        " ingest_for_instructions as run; run(sys.argv[1], int(sys.argv[2]))")


@dataclass(frozen=True, slots=True)
class CostUpdateRun:
    messages: int
    updates_sent: int
    seconds_with: float
    seconds_without: float
    cost_updates_ratio: float  # msgs/s with over msgs/s without
    # The same in process CPU seconds: the steadier figure when other work shares the
    # machine (it leaves out the waits for the disk, which wall seconds include).
    cpu_seconds_with: float
    cpu_seconds_without: float
    cost_updates_cpu_ratio: float


def measure_cost_updates(lines: list[str], work_dir: Path,
                         rounds: int = ROUNDS_DEFAULT) -> CostUpdateRun:
    """Ingest `lines` with and without cost updates, `rounds` times each, alternating."""
    sides = {"with": lines, "without": without_cost_updates(lines)}
    best = {side: _Ingested(float("inf"), float("inf"), 0) for side in sides}
    for number in range(rounds):
        for side, side_lines in sides.items():
            run = _ingest(side_lines, work_dir / f"{side}-{number}")
            best[side] = _Ingested(min(best[side].seconds, run.seconds),
                                   min(best[side].cpu_seconds, run.cpu_seconds), run.sent)
    with_updates, without = best["with"], best["without"]
    if without.sent:
        raise AssertionError(f"{without.sent} cost updates with the updates switched off")
    return CostUpdateRun(
        messages=len(lines), updates_sent=with_updates.sent,
        seconds_with=round(with_updates.seconds, 3), seconds_without=round(without.seconds, 3),
        cost_updates_ratio=round(without.seconds / with_updates.seconds, 3),
        cpu_seconds_with=round(with_updates.cpu_seconds, 3),
        cpu_seconds_without=round(without.cpu_seconds, 3),
        cost_updates_cpu_ratio=round(without.cpu_seconds / with_updates.cpu_seconds, 3),
    )


@dataclass(frozen=True, slots=True)
class EndToEndCost:
    end_to_end_ratio_with: float
    end_to_end_ratio_without: float
    end_to_end_cost_ratio: float  # ledger msgs/s of the day with updates over without
    stop_latency_p99_ms_with: float | None
    stop_latency_p99_ms_without: float | None
    stop_latency_cost_ratio: float | None  # stop p99 without over with
    day_with: DayRun  # the fastest day of each side
    day_without: DayRun


def measure_end_to_end(args: argparse.Namespace, store_url: str, work_dir: Path
                       ) -> EndToEndCost:
    """The day and the stops through the running services, updates off and on, alternating
    `args.rounds` times; each side's fastest day and lowest stop p99 are kept."""
    days: dict[bool, list[DayRun]] = {True: [], False: []}
    for number in range(args.rounds):
        for on in (False, True):
            logs = work_dir / f"{'with' if on else 'without'}-{number}"
            days[on].append(day_on_scratch(args, store_url, args.sessions, logs,
                                           args.stop_samples, cost_updates=on))
    if any(run.cost_updates_sent for run in days[False]) or not all(
            run.cost_updates_sent for run in days[True]):
        raise AssertionError("cost updates sent: with "
                             f"{[r.cost_updates_sent for r in days[True]]}, without "
                             f"{[r.cost_updates_sent for r in days[False]]}")
    fastest = {on: max(runs, key=lambda run: run.ledger_msgs_per_s)
               for on, runs in days.items()}
    p99 = {on: min((run.stop_latency.p99_ms for run in runs if run.stop_latency), default=None)
           for on, runs in days.items()}
    p99_with, p99_without = p99[True], p99[False]
    return EndToEndCost(
        end_to_end_ratio_with=fastest[True].end_to_end_ratio,
        end_to_end_ratio_without=fastest[False].end_to_end_ratio,
        end_to_end_cost_ratio=round(
            fastest[True].ledger_msgs_per_s / fastest[False].ledger_msgs_per_s, 3),
        stop_latency_p99_ms_with=p99_with, stop_latency_p99_ms_without=p99_without,
        stop_latency_cost_ratio=(None if p99_with is None or p99_without is None
                                 else round(p99_without / p99_with, 3)),
        day_with=fastest[True], day_without=fastest[False],
    )


@dataclass(frozen=True, slots=True)
class InstructionCount:
    sessions: int
    instructions_setup: int  # imports, the simulation, the day written: the same both sides
    instructions_with: int  # the ingest alone, updates on
    instructions_without: int
    cost_updates_instruction_ratio: float  # without over with


def measure_instructions(sessions: int) -> InstructionCount:
    """The ingest's instructions with and without updates, each side a fresh process under
    callgrind, the set-up's own count subtracted."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise CliError("--instructions needs valgrind on the PATH (apt-get install valgrind)")
    counts = {mode: _instructions(valgrind, mode, sessions) for mode in INSTRUCTION_MODES}
    setup = counts["setup"]
    with_updates, without = counts["with"] - setup, counts["without"] - setup
    return InstructionCount(
        sessions=sessions, instructions_setup=setup, instructions_with=with_updates,
        instructions_without=without,
        cost_updates_instruction_ratio=round(without / with_updates, 3),
    )


def _instructions(valgrind: str, mode: str, sessions: int) -> int:
    done = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c",
         _INSTRUCTION_PROGRAM, mode, str(sessions)],
        capture_output=True, text=True, env=child_env(), timeout=INSTRUCTION_RUN_DEADLINE_S,
        check=False,
    )
    return collected_instructions(done.returncode, done.stderr)


def collected_instructions(returncode: int, valgrind_stderr: str) -> int:
    """The instruction count callgrind reports at exit ("Collected : N")."""
    found = _COLLECTED.search(valgrind_stderr)
    if returncode != 0 or found is None:
        raise CliError(f"callgrind run failed (exit {returncode}):"
                       f" {valgrind_stderr.strip()[-1000:]}")
    return int(found.group(1))


def ingest_for_instructions(mode: str, sessions: int) -> None:
    """One side of `measure_instructions`, in the process callgrind counts: the day
    simulated and written, then ingested (`with`, `without`) or not (`setup`)."""
    assert mode in INSTRUCTION_MODES, mode
    lines = simulate(SimulationOptions(sessions=sessions, seed=SIMULATION_SEED)).lines
    if mode == "without":
        lines = without_cost_updates(lines)
    with tempfile.TemporaryDirectory(prefix="ledger-bench-instructions-") as work:
        path = Path(work) / "day.jsonl"
        write_event_file(path, lines)
        with closing(open_ledger(f"sqlite:///{Path(work) / 'store.db'}")) as ledger:
            if mode != "setup":
                ingest_file(ledger, path, source_for(path))


@dataclass(frozen=True, slots=True)
class _Ingested:
    seconds: float
    cpu_seconds: float
    sent: int  # cost updates


def _ingest(lines: list[str], directory: Path) -> _Ingested:
    directory.mkdir(parents=True)
    path = directory / "day.jsonl"
    write_event_file(path, lines)
    with closing(open_ledger(f"sqlite:///{directory / 'store.db'}")) as ledger:
        started_s, started_cpu_s = time.perf_counter(), time.process_time()
        ingest_file(ledger, path, source_for(path))
        seconds = time.perf_counter() - started_s
        cpu_seconds = time.process_time() - started_cpu_s
        sent = current_report(ledger)["outbound_commands"]["by_type"].get(COST_UPDATE_TYPE, 0)
    return _Ingested(seconds, cpu_seconds, int(sent))


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
    parser.add_argument("--instructions", action="store_true",
                        help="also count the ingest's instructions with and without under"
                        " valgrind's callgrind (cost_updates_instruction_ratio; needs"
                        " valgrind; a few minutes per side)")
    parser.add_argument("--instruction-sessions", type=int,
                        default=INSTRUCTION_SESSIONS_DEFAULT,
                        help="with --instructions: sessions of that day (default"
                        f" {INSTRUCTION_SESSIONS_DEFAULT})")
    parser.add_argument("--end-to-end", action="store_true",
                        help="also the day through the running services and the stop"
                        " latency, updates on and off (end_to_end_cost_ratio,"
                        " stop_latency_cost_ratio); starts no services")
    parser.add_argument("--stop-samples", type=int, default=STOP_SAMPLES_DEFAULT,
                        help=f"with --end-to-end: stops timed per run (default"
                        f" {STOP_SAMPLES_DEFAULT}; 0: none)")
    add_service_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.sessions <= SESSIONS_MAX:
        raise CliError(f"--sessions must be 1..{SESSIONS_MAX}, got {args.sessions}")
    if args.rounds < 1:
        raise CliError(f"--rounds must be at least 1, got {args.rounds}")
    if args.stop_samples < 0:
        raise CliError(f"--stop-samples must be 0 or more, got {args.stop_samples}")
    if not 1 <= args.instruction_sessions <= SESSIONS_MAX:
        raise CliError(f"--instruction-sessions must be 1..{SESSIONS_MAX},"
                       f" got {args.instruction_sessions}")
    store_url = checked_services(args) if args.end_to_end else None
    lines = simulate(SimulationOptions(sessions=args.sessions, seed=SIMULATION_SEED)).lines
    with tempfile.TemporaryDirectory(prefix="ledger-bench-cost-updates-") as work:
        result = measure_cost_updates(lines, Path(work), args.rounds)
        end_to_end = (None if store_url is None
                      else measure_end_to_end(args, store_url, Path(work) / "end-to-end"))
    instructions = (measure_instructions(args.instruction_sessions) if args.instructions
                    else None)
    if args.json:
        figures = asdict(result)
        if instructions is not None:
            figures["instructions"] = asdict(instructions)
        if end_to_end is not None:
            figures["end_to_end"] = asdict(end_to_end)
        print(json.dumps(figures, sort_keys=True))
        return 0
    print(f"ledger bench cost-updates: {result.messages} messages, {result.updates_sent}"
          f" cost updates sent; {result.seconds_with:.2f} s with, {result.seconds_without:.2f}"
          f" s without: cost_updates_ratio {result.cost_updates_ratio}; CPU"
          f" {result.cpu_seconds_with:.2f} s with, {result.cpu_seconds_without:.2f} s without:"
          f" cost_updates_cpu_ratio {result.cost_updates_cpu_ratio}")
    if instructions is not None:
        count = instructions
        print(f"instructions ({count.sessions} sessions, callgrind): {count.instructions_with:,}"
              f" with, {count.instructions_without:,} without:"
              f" cost_updates_instruction_ratio {count.cost_updates_instruction_ratio}")
    if end_to_end is not None:
        e2e = end_to_end
        print(f"end to end ({args.sessions} sessions): end_to_end_ratio"
              f" {e2e.end_to_end_ratio_with} with, {e2e.end_to_end_ratio_without} without;"
              f" ledger {e2e.day_with.ledger_msgs_per_s} vs {e2e.day_without.ledger_msgs_per_s}"
              f" msg/s: end_to_end_cost_ratio {e2e.end_to_end_cost_ratio}")
        print(f"stop latency p99 ({args.stop_samples} stops): {e2e.stop_latency_p99_ms_with} ms"
              f" with, {e2e.stop_latency_p99_ms_without} ms without:"
              f" stop_latency_cost_ratio {e2e.stop_latency_cost_ratio}")
    return 0

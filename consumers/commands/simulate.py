"""`ledger simulate --sessions N --seed S --out FILE [--tenants K] [--faults]`.

Writes one simulated operator day (or K operators' days) as an event file
(../shared/CONTRACT.md, "Event lines"): configuration first (a voucher-buying partner
included), then voucher batches and redemptions (three refused: a second redemption, an
expired code, an unknown code), top-ups, terminal authorizations, OCPP TransactionEvents,
hourly clock ticks through eight days after the day, and the PSP's answers to what the
ledger asked, each after the event that caused it. The same arguments always write the same
bytes. See consumers/simulation/ and docs/demo.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from consumers.cli import CliError
from consumers.event_file import write_event_file
from consumers.simulation.network import TENANTS_MAX
from consumers.simulation.scenario import SESSIONS_MAX, SimulationOptions, simulate


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="write a realistic, deterministic day of events (JSON lines) for `ledger ingest`",
        description="Simulate one operator day (configuration, vouchers, wallet top-ups,"
        " OCPP sessions under every billing model, clock ticks, the PSP's answers) and write"
        " it as an event file. Deterministic: the same arguments give the same bytes.",
    )
    parser.add_argument("--sessions", required=True, type=int, metavar="N",
                        help=f"charging sessions in all (1..{SESSIONS_MAX})")
    parser.add_argument("--seed", required=True, type=int, metavar="S")
    parser.add_argument("--out", required=True, type=Path, metavar="FILE")
    parser.add_argument("--tenants", type=int, default=1, metavar="K",
                        help=f"operators, each with its own network (1..{TENANTS_MAX}, default 1)")
    parser.add_argument(
        "--faults", action="store_true",
        help="add duplicates, out-of-order and late meter updates, a malformed line and an"
        " event of an unknown operator (to see deduplication and dead-lettering)",
    )
    parser.set_defaults(handler=run)


def options_from(args: argparse.Namespace) -> SimulationOptions:
    try:
        return SimulationOptions(
            sessions=args.sessions, seed=args.seed, tenants=args.tenants, faults=args.faults
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    options = options_from(args)
    out: Path = args.out
    if out.exists() and out.is_dir():
        raise CliError(f"--out {out} is a directory; name a file")
    if not out.parent.is_dir():
        raise CliError(f"directory {out.parent} does not exist")
    started_s = time.monotonic()
    result = simulate(options)
    try:
        written = write_event_file(out, result.lines)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc}") from exc
    sessions = sum(n for k, n in result.counts.items() if k.startswith("session:"))
    redemptions = sum(len(plan.redemptions) for plan in result.vouchers)
    print(
        f"ledger simulate: {written} events, {sessions} sessions, {redemptions} voucher"
        f" redemptions, {len(result.tenants)} tenant(s), seed {options.seed}"
        f"{', with faults' if options.faults else ''}"
        f" -> {out} ({time.monotonic() - started_s:.1f} s)",
        file=sys.stderr,
    )
    return 0

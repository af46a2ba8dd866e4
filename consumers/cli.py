"""The `ledger` command line (see ../shared/CONTRACT.md): thin entry points, one module each.

Each module in `consumers.commands` exposes `register(subparsers)`, which adds its parser and
sets `handler` to a function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from ledger.domain.errors import LedgerError

# Order here is the order of `ledger --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "consumers.commands.demo",
    "consumers.commands.simulate",
    "consumers.commands.ingest",
    "consumers.commands.report",
    "consumers.commands.price",
    "consumers.commands.tariff",
    "consumers.commands.cdr",
    "consumers.commands.receipt",
    "consumers.commands.einvoice",
    "consumers.commands.consume",
    "consumers.commands.relay",
    "consumers.commands.project",
    "consumers.commands.topics",
    "consumers.commands.tick",
    "consumers.commands.dead_letters",
    "consumers.commands.audit",
    "consumers.commands.serve",
    "consumers.commands.api_keys",
    "consumers.commands.psp_simulator",
    "consumers.commands.psp_stripe",
    "consumers.commands.bench",
)


class CliError(Exception):
    """A usage problem the user can fix; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger", description="evledger: event-sourced EV charging billing ledger"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (CliError, LedgerError) as exc:
        print(f"ledger {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    # Through the package, so `python -m consumers.cli` catches the same CliError class.
    from consumers.cli import main as package_main

    sys.exit(package_main())

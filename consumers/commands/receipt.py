"""`ledger receipt`: the receipts of an ad hoc terminal payment, found by its reference."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing

from consumers.cli import CliError
from consumers.store import open_store, store_url_from
from projections.documents import terminal_receipts
from projections.runner import caught_up_read_model


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "receipt", help="the receipt of an ad hoc terminal payment, by its reference",
        description="Print (JSON) the receipts billed to an ad hoc payment terminal's "
                    "authorization, found by the terminal reference.",
    )
    parser.add_argument("--tenant", required=True, help="tenant (CPO) id")
    parser.add_argument("--terminal-reference", required=True, help="the terminal's reference")
    parser.add_argument("--store", default=None, help="ledger store URL")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with closing(open_store(store_url_from(args.store), create=False)) as ledger, \
            caught_up_read_model(ledger) as db:
        receipts = terminal_receipts(db, args.tenant, args.terminal_reference)
    if not receipts:
        raise CliError(f"no receipt for terminal reference {args.terminal_reference!r} "
                       f"of tenant {args.tenant!r}")
    json.dump(receipts, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0

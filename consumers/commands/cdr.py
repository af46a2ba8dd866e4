"""`ledger cdr`: the OCPI 2.2.1 CDR of a settled session, or the credit CDR cancelling it."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing
from datetime import UTC, datetime

from consumers.cli import CliError
from consumers.store import open_store, store_url_from
from ledger.domain.session import ChargingSession
from ledger.domain.session_cdr import session_cdr, session_credit_cdr


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cdr", help="print the OCPI CDR of a settled session",
        description="Print the OCPI 2.2.1 CDR of a settled session as JSON (numbers as "
                    "decimal strings); --credit prints the credit CDR that cancels it.",
    )
    parser.add_argument("--tenant", required=True, help="tenant (CPO) id")
    parser.add_argument("--session", required=True, help="OCPP transactionId of the session")
    parser.add_argument("--credit", action="store_true", help="the credit CDR instead")
    parser.add_argument("--store", default=None, help="ledger store URL")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with closing(open_store(store_url_from(args.store), create=False)) as ledger:
        session_id = ChargingSession.create_id(args.tenant, args.session)
        if session_id not in ledger.repository:
            raise CliError(f"no session {args.session!r} for tenant {args.tenant!r}")
        session: ChargingSession = ledger.repository.get(session_id)
        if args.credit:
            cdr = session_credit_cdr(session, datetime.now(UTC))
        else:
            cdr = session_cdr(session)
    json.dump(cdr, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0

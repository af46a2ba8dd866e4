"""`ledger einvoice`: a partner invoice (C-, V-) as an EN 16931 e-invoice (CII XML)."""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from pathlib import Path

from consumers.cli import CliError
from consumers.store import open_store, store_url_from
from projections.einvoice import EInvoiceError, einvoice_xml
from projections.finance_queries import einvoice_source
from projections.runner import caught_up_read_model


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "einvoice", help="a partner invoice as an EN 16931 e-invoice (CII XML)",
        description="Print (or write to --out) the EN 16931 e-invoice, UN/CEFACT CII XML "
                    "validated against the Factur-X EN16931 schema, of a partner settlement "
                    "(C-) or voucher batch (V-) invoice. The seller and buyer data come from "
                    "the tenant's and partner's configuration in force at its issue.",
    )
    parser.add_argument("--tenant", required=True, help="tenant (CPO) id")
    parser.add_argument("--invoice", required=True, help="the invoice number, e.g. C-000001")
    parser.add_argument("--store", default=None, help="ledger store URL")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the XML to this file instead of stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with closing(open_store(store_url_from(args.store), create=False)) as ledger, \
            caught_up_read_model(ledger) as db:
        source = einvoice_source(db.query, args.tenant, args.invoice)
    if source is None:
        raise CliError(f"no invoice {args.invoice!r} of tenant {args.tenant!r}")
    try:
        xml = einvoice_xml(source)
    except EInvoiceError as exc:
        raise CliError(str(exc)) from exc
    if args.out is None:
        sys.stdout.write(xml.decode("utf-8"))
        return 0
    try:
        args.out.write_bytes(xml)
    except OSError as exc:
        raise CliError(f"--out {args.out}: {exc}") from exc
    return 0

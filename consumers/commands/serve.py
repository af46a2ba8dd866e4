"""`ledger serve`: the finance desk (API at /api/v1, OpenAPI at /openapi.json, docs at /docs,
pages at /) on the store's read models, served by uvicorn until SIGTERM or SIGINT.

On PostgreSQL it first puts every read-model table under row-level security
(`projections/tenant_isolation.py`) and reads through the reader role only. It reads what
`ledger project` (or `ingest`, `demo`) has projected; it projects nothing itself.
"""

from __future__ import annotations

import argparse

import uvicorn

from consumers.cli import CliError
from consumers.finance_api.app import create_app
from consumers.store import open_store, store_url_from
from projections.api_keys import ensure_key_table
from projections.database import PostgresReadModel, open_read_model
from projections.runner import ensure_schema
from projections.tenant_isolation import IsolationUnavailable, isolate_tenants

DEFAULT_PORT = 8000
# Loopback by default: exposing the desk is a decision (`--host 0.0.0.0`), not an accident.
DEFAULT_HOST = "127.0.0.1"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve", help="the finance API and pages over HTTP",
        description="Serve the finance API (/api/v1, OpenAPI at /openapi.json, docs at "
                    "/docs) and the finance pages (/) on the store's read models.",
    )
    parser.add_argument("--store", default=None, help="ledger store URL")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"default {DEFAULT_PORT}")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a TCP port")
    ledger = open_store(store_url_from(args.store))
    db = open_read_model(ledger)
    try:
        ensure_schema(db)
        ensure_key_table(db)
        if isinstance(db, PostgresReadModel):
            try:
                isolate_tenants(db)
            except IsolationUnavailable as exc:
                raise CliError(str(exc)) from exc
        uvicorn.run(create_app(db, ledger), host=args.host, port=args.port, log_level="warning",
                    access_log=False)
    finally:
        db.close()
        ledger.close()
    return 0

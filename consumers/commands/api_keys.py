"""`ledger api-keys create|list|revoke`: the finance desk's per-tenant keys.

`create` prints the key once; only its SHA-256 is stored, so a lost key is revoked and
replaced, never recovered."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from consumers.cli import CliError
from consumers.store import open_store, store_url_from
from projections.api_keys import ApiKeyError, ensure_key_table, issue_key, list_keys, revoke_key
from projections.database import open_read_model


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "api-keys", help="issue, list and revoke finance API keys",
        description="Per-tenant keys for `ledger serve`. `create` prints the key once.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="issue a key for a tenant (printed once)")
    create.add_argument("--tenant", required=True, help="tenant (CPO) id")
    create.add_argument("--label", default="", help="who or what the key is for")
    listing = actions.add_parser("list", help="every key: id, tenant, label, created, revoked")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("--key-id", required=True, help="the id `list` shows")
    for action in (create, listing, revoke):
        action.add_argument("--store", default=None, help="ledger store URL")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The wall clock is the time a key is issued or revoked: that is the edge of the system.
    now = datetime.now(UTC)
    ledger = open_store(store_url_from(args.store))
    db = open_read_model(ledger)
    try:
        ensure_key_table(db)
        if args.action == "create":
            issued = issue_key(db, args.tenant, args.label, now)
            print(issued.key)
            print(f"key id {issued.key_id} for tenant {issued.tenant_id}: shown once, "
                  "store it now", file=sys.stderr)
        elif args.action == "list":
            json.dump(list_keys(db), sys.stdout, indent=2, sort_keys=True)
            sys.stdout.write("\n")
        else:
            revoke_key(db, args.key_id, now)
            print(f"revoked {args.key_id}", file=sys.stderr)
    except ApiKeyError as exc:
        raise CliError(str(exc)) from exc
    finally:
        db.close()
        ledger.close()
    return 0

"""`ledger dead-letters list|redrive`: what could not be applied, and applying it again.

A message is dead-lettered with its reason and left unmarked, so after its cause is fixed
(configuration that arrived late, a corrected tariff) an operator can redrive it. The
redrive goes through the same handlers and the same duplicate check as the consumer, so a
message can still only ever apply once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from eventsourcing.utils import get_topic

from consumers.avro_codec import decode
from consumers.commands.ingest import inbound_for
from consumers.consumer_loop import bytes_from_raw
from consumers.event_file import parse_event_line
from consumers.store import open_store, store_url_from
from ledger.application import Inbound, Ledger
from ledger.domain.errors import InvalidMessage
from ledger.domain.inbox import DeadLetter
from ledger.limits import DEAD_LETTERS_LISTED_MAX
from ledger.messages import Envelope

KAFKA_RAW_PREFIX = "base64:"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dead-letters", help="list dead-lettered messages, or apply them again",
        description="List dead-lettered messages with their reasons, or redrive them "
                    "through the ledger once their cause is fixed.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every dead letter with its reason")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.add_argument("--store", default=None, help="ledger store URL")
    listing.set_defaults(handler=run_list)
    redrive = actions.add_parser("redrive", help="apply dead letters again")
    which = redrive.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every unresolved dead letter")
    which.add_argument("--id", action="append", metavar="SOURCE@POSITION",
                       help="one dead letter (repeatable), as `list` shows it")
    redrive.add_argument("--store", default=None, help="ledger store URL")
    redrive.set_defaults(handler=run_redrive)


def dead_letters(ledger: Ledger) -> list[DeadLetter]:
    # Event classes made by @event are attributes mypy cannot see.
    topic = get_topic(vars(DeadLetter)["Recorded"])
    notifications = ledger.recorder.select_notifications(
        start=1, limit=DEAD_LETTERS_LISTED_MAX, topics=[topic])
    found: list[DeadLetter] = []
    for notification in notifications:
        event = ledger.mapper.to_domain_event(notification)
        found.append(ledger.repository.get(event.originator_id))
    return found


def label(letter: DeadLetter) -> str:
    return f"{letter.source}@{letter.position}"


def run_list(args: argparse.Namespace) -> int:
    with closing(open_store(store_url_from(args.store), create=False)) as ledger:
        rows: list[dict[str, Any]] = [
            {"id": label(d), "tenant_id": d.tenant_id, "event_id": d.event_id,
             "type": d.type_name, "reason": d.reason, "redrive": d.redrive_outcome}
            for d in dead_letters(ledger)
        ]
    if args.json:
        json.dump(rows, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    for row in rows:
        status = f" [redrive: {row['redrive']}]" if row["redrive"] else ""
        print(f"{row['id']}  {row['type'] or '?'}  {row['reason']}{status}")
    print(f"{len(rows)} dead letter(s)", file=sys.stderr)
    return 0


def message_of(letter: DeadLetter) -> Envelope:
    """The dead letter's message, decoded the way its transport wrote it."""
    if letter.payload.startswith(KAFKA_RAW_PREFIX):
        if not letter.type_name:
            raise InvalidMessage("no message type was recorded for these bytes")
        return decode(letter.type_name, bytes_from_raw(letter.payload))
    item = inbound_for("redrive", parse_event_line(1, letter.payload.encode("utf-8")))
    if item.message is None:
        raise InvalidMessage(item.error or "undecodable")
    return item.message


def redrive(ledger: Ledger, letter: DeadLetter) -> str:
    """Apply one dead letter again; returns the outcome (also recorded on the letter)."""
    try:
        message = message_of(letter)
    except InvalidMessage as exc:
        return f"still undecodable: {exc}"
    # A source of its own, with a position that grows with each redrive of this letter.
    source = f"redrive:{label(letter)}"
    position = time.time_ns() // 1_000_000
    result = ledger.apply_batch([Inbound(source, position, message, key=letter.key,
                                         raw=letter.payload, type_name=letter.type_name)])
    if result.dead_lettered:
        again: DeadLetter = ledger.repository.get(DeadLetter.create_id(source, str(position)))
        outcome = f"dead-lettered again: {again.reason}"
    elif result.duplicates:
        outcome = "duplicate"
    elif result.refused:
        outcome = "refused"
    elif result.parked:
        outcome = "parked: what it needs has still not arrived"
    else:
        outcome = "applied"
    letter.record_redrive(outcome, datetime.now(UTC))
    ledger.save(letter)
    return outcome


def run_redrive(args: argparse.Namespace) -> int:
    with closing(open_store(store_url_from(args.store), create=False)) as ledger:
        letters = dead_letters(ledger)
        if args.id:
            wanted = set(args.id)
            unknown = wanted - {label(d) for d in letters}
            if unknown:
                from consumers.cli import CliError

                raise CliError(f"no dead letter {', '.join(sorted(unknown))}")
            letters = [d for d in letters if label(d) in wanted]
        letters = [d for d in letters if not d.is_resolved and
                   not d.source.startswith("redrive:")]
        for letter in letters:
            print(f"{label(letter)}: {redrive(ledger, letter)}")
    print(f"{len(letters)} dead letter(s) redriven", file=sys.stderr)
    return 0

"""`ledger tick`: event time for a live deployment. Publishes `ClockTicked` for each tenant
on the clock topic, once or every N seconds (the scheduler process), so payment retries and
late settlements run on the same event-time path as a replayed file."""

from __future__ import annotations

import argparse
import uuid
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from consumers import kafka_clients
from consumers.avro_codec import encode, headers_for, key_for
from consumers.cli import CliError
from consumers.kafka_topics import topic_of
from consumers.settings import Settings, add_arguments, settings_from
from consumers.signals import stop_on_signals
from ledger.limits import TICK_INTERVAL_S_MIN
from ledger.messages import ClockTicked

PRODUCER_NAME = "evledger-clock"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tick", help="publish clock ticks (event time) for tenants, once or periodically",
        description="Publish ClockTicked for each --tenant on the clock topic: due payment "
                    "retries and settlements run when the ledger applies it.",
    )
    add_arguments(parser, store=False, group=False, metrics=False)
    parser.add_argument("--tenant", action="append", required=True, help="repeatable")
    parser.add_argument("--now", default=None,
                        help="the instant to announce (ISO 8601 with offset; default: now)")
    parser.add_argument("--every", type=float, default=None, metavar="SECONDS",
                        help="keep ticking every SECONDS until SIGTERM (the scheduler)")
    parser.set_defaults(handler=run)


def tick_for(tenant_id: str, now: datetime) -> ClockTicked:
    return ClockTicked(
        event_id=f"tick-{uuid.uuid4()}", tenant_id=tenant_id, occurred_at=now,
        producer=PRODUCER_NAME, now=now,
    )


def publish_ticks(producer: Any, settings: Settings, tenants: list[str],
                  now: datetime) -> None:
    for tenant_id in tenants:
        message = tick_for(tenant_id, now)
        producer.send(
            settings.topic(topic_of(message)), key=key_for(message), value=encode(message),
            headers=headers_for(message),
        )
    producer.flush()


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.every is not None and args.now is not None:
        raise CliError("--now and --every exclude each other: a scheduler ticks real time")
    if args.every is not None and args.every < TICK_INTERVAL_S_MIN:
        raise CliError(f"--every must be at least {TICK_INTERVAL_S_MIN} seconds")
    fixed = _instant(args.now) if args.now else None
    with closing(kafka_clients.producer(settings)) as producer:
        if args.every is None:
            publish_ticks(producer, settings, args.tenant, fixed or _now())
            return 0
        with stop_on_signals() as stop:
            while not stop.is_set():
                publish_ticks(producer, settings, args.tenant, _now())
                stop.wait(args.every)
    return 0


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CliError(f"--now {text!r} is not an ISO 8601 instant") from exc
    if value.tzinfo is None:
        raise CliError("--now needs a UTC offset, e.g. 2026-03-01T00:00:00Z")
    return value

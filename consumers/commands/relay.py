"""`ledger relay`: publishes the ledger's outbox (commands, dead letters) to Kafka.

Runs until SIGTERM or SIGINT, then exits 0: at any moment, also while it waits for a
database that refuses connections (then at once), or mid-page (then after the page's send).
A page that cannot be published ends the process with an error and its position not stored:
restarted, it re-sends that page under the same ids (see consumers/relay.py). A database that
is unavailable, at start or later, is waited for with bounded backoff and one JSON line per
attempt (consumers/reconnect.py); one that cannot work (no such database, a bad password)
ends the process with that error.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, TrackingRecorder

from consumers import kafka_clients
from consumers.cli import CliError
from consumers.kafka_limits import RELAY_FLUSH_TIMEOUT_MS
from consumers.observability import Metrics, configure_logging, get_logger, log_event
from consumers.reconnect import DatabaseUnusable
from consumers.relay import Relay, RelayError, open_relay_tracking
from consumers.settings import Settings, add_arguments, settings_from
from consumers.signals import StopRequested, interruptible, stop_on_signals
from consumers.store import open_ledger, open_when_database_available, redacted_url
from ledger.application import Ledger
from ledger.limits import LONG_RUNNING_STORE_CONNECT_TIMEOUT_S


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "relay",
        help="publish the ledger's outbound commands and dead letters to Kafka (long-running)",
        description="Publish OutboundCommand and DeadLetter entries of the ledger in order,"
        " at least once under stable ids; stops cleanly on SIGTERM/SIGINT.",
    )
    add_arguments(parser, group=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure_logging()
    log = get_logger("relay")
    # Signals first: a SIGTERM while the store is still being opened is a clean stop too.
    with stop_on_signals() as stop:
        try:
            _run(settings, stop, log)
        except StopRequested:
            pass
        except DatabaseUnusable as exc:
            raise CliError(f"cannot use store {redacted_url(settings.store_url)}: {exc}") from exc
        except RelayError as exc:
            raise CliError(str(exc)) from exc
    log_event(log, "stopped")
    return 0


def _run(settings: Settings, stop: threading.Event, log: logging.Logger) -> None:
    ledger, factory, tracking = _open_store(settings, stop, log)
    metrics = Metrics()
    producer = None
    try:
        metrics.serve(settings.metrics_port)
        try:
            with interruptible(stop):
                producer = kafka_clients.producer(settings)
        except kafka_clients.KafkaUnavailable as exc:
            raise CliError(str(exc)) from exc
        relay = Relay(ledger, tracking, producer, settings, metrics, log)
        with interruptible(stop):
            position = relay.position()
        log_event(log, "started", position=position, topic_prefix=settings.topic_prefix)
        relay.run(stop)
    finally:
        if producer is not None:
            producer.close(timeout=RELAY_FLUSH_TIMEOUT_MS / 1_000)
        metrics.close()
        factory.close()
        ledger.close()


def _open_store(
    settings: Settings, stop: threading.Event, log: logging.Logger
) -> tuple[Ledger, InfrastructureFactory[Any], TrackingRecorder]:
    """The ledger and the relay's tracking table, waiting for the database if it is down."""

    def open_both() -> tuple[Ledger, InfrastructureFactory[Any], TrackingRecorder]:
        ledger = open_ledger(settings.store_url,
                             connect_timeout_s=LONG_RUNNING_STORE_CONNECT_TIMEOUT_S)
        try:
            factory, tracking = open_relay_tracking(settings.store_url,
                                                    LONG_RUNNING_STORE_CONNECT_TIMEOUT_S)
        except BaseException:
            ledger.close()
            raise
        return ledger, factory, tracking

    return open_when_database_available(open_both, settings.store_url, stop, log)

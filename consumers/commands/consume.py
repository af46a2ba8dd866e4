"""`ledger consume`: the Kafka consumer group that applies inbound topics to the ledger.

Runs until SIGTERM or SIGINT, then finishes the batch in progress, leaves the group and
exits 0. The database owns every partition's position (see consumers/consumer_loop.py).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading

from consumers import kafka_clients
from consumers.cli import CliError
from consumers.consumer_loop import ConsumerLoop
from consumers.kafka_limits import CONSUMER_CLOSE_TIMEOUT_MS
from consumers.observability import Metrics, configure_logging, get_logger, log_event
from consumers.reconnect import DatabaseUnusable, recorder_without_library_retries
from consumers.settings import Settings, add_arguments, settings_from
from consumers.signals import StopRequested, interruptible, stop_on_signals
from consumers.store import open_ledger, open_when_database_available, redacted_url
from ledger.limits import LONG_RUNNING_STORE_CONNECT_TIMEOUT_S


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "consume",
        help="apply the inbound Kafka topics to the ledger (long-running)",
        description="Consume every inbound topic as one consumer group member and apply each"
        " partition's records to the ledger exactly once; stops cleanly on SIGTERM/SIGINT.",
    )
    add_arguments(parser, tenants=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure_logging()
    log = get_logger("consume")
    # Signals first, as the relay does: a SIGTERM while the store or Kafka is still being
    # reached is a clean stop too (it exited -15 there, before the handler was in place).
    with stop_on_signals() as stop, contextlib.suppress(StopRequested):
        try:
            _run(settings, stop, log)
        except DatabaseUnusable as exc:
            raise CliError(f"cannot use store {redacted_url(settings.store_url)}: {exc}") from exc
    log_event(log, "stopped")
    return 0


def _run(settings: Settings, stop: threading.Event, log: logging.Logger) -> None:
    # A database not up yet (or restarting) is waited for, each attempt logged, as mid-run.
    ledger = open_when_database_available(
        lambda: open_ledger(settings.store_url,
                            connect_timeout_s=LONG_RUNNING_STORE_CONNECT_TIMEOUT_S),
        settings.store_url, stop, log)
    # The loop reconnects and logs each attempt (ConsumerLoop.run): the library's own ten
    # silent retries, each waiting for the pool, kept it mute while the server was stopped.
    recorder_without_library_retries(ledger.recorder)
    metrics = Metrics()
    consumer = None
    try:
        metrics.serve(settings.metrics_port)
        try:
            with interruptible(stop):
                consumer = kafka_clients.consumer(settings)
        except kafka_clients.KafkaUnavailable as exc:
            raise CliError(str(exc)) from exc
        loop = ConsumerLoop(ledger, consumer, settings, metrics, log)
        log_event(log, "started", group_id=settings.group_id,
                  topic_prefix=settings.topic_prefix, metrics_port=settings.metrics_port)
        loop.run(stop)
        log_event(log, "stopping")
    finally:
        if consumer is not None:
            consumer.close(autocommit=False, timeout_ms=CONSUMER_CLOSE_TIMEOUT_MS)
        metrics.close()
        ledger.close()

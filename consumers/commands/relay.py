"""`ledger relay`: publishes the ledger's outbox (commands, dead letters) to Kafka.

Runs until SIGTERM or SIGINT, then finishes the page in progress and exits 0. A page that
cannot be published ends the process with an error and its position not stored: restarted,
it re-sends that page under the same ids (see consumers/relay.py).
"""

from __future__ import annotations

import argparse

from eventsourcing.persistence import PersistenceError

from consumers import kafka_clients
from consumers.cli import CliError
from consumers.observability import Metrics, configure_logging, get_logger, log_event
from consumers.relay import Relay, RelayError, open_relay_tracking
from consumers.settings import add_arguments, settings_from
from consumers.signals import stop_on_signals
from consumers.store import open_store
from ledger.limits import RELAY_FLUSH_TIMEOUT_MS


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
    ledger = open_store(settings.store_url)
    try:
        factory, tracking = open_relay_tracking(settings.store_url)
    except PersistenceError as exc:
        ledger.close()
        raise CliError(f"cannot open the relay's tracking table: {exc}") from exc
    metrics = Metrics()
    producer = None
    try:
        metrics.serve(settings.metrics_port)
        try:
            producer = kafka_clients.producer(settings)
        except kafka_clients.KafkaUnavailable as exc:
            raise CliError(str(exc)) from exc
        relay = Relay(ledger, tracking, producer, settings, metrics, log)
        with stop_on_signals() as stop:
            log_event(log, "started", position=relay.position(),
                      topic_prefix=settings.topic_prefix)
            relay.run(stop)
    except RelayError as exc:
        raise CliError(str(exc)) from exc
    finally:
        if producer is not None:
            producer.close(timeout=RELAY_FLUSH_TIMEOUT_MS / 1_000)
        metrics.close()
        factory.close()
        ledger.close()
    log_event(log, "stopped")
    return 0

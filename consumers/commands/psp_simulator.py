"""`ledger psp-simulator`: a PSP's test mode on the real Kafka topics.

It stands in for the payment service provider only, never for Kafka or the database: it
consumes the ledger's `psp.commands` (Avro, `type` header), answers each PaymentCommand with
a PaymentResult on `psp.results` by the same policy as `ledger simulate`
(consumers/simulation/psp.py), and runs until SIGTERM or SIGINT.

Reading, sending and committing follow the commit protocol of every PSP adapter
(consumers/psp_answering.py): a crash before the commit re-reads the records after restart
and answers them again. Answers are idempotent by command id: the same command gets the same
result with the same event id (derived from the command id), which the ledger deduplicates.
Within one process a re-sent command gets the remembered answer; after a restart, every
answer is recomputed from the command alone except a "flaky" card's attempt count, which
restarts (the ledger keeps the first answer it saw, by event id).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import threading
import warnings
from collections.abc import Sequence

from consumers import kafka_clients
from consumers.cli import CliError
from consumers.kafka_limits import CONSUMER_CLOSE_TIMEOUT_MS
from consumers.observability import configure_logging, get_logger, log_event
from consumers.psp_answering import (
    FLUSH_TIMEOUT_S,
    Answer,
    CommandRecord,
    PaymentCommandLoop,
    Publisher,
)
from consumers.settings import Settings, add_arguments, settings_from
from consumers.signals import StopRequested, interruptible, stop_on_signals
from consumers.simulation.psp import FLAKY_FAILURES_MAX, RESULT_DELAY_S_MAX, Psp, PspPolicy
from ledger.messages import PaymentCommand

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"(read_text|open_text) is deprecated", category=DeprecationWarning
    )
    from kafka.errors import KafkaError

# Its own consumer group: the ledger's group must never share partitions with the PSP.
DEFAULT_PSP_GROUP_ID = "evledger-psp-simulator"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "psp-simulator",
        help="answer the ledger's payment commands on Kafka like a PSP's test mode"
        " (long-running)",
        description="Consume psp.commands and answer each PaymentCommand with a PaymentResult"
        " on psp.results: tokens containing 'decline' always fail, 'flaky' ones fail their"
        " first attempts, others fail at --decline-rate. Stops cleanly on SIGTERM/SIGINT.",
    )
    add_arguments(parser, store=False, group=True, metrics=False)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random declines")
    parser.add_argument("--decline-rate", type=float, default=0.0, metavar="P",
                        help="probability that an ordinary card is declined (default 0)")
    parser.add_argument("--flaky-failures", type=int, default=2, metavar="K",
                        help="attempts a 'flaky' card fails before it pays (default 2)")
    parser.add_argument("--result-delay-s", type=int, default=2, metavar="S",
                        help="event time between a command and its result (default 2)")
    parser.set_defaults(handler=run)


def policy_from(args: argparse.Namespace) -> PspPolicy:
    try:
        return PspPolicy(seed=args.seed, decline_rate=args.decline_rate,
                         flaky_failures=args.flaky_failures,
                         result_delay_s=args.result_delay_s)
    except ValueError as exc:
        raise CliError(
            f"{exc} (--decline-rate 0..1, --flaky-failures 0..{FLAKY_FAILURES_MAX},"
            f" --result-delay-s 0..{RESULT_DELAY_S_MAX})"
        ) from exc


def run(args: argparse.Namespace) -> int:
    policy = policy_from(args)
    settings = settings_from(args)
    # The ledger's LEDGER_GROUP_ID is not ours: only --group-id changes the PSP's group.
    settings = dataclasses.replace(settings, group_id=args.group_id or DEFAULT_PSP_GROUP_ID)
    configure_logging()
    log = get_logger("psp-simulator")
    # Signals first, as the relay does: a SIGTERM while Kafka is still being reached is a
    # clean stop too (it exited -15 there, before the handler was in place).
    with stop_on_signals() as stop, contextlib.suppress(StopRequested):
        _run(policy, settings, stop, log)
    log_event(log, "stopped")
    return 0


def _run(policy: PspPolicy, settings: Settings, stop: threading.Event,
         log: logging.Logger) -> None:
    with interruptible(stop):
        consumer = kafka_clients.consumer(settings)
    producer = None
    try:
        with interruptible(stop):
            producer = kafka_clients.producer(settings)
        psp = Psp(policy)

        def answer(command: PaymentCommand, _source: CommandRecord) -> Sequence[Answer]:
            return (psp.answer(command),)

        loop = PaymentCommandLoop(answer, consumer, Publisher(producer, settings), settings, log)
        with interruptible(stop):
            loop.subscribe()
        log_event(log, "started", group_id=settings.group_id,
                  topic_prefix=settings.topic_prefix)
        loop.run(stop)
    except KafkaError as exc:
        # Answers not acknowledged: their commands were not committed and will be read
        # again by the next run, which answers them the same way.
        raise CliError(f"Kafka failed: {exc}") from exc
    finally:
        if producer is not None:
            producer.close(timeout=FLUSH_TIMEOUT_S)
        consumer.close(autocommit=False, timeout_ms=CONSUMER_CLOSE_TIMEOUT_MS)

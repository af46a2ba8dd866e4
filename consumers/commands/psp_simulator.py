"""`ledger psp-simulator`: a PSP's test mode on the real Kafka topics.

It stands in for the payment service provider only, never for Kafka or the database: it
consumes the ledger's `psp.commands` (Avro, `type` header), answers each PaymentCommand with
a PaymentResult on `psp.results` by the same policy as `ledger simulate`
(consumers/simulation/psp.py), and runs until SIGTERM or SIGINT.

The commit protocol, per poll (the numbers appear in the code):
  1. poll at most POLL_RECORDS_MAX records;
  2. answer each PaymentCommand (a record that is not one is logged and skipped: a real PSP
     answers garbage with an HTTP 400, not with a payment);
  3. send every answer with the idempotent producer (acks=all) and flush: all acknowledged;
  4. only then commit the consumer's offsets (auto-commit is off).
A crash before 4 re-reads the records after restart and answers them again. Answers are
idempotent by command id: the same command gets the same result with the same event id
(derived from the command id), which the ledger deduplicates. Within one process a re-sent
command gets the remembered answer; after a restart, every answer is recomputed from the
command alone except a "flaky" card's attempt count, which restarts (the ledger keeps the
first answer it saw, by event id).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import threading
import warnings
from typing import Any

from consumers import kafka_clients
from consumers.avro_codec import decode, encode, headers_for, key_for, type_from_headers
from consumers.cli import CliError
from consumers.kafka_limits import (
    CONSUMER_CLOSE_TIMEOUT_MS,
    POLL_RECORDS_MAX,
    POLL_TIMEOUT_MS,
    PRODUCER_DELIVERY_TIMEOUT_MS,
)
from consumers.kafka_topics import topic_of
from consumers.observability import configure_logging, get_logger, log_event
from consumers.settings import Settings, add_arguments, settings_from
from consumers.signals import stop_on_signals
from consumers.simulation.psp import FLAKY_FAILURES_MAX, RESULT_DELAY_S_MAX, Psp, PspPolicy
from ledger.domain.errors import InvalidMessage
from ledger.messages import PaymentCommand, PaymentResult

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"(read_text|open_text) is deprecated", category=DeprecationWarning
    )
    from kafka.errors import CommitFailedError, KafkaError

# Its own consumer group: the ledger's group must never share partitions with the PSP.
DEFAULT_PSP_GROUP_ID = "evledger-psp-simulator"
# Waiting for every answer of one poll to be acknowledged: the producer's own delivery
# timeout, plus a margin for the flush call itself.
FLUSH_TIMEOUT_S = (PRODUCER_DELIVERY_TIMEOUT_MS + 10_000) / 1_000

assert FLUSH_TIMEOUT_S * 1_000 > PRODUCER_DELIVERY_TIMEOUT_MS


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
    consumer = kafka_clients.consumer(settings)
    producer = None
    try:
        producer = kafka_clients.producer(settings)
        simulator = PspSimulator(Psp(policy), consumer, producer, settings, log)
        with stop_on_signals() as stop:
            simulator.subscribe()
            log_event(log, "started", group_id=settings.group_id,
                      topic_prefix=settings.topic_prefix)
            simulator.run(stop)
    except KafkaError as exc:
        # Answers not acknowledged: their commands were not committed and will be read
        # again by the next run, which answers them the same way.
        raise CliError(f"Kafka failed: {exc}") from exc
    finally:
        if producer is not None:
            producer.close(timeout=FLUSH_TIMEOUT_S)
        consumer.close(autocommit=False, timeout_ms=CONSUMER_CLOSE_TIMEOUT_MS)
    log_event(log, "stopped")
    return 0


class PspSimulator:
    def __init__(
        self, psp: Psp, consumer: Any, producer: Any, settings: Settings, log: logging.Logger
    ) -> None:
        self._psp = psp
        self._consumer = consumer
        self._producer = producer
        self._settings = settings
        self._log = log
        self.commands_topic = settings.topic(topic_of(PaymentCommand))
        self.results_topic = settings.topic(topic_of(PaymentResult))
        self.answered = 0

    def subscribe(self) -> None:
        self._consumer.subscribe(topics=[self.commands_topic])

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()

    def run_once(self) -> int:
        """One poll: answer, send, flush, then commit. Returns the answers sent."""
        # 1. poll
        polled = self._consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=POLL_RECORDS_MAX)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            return 0
        # 2. answer
        results = [r for r in (self._answer(record) for record in records) if r is not None]
        # 3. send and flush: every answer acknowledged by all in-sync replicas
        for result in results:
            self._producer.send(
                self.results_topic, key=key_for(result), value=encode(result),
                headers=headers_for(result),
            )
        self._producer.flush(timeout=FLUSH_TIMEOUT_S)
        # 4. only then commit what was read; a commit lost to a rebalance only means the
        # next owner answers those commands again, identically
        try:
            self._consumer.commit()
        except CommitFailedError as exc:
            log_event(self._log, "commit_failed", level=logging.WARNING, reason=str(exc))
        self.answered += len(results)
        log_event(self._log, "answered", records=len(records), results=len(results))
        return len(results)

    def _answer(self, record: Any) -> PaymentResult | None:
        try:
            type_name = type_from_headers(record.headers)
            message = decode(type_name, record.value)
        except InvalidMessage as exc:
            log_event(self._log, "skipped", level=logging.WARNING, partition=record.partition,
                      offset=record.offset, reason=str(exc))
            return None
        if not isinstance(message, PaymentCommand):
            log_event(self._log, "skipped", level=logging.WARNING, partition=record.partition,
                      offset=record.offset, reason=f"{type_name} is not a payment command")
            return None
        return self._psp.answer(message)

"""`ledger consume` rides through its broker's absence (consumers/consumer_loop.py): a poll
that fails with a retriable Kafka error (kafka-python raises a refused connection from
poll() while it looks for the group coordinator of a restarting broker) is tried again after
a growing wait, logged; any other error, or too many failures in a row, still ends it.

The broker's side is `tests/faults/test_broker_restart.py` (a real broker of its own, killed
and stopped mid-stream); here a consumer that fails on cue shows the loop's rule exactly.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError, UnsupportedVersionError

from consumers import consumer_loop
from consumers.consumer_loop import ConsumerLoop
from consumers.kafka_limits import KAFKA_UNAVAILABLE_POLLS_MAX
from consumers.observability import Metrics
from consumers.settings import settings_from
from ledger.application import Ledger


class FailingConsumer:
    """Fails its first `failures` polls with `error`, then returns nothing."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.polls = 0

    def subscribe(self, topics: list[str], listener: Any) -> None:
        pass

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        self.polls += 1
        if self.polls <= self.failures:
            raise self.error
        return {}

    def assignment(self) -> set[Any]:
        return set()


def loop_over(consumer: FailingConsumer, caplog: pytest.LogCaptureFixture) -> ConsumerLoop:
    settings = settings_from(argparse.Namespace(bootstrap_servers="127.0.0.1:1"), environ={})
    caplog.set_level(logging.INFO)
    return ConsumerLoop(Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}), consumer,
                        settings, Metrics(), logging.getLogger("test.consume"))


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_loop, "backoff_ms", lambda attempt, low, high: 0)


def test_polls_that_fail_while_the_broker_is_away_are_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = FailingConsumer(3, KafkaConnectionError("111 ECONNREFUSED"))
    loop = loop_over(consumer, caplog)
    loop.run(threading.Event(), until=lambda: consumer.polls > 3)
    assert consumer.polls == 4
    events = [r.getMessage() for r in caplog.records]
    assert sum("kafka_unavailable" in e for e in events) == 3
    assert sum("kafka_reconnected" in e for e in events) == 1


def test_an_error_no_wait_can_fix_or_an_outage_too_long_still_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(UnsupportedVersionError):
        loop_over(FailingConsumer(1, UnsupportedVersionError()), caplog).run(threading.Event())
    always = FailingConsumer(10**6, KafkaConnectionError("111 ECONNREFUSED"))
    with pytest.raises(KafkaConnectionError):
        loop_over(always, caplog).run(threading.Event())
    assert always.polls == KAFKA_UNAVAILABLE_POLLS_MAX + 1

"""A Kafka broker restart mid-stream: the simulated day through a broker of this test's own
(tests/kafka_broker.py; the shared broker is never touched) while `ledger consume`, `relay`
and `project` run, the broker killed (kill -9) at one seeded point of the day and stopped
cleanly (SIGTERM) at another, each time started again on the same data and ports. No
process is restarted: each must ride through the broker's absence. The end checks are
those of the crash matrix (`assert_took_effect_once`).
"""

from __future__ import annotations

import argparse
import gc
import logging
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager

import pytest
from kafka.errors import KafkaError

from consumers import kafka_clients
from consumers.scratch_database import scratch_database
from consumers.settings import settings_from
from tests.faults.conftest import InjectionLog, rng_for
from tests.faults.harness import (
    DayRun,
    FaultStack,
    KillPlan,
    assert_took_effect_once,
    ingest,
    publish_day,
    settle,
    simulated_day,
    stack_for,
)
from tests.kafka_broker import PlainBroker, plain_broker

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SESSIONS = 10
KILLED = "broker killed (kill -9), started again"
STOPPED = "broker stopped (SIGTERM), started again"


@contextmanager
def _sockets_kafka_python_leaves() -> Iterator[None]:
    """kafka-python leaves the socket of a connection attempt the broker refused unclosed
    (the test's publisher and probes try while the broker is down): their ResourceWarning is
    the library's and expected, so it is ignored while they may be collected, and they are
    collected before leaving (outside, pytest would count each as an error). The library's
    log is quiet meanwhile: pytest keeps each record, and with it the traceback of a failed
    attempt and so its socket, past the collection."""
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        kafka_log.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            kafka_log.setLevel(level)
            gc.collect()


def _answers(bootstrap: str) -> bool:
    """The broker listens and a client lists its topics."""
    host, port = bootstrap.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    settings = settings_from(argparse.Namespace(bootstrap_servers=bootstrap), environ={})
    with _sockets_kafka_python_leaves():  # a client that failed: its sockets become garbage
        try:
            with closing(kafka_clients.admin(settings)) as admin:
                admin.list_topics()
            return True
        except (kafka_clients.KafkaUnavailable, KafkaError):
            return False


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainBroker]:
    with plain_broker(tmp_path_factory.mktemp("own-broker"), _answers) as broker:
        yield broker


def _restart(broker: PlainBroker, clean: bool) -> Callable[[FaultStack], dict[str, object]]:
    def act(_stack: FaultStack) -> dict[str, object]:
        began = time.monotonic()
        if clean:
            broker.process.stop()
        else:
            broker.process.kill()
        down = time.monotonic()
        broker.process.start(lambda: _answers(broker.bootstrap))
        return {"down_after_s": round(down - began, 1),
                "answering_after_s": round(time.monotonic() - began, 1)}
    return act


def test_a_broker_killed_and_one_stopped_mid_stream_lose_and_double_nothing(
    own_broker: PlainBroker, database_url: str, faults_seed: int, injections: InjectionLog,
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    rng = rng_for(faults_seed, request.node.name)
    day = simulated_day(SESSIONS, seed=rng.randrange(1_000_000))
    records = len(day.messages)
    logs = tmp_path_factory.mktemp("broker-restart-logs")
    with (_sockets_kafka_python_leaves(),
          scratch_database(database_url, "faults_broker_", hex_digits=12) as database,
          scratch_database(database_url, "faults_ingest_", hex_digits=12) as reference):
        ingest(day.write(logs / "day.jsonl"), reference)
        stack = stack_for(database, own_broker.bootstrap, f"faults-{uuid.uuid4().hex[:8]}-",
                          logs)
        plans = [
            KillPlan(None, KILLED, [rng.randint(records // 5, records * 2 // 5)],
                     lambda p: p.records_applied, act=_restart(own_broker, clean=False)),
            KillPlan(None, STOPPED, [rng.randint(records * 3 // 5, records * 4 // 5)],
                     lambda p: p.records_applied, act=_restart(own_broker, clean=True)),
        ]
        print(f"broker restarts (seed {faults_seed}): "
              + "; ".join(f"{p.fault} at {p.targets}" for p in plans))

        def injected(fault: str, **detail: object) -> None:
            injections.injected(request.node.name, fault, **detail)

        started = time.monotonic()
        stack.start("consume", "relay", "project")
        try:
            publish_day(stack, day, plans, injected)
            settle(stack, plans, injected, records)
        finally:
            codes = stack.stop()
        print(f"day published, applied and settled in {time.monotonic() - started:.1f} s")
        assert codes == dict.fromkeys(codes, 0), f"processes did not stop cleanly: {codes}"
        run = DayRun(stack, day, reference, records)
        for plan in plans:
            assert_took_effect_once(run, injections, plan.fault)
        assert [len(p.fired) for p in plans] == [1, 1], "a restart point was not reached"

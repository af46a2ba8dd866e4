"""The simulated day through Kafka in a shuffled topic order: every topic published whole, one
after the other in a seeded order, BEFORE `ledger consume` starts, so the consumer finds
each topic's records at once and in any interleaving its fetches give. The event-time merge
(consumers/event_time_merge.py) must apply them as `ledger ingest` applies the file: the
report equal byte for byte (receipt numbers included), nothing parked, nothing expired, and
the crash matrix's checks. The second test SIGKILLs `consume` once at a seeded point of the
day and starts it again (the merge's buffer is lost; the stored positions say where each
partition resumes, and the merge of what is left is the rest of the same order).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator

import psycopg
import pytest

from consumers import kafka_clients
from consumers.kafka_topics import topic_of
from consumers.scratch_database import drop_database
from ledger.messages import Envelope
from tests.faults.conftest import InjectionLog, rng_for
from tests.faults.harness import (
    DayRun,
    KillPlan,
    assert_took_effect_once,
    ingest,
    publish_run,
    report,
    settle,
    simulated_day,
    stack_for,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SESSIONS = 10
SHUFFLED = "the day through Kafka in shuffled topic order"
KILLED = "SIGKILL ledger consume, the shuffled day"

DayRunFactory = Callable[[str], DayRun]


@pytest.fixture
def day_runs(
    database_url: str, kafka_bootstrap_servers: str, faults_seed: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DayRunFactory]:
    """A fresh day, stack and reference per test (the day is published once per stack)."""
    names: list[str] = []
    base = database_url.rsplit("/", 1)[0]

    def database(kind: str) -> str:
        name = f"faults_{kind}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return f"{base}/{name}"

    def make(test: str) -> DayRun:
        rng = rng_for(faults_seed, f"shuffled:{test}")
        day = simulated_day(SESSIONS, seed=rng.randrange(1_000_000))
        logs = tmp_path_factory.mktemp("faults-shuffled")
        reference = database("ingest")
        ingest(day.write(logs / "day.jsonl"), reference)
        stack = stack_for(database("shuffled"), kafka_bootstrap_servers,
                          f"faults-{uuid.uuid4().hex[:8]}-", logs)
        return DayRun(stack, day, reference, len(day.messages))

    try:
        yield make
    finally:
        for name in names:
            drop_database(database_url, name)


def publish_shuffled(run: DayRun, order: list[str]) -> None:
    """Each topic whole, in `order`; within a topic, the file's order."""
    by_topic: dict[str, list[Envelope]] = defaultdict(list)
    for message in run.day.messages:
        by_topic[topic_of(message)].append(message)
    producer = kafka_clients.producer(run.stack.settings)
    try:
        for topic in order:
            if by_topic[topic]:
                publish_run(producer, run.stack.settings, by_topic[topic])
    finally:
        producer.close()


def shuffled_topics(run: DayRun, rng_name: str, seed: int) -> list[str]:
    topics = sorted({topic_of(m) for m in run.day.messages})
    rng_for(seed, rng_name).shuffle(topics)
    return topics


def assert_as_ingested(run: DayRun, injections: InjectionLog, fault: str) -> None:
    found = report(run.stack.database)
    assert found.get("parked", {}).get("items", []) == [], "nothing may wait: all was there"
    assert_took_effect_once(run, injections, fault)
    injections.checked(fault, "nothing parked, nothing expired",
                       "receipt numbers == ledger ingest")


def test_the_day_published_topic_by_topic_in_a_shuffled_order_ends_as_ingested(
    day_runs: DayRunFactory, faults_seed: int, injections: InjectionLog,
    request: pytest.FixtureRequest,
) -> None:
    run = day_runs(request.node.name)
    order = shuffled_topics(run, request.node.name, faults_seed)
    publish_shuffled(run, order)
    injections.injected(request.node.name, SHUFFLED, order=",".join(order),
                        records=run.records)
    stack = run.stack
    stack.start("consume", "relay", "project")
    try:
        settle(stack, [], injections.injected, run.records)
    finally:
        codes = stack.stop()
    assert codes == dict.fromkeys(codes, 0), f"processes did not stop cleanly: {codes}"
    assert_as_ingested(run, injections, SHUFFLED)


def test_the_shuffled_day_with_consume_killed_once_ends_as_ingested(
    day_runs: DayRunFactory, faults_seed: int, injections: InjectionLog,
    request: pytest.FixtureRequest,
) -> None:
    run = day_runs(request.node.name)
    rng = rng_for(faults_seed, request.node.name)
    order = shuffled_topics(run, request.node.name, faults_seed)
    publish_shuffled(run, order)
    injections.injected(request.node.name, SHUFFLED, order=",".join(order),
                        records=run.records)
    plan = KillPlan("consume", KILLED, [rng.randint(1, run.records - 1)],
                    lambda p: p.records_applied, new_group=lambda: True)

    def injected(fault: str, **detail: object) -> None:
        injections.injected(request.node.name, fault, **detail)

    stack = run.stack
    stack.start("consume", "relay", "project")
    try:
        settle(stack, [plan], injected, run.records)
    finally:
        codes = stack.stop()
    assert codes == dict.fromkeys(codes, 0), f"processes did not stop cleanly: {codes}"
    assert len(plan.fired) == 1, f"the kill point was not reached: {plan.targets}"
    assert_as_ingested(run, injections, SHUFFLED)
    assert_as_ingested(run, injections, KILLED)

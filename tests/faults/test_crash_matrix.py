"""The crash matrix, then redelivery: a simulated day through real Kafka while `ledger
consume`, `relay` and `project` are SIGKILLed at seeded points and restarted, then every
inbound record published three more times. Each ends with the same checks:

- every published event took effect once: the report (`ledger report --json`) equals the
  one of a clean `ledger ingest` of the same events file, byte for byte (dead letters
  without their provenance: a file line vs a Kafka offset), and so does every stored event
  (digest of aggregate, version, type and state);
- every command was sent under one id: each command of the outbox is on its topic, and no
  command id was sent with two different payloads;
- the journal sums to zero per tenant and currency;
- the read models equal a clean rebuild (`ledger project --rebuild`).

Kill points, from the suite's seed: consume once the database holds N records applied,
relay once its position reaches notification N, project likewise; each kill is a SIGKILL
and the process starts again at once. A consume restart joins a new consumer group, except
where the seed says to keep the old one (then it waits out the dead member's session).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from consumers import kafka_clients
from consumers.benchmarks.ingest import end_offsets
from consumers.scratch_database import drop_database
from tests.faults.conftest import InjectionLog, rng_for
from tests.faults.harness import (
    DayRun,
    KillPlan,
    assert_took_effect_once,
    inbound_records,
    ingest,
    publish_day,
    settle,
    simulated_day,
    stack_for,
    terminate_connections,
    wait_for,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SESSIONS = 10
KILLS = {"consume": 12, "relay": 20, "project": 20}
# pg_terminate_backend on the stack's database, at seeded points of the day.
CONNECTION_TERMINATIONS = 4
# A consume restart keeps its consumer group this often (each costs a session timeout).
SAME_GROUP_SHARE = 0.2
REDELIVERIES = 3


def _database(database_url: str, kind: str) -> str:
    name = f"faults_{kind}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


@pytest.fixture(scope="module")
def day_run(
    database_url: str, kafka_bootstrap_servers: str, faults_seed: int,
    injections: InjectionLog, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DayRun]:
    rng = rng_for(faults_seed, "crash_matrix")
    day = simulated_day(SESSIONS, seed=rng.randrange(1_000_000))
    names = [_database(database_url, "crash"), _database(database_url, "ingest")]
    base = database_url.rsplit("/", 1)[0]
    logs = tmp_path_factory.mktemp("faults-logs")
    try:
        reference = f"{base}/{names[1]}"
        ingest(day.write(logs / "day.jsonl"), reference)
        stack = stack_for(f"{base}/{names[0]}", kafka_bootstrap_servers,
                          f"faults-{uuid.uuid4().hex[:8]}-", logs)
        yield DayRun(stack, day, reference, len(day.messages))
    finally:
        for name in names:
            drop_database(database_url, name)


def _plans(rng: Any, records: int, last_event: int) -> list[KillPlan]:
    def targets(count: int, low: int, high: int) -> list[int]:
        return sorted(rng.randint(low, high) for _ in range(count))

    return [
        KillPlan("consume", "SIGKILL ledger consume", targets(KILLS["consume"], 1, records - 1),
                 lambda p: p.records_applied,
                 new_group=lambda: rng.random() >= SAME_GROUP_SHARE),
        KillPlan("relay", "SIGKILL ledger relay",
                 targets(KILLS["relay"], last_event // 20, last_event * 8 // 10),
                 lambda p: p.relayed),
        KillPlan("project", "SIGKILL ledger project",
                 targets(KILLS["project"], last_event // 20, last_event * 8 // 10),
                 lambda p: p.projected),
        KillPlan(None, "pg_terminate_backend of every ledger connection",
                 targets(CONNECTION_TERMINATIONS, records // 10, records * 9 // 10),
                 lambda p: p.records_applied, act=terminate_connections),
    ]


def _last_event(database: str) -> int:
    with psycopg.connect(database) as connection:
        row = connection.execute("SELECT max(notification_id) FROM ledger_events").fetchone()
    assert row is not None
    return int(row[0])


def test_crash_matrix_sigkill_consume_relay_project(
    day_run: DayRun, faults_seed: int, injections: InjectionLog,
    request: pytest.FixtureRequest,
) -> None:
    rng = rng_for(faults_seed, request.node.name)
    stack = day_run.stack
    plans = _plans(rng, day_run.records, _last_event(day_run.reference))
    print(f"kill points (seed {faults_seed}): "
          + "; ".join(f"{p.process or 'database'} at {p.targets}" for p in plans))

    def injected(fault: str, **detail: object) -> None:
        injections.injected(request.node.name, fault, **detail)

    started = time.monotonic()
    stack.start("consume", "relay", "project")
    try:
        publish_day(stack, day_run.day, plans, injected)
        published = time.monotonic()
        settle(stack, plans, injected, day_run.records)
    finally:
        codes = stack.stop()
    print(f"day published and applied in {published - started:.1f} s, settled"
          f" {time.monotonic() - published:.1f} s later")
    assert codes == dict.fromkeys(codes, 0), f"processes did not stop cleanly: {codes}"
    for plan in plans:
        assert_took_effect_once(day_run, injections, plan.fault)
    # After the checks: a log shorter than the reference's (lost effects) leaves kill points
    # unreached, and the checks say better what went wrong.
    fired = {p.process or "database": len(p.fired) for p in plans}
    assert fired == {**KILLS, "database": CONNECTION_TERMINATIONS}, f"fired {fired}"


def test_every_inbound_topic_redelivered_three_times_while_the_group_goes_1_3_1(
    day_run: DayRun, faults_seed: int, injections: InjectionLog,
    request: pytest.FixtureRequest,
) -> None:
    """After the day: every record of every inbound topic published again three times (same
    key, value and headers, new offsets), topic by topic in a seeded order; while the second
    third of it is published, two more `ledger consume` join the group, and they leave
    (SIGTERM) before the last third. Nothing may change but the dead letters: a record that
    was dead-lettered is dead-lettered again at each delivery."""
    rng = rng_for(faults_seed, request.node.name)
    stack = day_run.stack
    settings = stack.settings
    records = inbound_records(settings)
    topics = sorted(records)
    rng.shuffle(topics)
    deliveries = [(topic, copy) for topic in topics for copy in range(1, REDELIVERIES + 1)]
    thirds = [deliveries[n * len(deliveries) // 3:(n + 1) * len(deliveries) // 3]
              for n in range(3)]
    fault, rebalance = "redelivery of every inbound record x3", "consumer group 1 -> 3 -> 1"
    members = ("consume-B", "consume-C")
    stack.start("consume", "relay", "project")
    producer = kafka_clients.producer(settings)

    def redeliver(part: list[tuple[str, int]]) -> None:
        for topic, copy in part:
            for record in records[topic]:
                producer.send(topic, key=record.key, value=record.value, headers=record.headers)
            producer.flush()
            injections.injected(request.node.name, fault, topic=topic, copy=copy,
                                records=len(records[topic]))

    try:
        redeliver(thirds[0])
        stack.start(*members)
        injections.injected(request.node.name, rebalance, step="1 -> 3", joined=members)
        redeliver(thirds[1])
        wait_for(stack, lambda: all(stack.processes[m].ready() for m in members),
                 "the two members joining with partitions")
        codes = {m: stack.stop_one(m) for m in members}
        assert codes == dict.fromkeys(members, 0), f"members did not leave cleanly: {codes}"
        injections.injected(request.node.name, rebalance, step="3 -> 1", left=members)
        redeliver(thirds[2])
        total = sum(end_offsets(settings, settings.inbound_topics()).values())
        settle(stack, [], lambda *_a, **_k: None, total)
    finally:
        producer.close()
        codes = stack.stop()
    assert codes == dict.fromkeys(codes, 0), f"processes did not stop cleanly: {codes}"
    assert_took_effect_once(day_run, injections, fault, redelivered=True)
    assert_took_effect_once(day_run, injections, rebalance, redelivered=True)
    for what in (fault, rebalance):
        injections.checked(what, "no change but dead letters and parked messages, which"
                           " are copies of what the day dead-lettered")

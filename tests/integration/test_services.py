"""The test fixtures reach a real PostgreSQL and a real Kafka broker (see tests/conftest.py).

If these fail, every integration and e2e test would too: look here first, then at
.services/logs/ (scripts/services writes postgres.log and kafka.log there).
"""

from __future__ import annotations

import time

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

pytestmark = pytest.mark.integration

MESSAGES_COUNT = 10
TOPIC_PARTITIONS_COUNT = 3
# A local broker answers in milliseconds; these bound a hang, not the normal path.
KAFKA_REQUEST_TIMEOUT_MS = 10_000
CONSUMER_SESSION_TIMEOUT_MS = 10_000
PRODUCER_FLUSH_TIMEOUT_S = 30
CONSUME_DEADLINE_S = 60
CONSUMER_POLL_TIMEOUT_MS = 1_000
assert CONSUMER_POLL_TIMEOUT_MS < CONSUME_DEADLINE_S * 1_000


def test_database_url_reaches_a_real_postgresql(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT version()").fetchone()
    assert row is not None
    assert str(row[0]).startswith("PostgreSQL ")


def test_fresh_database_is_empty_and_invisible_to_the_shared_database(
    database_url: str, fresh_database: str
) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        connection.execute("CREATE TABLE only_in_fresh_database (id integer PRIMARY KEY)")
        database_name = connection.execute("SELECT current_database()").fetchone()
    assert tables == (0,)
    assert database_name is not None and database_name[0].startswith("t_")

    with psycopg.connect(database_url) as connection:
        found = connection.execute(
            "SELECT to_regclass('public.only_in_fresh_database') IS NOT NULL"
        ).fetchone()
    assert found == (False,)


def test_kafka_delivers_idempotent_acks_all_messages_to_a_consumer_group(
    kafka_bootstrap_servers: str, fresh_topic_prefix: str
) -> None:
    topic = f"{fresh_topic_prefix}round-trip"
    admin = KafkaAdminClient(
        bootstrap_servers=kafka_bootstrap_servers, request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS
    )
    try:
        admin.create_topics(
            [NewTopic(topic, num_partitions=TOPIC_PARTITIONS_COUNT, replication_factor=1)]
        )
    finally:
        admin.close()

    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(MESSAGES_COUNT)}
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=KAFKA_REQUEST_TIMEOUT_MS,
    )
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in sent.items()]
        producer.flush(timeout=PRODUCER_FLUSH_TIMEOUT_S)
        offsets_written = [
            future.get(timeout=PRODUCER_FLUSH_TIMEOUT_S).offset for future in futures
        ]
    finally:
        producer.close()
    assert len(offsets_written) == MESSAGES_COUNT

    group_id = f"{fresh_topic_prefix}group"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=CONSUMER_SESSION_TIMEOUT_MS,
        # kafka-python wants a consumer's request timeout above its session timeout.
        request_timeout_ms=CONSUMER_SESSION_TIMEOUT_MS + KAFKA_REQUEST_TIMEOUT_MS,
    )
    received: dict[bytes, bytes] = {}
    try:
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while len(received) < MESSAGES_COUNT and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=CONSUMER_POLL_TIMEOUT_MS).values():
                received.update((record.key, record.value) for record in records)
        consumer.commit()
        partitions = [
            TopicPartition(topic, partition) for partition in range(TOPIC_PARTITIONS_COUNT)
        ]
        committed_total = sum(consumer.committed(partition) or 0 for partition in partitions)
    finally:
        consumer.close()

    assert received == sent
    assert committed_total == MESSAGES_COUNT

"""The ledger's Kafka clients over TLS with SASL/SCRAM, against a real broker that wants both.

The broker is one of this module's own (tests/kafka_broker.py): the shared one speaks
PLAINTEXT. Every client of the ledger is built by consumers/kafka_clients.py from Settings,
so the producer, the group consumer and the admin client here are exactly what `consume`,
`relay` and `topics create` use.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from consumers import kafka_clients
from consumers.kafka_security import (
    CAFILE_ENV_VAR,
    MECHANISM_ENV_VAR,
    PASSWORD_ENV_VAR,
    PROTOCOL_ENV_VAR,
    USERNAME_ENV_VAR,
)
from consumers.settings import Settings, settings_from
from tests.kafka_broker import SecuredBroker, secured_broker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "evledger-consume", "scram-" + uuid.uuid4().hex
CONSUME_DEADLINE_S = 60
POLL_TIMEOUT_MS = 1_000
CLI_DEADLINE_S = 120


def _env(broker: SecuredBroker, password: str = PASSWORD) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        PROTOCOL_ENV_VAR: "SASL_SSL",
        MECHANISM_ENV_VAR: "SCRAM-SHA-512",
        USERNAME_ENV_VAR: USER,
        PASSWORD_ENV_VAR: password,
        CAFILE_ENV_VAR: str(broker.cafile),
    }


def _settings(broker: SecuredBroker, password: str = PASSWORD, **options: Any) -> Settings:
    return settings_from(argparse.Namespace(**options), _env(broker, password))


def _answers(broker: SecuredBroker) -> bool:
    host, port = broker.bootstrap.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False  # not listening yet: no client to build
    try:
        with closing(kafka_clients.admin(_settings(broker))) as admin:
            admin.list_topics()
        return True
    except kafka_clients.KafkaUnavailable:
        # kafka-python leaves the sockets of a client that failed to bootstrap unclosed;
        # collect them here, where their ResourceWarning is the library's and expected.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        return False


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path_factory.mktemp("secured-broker"), {USER: PASSWORD},
                        _answers) as started:
        yield started


def _cli(broker: SecuredBroker, *argv: str, password: str = PASSWORD
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **_env(broker, password)}
    return subprocess.run([sys.executable, "-m", "consumers.cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=CLI_DEADLINE_S, check=False)


def test_topics_are_created_and_a_record_goes_round_trip_over_tls_and_scram(
    broker: SecuredBroker,
) -> None:
    prefix = f"secured-{uuid.uuid4().hex[:8]}-"
    created = _cli(broker, "topics", "create", "--topic-prefix", prefix, "--partitions", "1",
                   "--replication-factor", "1")
    assert created.returncode == 0, created.stderr
    settings = _settings(broker, topic_prefix=prefix, group_id=f"{prefix}group")
    topic = settings.topic("wallets")
    assert f"created {topic}" in created.stdout

    with closing(kafka_clients.producer(settings)) as producer:
        producer.send(topic, key=b"cpo-de:driver-1", value=b"over TLS").get(timeout=30)
    consumer = kafka_clients.consumer(settings)
    try:
        consumer.subscribe([topic])
        received: list[bytes] = []
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while not received and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=POLL_TIMEOUT_MS).values():
                received.extend(record.value for record in records)
    finally:
        consumer.close()
    assert received == [b"over TLS"]


def test_a_wrong_password_is_a_clear_error_not_a_hang(broker: SecuredBroker) -> None:
    refused = _cli(broker, "topics", "create", "--topic-prefix", "never-",
                   password="wrong-" + uuid.uuid4().hex)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "cannot reach Kafka" in refused.stderr
    # Which of kafka-python's reasons comes last depends on timing: on a quiet machine the
    # broker's "Authentication failed", on a loaded one a disconnect before the broker
    # answered (seen with both cores busy). Either way the error names who tried how.
    assert f"(as {USER}, SASL_SSL)" in refused.stderr, refused.stderr
    assert "wrong-" not in refused.stderr  # the password never reaches an error message

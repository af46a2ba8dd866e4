"""Fixtures that hand tests real PostgreSQL and Kafka addresses, and isolate tests from each other.

Where the services come from, in order:
1. `DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS` from the environment, as set by
   `eval "$(scripts/services up)"` (what `scripts/test` and CI do; no Docker needed);
2. else testcontainers, when a Docker engine answers;
3. else the test fails, saying how to start the services. Integration tests never skip.
stripe-mock (Stripe's API mock, for `ledger psp-stripe`) comes only from `STRIPE_MOCK_URL`,
set by the same `scripts/services up`.

Isolation: `fresh_database` is a brand-new empty database per test (dropped afterwards), and
`fresh_topic_prefix` a unique prefix for the topics a test creates.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator

import pytest

from consumers.scratch_database import scratch_database

# kafka-python 3.0.x calls importlib.resources.read_text/open_text while its protocol
# classes are defined, i.e. at import, and Python 3.11 warns about those. The suite turns
# warnings into errors (pyproject: filterwarnings = error), so import it once here, with
# just those two warnings ignored; later imports of `kafka` are cached and stay quiet.
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"(read_text|open_text) is deprecated", category=DeprecationWarning
    )
    import kafka  # noqa: F401

# `docker info` answers within a second when an engine runs; a hung socket must not hang pytest.
DOCKER_INFO_TIMEOUT_S = 10
# Kafka topic names allow 249 characters; a short readable prefix leaves room for the rest.
TOPIC_PREFIX_TEST_NAME_CHARS_MAX = 40

START_SERVICES_HINT = (
    'start them with: eval "$(scripts/services up)"  (or run scripts/test, which does it)'
)


def _docker_engine_answers() -> bool:
    """True when a Docker engine (not just a `docker` CLI) answers."""
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        socket_path = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return socket_path.startswith("unix://") and os.path.exists(
            socket_path.removeprefix("unix://")
        )
    try:
        result = subprocess.run(
            [docker_cli, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=DOCKER_INFO_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def pytest_addoption(parser: pytest.Parser) -> None:
    # The fault suite's seed (tests/faults): options are read from this top conftest only.
    parser.addoption("--faults-seed", type=int, default=None, metavar="N",
                     help="seed of the fault suite (default: $EVLEDGER_FAULTS_SEED, else fixed)")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostgreSQL URL (postgresql://user:password@host:port/db) whose role may CREATE DATABASE."""
    from_env = os.environ.get("DATABASE_URL")
    if from_env:
        yield from_env
        return
    if not _docker_engine_answers():
        pytest.fail(f"DATABASE_URL is not set and no Docker engine answers; {START_SERVICES_HINT}")
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers before the `community` namespace
        from testcontainers.postgres import PostgresContainer

    with PostgresContainer(
        "postgres:15", username="evledger", password="evledger", dbname="evledger", driver=None
    ) as container:
        yield container.get_connection_url()


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    """A Kafka bootstrap address (host:port) of a broker that auto-creates topics."""
    from_env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if from_env:
        yield from_env
        return
    if not _docker_engine_answers():
        pytest.fail(
            "KAFKA_BOOTSTRAP_SERVERS is not set and no Docker engine answers; "
            + START_SERVICES_HINT
        )
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers before the `community` namespace
        from testcontainers.kafka import KafkaContainer

    with KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft() as container:
        yield container.get_bootstrap_server()


@pytest.fixture(scope="session")
def stripe_mock_url() -> str:
    """The HTTP address of stripe-mock (Stripe's API mock), e.g. http://127.0.0.1:12111."""
    from_env = os.environ.get("STRIPE_MOCK_URL")
    if not from_env:
        pytest.fail(f"STRIPE_MOCK_URL is not set; {START_SERVICES_HINT}")
    return from_env


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """The URL of a new, empty database, created for this test and dropped after it."""
    with scratch_database(database_url, "t_") as url:
        yield url


@pytest.fixture
def fresh_topic_prefix(request: pytest.FixtureRequest) -> str:
    """A prefix no other test (or earlier run) uses, e.g. `test-kafka-round-trip-1a2b3c4d-`.

    Only letters, digits and '-': Kafka warns when a name mixes '.' and '_'.
    """
    readable = re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name).strip("-")
    readable = readable[:TOPIC_PREFIX_TEST_NAME_CHARS_MAX].rstrip("-")
    return f"{readable}-{uuid.uuid4().hex[:8]}-"

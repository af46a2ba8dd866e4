"""The end-to-end stack (consume, relay, project, psp-simulator as processes on the real
broker and database), one per test module: see test_billing_models.py."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any, TypeVar

import psycopg
import pytest

from consumers import kafka_clients
from consumers.commands.topics import create_topics
from consumers.scratch_database import drop_database
from consumers.settings import Settings, settings_from
from consumers.store import open_ledger
from ledger.application import Ledger
from tests.e2e.test_billing_models import Stack

S = TypeVar("S", bound=Stack)


@pytest.fixture(scope="module")
def stack_database(database_url: str) -> Iterator[str]:
    name = f"e2e_billing_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        drop_database(database_url, name)


def stack_settings(kafka_bootstrap_servers: str, database: str, prefix: str) -> Settings:
    """The settings of a stack under its own topic prefix, its topics created."""
    settings = settings_from(argparse.Namespace(
        bootstrap_servers=kafka_bootstrap_servers, topic_prefix=prefix, store=database,
        group_id=f"{prefix}ledger", metrics_port=0, session_timeout_ms=10_000,
    ), environ={})
    with closing(kafka_clients.admin(settings)) as admin:
        create_topics(admin, settings.all_topics(), partitions=3, replication_factor=1)
    return settings


def running(stack: S) -> Iterator[S]:
    """Start the stack's processes, hand it out, stop them: each must exit 0."""
    stack.start()
    try:
        yield stack
    finally:
        codes = stack.stop()
    assert codes and codes == dict.fromkeys(codes, 0), f"processes did not stop cleanly: {codes}"


@pytest.fixture(scope="module")
def stack(
    stack_database: str, kafka_bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    settings = stack_settings(kafka_bootstrap_servers, stack_database,
                              f"e2e-billing-{uuid.uuid4().hex[:8]}-")
    yield from running(Stack(settings, stack_database, tmp_path_factory.mktemp("stack-logs")))


@pytest.fixture(scope="module")
def ledger(stack: Stack) -> Iterator[Ledger]:
    app = open_ledger(stack.database)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture(scope="module")
def producer(stack: Stack) -> Iterator[Any]:
    client = kafka_clients.producer(stack.settings)
    try:
        yield client
    finally:
        client.close()

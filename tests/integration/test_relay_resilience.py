"""The relay wakes on NOTIFY and rides through an unavailable PostgreSQL (issue 10 item 3).

Real PostgreSQL, real broker, a real `ledger relay` process. Connection exhaustion is made
for the test's own database only (CONNECTION LIMIT 0 on it, then its backends terminated),
never for the shared server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from consumers.benchmarks.ingest import wait_until
from consumers.relay import RELAY_TRACKING_NAME, open_relay_tracking
from consumers.settings import Settings
from consumers.store import open_ledger
from projections.new_events import NewEventsWait, new_events_signal
from tests.builders import LedgerDriver, driver, tenant, top_up
from tests.integration import test_relay
from tests.integration.test_relay import READ_DEADLINE_S

pytestmark = pytest.mark.integration

# The relay tests' fixture: a fresh database and fresh topics.
settings = test_relay.settings

ROOT = Path(__file__).resolve().parents[2]
# A wait far longer than any deadline below: returning before it proves the NOTIFY woke it.
LONG_WAIT_S = 600.0
# Each condition below is normally met within a second or two; a busy machine gets room.
DEADLINE_S = 60.0
# SIGTERM must end the relay promptly even while it waits for connections.
STOP_DEADLINE_S = 15.0


def issue_top_ups(store_url: str, count: int, first: int = 0) -> None:
    """`count` card top-ups (one outbound command each), on a connection of its own."""
    with closing(open_ledger(store_url)) as ledger:
        feed = LedgerDriver(ledger, source=f"test:resilience:{first}")
        if first == 0:
            feed.apply(tenant("t1"), driver("d1", "wallet", tenant_id="t1"))
        feed.apply(*[top_up("d1", "20.00", method="card", tenant_id="t1")
                     for _ in range(count)])


def database_name(store_url: str) -> str:
    return urlsplit(store_url).path.lstrip("/")


@contextmanager
def exhausted(database_url: str, store_url: str) -> Iterator[None]:
    """No new connection to the test's database, and every existing one terminated."""
    name = database_name(store_url)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 0").format(
            sql.Identifier(name)))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    try:
        yield
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT -1").format(
                sql.Identifier(name)))


def start_relay(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """`ledger relay` with its JSON lines (stderr) going to `log_path`."""
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", "relay", "--store", settings.store_url,
             "--bootstrap-servers", ",".join(settings.bootstrap_servers),
             "--topic-prefix", settings.topic_prefix],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL, stderr=log_file,
        )


def log_lines(log_path: Path) -> list[dict[str, Any]]:
    lines = []
    for text in log_path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue  # a line being written
    return lines


def events(log_path: Path, name: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(log_path) if line.get("event") == name]


@contextmanager
def killed_if_left_running(process: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop_and_wait(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    started_s = time.monotonic()
    process.send_signal(signal.SIGTERM)
    return_code = process.wait(timeout=STOP_DEADLINE_S)
    return return_code, time.monotonic() - started_s


def relay_position(store_url: str) -> int:
    factory, tracking = open_relay_tracking(store_url)
    with closing(factory):
        return tracking.max_tracking_id(RELAY_TRACKING_NAME) or 0


# ---------------------------------------------------------------- NOTIFY
def wait_then_set(wait: NewEventsWait, woken: threading.Event) -> None:
    wait(LONG_WAIT_S)
    woken.set()


def test_a_commit_wakes_the_new_events_wait_long_before_its_poll_even_after_the_listen_connection_dropped(  # noqa: E501
    fresh_database: str, database_url: str
) -> None:
    stop = threading.Event()
    with closing(open_ledger(fresh_database)) as ledger, \
            new_events_signal(ledger, stop) as wait_for_new_events:
        for round_number in range(2):
            woken = threading.Event()
            thread = threading.Thread(target=wait_then_set, args=(wait_for_new_events, woken),
                                      daemon=True)
            thread.start()
            # The commit must come while the thread waits, not before: give it a moment to
            # start waiting, then keep committing until it wakes (each commit notifies).
            deadline = time.monotonic() + DEADLINE_S
            first = 0
            while not woken.wait(0.2):
                assert time.monotonic() < deadline, "no NOTIFY woke the wait"
                issue_top_ups(fresh_database, 1, first=round_number * 1000 + first)
                first += 1
            thread.join(DEADLINE_S)
            if round_number == 0:
                # Drop the LISTEN connection: the next wait must reconnect and wake again.
                with psycopg.connect(database_url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                  " WHERE datname = %s AND query ILIKE 'LISTEN%%'",
                                  (database_name(fresh_database),))
                # The first wait after the drop notices it and sleeps (it may not wake).
                wait_for_new_events(0.1)
        stop.set()


# ---------------------------------------------------------------- exhaustion
def test_relay_under_connection_exhaustion_logs_every_attempt_resumes_and_exits_zero_on_sigterm(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    issue_top_ups(settings.store_url, 3)
    log_path = tmp_path / "relay.log"
    process = start_relay(settings, log_path)
    with killed_if_left_running(process):
        wait_until(lambda: relay_position(settings.store_url) > 0 or process.poll() is not None,
                   DEADLINE_S, "relay publishing the first page")
        published = relay_position(settings.store_url)
        with exhausted(database_url, settings.store_url):
            wait_until(lambda: len(events(log_path, "database_unavailable")) >= 3
                       or process.poll() is not None, DEADLINE_S, "relay logging attempts")
        issue_top_ups(settings.store_url, 2, first=100)
        wait_until(lambda: relay_position(settings.store_url) > published
                   or process.poll() is not None, DEADLINE_S, "relay resuming")
        assert process.poll() is None, log_path.read_text()
        attempts = [line["attempt"] for line in events(log_path, "database_unavailable")]
        assert attempts[:3] == [1, 2, 3], attempts
        assert all(line["retry_in_ms"] <= 5_000
                   for line in events(log_path, "database_unavailable"))
        assert events(log_path, "database_reconnected")
        # Exhausted again, and stopped while it waits for a connection.
        with exhausted(database_url, settings.store_url):
            count = len(events(log_path, "database_unavailable"))
            wait_until(lambda: len(events(log_path, "database_unavailable")) >= count + 2
                       or process.poll() is not None, DEADLINE_S, "relay waiting again")
            return_code, seconds = stop_and_wait(process)
    assert return_code == 0, log_path.read_text()
    assert seconds < STOP_DEADLINE_S
    assert events(log_path, "stopped")


def test_relay_started_while_the_database_refuses_connections_waits_and_exits_zero_on_sigterm(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "relay.log"
    with exhausted(database_url, settings.store_url):
        process = start_relay(settings, log_path)
        with killed_if_left_running(process):
            wait_until(lambda: len(events(log_path, "database_unavailable")) >= 2
                       or process.poll() is not None, DEADLINE_S, "relay logging attempts")
            return_code, _seconds = stop_and_wait(process)
    assert return_code == 0, log_path.read_text()
    assert "too many connections" in events(log_path, "database_unavailable")[-1]["error"]
    assert events(log_path, "stopped")


def test_relay_with_a_database_that_does_not_exist_fails_at_once_with_the_reason(
    settings: Settings, tmp_path: Path
) -> None:
    missing = settings.store_url.rsplit("/", 1)[0] + "/no_such_database_here"
    result = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "relay", "--store", missing,
         "--bootstrap-servers", ",".join(settings.bootstrap_servers),
         "--topic-prefix", settings.topic_prefix],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=READ_DEADLINE_S, check=False,
    )
    assert result.returncode != 0
    assert "does not exist" in result.stderr

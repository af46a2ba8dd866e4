"""`ledger project` rides through a lost PostgreSQL connection (a server restart, a
terminated backend): it logs each reconnect attempt as a JSON line, goes on from its stored
position, and still exits 0 on SIGTERM at any moment (issue 10, item 3)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from consumers.benchmarks.ingest import wait_until
from consumers.store import open_ledger
from ledger.application import Inbound
from tests.builders import top_up
from tests.integration.test_ingest import LEDGER_COMMAND, day_messages, subprocess_env
from tests.integration.test_projections import wait_for_position

pytestmark = pytest.mark.integration

# A loaded 2-core machine: the projector's start, a reconnect (backoff of at most a few
# seconds) and a catch-up each fit well within this.
PROJECTOR_DEADLINE_S = 60


def terminate_connections(database_url: str) -> int:
    """What a PostgreSQL restart does to every client: its backends end (AdminShutdown).
    As the same role (may signal its own backends); other engineers' databases untouched."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def logged(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events_named(path: Path, name: str) -> list[dict[str, Any]]:
    return [line for line in logged(path) if line["event"] == name]


def append(store: str, source: str, messages: list[Any]) -> int:
    with closing(open_ledger(store)) as ledger:
        ledger.apply_batch([Inbound(source, n, m, raw=m.model_dump_json())
                            for n, m in enumerate(messages, start=1)])
        last_id = ledger.recorder.max_notification_id()
    assert last_id is not None
    return last_id


@pytest.fixture
def projector(fresh_database: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    log_path = tmp_path / "project.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [*LEDGER_COMMAND, "project", "--store", fresh_database],
            cwd=tmp_path, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=log_file,
            text=True,
        )
        try:
            yield process, log_path
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(PROJECTOR_DEADLINE_S)


def test_the_projector_reconnects_after_its_connections_are_terminated(
    fresh_database: str, projector: tuple[subprocess.Popen[str], Path]
) -> None:
    process, log_path = projector
    first = append(fresh_database, "test:before", day_messages(2, tenants=("t1",)))
    with closing(open_ledger(fresh_database)) as ledger:
        assert wait_for_position(ledger, first, PROJECTOR_DEADLINE_S) == first

    assert terminate_connections(fresh_database) >= 2  # LISTEN and read-model connections
    second = append(fresh_database, "test:after", [top_up("t1-d1", "7.00")])

    with closing(open_ledger(fresh_database)) as ledger:
        assert wait_for_position(ledger, second, PROJECTOR_DEADLINE_S) == second, (
            log_path.read_text())
    assert process.poll() is None, log_path.read_text()
    wait_until(lambda: bool(events_named(log_path, "reconnected")), PROJECTOR_DEADLINE_S,
               "a `reconnected` line")
    lost = events_named(log_path, "connection_lost")
    assert lost and lost[0]["attempt"] == 1 and lost[0]["level"] == "warning"
    assert lost[0]["retry_in_s"] > 0 and lost[0]["error"]

    process.send_signal(signal.SIGTERM)
    assert process.wait(PROJECTOR_DEADLINE_S) == 0, log_path.read_text()
    assert logged(log_path)[-1]["event"] == "stopped"
    assert logged(log_path)[-1]["position"] == second


def test_sigterm_while_the_database_is_away_still_exits_zero(
    fresh_database: str, projector: tuple[subprocess.Popen[str], Path]
) -> None:
    process, log_path = projector
    first = append(fresh_database, "test:before", [top_up("t1-d1", "7.00")])
    with closing(open_ledger(fresh_database)) as ledger:
        assert wait_for_position(ledger, first, PROJECTOR_DEADLINE_S) == first

    terminate_connections(fresh_database)
    wait_until(lambda: bool(events_named(log_path, "connection_lost")) or (
        process.poll() is not None), PROJECTOR_DEADLINE_S, "a `connection_lost` line")
    process.send_signal(signal.SIGTERM)  # during the backoff, or the reconnect

    assert process.wait(PROJECTOR_DEADLINE_S) == 0, log_path.read_text()
    assert logged(log_path)[-1]["event"] == "stopped"

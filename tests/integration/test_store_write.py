"""The PostgreSQL write path never waits forever on a batch bigger than the socket takes at once.

`ledger consume` stalled in the end-to-end bench inside eventsourcing's insert: psycopg
3.3's `Pipeline.sync()` stops writing once its command queue is empty even if libpq still
holds unsent bytes of the last statement (`PQflush` returned 1), then waits for a result the
server cannot send before it has read the whole statement (client in `Pipeline.sync`, server
`active`/`ClientRead` with the events table locked). A batch's events go as one statement,
so this needs a statement larger than the socket buffers can take when the sync comes; a
small send buffer on the connection makes that certain for a ~1 MB batch (the size of the
simulated day's largest batches) instead of a matter of machine load.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent, Tracking
from psycopg.conninfo import conninfo_to_dict

from consumers.chained_store import ChainStore
from consumers.store import open_ledger

pytestmark = pytest.mark.integration

BATCH_EVENTS = 1_000
EVENT_STATE_BYTES = 1_000
# Small enough that one write can never take a batch's statement (the kernel doubles it).
SEND_BUFFER_BYTES = 8_192
# A ~1 MB insert takes well under a second; a stalled one never ends.
INSERT_DEADLINE_S = 30


def _small_send_buffer(datastore: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection the recorder takes from its pool writes at most a few KB at once."""
    taking = datastore.get_connection

    @contextmanager
    def get_connection() -> Iterator[psycopg.Connection[Any]]:
        with taking() as conn:
            sock = socket.socket(fileno=conn.fileno())
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            finally:
                sock.detach()  # the connection keeps its socket
            yield conn

    monkeypatch.setattr(datastore, "get_connection", get_connection)


def _stuck_backends(database_url: str, database: Any) -> list[int]:
    """Terminates the database's backends waiting for a statement's rest (a stalled insert)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
            " AND wait_event = 'ClientRead'", (database,)).fetchall()
        for (pid,) in rows:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return [int(pid) for (pid,) in rows]


def test_a_batch_larger_than_the_socket_takes_is_stored_linked_and_committed(
    fresh_database: str, database_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with closing(open_ledger(fresh_database)) as ledger:
        recorder: Any = ledger.recorder
        _small_send_buffer(recorder.datastore, monkeypatch)
        events = [StoredEvent(originator_id=uuid4(), originator_version=1, topic="probe:Big",
                              state=bytes([n % 256]) * EVENT_STATE_BYTES)
                  for n in range(BATCH_EVENTS)]
        written: list[Any] = []

        def insert() -> None:
            try:
                written.append(recorder.insert_events(events, tracking=Tracking("probe", 1)))
            except BaseException as error:
                written.append(error)

        inserting = threading.Thread(target=insert, daemon=True)
        inserting.start()
        inserting.join(INSERT_DEADLINE_S)
        if inserting.is_alive():  # free the thread and the table lock before failing
            monkeypatch.undo()  # eventsourcing retries on a new connection: a normal one
            stuck = _stuck_backends(database_url, conninfo_to_dict(fresh_database)["dbname"])
            inserting.join(INSERT_DEADLINE_S)
            pytest.fail(f"the insert stalled (backends in ClientRead: {stuck})")
        [ids] = written
        assert not isinstance(ids, BaseException), ids
        assert list(ids) == list(range(1, BATCH_EVENTS + 1))
        assert recorder.max_tracking_id("probe") == 1
        links = list(ChainStore(recorder).links(BATCH_EVENTS))
        assert [link.notification_id for link in links] == list(ids)

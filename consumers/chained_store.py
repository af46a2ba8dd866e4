"""The event store with a hash chain: each stored event's link written in its transaction.

The ledger's process recorder is replaced (eventsourcing's PROCESS_RECORDER_TOPIC, set in
consumers/store.py) by a subclass that, inside the very transaction that inserts a batch of
events and its tracking row, reads the chain's head and inserts one link per new event
(ledger/event_chain.py says what a link covers). The links live in their own table beside
the events (`<events table>_chain`: notification_id, previous_id, hash), so the library's
own tables keep their shape.

Why the order is right with several writers (consumers of one group):
- PostgreSQL: eventsourcing takes `LOCK TABLE <events> IN EXCLUSIVE MODE` before it inserts,
  and holds it to the commit. The head is read after that lock, so no other writer can link
  between our read of the head and our commit; notification ids are handed out under the
  same lock, so link order is notification-id order is commit order.
- SQLite: one writer at a time for the whole file; the head is read after our first INSERT,
  which took the write lock, so the same holds.
A rolled-back batch rolls back its links with its events (its ids become a gap, which the
next link's previous_id steps over).

A store written before the chain existed has events and no links: new events are then NOT
linked (a chain that starts in the middle would prove nothing about what came before) until
`ledger audit seal` links every stored event, as it stands at that moment, under the same
lock; from then on every write links its events.

The same recorder keeps the index of applied event ids (consumers/processed_index.py) in the
same transaction: its rows come from the batch's `ProcessedBatch` event, which is chained.

A trigger would have been the other way; it was not taken because a trigger links whatever
is inserted, including a row inserted by hand, which is exactly what the chain must expose.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteProcessRecorder
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from consumers.processed_index import IndexRow, index_rows, processed_table_name
from ledger.application import OTHER_TRACKINGS
from ledger.domain.inbox import PROCESSED_BATCH_TOPIC
from ledger.event_chain import ChainedRecord, Link, links_after

# Links and records read per query by `verify` and `seal`: bounded memory on any store.
CHAIN_PAGE_ROWS_MAX = 1_000


def chain_table_name(events_table_name: str) -> str:
    return f"{events_table_name}_chain"


def _records(ids: Sequence[int], stored_events: Sequence[StoredEvent]) -> list[ChainedRecord]:
    assert len(ids) == len(stored_events), "one notification id per stored event"
    return [
        ChainedRecord(notification_id, event.originator_id, event.originator_version,
                      event.topic, event.state)
        for notification_id, event in zip(ids, stored_events, strict=True)
    ]


# ---------------------------------------------------------------------------- SQLite
class LinkTiming:
    """Time spent linking, for `ledger bench chain` (the write path's added cost)."""

    link_seconds: float = 0.0
    linked_events: int = 0

    def _count(self, started_s: float, events: int) -> None:
        self.link_seconds += time.perf_counter() - started_s
        self.linked_events += events


class ChainedSQLiteProcessRecorder(SQLiteProcessRecorder, LinkTiming):
    records_several_sources = True  # ledger.application.RECORDS_SEVERAL_SOURCES

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {chain_table_name(self.events_table_name)} ("
            "notification_id INTEGER PRIMARY KEY, previous_id INTEGER NOT NULL,"
            " hash BLOB NOT NULL)"
        )
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {processed_table_name(self.events_table_name)} ("
            "processed_id TEXT PRIMARY KEY, payload_digest TEXT NOT NULL,"
            " notification_id INTEGER NOT NULL)"
        )
        return statements

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        for tracking in kwargs.get(OTHER_TRACKINGS, ()):  # a batch of several sources
            self._insert_tracking(c, tracking)
        if ids:  # an event id recorded before makes this raise: the batch rolls back
            c.executemany(
                f"INSERT INTO {processed_table_name(self.events_table_name)} VALUES (?, ?, ?)",
                [(key.hex, digest, notification_id)
                 for key, digest, notification_id in index_rows(ids, stored_events)],
            )
        started_s = time.perf_counter()
        if ids:  # the INSERT above holds the file's write lock until our commit
            chain = chain_table_name(self.events_table_name)
            c.execute(f"SELECT notification_id, previous_id, hash FROM {chain}"
                      " ORDER BY notification_id DESC LIMIT 1")
            row = c.fetchone()
            head = None if row is None else Link(row[0], row[1], bytes(row[2]))
            if head is None:
                c.execute(f"SELECT 1 FROM {self.events_table_name} WHERE rowid < ? LIMIT 1",
                          (ids[0],))
                if c.fetchone() is not None:
                    return ids  # written before the chain existed: `ledger audit seal`
            links = links_after(head, _records(ids, stored_events))
            c.executemany(f"INSERT INTO {chain} VALUES (?, ?, ?)",
                          [(link.notification_id, link.previous_id, link.hash)
                           for link in links])
            self._count(started_s, len(links))
        return ids


# ---------------------------------------------------------------------------- PostgreSQL
class ChainedPostgresProcessRecorder(PostgresProcessRecorder, LinkTiming):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chain_table_name = chain_table_name(self.events_table_name)
        self.check_identifier_length(self.chain_table_name)
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} (notification_id BIGINT PRIMARY KEY,"
            " previous_id BIGINT NOT NULL, hash BYTEA NOT NULL)"
        ).format(*self._chain()))
        self.processed_table_name = processed_table_name(self.events_table_name)
        self.check_identifier_length(self.processed_table_name)
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} (processed_id UUID PRIMARY KEY,"
            " payload_digest TEXT NOT NULL, notification_id BIGINT NOT NULL)"
        ).format(Identifier(self.datastore.schema), Identifier(self.processed_table_name)))

    records_several_sources = True  # ledger.application.RECORDS_SEVERAL_SOURCES

    def _chain(self) -> tuple[Identifier, Identifier]:
        return Identifier(self.datastore.schema), Identifier(self.chain_table_name)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        for tracking in kwargs.get(OTHER_TRACKINGS, ()):  # a batch of several sources
            self._insert_tracking(curs, tracking=tracking)
        super()._insert_events(curs, stored_events, **kwargs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """eventsourcing's insert (tracking row, lock, NOTIFY, the events as one statement,
        then our links and index rows), each statement sent and answered in turn instead of
        in a psycopg pipeline. psycopg 3.3's `Pipeline.sync()` stops writing when its queue is
        empty even if libpq still holds unsent bytes of the last statement, then waits for a
        result the server cannot send before it has that statement whole: a batch's insert
        bigger than the socket takes at that moment (~1 MB batches of the simulated day on a
        busy machine) hung `ledger consume` for good, the server in ClientRead holding the
        events table's lock. Outside a pipeline psycopg flushes a statement completely before
        it reads (tests/integration/test_store_write.py). It also rolls back on any error,
        which eventsourcing's pipeline did not (it committed a batch whose linking raised)."""
        with self.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)  # the tracking rows
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        # Still inside the insert's transaction, after its EXCLUSIVE lock on the events table.
        if ids:
            started_s = time.perf_counter()
            self._link(curs, ids, stored_events)
            self._count(started_s, len(ids))
            self._index(curs, ids, stored_events)
        return ids

    def _index(self, curs: Cursor[DictRow], ids: Sequence[int],
               stored_events: Sequence[StoredEvent]) -> None:
        """The batch's event ids into the index (consumers/processed_index.py). One recorded
        before violates its key: a database error, so the transaction cannot commit, and
        the batch is applied again (where the id is a duplicate)."""
        rows = index_rows(ids, stored_events)
        if rows:
            curs.executemany(
                SQL("INSERT INTO {}.{} (processed_id, payload_digest, notification_id)"
                    " VALUES (%s, %s, %s)").format(
                    Identifier(self.datastore.schema), Identifier(self.processed_table_name)),
                rows,
            )

    def _link(self, curs: Cursor[DictRow], ids: Sequence[int],
              stored_events: Sequence[StoredEvent]) -> None:
        curs.execute(SQL("SELECT notification_id, previous_id, hash FROM {}.{}"
                         " ORDER BY notification_id DESC LIMIT 1").format(*self._chain()),
                     prepare=True)
        row = curs.fetchone()
        head = None if row is None else Link(row["notification_id"], row["previous_id"],
                                             bytes(row["hash"]))
        if head is None:
            curs.execute(SQL("SELECT 1 AS found FROM {}.{} WHERE notification_id < %s LIMIT 1")
                         .format(Identifier(self.datastore.schema),
                                 Identifier(self.events_table_name)), (ids[0],))
            if curs.fetchone() is not None:
                return  # written before the chain existed: `ledger audit seal`
        links = links_after(head, _records(ids, stored_events))
        curs.executemany(
            SQL("INSERT INTO {}.{} (notification_id, previous_id, hash) VALUES (%s, %s, %s)")
            .format(*self._chain()),
            [(link.notification_id, link.previous_id, link.hash) for link in links],
        )


# ---------------------------------------------------------------------------- reading
class ChainStore:
    """Reads records and links page by page, and seals a store that has no chain yet."""

    def __init__(self, recorder: Any) -> None:
        if isinstance(recorder, ChainedPostgresProcessRecorder):
            self._postgres: ChainedPostgresProcessRecorder | None = recorder
            self._sqlite: ChainedSQLiteProcessRecorder | None = None
        elif isinstance(recorder, ChainedSQLiteProcessRecorder):
            self._postgres, self._sqlite = None, recorder
        else:
            raise TypeError(f"{type(recorder).__name__} keeps no hash chain")
        self._recorder = recorder

    def max_notification_id(self) -> int:
        return int(self._recorder.max_notification_id() or 0)

    def records(self, stop: int) -> Iterator[ChainedRecord]:
        """Every stored record with notification id <= stop, in order, a page at a time."""
        for row in self._pages(self._select_records(), stop):
            yield self._record(row)

    def links(self, stop: int) -> Iterator[Link]:
        """Every link with notification id <= stop, in order, a page at a time."""
        for row in self._pages(self._select_links(), stop):
            yield _link(row)

    def _pages(self, statement: Any, stop: int) -> Iterator[tuple[Any, ...]]:
        after = 0
        # Ids are unique and grow, so a full page moves `after` on by at least a page.
        for _page in range(stop // CHAIN_PAGE_ROWS_MAX + 2):
            rows = self._query(statement, (after, stop, CHAIN_PAGE_ROWS_MAX))
            yield from rows
            if len(rows) < CHAIN_PAGE_ROWS_MAX:
                return
            after = int(rows[-1][0])

    def seal(self) -> tuple[int, Link | None]:
        """Link every stored event of a store that has no chain yet, under the writers' lock.

        Returns (events linked, the new head). A store that has links is never re-sealed:
        an unlinked record inside a chain is what `verify` must report, not paper over.
        """
        if self._postgres is not None:
            return self._seal_postgres(self._postgres)
        assert self._sqlite is not None
        return self._seal_sqlite(self._sqlite)

    # -------------------------------------------------------------- per database
    def _seal_postgres(self, recorder: ChainedPostgresProcessRecorder) -> tuple[int, Link | None]:
        with recorder.datastore.transaction(commit=True) as curs:
            for lock in recorder.lock_table_statements:
                curs.execute(lock)  # the same lock every writer takes: nobody writes meanwhile
            curs.execute(SQL("SELECT 1 AS found FROM {}.{} LIMIT 1").format(*recorder._chain()))
            if curs.fetchone() is not None:
                raise ChainAlreadyStarted("the store has a chain already")
            curs.execute(recorder.max_notification_id_statement)
            stop = int((curs.fetchone() or {}).get("max") or 0)
            head: Link | None = None
            linked = 0
            for _page in range(stop // CHAIN_PAGE_ROWS_MAX + 2):
                curs.execute(self._select_records(),
                             (head.notification_id if head else 0, stop, CHAIN_PAGE_ROWS_MAX))
                rows = curs.fetchall()
                links = links_after(head, [self._record(tuple(row.values())) for row in rows])
                curs.executemany(
                    SQL("INSERT INTO {}.{} VALUES (%s, %s, %s)").format(*recorder._chain()),
                    [(link.notification_id, link.previous_id, link.hash) for link in links],
                )
                linked += len(links)
                head = links[-1] if links else head
                if len(rows) < CHAIN_PAGE_ROWS_MAX:
                    break
        return linked, head

    def _seal_sqlite(self, recorder: ChainedSQLiteProcessRecorder) -> tuple[int, Link | None]:
        chain = chain_table_name(recorder.events_table_name)
        path = recorder.datastore.pool.db_name
        with closing(sqlite3.connect(path, isolation_level=None)) as connection:
            # IMMEDIATE: the write lock first, so no batch commits between our reads and writes.
            connection.execute("BEGIN IMMEDIATE")
            try:
                if connection.execute(f"SELECT 1 FROM {chain} LIMIT 1").fetchone() is not None:
                    raise ChainAlreadyStarted("the store has a chain already")
                stop = int(connection.execute(
                    f"SELECT MAX(rowid) FROM {recorder.events_table_name}").fetchone()[0] or 0)
                head: Link | None = None
                linked = 0
                for _page in range(stop // CHAIN_PAGE_ROWS_MAX + 2):
                    rows = connection.execute(
                        self._select_records(),
                        (head.notification_id if head else 0, stop, CHAIN_PAGE_ROWS_MAX),
                    ).fetchall()
                    links = links_after(head, [self._record(row) for row in rows])
                    connection.executemany(
                        f"INSERT INTO {chain} VALUES (?, ?, ?)",
                        [(link.notification_id, link.previous_id, link.hash) for link in links],
                    )
                    linked += len(links)
                    head = links[-1] if links else head
                    if len(rows) < CHAIN_PAGE_ROWS_MAX:
                        break
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return linked, head

    def _select_records(self) -> Any:
        if self._postgres is not None:
            return SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state"
                " FROM {}.{} WHERE notification_id > %s AND notification_id <= %s"
                " ORDER BY notification_id LIMIT %s"
            ).format(Identifier(self._postgres.datastore.schema),
                     Identifier(self._postgres.events_table_name))
        assert self._sqlite is not None
        return (
            "SELECT rowid, originator_id, originator_version, topic, state"
            f" FROM {self._sqlite.events_table_name} WHERE rowid > ? AND rowid <= ?"
            " ORDER BY rowid LIMIT ?"
        )

    def _select_links(self) -> Any:
        if self._postgres is not None:
            return SQL("SELECT notification_id, previous_id, hash FROM {}.{}"
                       " WHERE notification_id > %s AND notification_id <= %s"
                       " ORDER BY notification_id LIMIT %s").format(*self._postgres._chain())
        assert self._sqlite is not None
        return (f"SELECT notification_id, previous_id, hash FROM"
                f" {chain_table_name(self._sqlite.events_table_name)}"
                " WHERE notification_id > ? AND notification_id <= ?"
                " ORDER BY notification_id LIMIT ?")

    def _query(self, statement: str | Composed, params: tuple[int, ...]) -> list[tuple[Any, ...]]:
        with self._recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in rows]

    def _record(self, row: Sequence[Any]) -> ChainedRecord:
        notification_id, originator_id, version, topic, state = row
        if self._sqlite is not None:
            originator_id = self._sqlite.convert_originator_id(originator_id)
        # A hand-edited SQLite row may hold text where the library wrote a BLOB.
        content = state.encode() if isinstance(state, str) else bytes(state)
        return ChainedRecord(int(notification_id), _uuid_or_text(originator_id), int(version),
                             str(topic), content)

    # -------------------------------------------------------------- the processed index
    def processed_batches(self, stop: int) -> Iterator[list[tuple[int, bytes]]]:
        """The `ProcessedBatch` events up to `stop` (notification id, state), a page at a
        time, for checking the index against them (consumers/processed_index.py)."""
        start = 1
        while True:
            page = self._recorder.select_notifications(
                start=start, stop=stop, limit=CHAIN_PAGE_ROWS_MAX, topics=[PROCESSED_BATCH_TOPIC])
            yield [(n.id, bytes(n.state)) for n in page]
            if len(page) < CHAIN_PAGE_ROWS_MAX:
                return
            start = page[-1].id + 1

    def processed_rows(self, after: int, upto: int) -> list[IndexRow]:
        """The index rows whose event's notification id is in (after, upto]."""
        if self._postgres is not None:
            statement: Any = SQL(
                "SELECT processed_id, payload_digest, notification_id FROM {}.{}"
                " WHERE notification_id > %s AND notification_id <= %s"
            ).format(Identifier(self._postgres.datastore.schema),
                     Identifier(self._postgres.processed_table_name))
        else:
            assert self._sqlite is not None
            statement = (
                "SELECT processed_id, payload_digest, notification_id FROM"
                f" {processed_table_name(self._sqlite.events_table_name)}"
                " WHERE notification_id > ? AND notification_id <= ?")
        return [(key if isinstance(key, UUID) else UUID(key), str(digest), int(nid))
                for key, digest, nid in self._query(statement, (after, upto))]


class ChainAlreadyStarted(Exception):
    """`seal` on a store whose chain exists: nothing to do, and nothing it may do."""


def _link(row: Sequence[Any]) -> Link:
    return Link(int(row[0]), int(row[1]), bytes(row[2]))


def _uuid_or_text(value: Any) -> UUID | str:
    return value if isinstance(value, UUID) else str(value)

"""The read-model database behind the finance desk, one tenant per transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from projections.api_keys import tenant_of_key
from projections.database import ReadModelDatabase
from projections.tenant_isolation import Query, reader_scope, unscoped_reader


class Desk:
    """Serialises access to the one read-model connection: requests run in a thread pool,
    and a psycopg connection carries one transaction (with its tenant) at a time."""

    def __init__(self, db: ReadModelDatabase) -> None:
        self.db = db
        self._lock = threading.Lock()

    @contextmanager
    def read(self, tenant_id: str) -> Iterator[Query]:
        with self._lock, reader_scope(self.db, tenant_id) as query:
            yield query

    def tenant_of(self, key: str) -> str | None:
        with self._lock, unscoped_reader(self.db) as query:
            return tenant_of_key(query, key)

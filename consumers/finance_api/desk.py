"""The read-model database behind the finance desk, one tenant per transaction; and, for
`as_of` questions, the event store the business-time views are replayed from."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.application import Application

from projections.api_keys import tenant_of_key
from projections.business_as_of import BusinessCutoff, TenantCutoff, replay_business_view
from projections.database import ReadModelDatabase, SqliteReadModel
from projections.runner import ensure_schema
from projections.tenant_isolation import Query, reader_scope, unscoped_reader


class AsOfUnavailable(Exception):
    """The desk was started without the event store, so it cannot replay a past view."""


class Desk:
    """Serialises access to the one read-model connection: requests run in a thread pool,
    and a psycopg connection carries one transaction (with its tenant) at a time."""

    def __init__(self, db: ReadModelDatabase, ledger: Application[Any] | None = None) -> None:
        self.db = db
        self.ledger = ledger
        self._lock = threading.Lock()
        # One replay at a time: each reads the whole log, and two at once only share the CPU.
        self._replay_lock = threading.Lock()

    @contextmanager
    def read(self, tenant_id: str) -> Iterator[Query]:
        with self._lock, reader_scope(self.db, tenant_id) as query:
            yield query

    @contextmanager
    def read_as_of(
        self, tenant_id: str, cutoff: BusinessCutoff
    ) -> Iterator[tuple[Query, TenantCutoff | None]]:
        """Queries over the tenant's books as they stood at `cutoff` in business time: only
        the tenant's events, replayed into a throwaway in-memory read model
        (projections/business_as_of.py); and the tenant's exact cut-off (None: the store
        holds no configuration of the tenant)."""
        if self.ledger is None:
            raise AsOfUnavailable("this desk was started without the event store")
        scratch = SqliteReadModel(":memory:")
        try:
            ensure_schema(scratch)
            with self._replay_lock:
                cutoffs, _debts, _events = replay_business_view(
                    self.ledger, scratch, cutoff, tenants={tenant_id})
            yield scratch.query, cutoffs.get(tenant_id)
        finally:
            scratch.close()

    def tenant_of(self, key: str) -> str | None:
        with self._lock, unscoped_reader(self.db) as query:
            return tenant_of_key(query, key)

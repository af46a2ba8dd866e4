"""Row-level security on PostgreSQL: every read-model table with a tenant_id is under the
tenant policy (FORCEd), the reader role owns nothing, sees one tenant at a time, and with
no tenant set sees nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from consumers.store import open_store
from projections.database import PostgresReadModel, open_read_model
from projections.runner import ensure_schema
from projections.tenant_isolation import (
    READER_ROLE,
    UNSCOPED_TABLES,
    isolate_tenants,
    reader_scope,
    tables_lacking_isolation,
    tenant_tables,
)
from tests.finance_desk import (
    TENANTS,
    ensure_reader_role,
    ingest,
    new_database,
    run_cli,
    simulated_day,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def isolated(database_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[str, PostgresReadModel]]:
    ensure_reader_role(database_url)
    events = simulated_day(tmp_path_factory.mktemp("isolation"))
    with new_database(database_url) as url:
        ingest(events, url)
        ledger = open_store(url)
        db = open_read_model(ledger)
        assert isinstance(db, PostgresReadModel)
        ensure_schema(db)
        isolate_tenants(db)
        try:
            yield url, db
        finally:
            db.close()
            ledger.close()


def test_every_read_model_table_with_a_tenant_is_under_the_forced_policy(
    isolated: tuple[str, PostgresReadModel],
) -> None:
    _, db = isolated
    tables = tenant_tables(db)  # from the catalog, not from our own list
    assert {"rm_sessions", "rm_invoices", "rm_journal_postings"} <= set(tables)
    assert tables_lacking_isolation(db) == []


def test_a_table_added_later_is_covered_by_the_same_setup(
    isolated: tuple[str, PostgresReadModel],
) -> None:
    _, db = isolated
    with db.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS rm_added_later (tenant_id TEXT NOT NULL)")
    assert tables_lacking_isolation(db) == ["rm_added_later"]
    isolate_tenants(db)
    assert tables_lacking_isolation(db) == []


def test_the_reader_sees_one_tenant_at_a_time_and_nothing_without_one(
    isolated: tuple[str, PostgresReadModel],
) -> None:
    url, db = isolated
    counts = {}
    for tenant in TENANTS:
        with reader_scope(db, tenant) as query:
            # No tenant filter in the SQL: only the policy stands between tenants here.
            rows = query("SELECT DISTINCT tenant_id FROM rm_invoices", {})
            counts[tenant] = query("SELECT COUNT(*) FROM rm_journal_postings", {})[0][0]
        assert rows == [(tenant,)]
    assert all(counts.values())
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
        for table in tenant_tables(db):
            if table not in UNSCOPED_TABLES:
                assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,), table


def test_the_reader_owns_nothing_and_cannot_write(isolated: tuple[str, PostgresReadModel]
                                                  ) -> None:
    url, _ = isolated
    with psycopg.connect(url, autocommit=True) as conn:
        owned = conn.execute(
            "SELECT COUNT(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = %s", (READER_ROLE,)).fetchone()
        assert owned == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
            conn.execute("SELECT set_config('app.tenant_id', 'cpo-de', true)")
            conn.execute("DELETE FROM rm_invoices")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(f"SET LOCAL ROLE {READER_ROLE}")
            conn.execute("SELECT COUNT(*) FROM rm_tracking")


def test_the_projector_still_writes_under_forced_security(
    isolated: tuple[str, PostgresReadModel], tmp_path: Path,
) -> None:
    url, db = isolated
    before = db.query("SELECT COUNT(*) FROM rm_invoices")[0][0]
    run_cli("simulate", "--sessions", "4", "--seed", "11", "--out", str(tmp_path / "more.jsonl"))
    ingest(tmp_path / "more.jsonl", url)
    assert db.query("SELECT COUNT(*) FROM rm_invoices")[0][0] > before

"""Tenant isolation inside PostgreSQL: row-level security on every read-model table.

Setup (`isolate_tenants`, idempotent, run by `ledger serve` at start and after any change
of the read-model tables, e.g. a rebuild, which drops them):
  1. find, in the catalog, every table of the read-model schema with a `tenant_id` column
     (generic on purpose: a read-model table added later is covered without a change here);
  2. ENABLE and FORCE row-level security on it, so even its owner is subject to policies;
  3. policy `tenant_isolation` for the reader role: a row is visible only when its
     `tenant_id` equals the transaction's `app.tenant_id`; unset, nothing is visible;
  4. policy `projection_writer` for the owner (the role that runs `ledger project`): all
     rows, since projecting is tenant-blind by design;
  5. the reader role may SELECT the read-model tables and nothing else (it owns nothing).
A reader transaction (`reader_scope`) does `SET LOCAL ROLE` to the reader role and
`set_config('app.tenant_id', ..., true)` (SET LOCAL): both end with the transaction.

The reader role is created by whoever administers the cluster (`scripts/services` does,
granting it to the application role): creating roles needs a privilege the application
role must not have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from projections.database import Params, PostgresReadModel, ReadModelDatabase, Row
from projections.finance_sql import API_KEYS_TABLE

READER_ROLE = "evledger_finance_reader"
TENANT_SETTING = "app.tenant_id"
TENANT_POLICY = "tenant_isolation"
WRITER_POLICY = "projection_writer"
# Tables with a tenant_id that are not under the tenant policy, each with why. API keys are
# looked up before a tenant is known (that lookup is what tells the tenant); they hold only
# hashes, and the reader role may read them, not change them.
UNSCOPED_TABLES: dict[str, str] = {API_KEYS_TABLE: "read to learn the tenant of a key"}

TABLES_WITH_TENANT = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_attribute a ON a.attrelid = c.oid"
    " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
    " AND a.attname = 'tenant_id' AND NOT a.attisdropped"
)
TABLE_SECURITY = (
    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
    " (SELECT COUNT(*) FROM pg_policy p WHERE p.polrelid = c.oid"
    "  AND p.polname = :policy) AS policies"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema() AND c.relname = :table"
)
EXISTING_POLICIES = (
    "SELECT polname FROM pg_policy WHERE polrelid = CAST(:table AS regclass)"
)
ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = :role"

Query = Callable[[str, Params], list[Row]]


class IsolationUnavailable(Exception):
    """The reader role is missing: the cluster's administrator has not created it."""


def _quoted(identifier: str) -> str:
    # Names come from the catalog; quoting keeps any of them a single identifier.
    return '"' + identifier.replace('"', '""') + '"'


def tenant_tables(db: ReadModelDatabase) -> list[str]:
    """Every table of the read-model schema with a tenant_id column (from the catalog)."""
    return sorted(str(name) for (name,) in db.query(TABLES_WITH_TENANT))


def isolate_tenants(db: PostgresReadModel) -> list[str]:
    """Steps 1-5 of the module docstring; the tables now under the tenant policy."""
    if not db.query(ROLE_EXISTS, {"role": READER_ROLE}):
        raise IsolationUnavailable(
            f"PostgreSQL role {READER_ROLE!r} does not exist; create it as an administrator "
            f"(scripts/services up does: CREATE ROLE {READER_ROLE} NOLOGIN; "
            f"GRANT {READER_ROLE} TO <application role>)"
        )
    reader = _quoted(READER_ROLE)
    isolated: list[str] = []
    with db.transaction() as tx:
        tx.execute(f"GRANT USAGE ON SCHEMA {_quoted(_current_schema(db))} TO {reader}")
        for table in tenant_tables(db):  # 1.
            name = _quoted(table)
            tx.execute(f"GRANT SELECT ON {name} TO {reader}")  # 5.
            if table in UNSCOPED_TABLES:
                continue
            tx.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")  # 2.
            tx.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
            policies = {row[0] for row in tx.query(EXISTING_POLICIES, {"table": name})}
            if TENANT_POLICY not in policies:  # 3.
                tx.execute(
                    f"CREATE POLICY {TENANT_POLICY} ON {name} FOR SELECT TO {reader}"
                    f" USING (tenant_id = current_setting('{TENANT_SETTING}', true))"
                )
            if WRITER_POLICY not in policies:  # 4.
                tx.execute(
                    f"CREATE POLICY {WRITER_POLICY} ON {name} TO CURRENT_USER"
                    " USING (true) WITH CHECK (true)"
                )
            isolated.append(table)
    return isolated


def _current_schema(db: ReadModelDatabase) -> str:
    return str(db.query("SELECT current_schema()")[0][0])


def tables_lacking_isolation(db: ReadModelDatabase) -> list[str]:
    """Tables with a tenant_id but without FORCEd row-level security and the tenant policy."""
    lacking = []
    for table in tenant_tables(db):
        if table in UNSCOPED_TABLES:
            continue
        rows = db.query(TABLE_SECURITY, {"table": table, "policy": TENANT_POLICY})
        _, enabled, forced, policies = rows[0]
        if not (enabled and forced and int(policies) == 1):
            lacking.append(table)
    return lacking


@contextmanager
def reader_scope(db: ReadModelDatabase, tenant_id: str) -> Iterator[Query]:
    """Queries that see one tenant's rows: on PostgreSQL as the reader role under the policy,
    on SQLite through the queries' own tenant filter (SQLite has no row-level security)."""
    if not isinstance(db, PostgresReadModel):
        yield db.query
        return
    with db.transaction() as tx:
        tx.execute(f"SET LOCAL ROLE {_quoted(READER_ROLE)}")
        tx.query(f"SELECT set_config('{TENANT_SETTING}', :tenant_id, true)",
                 {"tenant_id": tenant_id})
        yield tx.query


@contextmanager
def unscoped_reader(db: ReadModelDatabase) -> Iterator[Query]:
    """The reader role with no tenant set: it sees no read-model row (API-key lookups)."""
    if not isinstance(db, PostgresReadModel):
        yield db.query
        return
    with db.transaction() as tx:
        tx.execute(f"SET LOCAL ROLE {_quoted(READER_ROLE)}")
        yield tx.query

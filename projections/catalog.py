"""What read-model tables a database holds, found in its catalog, and their rows.

Found, not listed: every table named `rm_*` (sql.py's prefix for read models) in the read
models' schema, with its columns and primary key as the database describes them, so a table
someone adds later is compared by `ledger audit replay` without anyone telling it. The
catalog queries differ by database (sqlite_master and PRAGMA against information_schema),
which is why they live here and not in sql.py, whose statements run unchanged on both.
"""

from __future__ import annotations

from dataclasses import dataclass

from projections.database import ReadModelDatabase, Row, Transaction

READ_MODEL_PREFIX = "rm_"

_SQLITE_TABLES = (
    "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 3) = 'rm_'"
)
_POSTGRES_COLUMNS = (
    "SELECT table_name, column_name FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND substr(table_name, 1, 3) = 'rm_'"
    " ORDER BY table_name, ordinal_position"
)
_POSTGRES_KEYS = (
    "SELECT k.table_name, k.column_name FROM information_schema.table_constraints c"
    " JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name"
    " AND k.table_schema = c.table_schema AND k.table_name = c.table_name"
    " WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema()"
    " AND substr(k.table_name, 1, 3) = 'rm_' ORDER BY k.table_name, k.ordinal_position"
)


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the primary key's columns; every column when it has none
    rows: tuple[Row, ...]


def _identifier(name: str) -> str:
    # Names come from the catalog; quoting keeps an odd one from being read as SQL.
    assert name.startswith(READ_MODEL_PREFIX), name
    return '"' + name.replace('"', '""') + '"'


def _shapes(db: ReadModelDatabase, tx: Transaction) -> dict[str, tuple[list[str], list[str]]]:
    shapes: dict[str, tuple[list[str], list[str]]] = {}
    if db.dialect == "sqlite":
        for (name,) in tx.query(_SQLITE_TABLES):
            info = tx.query(f"PRAGMA table_info({_identifier(name)})")
            columns = [str(row[1]) for row in info]
            key = [str(row[1]) for row in sorted(info, key=lambda row: int(row[5])) if row[5]]
            shapes[str(name)] = (columns, key)
        return shapes
    for name, column in tx.query(_POSTGRES_COLUMNS):
        shapes.setdefault(str(name), ([], []))[0].append(str(column))
    for name, column in tx.query(_POSTGRES_KEYS):
        shapes[str(name)][1].append(str(column))
    return shapes


def read_tables(db: ReadModelDatabase) -> dict[str, Table]:
    """Every read-model table and all its rows, read in one consistent snapshot."""
    with db.transaction() as tx:
        if db.dialect == "postgresql":
            # One snapshot for every table: a projector committing meanwhile is not seen.
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        tables: dict[str, Table] = {}
        for name, (columns, key) in sorted(_shapes(db, tx).items()):
            rows = tx.query(f"SELECT {', '.join(map(_identifier_column, columns))}"
                            f" FROM {_identifier(name)}")
            tables[name] = Table(name, tuple(columns), tuple(key or columns), tuple(rows))
        return tables


def _identifier_column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

"""Two sets of read-model tables compared row by row, column by column (pure).

A row is matched by its primary key; a table without one is compared as a multiset of
whole rows. Values are compared as the database returned them (both sides come from the
same kind of database, so the same types).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from projections.catalog import Table
from projections.database import Row

MISSING = "(no row)"
NO_TABLE = "(no table)"


@dataclass(frozen=True, slots=True)
class Difference:
    table: str
    key: str  # "col=value, ..." of the row's primary key
    column: str  # "*" for a whole row or table
    live: str
    replayed: str

    def __str__(self) -> str:
        return (f"{self.table} [{self.key}] {self.column}: live {self.live}"
                f" | replayed {self.replayed}")


def differences(live: Mapping[str, Table], replayed: Mapping[str, Table]) -> Iterator[Difference]:
    """Every difference, table by table in name order, then row by key."""
    for name in sorted(set(live) | set(replayed)):
        if name not in replayed:
            yield Difference(name, "", "*", "a table", NO_TABLE)
        elif name not in live:
            yield Difference(name, "", "*", NO_TABLE, "a table")
        else:
            yield from _table_differences(live[name], replayed[name])


def _table_differences(live: Table, replayed: Table) -> Iterator[Difference]:
    if live.columns != replayed.columns or live.key != replayed.key:
        yield Difference(live.name, "", "*", f"columns {live.columns} key {live.key}",
                         f"columns {replayed.columns} key {replayed.key}")
        return
    if live.key == live.columns:
        yield from _multiset_differences(live, replayed)
        return
    key_at = [live.columns.index(column) for column in live.key]
    live_rows, replayed_rows = _by_key(live.rows, key_at), _by_key(replayed.rows, key_at)
    for key in sorted(set(live_rows) | set(replayed_rows), key=repr):
        label = _label(live.key, key)
        left, right = live_rows.get(key), replayed_rows.get(key)
        if left is None or right is None:
            yield Difference(live.name, label, "*", MISSING if left is None else "a row",
                             MISSING if right is None else "a row")
            continue
        for column, a, b in zip(live.columns, left, right, strict=True):
            if a != b:
                yield Difference(live.name, label, column, repr(a), repr(b))


def _multiset_differences(live: Table, replayed: Table) -> Iterator[Difference]:
    left, right = Counter(live.rows), Counter(replayed.rows)
    for row in sorted(set(left) | set(right), key=repr):
        if left[row] != right[row]:
            yield Difference(live.name, _label(live.columns, row), "*",
                             f"{left[row]} such rows", f"{right[row]} such rows")


def _by_key(rows: tuple[Row, ...], key_at: list[int]) -> dict[tuple[Any, ...], Row]:
    return {tuple(row[i] for i in key_at): row for row in rows}


def _label(columns: tuple[str, ...], values: tuple[Any, ...]) -> str:
    return ", ".join(f"{column}={value!r}" for column, value in zip(columns, values,
                                                                      strict=True))

"""Comparing read models: equal tables give nothing; each kind of difference is named once."""

from __future__ import annotations

from projections.catalog import Table
from projections.comparison import differences


def table(name: str, rows: tuple[tuple[object, ...], ...], key: tuple[str, ...] = ("k",)
          ) -> Table:
    return Table(name, ("k", "v"), key, rows)


def test_equal_tables_have_no_difference_whatever_the_row_order() -> None:
    live = {"rm_a": table("rm_a", (("1", "x"), ("2", "y")))}
    replayed = {"rm_a": table("rm_a", (("2", "y"), ("1", "x")))}
    assert list(differences(live, replayed)) == []


def test_a_changed_column_a_missing_row_and_a_missing_table_are_each_named() -> None:
    live = {"rm_a": table("rm_a", (("1", "x"), ("2", "y"))), "rm_b": table("rm_b", ())}
    replayed = {"rm_a": table("rm_a", (("1", "z"), ("3", "w")))}
    assert [str(d) for d in differences(live, replayed)] == [
        "rm_a [k='1'] v: live 'x' | replayed 'z'",
        "rm_a [k='2'] *: live a row | replayed (no row)",
        "rm_a [k='3'] *: live (no row) | replayed a row",
        "rm_b [] *: live a table | replayed (no table)",
    ]


def test_a_table_without_a_key_is_compared_as_a_multiset_of_rows() -> None:
    live = {"rm_a": table("rm_a", (("1", "x"), ("1", "x")), key=("k", "v"))}
    replayed = {"rm_a": table("rm_a", (("1", "x"),), key=("k", "v"))}
    assert [str(d) for d in differences(live, replayed)] == [
        "rm_a [k='1', v='x'] *: live 2 such rows | replayed 1 such rows"
    ]

"""The report: sorted by code point, balances from postings, canonical JSON."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from projections import sql
from projections.database import SqliteReadModel
from projections.report import build_report, render_json, render_summary, sum_of_postings
from projections.runner import ensure_schema
from projections.values import SqlValue


@pytest.fixture
def db() -> Iterator[SqliteReadModel]:
    database = SqliteReadModel(":memory:")
    ensure_schema(database)
    yield database
    database.close()


def _posting(
    tenant_id: str, entry_id: str, seq: int, account: str, minor: int
) -> dict[str, SqlValue]:
    return {"tenant_id": tenant_id, "entry_id": entry_id, "seq": seq, "account": account,
            "currency": "EUR", "amount": str(Decimal(minor).scaleb(-2)), "amount_minor": minor}


def test_wallet_balance_is_minus_the_sum_of_its_postings(db: SqliteReadModel) -> None:
    with db.transaction() as tx:
        tx.execute(sql.WALLET_OPENED.text, {"tenant_id": "t1", "driver_id": "d1",
                                            "currency": "EUR"})
        tx.execute(sql.WALLET_OPENED.text, {"tenant_id": "t1", "driver_id": "d2",
                                            "currency": "EUR"})
        for posting in (
            _posting("t1", "top", 0, "psp_clearing", 5000),
            _posting("t1", "top", 1, "wallet:d1", -5000),
            _posting("t1", "use", 0, "wallet:d1", 238),
            _posting("t1", "use", 1, "revenue", -238),
            _posting("t2", "other-tenant", 0, "wallet:d1", -100),
            _posting("t2", "other-tenant", 1, "bank_clearing", 100),
        ):
            tx.execute(sql.JOURNAL_POSTING.text, posting)

    wallets = build_report(db)["wallets"]

    assert [(w["driver_id"], w["balance"]) for w in wallets] == [("d1", "47.62"), ("d2", "0.00")]


def test_lists_sort_by_code_point_not_by_locale(db: SqliteReadModel) -> None:
    with db.transaction() as tx:
        for tenant_id, driver_id in (("b", "x"), ("B", "y"), ("a", "z"), ("B", "a-1"),
                                     ("B", "A")):
            tx.execute(sql.WALLET_OPENED.text, {"tenant_id": tenant_id, "driver_id": driver_id,
                                                "currency": "EUR"})

    wallets = build_report(db)["wallets"]

    assert [(w["tenant_id"], w["driver_id"]) for w in wallets] == [
        ("B", "A"), ("B", "a-1"), ("B", "y"), ("a", "z"), ("b", "x"),
    ]


def test_the_sum_of_postings_shows_the_finest_exponent_and_zero_when_empty() -> None:
    assert sum_of_postings([]) == "0.00"
    assert sum_of_postings([("EUR", 0)]) == "0.00"
    assert sum_of_postings([("EUR", 0), ("KWD", 0)]) == "0.000"
    assert sum_of_postings([("EUR", 1)]) == "0.01"


def test_an_empty_store_gives_the_contract_shape_as_canonical_json(db: SqliteReadModel) -> None:
    text = render_json(build_report(db))

    assert text.endswith("}\n")
    assert '"journal": {\n    "entries": 0,' in text
    assert '"sum_of_postings": "0.00"' in text
    for key in ("sessions", "invoices", "wallets", "corporate_accounts", "dead_letters"):
        assert f'"{key}"' in text
    assert "Journal: 0 entries" in render_summary(build_report(db))

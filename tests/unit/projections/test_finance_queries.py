"""Pure parts of the finance queries: pages, cursors, periods, entry links, key format."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections import finance_queries as fq
from projections.api_keys import tenant_of_key

ITEMS = st.lists(st.text(min_size=1, max_size=6), unique=True, max_size=40).map(
    lambda names: [{"id": n} for n in names])


@given(items=ITEMS, limit=st.integers(min_value=1, max_value=7))
def test_following_cursors_yields_every_item_once_in_order(items: list[dict[str, Any]],
                                                            limit: int) -> None:
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(len(items) + 2):
        page = fq.paginate(items, lambda i: [i["id"]], cursor, limit)
        assert len(page.items) <= limit
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(items, key=lambda i: i["id"])


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGpzb24", "e30", "x" * 1000])
def test_a_cursor_we_did_not_issue_is_refused(cursor: str) -> None:
    with pytest.raises(fq.FinanceQueryError):
        fq.paginate([], lambda i: [i["id"]], cursor, 10)


def test_limits_outside_the_bounds_are_refused() -> None:
    for limit in (0, fq.PAGE_ITEMS_MAX + 1):
        with pytest.raises(fq.FinanceQueryError):
            fq.paginate([], lambda i: [i["id"]], None, limit)


def test_a_period_holds_its_first_day_and_not_its_end_and_never_an_undated_item() -> None:
    period = fq.Period.parse("2026-03-10", "2026-03-11")
    assert period.contains("2026-03-10T00:00:00Z")
    assert not period.contains("2026-03-11T00:00:00Z")
    assert not period.contains(None)
    assert fq.Period().contains(None)
    for start, end in (("2026-03-11", "2026-03-10"), ("March", None), ("2026-03-10", "x")):
        with pytest.raises(fq.FinanceQueryError):
            fq.Period.parse(start, end)


def test_entries_link_to_their_session_or_document_by_their_natural_key() -> None:
    links = fq._Links(
        sessions={"s1": ("R-000001", "2026-03-10T10:00:00Z")},
        references={"TU-1": ("T-000001", "2026-03-09T23:00:00Z"),
                    "voucher_batch:GIFT": ("V-000001", "2026-03-09T10:00:00Z"),
                    "terminal:TRM-1": ("R-000002", "2026-03-10T11:00:00Z"),
                    "C-000001": ("C-000001", "2026-04-01T00:00:00Z"),
                    "~plan-1:0": ("S-000001", "2026-03-01T00:00:00Z")},
        credit_notes={"CN-000001": "2026-03-12T09:00:00Z"},
    )
    assert fq._link("session:t:s1", links) == ("s1", "R-000001", "2026-03-10T10:00:00Z")
    # A refund is dated by its credit note, and still listed with its session.
    assert fq._link("refund:t:s1:CN-000001", links) == ("s1", "CN-000001",
                                                        "2026-03-12T09:00:00Z")
    assert fq._link("refund_paid:t:s1:CN-000001:charge:session:s1", links)[1] == "CN-000001"
    assert fq._link("charge:t:session:s1", links)[0] == "s1"
    assert fq._link("charge:t:top_up:TU-1", links)[1] == "T-000001"
    assert fq._link("TU-1:t", links)[1] == "T-000001"
    assert fq._link("voucher_batch:t:GIFT", links)[1] == "V-000001"
    assert fq._link("capture:t:terminal:TRM-1", links)[1] == "R-000002"
    assert fq._link("charge:t:partner_settlement:C-000001", links)[1] == "C-000001"
    assert fq._link("charge:t:subscription_fee:plan-1:0", links)[1] == "S-000001"
    assert fq._link("voucher:t:CODE:redeemed", links) == (None, None, None)


def test_malformed_keys_find_no_tenant_without_a_lookup() -> None:
    def no_lookup(text: str, params: object) -> list[tuple[object, ...]]:
        raise AssertionError("looked up")

    for key in ("", "evk", "abc_def_ghi", "evk_only", "x" * 500):
        assert tenant_of_key(no_lookup, key) is None

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import InvalidAmount
from ledger.domain.journal import JournalEntry, Posting, account, sale
from ledger.domain.money import round_to_minor_unit
from ledger.domain.settlement import SessionCost, charge_lines, split_gross


def test_an_unbalanced_entry_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        JournalEntry("e", "EUR", "x", (Posting("revenue", Decimal("1")),
                                       Posting("psp_clearing", Decimal("-0.99"))))


def test_fractions_of_a_cent_are_never_posted() -> None:
    with pytest.raises(InvalidAmount):
        JournalEntry("e", "EUR", "x", (Posting("revenue", Decimal("0.005")),
                                       Posting("psp_clearing", Decimal("-0.005"))))


def test_a_sale_credits_revenue_and_vat_per_rate() -> None:
    entry = sale("s", "EUR", "session", account("driver_receivable", "d1"),
                 {Decimal(19): Decimal("10.00")}, {Decimal(19): Decimal("1.90")})
    assert entry.postings[0] == Posting("driver_receivable:d1", Decimal("11.90"))
    assert {p.account for p in entry.postings} == {
        "driver_receivable:d1", "revenue", "vat_payable:19"}


def cost(excl: str, incl: str, rates: dict[Decimal | None, tuple[str, str]]) -> SessionCost:
    return SessionCost(
        currency="EUR", total_excl_vat=Decimal(excl), total_incl_vat=Decimal(incl),
        by_vat_rate={r: (Decimal(n), Decimal(v)) for r, (n, v) in rates.items()}, ocpi={},
    )


def test_lines_add_up_to_the_rounded_ocpi_totals() -> None:
    # 5.125 excl / 5.6375 incl at 10 %: rounded once, half up.
    lines = charge_lines(cost("5.125", "5.6375", {Decimal(10): ("5.125", "0.5125")}))
    assert (lines.net, lines.vat, lines.gross) == (
        Decimal("5.13"), Decimal("0.51"), Decimal("5.64"))


def test_vat_is_spread_over_rates_without_losing_a_cent() -> None:
    lines = charge_lines(cost("1.50", "1.75", {
        Decimal(10): ("0.50", "0.05"), Decimal(20): ("1.00", "0.20")}))
    assert lines.gross == Decimal("1.75")
    assert lines.vat_by_rate() == {Decimal(10): Decimal("0.05"), Decimal(20): Decimal("0.20")}


@given(
    net_cents=st.lists(st.integers(0, 10**7), min_size=1, max_size=4),
    rate_percents=st.lists(st.sampled_from([0, 5, 7, 10, 19, 20, 21, 25]), min_size=4,
                           max_size=4, unique=True),
)
def test_rounded_lines_always_balance_as_a_sale(
    net_cents: list[int], rate_percents: list[int]
) -> None:
    rates = {Decimal(r): (Decimal(n) / 1000, Decimal(n) / 1000 * r / 100)
             for n, r in zip(net_cents, rate_percents, strict=False)}
    excl = sum((n for n, _ in rates.values()), Decimal(0))
    incl = excl + sum((v for _, v in rates.values()), Decimal(0))
    lines = charge_lines(SessionCost("EUR", excl, incl, rates, {}))
    entry = sale("s", "EUR", "x", account("driver_receivable", "d"),
                 lines.net_by_rate(), lines.vat_by_rate())
    assert sum((p.amount for p in entry.postings), Decimal(0)) == 0
    assert lines.gross == round_to_minor_unit(incl, "EUR")
    assert lines.net == round_to_minor_unit(excl, "EUR")


def test_split_gross_covers_up_to_the_limit() -> None:
    assert split_gross(Decimal("30.00"), Decimal("25.00")) == (Decimal("25.00"), Decimal("5.00"))
    assert split_gross(Decimal("10.00"), Decimal("25.00")) == (Decimal("10.00"), Decimal("0"))

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import InvalidAmount, UnknownCurrency
from ledger.domain.money import Money, round_to_minor_unit


def test_rounds_half_up_to_the_minor_unit() -> None:
    assert round_to_minor_unit(Decimal("5.125"), "EUR") == Decimal("5.13")
    assert round_to_minor_unit(Decimal("5.625"), "EUR") == Decimal("5.63")
    assert round_to_minor_unit(Decimal("12.5"), "JPY") == Decimal("13")
    assert round_to_minor_unit(Decimal("1.0005"), "BHD") == Decimal("1.001")


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(UnknownCurrency):
        Money.of("1", "XXX")


def test_mixing_currencies_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        _ = Money.of("1", "EUR") + Money.of("1", "USD")


def test_allocation_gives_foemmels_conundrum_its_cents() -> None:
    shares = Money.of("0.05", "EUR").allocate([Decimal(30), Decimal(70)])
    assert [s.amount for s in shares] == [Decimal("0.02"), Decimal("0.03")]


@given(
    cents=st.integers(min_value=0, max_value=10**9),
    weights=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_allocation_never_creates_or_loses_a_cent(cents: int, weights: list[int]) -> None:
    total = Money(Decimal(cents) / 100, "EUR")
    shares = total.allocate([Decimal(w) for w in weights])
    assert sum((s.amount for s in shares), Decimal(0)) == total.amount
    assert all(s.amount >= 0 for s in shares)

"""Every worked example in ocpi-spec-vectors.json prices to its expected totals.

Each vector goes through `price_session` (the domain API) with its own time zone. Totals
are compared twice: at 2 decimals half up (what is charged) and exactly, except where the
vector prints a rounded figure and gives the exact one as `<field>_unrounded`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ledger.domain.cdr import parse_cdr
from ledger.domain.pricing import Cost, SessionPrice, price_session
from ledger.domain.tariff import parse_tariff
from tests.unit.pricing.ocpi_data import spec_vectors

VECTORS = spec_vectors()
CENT = Decimal("0.01")


def _price(vector: dict[str, Any]) -> SessionPrice:
    session = vector["session"]
    tariff = parse_tariff(vector["tariff"])
    cdr = parse_cdr(
        {
            "currency": tariff.currency,
            "start_date_time": session["start_date_time"],
            "end_date_time": session["end_date_time"],
            "charging_periods": session["charging_periods"],
        }
    )
    return price_session(tariff, cdr.periods, ZoneInfo(session["time_zone"]), cdr.start, cdr.end)


def _dec(value: float | int) -> Decimal:
    return Decimal(str(value))


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _cost_fields(vector: dict[str, Any]) -> list[tuple[str, str, Decimal]]:
    """(field, part, expected) for every total_* cost the vector states."""
    found = []
    for field, expected in vector["expected"].items():
        if not field.startswith("total_") or not isinstance(expected, dict):
            continue
        for part in ("excl_vat", "incl_vat"):
            if expected.get(part) is not None:
                found.append((field, part, _dec(expected[part])))
    return found


def test_the_vectors_file_holds_the_spec_examples() -> None:
    assert len(VECTORS) >= 11
    assert all(_cost_fields(v) for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_spec_vector_prices_to_its_expected_totals_at_two_decimals(
    vector: dict[str, Any],
) -> None:
    price = _price(vector)
    for field, part, expected in _cost_fields(vector):
        got: Cost = getattr(price, field.removesuffix("_unrounded"))
        assert _cents(getattr(got, part)) == _cents(expected), f"{field}.{part}"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_spec_vector_prices_to_its_exact_totals(vector: dict[str, Any]) -> None:
    price = _price(vector)
    printed_rounded = {
        f.removesuffix("_unrounded") for f in vector["expected"] if f.endswith("_unrounded")
    }
    for field, part, expected in _cost_fields(vector):
        if field in printed_rounded:
            continue  # the spec printed it rounded; its `_unrounded` twin is checked
        got: Cost = getattr(price, field.removesuffix("_unrounded"))
        assert getattr(got, part) == expected, f"{field}.{part}"


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_spec_vector_without_vat_prices_incl_vat_as_excl_vat(vector: dict[str, Any]) -> None:
    # Where a vector leaves incl. VAT open (its components omit `vat`), OCPI's definition
    # "omitted = no VAT applicable" makes incl. VAT equal excl. VAT.
    price = _price(vector)
    for field, expected in vector["expected"].items():
        if isinstance(expected, dict) and expected.get("incl_vat", 0) is None:
            got: Cost = getattr(price, field)
            assert got.incl_vat == got.excl_vat


def _vector(name: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["name"] == name)


def test_max_price_leaves_dimension_costs_as_priced_and_carries_the_cut() -> None:
    vector = _vector("max_price_binding_50kwh")
    before = vector["expected"]["component_costs_before_max_price"]
    price = _price(vector)
    assert price.total_fixed_cost == Cost(
        _dec(before["FLAT"]["excl_vat"]), _dec(before["FLAT"]["incl_vat"])
    )
    assert price.total_energy_cost == Cost(
        _dec(before["ENERGY"]["excl_vat"]), _dec(before["ENERGY"]["incl_vat"])
    )
    assert price.unclamped_total_cost == Cost(
        _dec(before["sum"]["excl_vat"]), _dec(before["sum"]["incl_vat"])
    )
    assert price.price_limit_adjustment == Cost(Decimal("-3.00"), Decimal("-3.35"))


@pytest.mark.parametrize(
    ("name", "field", "minutes"),
    [
        ("flat_energy_parking_step900_20kwh_40min_parking", "billed_parking_time_h", 45),
        ("complex_monday_16A_165min_charging_42min_parking", "billed_parking_time_h", 45),
        ("complex_monday_16A_165min_charging_42min_parking", "billed_time_h", 165),
        ("step_size_switch_element_2_1635_35min_charging_no_parking", "billed_time_h", 45),
        ("cdr_example_time_2_per_hour_step300", "billed_time_h", 120),
    ],
)
def test_step_size_bills_the_minutes_the_spec_states(name: str, field: str, minutes: int) -> None:
    assert getattr(_price(_vector(name)), field) * 60 == minutes


def test_cdr_example_total_time_comes_from_the_timestamps() -> None:
    price = _price(_vector("cdr_example_time_2_per_hour_step300"))
    assert price.total_time_h * 3600 == 7103  # 21:39:09 to 23:37:32
    assert _cents(price.total_time_h) == _cents(Decimal("1.973"))

"""lint_tariff_text: the findings for every tariff of the shared OCPI data, and each check."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.domain.tariff_lint import Severity, fatal, lint_tariff_text
from tests.unit.pricing.golden_files import assert_golden, data_tariffs

TARIFFS = data_tariffs()


def _lint(*elements: dict[str, Any], **fields: Any) -> list[str]:
    body = {"id": "T1", "currency": "EUR", "elements": list(elements), **fields}
    return [str(f) for f in lint_tariff_text(json.dumps(body))]


def _energy(price: object = "0.30", vat: object = 19, **restrictions: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "price_components": [{"type": "ENERGY", "price": price, "vat": vat, "step_size": 1}]
    }
    if restrictions:
        out["restrictions"] = restrictions
    return out


def test_the_lint_of_every_data_tariff_is_pinned() -> None:
    pinned = {name: [str(f) for f in lint_tariff_text(text)] for name, text in TARIFFS}
    assert_golden("lint.json", json.dumps(pinned, indent=1, ensure_ascii=False) + "\n")
    # The data prices correctly in the pricing tests, so none of it may be fatal.
    assert not [name for name, text in TARIFFS if fatal(lint_tariff_text(text))]


def test_an_element_shadowed_by_a_wider_earlier_one_is_fatal() -> None:
    findings = _lint(
        _energy("0.40", day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]),
        _energy("0.20", day_of_week=["MONDAY"], start_time="22:00"),  # night discount: dead
        _energy("0.30"),
    )
    assert findings == [
        "fatal: elements[1]: its ENERGY component never applies: elements[0] prices ENERGY"
        " whenever this element's restrictions hold [shadowed_element]"
    ]


def test_a_contradictory_restriction_is_fatal() -> None:
    findings = _lint(_energy(min_kwh=20, max_kwh=10), _energy())
    assert findings == [
        "fatal: elements[0].restrictions: min_kwh 20 is not below max_kwh 10: the element never"
        " applies [contradictory_restriction]"
    ]
    dates = _lint(_energy(start_date="2025-02-01", end_date="2025-01-01"), _energy())
    assert dates == [
        "fatal: elements[0].restrictions: start_date 2025-02-01 is not before end_date"
        " 2025-01-01 (exclusive): the element never applies [contradictory_restriction]"
    ]


def test_a_misspelled_restriction_is_fatal_and_names_the_key_meant() -> None:
    findings = _lint(_energy("0.20", dayOfWeek=["SATURDAY"]), _energy())
    assert findings[0] == (
        "fatal: elements[0].restrictions.dayOfWeek: unknown key 'dayOfWeek': did you mean"
        " 'day_of_week'? (it is ignored as written) [unknown_key]"
    )


def test_unknown_keys_are_fatal_where_they_change_money_and_warn_elsewhere() -> None:
    assert _lint(_energy(), x_vendor_ref="A7") == [
        "warning: tariff.x_vendor_ref: unknown key 'x_vendor_ref' is not OCPI 2.2.1 and is"
        " ignored [unknown_key]"
    ]
    component = {"type": "ENERGY", "price": 1, "vat": 19, "step_size": 1, "discount": 5}
    assert _lint({"price_components": [component]})[0].startswith(
        "fatal: elements[0].price_components[0].discount: unknown key 'discount'"
    )


def test_an_ocpi_key_in_the_wrong_object_is_fatal() -> None:
    element = {**_energy(), "start_time": "22:00"}  # forgot the "restrictions" object
    assert _lint(element) == [
        "fatal: elements[0].start_time: key 'start_time' does not belong here (it is ignored"
        " as written) [unknown_key]"
    ]


def test_a_duplicate_key_is_fatal() -> None:
    text = '{"id": "T1", "currency": "EUR", "elements": [{"price_components": [{"type": "ENERGY",' \
        ' "price": 0.3, "price": 0.03, "vat": 19, "step_size": 1}]}]}'
    findings = lint_tariff_text(text)
    assert [(f.severity, f.code, f.message) for f in findings] == [
        (Severity.FATAL, "duplicate_key", "key 'price' given twice")
    ]


def test_prices_below_zero_and_min_above_max_are_fatal() -> None:
    assert _lint(_energy("-0.10")) == [
        "fatal: elements[0].price_components[0].price: below zero [negative_price]"
    ]
    assert _lint(
        _energy(),
        min_price={"excl_vat": 10, "incl_vat": 11.9},
        max_price={"excl_vat": 5, "incl_vat": 5.95},
    ) == [
        "fatal: min_price.excl_vat: min_price 10 is above max_price 5 [min_above_max_price]",
        "fatal: min_price.incl_vat: min_price 11.9 is above max_price 5.95 [min_above_max_price]",
    ]


def test_zero_prices_free_steps_and_missing_vat_warn() -> None:
    time_charged = {
        "price_components": [{"type": "TIME", "price": 2, "vat": 19, "step_size": 60}],
        "restrictions": {"max_duration": 3600},
    }
    time_free = {"price_components": [{"type": "TIME", "price": 0, "vat": 19, "step_size": 900}]}
    assert _lint(time_charged, time_free) == [
        "warning: elements[1].price_components[0]: TIME is free here [zero_price]",
        "warning: elements[1].price_components[0]: step_size 900 on a free TIME component: when"
        " it prices last, the session's rounding is free [free_step]",
    ]
    no_vat = {"price_components": [{"type": "ENERGY", "price": 1, "step_size": 1}]}
    assert _lint(no_vat) == [
        "warning: elements[0].price_components[0]: no vat: priced as no VAT applicable"
        " (incl. = excl.) [missing_vat]"
    ]


def test_a_one_sided_window_is_covered_only_by_a_window_reaching_midnight() -> None:
    evening = _energy("0.20", start_time="22:00")
    assert _lint(_energy("0.50", start_time="18:00"), evening, _energy())[0].endswith(
        "[shadowed_element]"
    )
    assert _lint(_energy("0.50", start_time="18:00", end_time="23:00"), evening, _energy()) == []


def test_an_unparseable_tariff_is_fatal_with_the_parsers_reason() -> None:
    assert _lint(_energy(day_of_week=["MON"])) == [
        "fatal: tariff: tariff 'T1': elements[0].restrictions.day_of_week[0]: 'MON' is not one"
        " of MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY [invalid_json]"
    ]
    assert str(lint_tariff_text("{")[0]).startswith("fatal: tariff: not JSON")


@pytest.mark.parametrize("reservation", ["RESERVATION", "RESERVATION_EXPIRES"])
def test_reservation_elements_do_not_shadow_session_elements(reservation: str) -> None:
    fee = {"price_components": [{"type": "TIME", "price": 5, "vat": 19, "step_size": 1}],
           "restrictions": {"reservation": reservation}}
    charging = {"price_components": [{"type": "TIME", "price": 2, "vat": 19, "step_size": 1}]}
    assert _lint(fee, charging) == []

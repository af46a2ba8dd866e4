"""CDRs: reading a CDR's session, writing a CDR for a priced session, crediting it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from ledger.domain.cdr import (
    CdrLocation,
    CdrToken,
    build_cdr,
    credit_cdr,
    parse_cdr,
)
from ledger.domain.errors import InvalidCdr
from ledger.domain.pricing import PeriodKind, SessionPrice
from tests.unit.pricing.builders import component, element, minutes, period, price, tariff, utc

TARIFF = tariff(
    element(
        component("FLAT", "0.50", 1, "20"),
        component("ENERGY", "0.25", 1, "10"),
        component("PARKING_TIME", "2.00", 900, "20"),
    ),
    country_code="DE",
    party_id="EVL",
)
START = utc("2024-01-10T10:00")
TOKEN = CdrToken(
    country_code="DE", party_id="EVL", uid="04A2B3C4", type="RFID", contract_id="DE-EVL-C12345678"
)
LOCATION = CdrLocation(
    id="LOC1",
    country="DEU",
    evse_uid="EVSE1",
    evse_id="DE*EVL*E0001",
    connector_id="1",
    address="Hauptstrasse 1",
    city="Berlin",
    latitude="52.520008",
    longitude="13.404954",
)


def _priced() -> SessionPrice:
    return price(
        TARIFF,
        [
            period(START, energy_kwh="20", max_power_kw="11"),
            period(START + minutes(120), PeriodKind.PARKING),
        ],
        START + minutes(160),
    )


def _cdr(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cdr_id": "CDR-0001",
        "country_code": "DE",
        "party_id": "EVL",
        "session_id": "tx-1",
        "cdr_token": TOKEN,
        "cdr_location": LOCATION,
        "auth_method": "WHITELIST",
        "tariff": TARIFF,
        "price": _priced(),
        "last_updated": START + minutes(161),
    }
    fields.update(overrides)
    return build_cdr(**fields)


def test_built_cdr_is_json_and_carries_every_total() -> None:
    cdr = _cdr()
    assert json.loads(json.dumps(cdr)) == cdr
    assert cdr["id"] == "CDR-0001" and cdr["session_id"] == "tx-1"
    assert cdr["start_date_time"] == "2024-01-10T10:00:00Z"
    assert cdr["end_date_time"] == "2024-01-10T12:40:00Z"
    assert cdr["currency"] == "EUR"
    assert cdr["total_cost"] == {"excl_vat": "7.00", "incl_vat": "7.90"}
    assert cdr["total_fixed_cost"] == {"excl_vat": "0.5", "incl_vat": "0.6"}
    assert cdr["total_energy_cost"] == {"excl_vat": "5", "incl_vat": "5.5"}
    assert cdr["total_parking_cost"] == {"excl_vat": "1.5", "incl_vat": "1.8"}
    assert (
        cdr["total_time_cost"]
        == cdr["total_reservation_cost"]
        == {"excl_vat": "0", "incl_vat": "0"}
    )
    assert (cdr["total_energy"], cdr["total_parking_time"]) == ("20", "0.6667")
    assert cdr["total_time"] == "2.6667"
    assert cdr["tariffs"][0]["id"] == "T1"
    assert cdr["cdr_location"]["coordinates"] == {"latitude": "52.520008", "longitude": "13.404954"}
    assert cdr["last_updated"] == "2024-01-10T12:41:00Z"


def test_built_cdr_charging_periods_describe_the_session() -> None:
    periods = _cdr()["charging_periods"]
    assert periods == [
        {
            "start_date_time": "2024-01-10T10:00:00Z",
            "dimensions": [
                {"type": "ENERGY", "volume": "20"},
                {"type": "TIME", "volume": "2"},
                {"type": "MAX_POWER", "volume": "11"},
            ],
            "tariff_id": "T1",
        },
        {
            "start_date_time": "2024-01-10T12:00:00Z",
            "dimensions": [{"type": "PARKING_TIME", "volume": "0.6667"}],
            "tariff_id": "T1",
        },
    ]


def test_a_built_cdr_prices_again_to_the_same_totals() -> None:
    cdr = _cdr()
    session = parse_cdr(cdr)
    again = price(TARIFF, list(session.periods), session.end, start=session.start)
    assert again.total_cost == _priced().total_cost


def test_cdr_id_must_leave_room_for_the_credit_suffix() -> None:
    with pytest.raises(InvalidCdr, match="1 to 37 characters"):
        _cdr(cdr_id="X" * 38)


def test_credit_cdr_negates_only_total_cost_and_references_the_original() -> None:
    original = _cdr()
    credit = credit_cdr(original, last_updated=START + minutes(600))
    assert credit["id"] == "CDR-0001-C"
    assert credit["credit"] is True
    assert credit["credit_reference_id"] == "CDR-0001"
    assert credit["total_cost"] == {"excl_vat": "-7.00", "incl_vat": "-7.90"}
    # OCPI 2.2.1 mod_cdrs "Credit CDRs": only total_cost holds the negated amounts (issue 13).
    for field in (
        "total_fixed_cost",
        "total_energy_cost",
        "total_time_cost",
        "total_parking_cost",
        "total_reservation_cost",
    ):
        assert credit[field] == original[field]
    assert credit["total_energy"] == original["total_energy"]  # volumes stay as they were
    assert credit["charging_periods"] == original["charging_periods"]
    assert credit["last_updated"] == "2024-01-10T20:00:00Z"
    assert "credit" not in original  # the original is left untouched


def test_credit_cdr_accepts_numbers_as_an_ocpi_partner_sends_them() -> None:
    credit = credit_cdr(
        {"id": "12345", "total_cost": {"excl_vat": 4.0, "incl_vat": 4.4}}, last_updated=START
    )
    assert credit["total_cost"] == {"excl_vat": "-4.0", "incl_vat": "-4.4"}


def test_a_zero_total_cost_stays_zero_in_a_credit() -> None:
    credit = credit_cdr(
        {"id": "Z", "total_cost": {"excl_vat": "0", "incl_vat": 0}}, last_updated=START
    )
    assert credit["total_cost"] == {"excl_vat": "0", "incl_vat": "0"}  # never "-0"


def test_a_credit_cdr_is_read_as_a_credit() -> None:
    credit = credit_cdr(_cdr(), last_updated=START + minutes(600))
    assert parse_cdr(credit).credit is True
    assert parse_cdr(_cdr()).credit is False


@pytest.mark.parametrize(
    ("original", "message"),
    [
        ({"id": "A" * 38}, "exceed 39 characters"),
        ({"id": "A-C", "credit": True}, "itself a credit"),
        ({"total_cost": {"excl_vat": 1}}, "without an id"),
        ({"id": "A", "total_cost": {"excl_vat": "lots"}}, "expected a number"),
    ],
)
def test_credit_cdr_refuses_what_cannot_be_credited(original: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidCdr, match=message):
        credit_cdr(original, last_updated=START)


def test_cdr_period_with_time_and_parking_is_charging_then_parking() -> None:
    session = parse_cdr(
        {
            "currency": "EUR",
            "start_date_time": "2024-01-10T10:00:00Z",
            "end_date_time": "2024-01-10T11:00:00Z",
            "charging_periods": [
                {
                    "start_date_time": "2024-01-10T10:00:00Z",
                    "dimensions": [
                        {"type": "ENERGY", "volume": 5},
                        {"type": "TIME", "volume": 0.75},
                        {"type": "PARKING_TIME", "volume": 0.25},
                        {"type": "STATE_OF_CHARGE", "volume": 80},
                    ],
                }
            ],
        }
    )
    assert [(p.start, p.kind, p.energy_kwh) for p in session.periods] == [
        (utc("2024-01-10T10:00"), PeriodKind.CHARGING, Decimal(5)),
        (utc("2024-01-10T10:45"), PeriodKind.PARKING, Decimal(0)),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"currency": "eur"}, "currency must be an ISO 4217 code"),
        ({"start_date_time": None}, "start_date_time: expected an RFC 3339"),
        ({"end_date_time": "2024-01-10T09:00:00Z"}, "end_date_time is before"),
        (
            {
                "charging_periods": [
                    {
                        "start_date_time": "2024-01-10T10:00:00Z",
                        "dimensions": [{"type": "FUEL", "volume": 1}],
                    }
                ]
            },
            "unknown dimension",
        ),
        (
            {
                "charging_periods": [
                    {
                        "start_date_time": "2024-01-10T10:00:00Z",
                        "dimensions": [{"type": "ENERGY", "volume": -1}],
                    }
                ]
            },
            "volume must be",
        ),
        (
            {
                "charging_periods": [
                    {
                        "start_date_time": "2024-01-10T10:00:00Z",
                        "dimensions": [
                            {"type": "ENERGY", "volume": 1},
                            {"type": "ENERGY", "volume": 1},
                        ],
                    }
                ]
            },
            "given twice",
        ),
        (
            {
                "charging_periods": [
                    {
                        "start_date_time": "2024-01-10T10:00:00Z",
                        "dimensions": [
                            {"type": "RESERVATION_TIME", "volume": 1},
                            {"type": "ENERGY", "volume": 1},
                        ],
                    }
                ]
            },
            "reservation period",
        ),
        ({"credit": "yes"}, "credit must be true or false"),
        ({"credit": True}, "needs its credit_reference_id"),
    ],
)
def test_invalid_cdr_is_refused_with_a_clear_message(change: dict[str, Any], message: str) -> None:
    cdr = {
        "currency": "EUR",
        "start_date_time": "2024-01-10T10:00:00Z",
        "end_date_time": "2024-01-10T11:00:00Z",
        "charging_periods": [{"start_date_time": "2024-01-10T10:00:00Z", "dimensions": []}],
        **change,
    }
    with pytest.raises(InvalidCdr, match=message):
        parse_cdr(cdr)

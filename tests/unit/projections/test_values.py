"""Column values: the same text for the same value, on any database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from projections import sql
from projections.database import for_psycopg
from projections.sql import TABLES, Statement
from projections.values import (
    ProjectionError,
    amount_from_minor,
    amount_minor,
    amount_text,
    canonical_json,
    instant_text,
)


def test_amounts_are_text_at_the_currency_exponent() -> None:
    assert amount_text(Decimal("12.3"), "EUR") == "12.30"
    assert amount_text("0", "EUR") == "0.00"
    assert amount_text("1500", "JPY") == "1500"
    assert amount_text("1.5", "KWD") == "1.500"


def test_minor_units_are_exact_and_refuse_fractions() -> None:
    assert amount_minor("-12.34", "EUR") == -1234
    assert amount_minor("1.234", "KWD") == 1234
    assert amount_from_minor(-1234, "EUR") == "-12.34"
    with pytest.raises(ProjectionError, match="whole number of minor units"):
        amount_minor("0.005", "EUR")


def test_instants_become_utc_text_with_z() -> None:
    cet = timezone(timedelta(hours=1))
    assert instant_text(datetime(2026, 3, 2, 10, 0, tzinfo=cet)) == "2026-03-02T09:00:00Z"
    assert instant_text(None) is None
    with pytest.raises(ProjectionError):
        instant_text(datetime(2026, 3, 2, 10, 0))


def test_canonical_json_sorts_keys_and_writes_decimals_as_text() -> None:
    assert canonical_json({"b": Decimal("1.10"), "a": [1]}) == '{"a":[1],"b":"1.10"}'


def test_named_parameters_become_psycopg_style_and_literals_stay() -> None:
    text = "SELECT 'wallet:' || w.driver_id FROM t WHERE a = :tenant_id AND b = :b2"

    assert for_psycopg(text) == (
        "SELECT 'wallet:' || w.driver_id FROM t WHERE a = %(tenant_id)s AND b = %(b2)s"
    )


def test_no_read_model_statement_holds_a_percent_sign_or_a_question_mark() -> None:
    texts = [create for _, create in TABLES] + [
        value.text for value in vars(sql).values() if isinstance(value, Statement)
    ]

    assert texts
    assert not [t for t in texts if "%" in t or "?" in t]

"""The independent engine's test data (tandemdrive/ocpi-tariffs 0.6.1, in tests/data/ocpi):
every CDR prices to its own total_* fields through `ledger price`, every tariff parses."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from consumers.cli import main
from ledger.domain.tariff import parse_tariff, tariff_to_dict
from tests.unit.pricing.ocpi_data import peer_cdr_files, peer_dir, peer_tariff_files

CDR_FILES = peer_cdr_files()
TARIFF_FILES = peer_tariff_files()
CENT = Decimal("0.01")
MIN_PRICE_CDR = "025kwh_min_price/cdr2_less_than_2kWh.json"


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _cents(value: object) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _price_cli(cdr: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    exit_code = main(["price", "--tariff", str(cdr.parent / "tariff.json"), "--cdr", str(cdr)])
    captured = capsys.readouterr()
    assert exit_code == 0, captured.err
    assert captured.err == ""
    result: dict[str, Any] = json.loads(captured.out)
    return result


def _expected_totals(cdr: Path) -> dict[str, Any]:
    stated = json.loads(cdr.read_text(encoding="utf-8"))
    return {k: v for k, v in stated.items() if k.startswith("total_")}


def test_the_peer_data_is_all_there() -> None:
    assert len(CDR_FILES) >= 9
    assert len(TARIFF_FILES) >= 24


@pytest.mark.parametrize("cdr", CDR_FILES, ids=[_label(p) for p in CDR_FILES])
def test_peer_cdr_prices_to_its_stated_totals(
    cdr: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got = _price_cli(cdr, capsys)
    expected = _expected_totals(cdr)
    if _label(cdr) == MIN_PRICE_CDR:
        # The peer does not apply min_price and states 0.30/0.33 for 1.2 kWh at 0.25/kWh.
        # OCPI requires the minimum price (tariff min_price 0.50 excl / 0.55 incl VAT), as
        # the spec's own example says: "if less than 2 kWh is charged, 0.50 euro (excl.
        # VAT) or 0.55 euro (incl. VAT) will be billed". We follow the spec.
        assert expected["total_cost"] == {"excl_vat": 0.3, "incl_vat": 0.33}
        expected["total_cost"] = {"excl_vat": 0.5, "incl_vat": 0.55}
    assert expected, "the CDR states no totals"
    for field, value in expected.items():
        if isinstance(value, dict):
            for part in ("excl_vat", "incl_vat"):
                assert _cents(got[field][part]) == _cents(value[part]), f"{field}.{part}"
        else:
            assert _cents(got[field]) == _cents(value), field


def test_min_price_lifts_a_small_session_to_the_minimum_the_spec_way(
    capsys: pytest.CaptureFixture[str],
) -> None:
    got = _price_cli(peer_dir() / MIN_PRICE_CDR, capsys)
    assert got["total_cost"] == {"excl_vat": "0.5", "incl_vat": "0.55"}
    assert got["total_energy_cost"] == {"excl_vat": "0.3", "incl_vat": "0.33"}
    assert got["price_limit_adjustment"] == {"excl_vat": "0.2", "incl_vat": "0.22"}
    assert got["amount_to_charge"] == {"excl_vat": "0.50", "incl_vat": "0.55"}


@pytest.mark.parametrize("path", TARIFF_FILES, ids=[_label(p) for p in TARIFF_FILES])
def test_peer_tariff_parses_and_survives_a_round_trip(path: Path) -> None:
    tariff = parse_tariff(json.loads(path.read_text(encoding="utf-8")))
    assert tariff.elements
    assert parse_tariff(tariff_to_dict(tariff)) == tariff

"""`ledger price` and `ledger bench pricing` as a user runs them: exit codes and output."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from consumers.cli import main
from tests.unit.pricing.ocpi_data import peer_dir

TARIFF = {
    "id": "T1",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 10, "step_size": 1}]}
    ],
}
CDR = {
    "currency": "EUR",
    "start_date_time": "2024-01-10T10:00:00Z",
    "end_date_time": "2024-01-10T11:00:00Z",
    "charging_periods": [
        {
            "start_date_time": "2024-01-10T10:00:00Z",
            "dimensions": [{"type": "ENERGY", "volume": 20}],
        }
    ],
    "total_cost": {"excl_vat": 999, "incl_vat": 999},
}


def _write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tariff: Any, cdr: Any, *extra: str
) -> tuple[int, str, str]:
    args = [
        "price",
        "--tariff",
        str(_write(tmp_path, "tariff.json", tariff)),
        "--cdr",
        str(_write(tmp_path, "cdr.json", cdr)),
        *extra,
    ]
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_price_prints_one_json_object_with_the_cdr_cost_fields(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = _run(capsys, tmp_path, TARIFF, CDR)
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    result = json.loads(out)
    assert result["currency"] == "EUR"
    # The CDR's own total_cost (999) is ignored: the tariff prices the periods.
    assert result["total_cost"] == {"excl_vat": "5", "incl_vat": "5.5"}
    for field in (
        "total_fixed_cost",
        "total_energy_cost",
        "total_time_cost",
        "total_parking_cost",
        "total_reservation_cost",
    ):
        assert set(result[field]) == {"excl_vat", "incl_vat"}
    assert (result["total_energy"], result["total_time"], result["total_parking_time"]) == (
        "20",
        "1",
        "0",
    )
    assert result["amount_to_charge"] == {"excl_vat": "5.00", "incl_vat": "5.50"}


def test_price_reads_time_restrictions_in_the_given_time_zone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    evening = {
        **TARIFF,
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": 1, "step_size": 1}],
                "restrictions": {"start_time": "11:00", "end_time": "12:00"},
            },
            {"price_components": [{"type": "ENERGY", "price": 0, "step_size": 1}]},
        ],
    }
    _, utc_out, _ = _run(capsys, tmp_path, evening, CDR)  # 10:00-11:00 UTC: free
    _, berlin_out, _ = _run(capsys, tmp_path, evening, CDR, "--time-zone", "Europe/Berlin")
    assert json.loads(utc_out)["total_cost"]["excl_vat"] == "0"
    assert json.loads(berlin_out)["total_cost"]["excl_vat"] == "20"  # 11:00-12:00 local


def test_price_of_a_credit_cdr_negates_total_cost_and_the_amount_to_charge(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    credit = {**CDR, "id": "CDR1-C", "credit": True, "credit_reference_id": "CDR1"}
    code, out, err = _run(capsys, tmp_path, TARIFF, credit)
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["credit"] is True
    assert result["total_cost"] == {"excl_vat": "-5", "incl_vat": "-5.5"}
    assert result["amount_to_charge"] == {"excl_vat": "-5.00", "incl_vat": "-5.50"}
    # As in the credit CDR itself (OCPI 2.2.1): the dimension totals stay as priced.
    assert result["total_energy_cost"] == {"excl_vat": "5", "incl_vat": "5.5"}
    _, original, _ = _run(capsys, tmp_path, TARIFF, CDR)
    assert "credit" not in json.loads(original)


@pytest.mark.parametrize(
    ("restriction", "kwh", "start", "expected"),
    [
        ({"end_time": "06:00"}, 2, "2024-01-10T23:00:00Z", "1.1"),
        ({"start_time": "22:00"}, 4, "2024-01-10T21:00:00Z", "2.2"),
    ],
    ids=["only-end-time", "only-start-time"],
)
def test_price_cuts_a_one_sided_time_window_at_local_midnight(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    restriction: dict[str, str],
    kwh: int,
    start: str,
    expected: str,
) -> None:
    # Issue 13's cases: 1.00/kWh inside the window, else 0.10/kWh, priced in UTC.
    one_sided = {
        "id": "T1",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": 1.00, "step_size": 1}],
                "restrictions": restriction,
            },
            {"price_components": [{"type": "ENERGY", "price": 0.10, "step_size": 1}]},
        ],
    }
    cdr = {
        "currency": "EUR",
        "start_date_time": start,
        "end_date_time": "2024-01-11T01:00:00Z",
        "charging_periods": [
            {"start_date_time": start, "dimensions": [{"type": "ENERGY", "volume": kwh}]}
        ],
    }
    code, out, _ = _run(capsys, tmp_path, one_sided, cdr)
    assert code == 0
    assert json.loads(out)["total_cost"]["excl_vat"] == expected


@pytest.mark.parametrize(
    ("tariff", "cdr", "extra", "message"),
    [
        ("{not json", CDR, (), "tariff file .* is not valid JSON"),
        (TARIFF, "[1, 2", (), "CDR file .* is not valid JSON"),
        (TARIFF, '{"currency": NaN}', (), "CDR file .* is not valid JSON: NaN"),
        ({**TARIFF, "elements": []}, CDR, (), "elements must hold at least one"),
        (
            {**TARIFF, "currency": "USD"},
            CDR,
            (),
            "currency mismatch: the CDR is in EUR, the tariff in USD",
        ),
        (TARIFF, {**CDR, "charging_periods": []}, (), "charging_periods must be a non-empty"),
        (TARIFF, {**CDR, "end_date_time": "soon"}, (), "end_date_time: expected an RFC 3339"),
        (
            TARIFF,
            CDR,
            ("--time-zone", "Mars/Olympus_Mons"),
            "unknown time zone 'Mars/Olympus_Mons'",
        ),
        (TARIFF, CDR, ("--time-zone", "../etc/passwd"), "unknown time zone"),
    ],
    ids=[
        "bad-tariff-json",
        "bad-cdr-json",
        "nan",
        "invalid-tariff",
        "currency-mismatch",
        "invalid-cdr",
        "bad-cdr-date",
        "unknown-zone",
        "zone-path",
    ],
)
def test_bad_input_is_one_error_line_on_stderr_and_a_non_zero_exit(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tariff: Any,
    cdr: Any,
    extra: tuple[str, ...],
    message: str,
) -> None:
    code, out, err = _run(capsys, tmp_path, tariff, cdr, *extra)
    assert code != 0
    assert out == ""
    assert err.startswith("ledger price: error: ")
    assert err.count("\n") == 1
    assert re.search(message, err), err


def test_a_missing_file_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["price", "--tariff", str(tmp_path / "nope.json"), "--cdr", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code != 0
    assert "cannot read" in err and "Traceback" not in err


def test_bench_pricing_reports_rates_and_the_cost_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = peer_dir().parent
    assert main(["bench", "pricing", "--sessions", "40", "--json", "--data-dir", str(data)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sessions"] == 40
    assert result["periods_per_session"] > 2
    assert result["sessions_priced_per_second"] > 0 and result["parses_per_second"] > 0
    ratio = result["price_seconds"] / result["parse_seconds"]
    assert result["pricing_to_parsing_ratio"] == pytest.approx(ratio)

"""`ledger bench pricing`: is pricing a session cheaper than merely reading its input?

In one run, over the same N sessions (several tariffs from the shared test data, each with
realistic multi-period CDRs: charging at varying power across clock boundaries, then
parking), it measures:
1. parsing: `json.loads` of the tariff and CDR text plus `parse_tariff` and `parse_cdr`;
2. pricing: `price_session` on the parsed tariff and periods.
It also measures the live path: one meter update of a running session (`SessionMeter.record`
plus `running_cost`) over a RUNNING_SESSION_MINUTES session sampled every minute.
Each phase runs ROUNDS_MAX times and the fastest round counts (the least disturbed by the
machine). The target is pricing_cost / parsing_cost <= 1: pricing must never be what makes
the ledger slow to take in a session.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from consumers.cli import CliError

if TYPE_CHECKING:  # the pricer is imported when a bench runs, not when the CLI starts
    from ledger.domain.charging_periods import MeterReading
    from ledger.domain.tariff import Tariff

SESSIONS_DEFAULT = 2_000
SESSIONS_MAX = 1_000_000  # keeps a typo from running for hours
ROUNDS_MAX = 3
BENCH_SEED = 20_221  # fixed: every run prices the same sessions
BENCH_TIME_ZONE = "Europe/Berlin"
RUNNING_SESSION_MINUTES = 180  # a long AC session; the cost of an update grows with it
# Tariffs with different shapes: energy, time, parking with steps, clock, power, current,
# kWh and duration restrictions, a minimum price.
BENCH_TARIFFS: tuple[str, ...] = (
    "ocpi-tariffs-peer/complex/tariff.json",
    "ocpi-tariffs-peer/step_size/tariff.json",
    "ocpi-tariffs-peer/restriction_example_max_power/tariff.json",
    "ocpi-tariffs-peer/restriction_example_max_duration/tariff.json",
    "ocpi-tariffs-peer/first_hour_kwh_free/tariff.json",
    "ocpi-tariffs-peer/025kwh_parking_start/tariff.json",
    "ocpi-tariffs-peer/025kwh_min_price/tariff.json",
    "ocpi-tariffs-peer/simple_3hour_5parking/tariff.json",
)


@dataclass(frozen=True, slots=True)
class PricingBench:
    sessions: int
    periods_per_session: float
    parse_seconds: float
    price_seconds: float
    sessions_priced_per_second: float
    parses_per_second: float
    pricing_to_parsing_ratio: float
    running_cost_updates_per_second: float  # record + running_cost, averaged over a session


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pricing",
        help="sessions priced per second vs. parsing the same tariff and CDR JSON",
        description="Price N sessions and parse their tariff and CDR JSON in the same run;"
        " print both rates and the ratio pricing_cost / parsing_cost (target <= 1).",
    )
    parser.add_argument("--sessions", type=int, default=SESSIONS_DEFAULT, metavar="N")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the OCPI test data folder (default: tests/data/ocpi of the checkout)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.sessions <= SESSIONS_MAX:
        raise CliError(f"--sessions must be between 1 and {SESSIONS_MAX}")
    data_dir = args.data_dir or default_data_dir()
    result = bench_pricing(load_tariff_texts(data_dir), args.sessions)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(
            f"sessions: {result.sessions} ({result.periods_per_session:.1f} periods each)\n"
            f"pricing: {result.sessions_priced_per_second:,.0f} sessions/s\n"
            f"parsing: {result.parses_per_second:,.0f} tariff+CDR parses/s\n"
            f"pricing_cost/parsing_cost: {result.pricing_to_parsing_ratio:.2f}"
            f" (target <= 1)\n"
            f"running cost: {result.running_cost_updates_per_second:,.0f} meter updates/s"
            f" ({1e6 / result.running_cost_updates_per_second:.0f} us each, sessions of"
            f" {RUNNING_SESSION_MINUTES} min sampled every minute)"
        )
    return 0


def default_data_dir() -> Path:
    # The pricing tests' data, kept in the repository (tests/data/ocpi/PROVENANCE.md).
    return Path(__file__).resolve().parents[2] / "tests" / "data" / "ocpi"


def load_tariff_texts(data_dir: Path) -> list[str]:
    texts = []
    for relative in BENCH_TARIFFS:
        path = data_dir / relative
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CliError(
                f"cannot read bench tariff {path}: {exc.strerror or exc}"
                " (run from a checkout or pass --data-dir)"
            ) from exc
    return texts


def bench_pricing(tariff_texts: Sequence[str], sessions: int) -> PricingBench:
    # Imported here, not at module import: `ledger --help` should not load the pricer.
    from ledger.domain.cdr import CdrSession, parse_cdr
    from ledger.domain.pricing import price_session
    from ledger.domain.tariff import parse_tariff

    rng = random.Random(BENCH_SEED)
    inputs = [
        (tariff_texts[i % len(tariff_texts)], json.dumps(synthetic_cdr(rng, i)))
        for i in range(sessions)
    ]
    zone = ZoneInfo(BENCH_TIME_ZONE)
    parsed: list[tuple[Tariff, CdrSession]] = []

    def parse_all() -> None:
        parsed.clear()
        for tariff_text, cdr_text in inputs:
            tariff = parse_tariff(json.loads(tariff_text, parse_float=Decimal))
            cdr = parse_cdr(json.loads(cdr_text, parse_float=Decimal))
            parsed.append((tariff, cdr))

    def price_all() -> None:
        for tariff, cdr in parsed:
            price_session(tariff, cdr.periods, zone, cdr.start, cdr.end)

    parse_seconds = price_seconds = float("inf")
    for _ in range(ROUNDS_MAX):
        parse_seconds = min(parse_seconds, _timed(parse_all))
        price_seconds = min(price_seconds, _timed(price_all))
    periods = sum(len(cdr.periods) for _, cdr in parsed)
    tariffs = [parse_tariff(json.loads(text, parse_float=Decimal)) for text in tariff_texts]
    update_seconds = min(_timed_running_cost(tariffs, zone) for _ in range(ROUNDS_MAX))
    return PricingBench(
        sessions=sessions,
        periods_per_session=periods / sessions,
        parse_seconds=parse_seconds,
        price_seconds=price_seconds,
        sessions_priced_per_second=sessions / price_seconds,
        parses_per_second=sessions / parse_seconds,
        pricing_to_parsing_ratio=price_seconds / parse_seconds,
        running_cost_updates_per_second=1 / update_seconds,
    )


def _timed_running_cost(tariffs: Sequence[Tariff], zone: ZoneInfo) -> float:
    """Mean seconds per meter update: record the reading, then price the session so far."""
    from ledger.domain.charging_periods import SessionMeter, running_cost

    readings = synthetic_readings(datetime(2024, 6, 4, 14, 0, tzinfo=UTC))
    updates = 0
    started = time.perf_counter()
    for tariff in tariffs:
        meter = SessionMeter()
        for reading in readings:
            meter = meter.record(reading)
            running_cost(tariff, meter, zone, reading.timestamp)
            updates += 1
    return (time.perf_counter() - started) / updates


def synthetic_readings(start: datetime) -> list[MeterReading]:
    """A session's OCPP events, one a minute: 11 kW charging, then parked for the last 30."""
    from ledger.domain.charging_periods import ChargingState, EventType, MeterReading, MeterSample

    readings = []
    register_wh = Decimal(1_234_000)
    parked_from = RUNNING_SESSION_MINUTES - 30
    for minute in range(RUNNING_SESSION_MINUTES + 1):
        at = start + timedelta(minutes=minute)
        charging = minute < parked_from
        if minute and charging:
            register_wh += Decimal(11_000) / 60
        event, state = EventType.UPDATED, None
        if minute == 0:
            event, state = EventType.STARTED, ChargingState.CHARGING
        elif minute == RUNNING_SESSION_MINUTES:
            event, state = EventType.ENDED, ChargingState.IDLE
        elif minute == parked_from:
            state = ChargingState.SUSPENDED_EV
        sample = MeterSample(
            timestamp=at,
            energy_register_wh=register_wh.quantize(Decimal(1)),
            power_w=Decimal(11_000 if charging else 0),
            current_a=Decimal(48 if charging else 0),
        )
        readings.append(MeterReading(minute, at, event, state, (sample,)))
    return readings


def _timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def synthetic_cdr(rng: random.Random, number: int) -> dict[str, Any]:
    """A plausible OCPI CDR: 2-5 charging periods at varying power, then maybe parking.

    Starts are spread over a year and the whole day, so sessions cross clock boundaries
    (17:00, midnight, DST changes) the tariffs' restrictions care about.
    """
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(366 * 24 * 60))
    at = start
    periods: list[dict[str, Any]] = []
    for _ in range(rng.randint(2, 5)):
        minutes = rng.randint(5, 70)
        power_kw = Decimal(rng.choice((3.7, 7.4, 11, 22, 50, 150))).quantize(Decimal("0.1"))
        current_a = (power_kw * 1000 / 230).quantize(Decimal("0.1"))
        energy_kwh = (power_kw * minutes / 60).quantize(Decimal("0.001"))
        periods.append(
            {
                "start_date_time": _utc(at),
                "dimensions": [
                    {"type": "ENERGY", "volume": float(energy_kwh)},
                    {"type": "TIME", "volume": round(minutes / 60, 4)},
                    {"type": "MAX_POWER", "volume": float(power_kw)},
                    {"type": "MAX_CURRENT", "volume": float(current_a)},
                ],
                "tariff_id": "bench",
            }
        )
        at += timedelta(minutes=minutes)
    if rng.random() < 0.6:
        minutes = rng.randint(3, 90)
        periods.append(
            {
                "start_date_time": _utc(at),
                "dimensions": [{"type": "PARKING_TIME", "volume": round(minutes / 60, 4)}],
                "tariff_id": "bench",
            }
        )
        at += timedelta(minutes=minutes)
    return {
        "country_code": "DE",
        "party_id": "EVL",
        "id": f"BENCH{number:08d}",
        "start_date_time": _utc(start),
        "end_date_time": _utc(at),
        "session_id": f"S{number:08d}",
        "cdr_token": {
            "country_code": "DE",
            "party_id": "EVL",
            "uid": f"{number:012X}",
            "type": "RFID",
            "contract_id": f"DE-EVL-C{number:08d}",
        },
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": "LOC1",
            "address": "Hauptstrasse 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DEU",
            "coordinates": {"latitude": "52.520008", "longitude": "13.404954"},
            "evse_uid": "EVSE1",
            "evse_id": "DE*EVL*E0001",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2_COMBO",
            "connector_format": "CABLE",
            "connector_power_type": "DC",
        },
        "currency": "EUR",
        "charging_periods": periods,
        "total_cost": {"excl_vat": 0, "incl_vat": 0},
        "total_energy": 0,
        "total_time": 0,
        "last_updated": _utc(at),
    }


def _utc(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")

"""`ledger price`: price one session (an OCPI CDR) under an OCPI 2.2.1 tariff.

Contract (tests/data/ocpi/README.md, "How pricing is checked"): reads the tariff and the CDR's
charging_periods, start_date_time and end_date_time (its own total_* fields are ignored),
prices in the location's time zone (default UTC), prints one JSON object with the OCPI CDR
cost fields as exact decimal strings, plus `amount_to_charge` (rounded half up to the
currency's minor unit). A Credit CDR (`credit: true`) prints `total_cost` and
`amount_to_charge` negated, as OCPI 2.2.1 negates only `total_cost` in a credit, and
`"credit": true`. Bad input is one line on stderr and a non-zero exit (via cli.main).
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consumers.cli import CliError
from ledger.domain.cdr import credit_cost_fields, parse_cdr
from ledger.domain.errors import InvalidCdr, InvalidTariff
from ledger.domain.pricing import cost_fields, price_session
from ledger.domain.tariff import Tariff, parse_tariff

INPUT_FILE_BYTES_MAX = 10_000_000  # a CDR with a period a minute for a week is ~2 MB


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "price",
        help="price one session (OCPI CDR) under an OCPI 2.2.1 tariff",
        description="Price one session under an OCPI 2.2.1 tariff and print the OCPI CDR"
        " cost fields as JSON (exact decimal strings).",
    )
    parser.add_argument("--tariff", required=True, type=Path, metavar="TARIFF.json")
    parser.add_argument("--cdr", required=True, type=Path, metavar="CDR.json")
    parser.add_argument(
        "--time-zone",
        default="UTC",
        metavar="ZONE",
        help="IANA time zone of the location, for time and date restrictions (default UTC)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    time_zone = load_time_zone(args.time_zone)
    tariff = read_tariff(args.tariff)
    try:
        cdr = parse_cdr(read_json(args.cdr))
    except ValueError as exc:
        raise InvalidCdr(f"CDR file {args.cdr} is not valid JSON: {exc}") from exc
    if cdr.currency != tariff.currency:
        raise InvalidCdr(
            f"currency mismatch: the CDR is in {cdr.currency}, the tariff in {tariff.currency}"
        )
    price = price_session(tariff, cdr.periods, time_zone, cdr.start, cdr.end)
    fields = cost_fields(price)
    json.dump(credit_cost_fields(fields) if cdr.credit else fields, sys.stdout)
    sys.stdout.write("\n")
    return 0


def read_tariff(path: Path) -> Tariff:
    """The OCPI tariff in a file, or InvalidTariff / CliError saying what is wrong."""
    try:
        return parse_tariff(read_json(path))
    except ValueError as exc:
        raise InvalidTariff(f"tariff file {path} is not valid JSON: {exc}") from exc


def load_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CliError(
            f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)"
        ) from exc


def read_json(path: Path) -> object:
    """Decoded JSON with exact decimals; ValueError when the text is not JSON."""
    return json.loads(read_text(path), parse_float=Decimal, parse_constant=_refuse_constant)


def read_text(path: Path) -> str:
    """The UTF-8 text of a bounded input file; ValueError when it is not UTF-8."""
    try:
        with path.open("rb") as handle:
            data = handle.read(INPUT_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > INPUT_FILE_BYTES_MAX:
        raise CliError(f"{path} is larger than {INPUT_FILE_BYTES_MAX} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason})") from exc
    return text


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number OCPI allows")

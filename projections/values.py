"""How values from events become column values: the same text on SQLite and PostgreSQL.

Amounts are stored as decimal text at the currency's exponent (`Money.to_str`), never as a
float or a database NUMERIC: SQLite's NUMERIC affinity would turn "12.30" into a binary
float. Where SQL must add amounts up (balances), the posting also carries its amount in
integer minor units, which both databases sum exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.domain.money import Money, currency_exponent

SqlValue = str | int | None


class ProjectionError(Exception):
    """The event log holds something the read models cannot represent (a bug upstream)."""


def amount_text(amount: Decimal | str | int, currency: str) -> str:
    """Major units at the currency's exponent, e.g. '12.30' (the report's amount format)."""
    return Money(Decimal(amount), currency).to_str()


def amount_minor(amount: Decimal | str, currency: str) -> int:
    """The amount in minor units; refuses an amount that is not a whole number of them.

    Journal amounts are rounded before they are posted, so a fraction here is a bug upstream,
    and rounding it away would hide money.
    """
    scaled = Decimal(amount).scaleb(currency_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ProjectionError(f"{amount} {currency} is not a whole number of minor units")
    return int(scaled)


def amount_from_minor(minor: int, currency: str) -> str:
    """Integer minor units back to the report's decimal text."""
    return amount_text(Decimal(minor).scaleb(-currency_exponent(currency)), currency)


def instant_text(value: datetime | str | None) -> str | None:
    """An instant as ISO 8601 in UTC with a 'Z', so equal instants compare equal as text."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        raise ProjectionError(f"instant without a UTC offset: {value!r}")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_default(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return instant_text(value)
    if isinstance(value, UUID):
        return value.hex
    raise TypeError(f"not JSON: {type(value).__name__}")


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def optional_text(value: object) -> str | None:
    return None if value is None else str(value)

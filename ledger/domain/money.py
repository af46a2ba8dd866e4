"""Money: exact decimal amounts in one currency, rounded once, half up, to the minor unit.

Amounts stay at full precision while a session is priced; `Money.rounded()` is called
exactly when an amount is charged, captured, debited or put on an invoice line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction

from ledger.domain.errors import InvalidAmount, UnknownCurrency

# ISO 4217 minor-unit exponents for the currencies operators bill in. A currency missing
# here is refused rather than guessed: a wrong exponent would misprice every invoice.
CURRENCY_EXPONENTS: dict[str, int] = {
    "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2,
    "CZK": 2, "HUF": 2, "RON": 2, "BGN": 2, "CAD": 2, "AUD": 2, "NZD": 2, "INR": 2,
    "CNY": 2, "SGD": 2, "HKD": 2, "ZAR": 2, "BRL": 2, "MXN": 2, "TRY": 2, "AED": 2,
    "JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0,
    "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3,
}


def currency_exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {currency!r} (ISO 4217 code expected)") from None


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of `currency`, e.g. Decimal('0.01') for EUR."""
    return Decimal(1).scaleb(-currency_exponent(currency))


def round_to_minor_unit(amount: Decimal, currency: str) -> Decimal:
    """Round half up to the currency's minor unit (the one rounding the rules allow)."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def parse_decimal(text: str | int | Decimal) -> Decimal:
    """A decimal from its string form; floats are refused so no binary error sneaks in."""
    if isinstance(text, float):  # pragma: no cover - guarded by types, kept for callers
        raise InvalidAmount(f"amount {text!r} is a float; send a decimal string")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError) as exc:
        raise InvalidAmount(f"not a decimal amount: {text!r}") from exc
    if not value.is_finite():
        raise InvalidAmount(f"amount must be finite: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency. Arithmetic refuses to mix currencies."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        currency_exponent(self.currency)  # validates the code
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise InvalidAmount(f"amount must be a finite Decimal, got {self.amount!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        return cls(parse_decimal(amount), currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidAmount(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.amount <= other.amount

    def times(self, factor: Decimal) -> Money:
        return Money(self.amount * factor, self.currency)

    def rounded(self) -> Money:
        return Money(round_to_minor_unit(self.amount, self.currency), self.currency)

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    def to_str(self) -> str:
        """Major units at the currency's exponent, e.g. '12.30' (rounds half up)."""
        return str(round_to_minor_unit(self.amount, self.currency))

    def allocate(self, weights: list[Decimal]) -> list[Money]:
        """Split a rounded amount by weights without creating or losing a minor unit.

        Largest-remainder method: each share is floored to the minor unit, and the units
        left over go to the largest remainders (ties to the earliest), so 0.05 split 30/70
        gives 0.02 + 0.03.
        """
        total_units, exact, floors = self._quotas(weights)
        order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
        for i in order[:total_units - sum(floors)]:
            floors[i] += 1
        return self._of_units(floors)

    def allocate_monotone(self, weights: list[Decimal]) -> list[Money]:
        """Split like `allocate`, but by highest averages (Jefferson/D'Hondt): each minor unit
        goes to the share with the largest weight / (units + 1), ties to the earliest.

        House-monotone: a larger amount never gives any share less. Largest remainders can
        (the Alabama paradox), so the difference of two of its splits, of an amount and of a
        larger one, may be negative in one share: a refund's lines, the session's lines at the
        new refunded total less those at the old one, then did not add up to the refund."""
        # Every highest-averages split of this total gives each share at least its floor
        # (lower quota), so only the few units left are placed one by one.
        total_units, _exact, units = self._quotas(weights)
        averaged = [Fraction(w) for w in weights]
        for _unit in range(total_units - sum(units)):
            best = max(range(len(weights)), key=lambda i: (averaged[i] / (units[i] + 1), -i))
            units[best] += 1
        return self._of_units(units)

    def _quotas(self, weights: list[Decimal]) -> tuple[int, list[Decimal], list[int]]:
        """The rounded amount in minor units, each weight's exact share of them, and its
        floor."""
        if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
            raise InvalidAmount("allocate needs non-negative weights with a positive sum")
        rounded = round_to_minor_unit(self.amount, self.currency)
        total_units = int((rounded / minor_unit(self.currency)).to_integral_value())
        weight_sum = sum(weights)
        exact = [Decimal(total_units) * w / weight_sum for w in weights]
        return total_units, exact, [int(e.to_integral_value(rounding="ROUND_FLOOR"))
                                    for e in exact]

    def _of_units(self, units: list[int]) -> list[Money]:
        unit = minor_unit(self.currency)
        return [Money(Decimal(n) * unit, self.currency) for n in units]

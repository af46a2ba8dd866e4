"""Tariff lint: what is wrong or suspicious in an OCPI 2.2.1 tariff, before it prices anything.

`lint_tariff_text(text)` reads the tariff's JSON text (duplicate keys are visible only there)
and returns every finding, in document order; `fatal(findings)` says whether the tariff must
be refused. Pure: no I/O, no clock.

Fatal (the tariff would price differently from what its author wrote, or not at all):
- `invalid_json`: not JSON, or not accepted by `parse_tariff` (its reason is quoted);
- `duplicate_key`: a key given twice in one object (parsers disagree on which one wins);
- `unknown_key`: a key OCPI does not define inside a price, price component or
  restriction (it would be ignored, so a price or a condition silently disappears), or
  anywhere when it looks like a misspelled OCPI key (`dayOfWeek` for `day_of_week`) or is
  an OCPI key in the wrong object (`start_time` beside `restrictions`);
- `contradictory_restriction`: min at or above max (kWh, current, power, duration),
  start_date at or after end_date: the element can never apply;
- `negative_price`: a component, min_price or max_price below zero;
- `min_above_max_price`: min_price above max_price (excl. or incl. VAT);
- `shadowed_element`: for a dimension, an earlier element with a component of that
  dimension holds whenever this one does, so this one never prices it.

Warnings (legal and priced as written, but worth a second look):
- `unknown_key` at the tariff or element level that resembles no OCPI key (an extension);
- `zero_price`: a component that charges nothing (a free tariff says so on purpose);
- `free_step`: a step_size on a free component while an earlier element charges for the
  dimension: the session total is rounded with the last component's step at its price,
  so the rounding is given away;
- `missing_vat`: a component without `vat` (no VAT applicable, incl. = excl.);
- `ignored_component`: a second component of the same dimension in one element (only the
  first counts).

Shadowing is checked pairwise, one earlier element at a time; an element covered only by
several earlier ones together is not reported.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ledger.domain.errors import InvalidTariff
from ledger.domain.tariff import (
    DayOfWeek,
    ReservationRestriction,
    Rule,
    Tariff,
    TariffDimension,
    TariffElement,
    TariffRestrictions,
    parse_tariff,
    to_decimal,
    window_holds,
)

MINUTES_PER_DAY = 24 * 60
# How close an unknown key must be to an OCPI key to count as its misspelling (difflib ratio
# after dropping case, "_" and "-"): "dayOfWeek" and "max_kwhs" match, "x_vendor" does not.
MISSPELLING_RATIO_MIN = 0.8

TARIFF_KEYS = frozenset(
    {
        "country_code",
        "party_id",
        "id",
        "currency",
        "type",
        "tariff_alt_text",
        "tariff_alt_url",
        "min_price",
        "max_price",
        "elements",
        "start_date_time",
        "end_date_time",
        "energy_mix",
        "last_updated",
    }
)
ELEMENT_KEYS = frozenset({"price_components", "restrictions"})
COMPONENT_KEYS = frozenset({"type", "price", "vat", "step_size"})
PRICE_KEYS = frozenset({"excl_vat", "incl_vat"})
RESTRICTION_KEYS = frozenset(
    {
        "start_time",
        "end_time",
        "start_date",
        "end_date",
        "min_kwh",
        "max_kwh",
        "min_current",
        "max_current",
        "min_power",
        "max_power",
        "min_duration",
        "max_duration",
        "day_of_week",
        "reservation",
    }
)
# Every key of a tariff, for spotting a misspelling wherever it appears.
_ALL_KEYS = TARIFF_KEYS | ELEMENT_KEYS | COMPONENT_KEYS | PRICE_KEYS | RESTRICTION_KEYS
_RESTRICTION_PAIRS: tuple[tuple[str, str], ...] = (
    ("min_kwh", "max_kwh"),
    ("min_current", "max_current"),
    ("min_power", "max_power"),
    ("min_duration", "max_duration"),
)


class Severity(StrEnum):
    FATAL = "fatal"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str  # one of the names in the module docstring
    where: str  # a path into the tariff: "elements[1].restrictions.dayOfWeek"
    message: str

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.where}: {self.message} [{self.code}]"


def fatal(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    return tuple(f for f in findings if f.severity is Severity.FATAL)


def lint_tariff_text(text: str) -> tuple[Finding, ...]:
    """Every finding for the tariff JSON `text`, in document order."""
    duplicates: list[Finding] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                duplicates.append(
                    Finding(Severity.FATAL, "duplicate_key", key, f"key {key!r} given twice")
                )
            seen.add(key)
        return dict(pairs)

    try:
        obj = json.loads(text, object_pairs_hook=pairs_hook, parse_float=Decimal)
    except ValueError as exc:
        return (Finding(Severity.FATAL, "invalid_json", "tariff", f"not JSON: {exc}"),)
    return tuple(duplicates) + lint_tariff(obj)


def lint_tariff(obj: object) -> tuple[Finding, ...]:
    """Every finding for a decoded tariff (duplicate keys are gone by now: see the text)."""
    if not isinstance(obj, Mapping):
        return (Finding(Severity.FATAL, "invalid_json", "tariff", "expected a JSON object"),)
    findings = _raw_findings(obj)
    try:
        tariff = parse_tariff(obj)
    except InvalidTariff as exc:
        # The raw checks already name what the parser refuses at the places they point to.
        if not any(f.severity is Severity.FATAL and f.where in str(exc) for f in findings):
            findings.append(Finding(Severity.FATAL, "invalid_json", "tariff", str(exc)))
        return tuple(findings)
    findings.extend(_element_findings(tariff))
    return tuple(findings)


# ---------------------------------------------------------------- the JSON as written
def _raw_findings(tariff: Mapping[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    _keys(tariff, TARIFF_KEYS, "tariff", strict=False, out=out)
    prices: dict[str, tuple[Decimal | None, Decimal | None]] = {}
    for key in ("min_price", "max_price"):
        price = tariff.get(key)
        if isinstance(price, Mapping):
            _keys(price, PRICE_KEYS, key, strict=True, out=out)
            parts = (to_decimal(price.get("excl_vat")), to_decimal(price.get("incl_vat")))
            prices[key] = parts
            if any(p is not None and p < 0 for p in parts):
                out.append(Finding(Severity.FATAL, "negative_price", key, "below zero"))
    low, high = prices.get("min_price"), prices.get("max_price")
    if low is not None and high is not None:
        for i, part in enumerate(("excl_vat", "incl_vat")):
            if low[i] is not None and high[i] is not None and low[i] > high[i]:  # type: ignore[operator]
                out.append(
                    Finding(
                        Severity.FATAL,
                        "min_above_max_price",
                        f"min_price.{part}",
                        f"min_price {low[i]} is above max_price {high[i]}",
                    )
                )
    elements = tariff.get("elements")
    for i, element in enumerate(elements if isinstance(elements, list) else []):
        where = f"elements[{i}]"
        if not isinstance(element, Mapping):
            continue
        _keys(element, ELEMENT_KEYS, where, strict=False, out=out)
        components = element.get("price_components")
        for j, component in enumerate(components if isinstance(components, list) else []):
            if isinstance(component, Mapping):
                _component(component, f"{where}.price_components[{j}]", out)
        restrictions = element.get("restrictions")
        if isinstance(restrictions, Mapping):
            _restrictions(restrictions, f"{where}.restrictions", out)
    return out


def _keys(
    obj: Mapping[str, Any], known: frozenset[str], where: str, *, strict: bool, out: list[Finding]
) -> None:
    for key in obj:
        if key in known:
            continue
        meant = _misspelling_of(key)
        if meant == key:
            message = f"key {key!r} does not belong here (it is ignored as written)"
            out.append(Finding(Severity.FATAL, "unknown_key", f"{where}.{key}", message))
        elif meant is not None:
            message = f"unknown key {key!r}: did you mean {meant!r}? (it is ignored as written)"
            out.append(Finding(Severity.FATAL, "unknown_key", f"{where}.{key}", message))
        else:
            severity = Severity.FATAL if strict else Severity.WARNING
            message = f"unknown key {key!r} is not OCPI 2.2.1 and is ignored"
            out.append(Finding(severity, "unknown_key", f"{where}.{key}", message))


def _misspelling_of(key: str) -> str | None:
    def norm(k: str) -> str:
        return k.lower().replace("_", "").replace("-", "")

    normalized = {norm(k): k for k in _ALL_KEYS}
    if norm(key) in normalized:
        return normalized[norm(key)]
    close = difflib.get_close_matches(norm(key), normalized, n=1, cutoff=MISSPELLING_RATIO_MIN)
    return normalized[close[0]] if close else None


def _component(component: Mapping[str, Any], where: str, out: list[Finding]) -> None:
    _keys(component, COMPONENT_KEYS, where, strict=True, out=out)
    price = to_decimal(component.get("price"))
    if price is not None and price < 0:
        out.append(Finding(Severity.FATAL, "negative_price", f"{where}.price", "below zero"))


def _restrictions(r: Mapping[str, Any], where: str, out: list[Finding]) -> None:
    _keys(r, RESTRICTION_KEYS, where, strict=True, out=out)
    for low_key, high_key in _RESTRICTION_PAIRS:
        low, high = to_decimal(r.get(low_key)), to_decimal(r.get(high_key))
        if low is not None and high is not None and low >= high:
            out.append(
                Finding(
                    Severity.FATAL,
                    "contradictory_restriction",
                    where,
                    f"{low_key} {low} is not below {high_key} {high}: the element never applies",
                )
            )
    start, end = _date(r.get("start_date")), _date(r.get("end_date"))
    if start is not None and end is not None and start >= end:
        out.append(
            Finding(
                Severity.FATAL,
                "contradictory_restriction",
                where,
                f"start_date {start} is not before end_date {end} (exclusive):"
                " the element never applies",
            )
        )


def _date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None  # the parser names the bad date


# --------------------------------------------------------------- the parsed elements
def _element_findings(tariff: Tariff) -> list[Finding]:
    out: list[Finding] = []
    charged: set[TariffDimension] = set()  # dimensions an earlier element charges for
    for i, element in enumerate(tariff.elements):
        seen: set[TariffDimension] = set()
        for j, component in enumerate(element.price_components):
            where = f"elements[{i}].price_components[{j}]"
            dimension = component.dimension
            if dimension in seen:
                out.append(
                    Finding(
                        Severity.WARNING,
                        "ignored_component",
                        where,
                        f"a second {dimension} component in one element is never used",
                    )
                )
                continue
            seen.add(dimension)
            if component.price == 0:
                out.append(
                    Finding(Severity.WARNING, "zero_price", where, f"{dimension} is free here")
                )
                rounds = component.step_size > 0 and dimension is not TariffDimension.FLAT
                if rounds and dimension in charged:
                    out.append(
                        Finding(
                            Severity.WARNING,
                            "free_step",
                            where,
                            f"step_size {component.step_size} on a free {dimension} component:"
                            " when it prices last, the session's rounding is free",
                        )
                    )
            else:
                charged.add(dimension)
            if component.vat_percent is None:
                out.append(
                    Finding(
                        Severity.WARNING,
                        "missing_vat",
                        where,
                        "no vat: priced as no VAT applicable (incl. = excl.)",
                    )
                )
        out.extend(_shadowing(tariff.elements, i))
    return out


def _shadowing(elements: Sequence[TariffElement], index: int) -> list[Finding]:
    element = elements[index]
    out: list[Finding] = []
    dimensions = []
    for component in element.price_components:
        if component.dimension not in dimensions:
            dimensions.append(component.dimension)
    for dimension in dimensions:
        for earlier_index in range(index):
            earlier = elements[earlier_index]
            if not any(c.dimension == dimension for c in earlier.price_components):
                continue
            if covers(earlier.restrictions, element.restrictions):
                out.append(
                    Finding(
                        Severity.FATAL,
                        "shadowed_element",
                        f"elements[{index}]",
                        f"its {dimension} component never applies: elements[{earlier_index}]"
                        f" prices {dimension} whenever this element's restrictions hold",
                    )
                )
                break
    return out


def covers(wide: TariffRestrictions | None, narrow: TariffRestrictions | None) -> bool:
    """Whether `wide`'s restrictions hold at every moment `narrow`'s do (sufficient test)."""
    a = wide or TariffRestrictions()
    b = narrow or TariffRestrictions()
    return (
        _reservation_covers(a.reservation, b.reservation)
        and _days_cover(a.day_of_week, b.day_of_week)
        and _lower_covers(a.start_date, b.start_date)
        and _upper_covers(a.end_date, b.end_date)
        and _lower_covers(a.min_kwh, b.min_kwh)
        and _upper_covers(a.max_kwh, b.max_kwh)
        and _lower_covers(a.min_duration_s, b.min_duration_s)
        and _upper_covers(a.max_duration_s, b.max_duration_s)
        and _lower_covers(a.min_power_kw, b.min_power_kw)
        and _upper_covers(a.max_power_kw, b.max_power_kw)
        and _lower_covers(a.min_current_a, b.min_current_a)
        and _upper_covers(a.max_current_a, b.max_current_a)
        and _window_minutes(a) >= _window_minutes(b)
    )


def _reservation_covers(
    wide: ReservationRestriction | None, narrow: ReservationRestriction | None
) -> bool:
    # RESERVATION prices reserved and expired-reservation time; RESERVATION_EXPIRES only the
    # latter; no restriction only the charging session proper.
    if wide is narrow:
        return True
    return (
        wide is ReservationRestriction.RESERVATION
        and narrow is ReservationRestriction.RESERVATION_EXPIRES
    )


def _days_cover(wide: frozenset[DayOfWeek] | None, narrow: frozenset[DayOfWeek] | None) -> bool:
    if wide is None or len(wide) == len(DayOfWeek):
        return True
    return narrow is not None and narrow <= wide


def _lower_covers(wide: Any, narrow: Any) -> bool:
    """A lower bound (inclusive): absent, or at or below the narrow one."""
    return wide is None or (narrow is not None and wide <= narrow)


def _upper_covers(wide: Any, narrow: Any) -> bool:
    """An upper bound (exclusive): absent, or at or above the narrow one."""
    return wide is None or (narrow is not None and narrow <= wide)


def _window_minutes(r: TariffRestrictions) -> frozenset[int]:
    """The local minutes of the day where the start/end_time window holds (HH:MM times)."""
    start_s, end_s = Rule(r).time_start_s, Rule(r).time_end_s
    return frozenset(m for m in range(MINUTES_PER_DAY) if window_holds(start_s, end_s, m * 60))

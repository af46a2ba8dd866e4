"""A tariff in plain words: every element, what it charges, when, in steps of what, with VAT.

`explain_tariff(tariff, language, time_zone)` returns the text as lines, for a driver or an
operations team, in English, German or Dutch. Pure: no I/O, no clock.

What it says follows the pricer's rules (ledger/domain/pricing.py, docs/pricing.md): for
each of energy, charging time, parking time and the flat fee, the first element in list
order whose conditions hold sets the price; with none, that part is free. Clock times and
dates of restrictions are the location's local times, named with `time_zone`; the tariff's
own validity (start/end_date_time, UTC in OCPI) is shown in `time_zone`.
Amounts are exact decimals as the tariff gives them (incl. VAT computed exactly).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from ledger.domain.pricing import PRICING_CONTEXT, decimal_text
from ledger.domain.tariff import (
    Price,
    PriceComponent,
    ReservationRestriction,
    Tariff,
    TariffDimension,
    TariffElement,
    TariffRestrictions,
)

SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True, slots=True)
class Phrases:
    """Everything language-specific; `{}` fields are filled with str.format."""

    decimal_mark: str
    weekdays: tuple[str, ...]  # Monday first
    title: str  # tariff id, currency
    type: str
    valid_from: str
    valid_until: str
    order: str
    min_price: str
    max_price: str
    element: str  # number
    per_kwh: str
    per_hour_charging: str
    per_hour_parking: str
    per_hour_reserved: str
    flat: str
    flat_reservation: str
    vat: str  # percent, incl. amount
    no_vat: str
    step_wh: str
    step_time: str
    no_step: str
    ignored: str  # dimension
    always: str
    applies: str  # the conditions joined
    window: str  # start, end
    from_time: str  # start (until midnight)
    until_time: str  # end (from midnight)
    days: str
    day_range: str  # first, last
    from_date: str
    until_date: str
    min_kwh: str
    max_kwh: str
    min_power: str
    max_power: str
    min_current: str
    max_current: str
    min_duration: str
    max_duration: str
    reservation: str
    reservation_expires: str
    with_vat: str  # an amount incl. VAT
    hours: str
    minutes: str
    seconds: str
    dimension_names: Mapping[TariffDimension, str]


ENGLISH = Phrases(
    decimal_mark=".",
    weekdays=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    title="Tariff {} (prices in {}, local times {})",
    type="Type: {}",
    valid_from="Valid for sessions starting from {}",
    valid_until="Valid for sessions starting before {}",
    order="For energy, charging time, parking time and the start fee, the first element"
    " below whose conditions hold sets the price; where none holds, that part is free.",
    min_price="Minimum price per session: {}",
    max_price="Maximum price per session: {}",
    element="Element {}:",
    per_kwh="{} per kWh",
    per_hour_charging="{} per hour of charging",
    per_hour_parking="{} per hour of parking (plugged in, not charging)",
    per_hour_reserved="{} per hour reserved",
    flat="{} once per session",
    flat_reservation="{} once per reservation",
    vat="plus {} % VAT ({} incl. VAT)",
    no_vat="no VAT applies",
    step_wh="the session's energy is rounded up to steps of {} Wh",
    step_time="the session's time is rounded up to steps of {}",
    no_step="no rounding",
    ignored="a second {} price in this element, never used",
    always="applies at all times",
    applies="applies {}",
    window="from {} to {}",
    from_time="from {} until midnight",
    until_time="from midnight until {}",
    days="on {}",
    day_range="{} to {}",
    from_date="from {}",
    until_date="before {}",
    min_kwh="once {} kWh have been charged",
    max_kwh="until {} kWh have been charged",
    min_power="while charging at {} kW or more",
    max_power="while charging below {} kW",
    min_current="while the current is {} A or more",
    max_current="while the current is below {} A",
    min_duration="from {} after the session start",
    max_duration="during the first {} of the session",
    reservation="only to time reserved before charging",
    reservation_expires="only to a reservation that expired unused",
    with_vat="{} incl. VAT",
    hours="{} h",
    minutes="{} min",
    seconds="{} s",
    dimension_names={
        TariffDimension.ENERGY: "energy",
        TariffDimension.FLAT: "start fee",
        TariffDimension.PARKING_TIME: "parking time",
        TariffDimension.TIME: "charging time",
    },
)

GERMAN = Phrases(
    decimal_mark=",",
    weekdays=("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    title="Tarif {} (Preise in {}, Ortszeit {})",
    type="Art: {}",
    valid_from="Gültig für Ladevorgänge ab {}",
    valid_until="Gültig für Ladevorgänge, die vor {} beginnen",
    order="Für Energie, Ladezeit, Parkzeit und Startgebühr gilt jeweils das erste Element"
    " unten, dessen Bedingungen erfüllt sind; gilt keines, ist dieser Teil kostenlos.",
    min_price="Mindestpreis je Ladevorgang: {}",
    max_price="Höchstpreis je Ladevorgang: {}",
    element="Element {}:",
    per_kwh="{} je kWh",
    per_hour_charging="{} je Stunde Ladezeit",
    per_hour_parking="{} je Stunde Parken (angeschlossen, ohne zu laden)",
    per_hour_reserved="{} je Stunde Reservierung",
    flat="{} einmal je Ladevorgang",
    flat_reservation="{} einmal je Reservierung",
    vat="zzgl. {} % MwSt. ({} inkl. MwSt.)",
    no_vat="keine MwSt.",
    step_wh="die Energie des Ladevorgangs wird auf Schritte von {} Wh aufgerundet",
    step_time="die Zeit des Ladevorgangs wird auf Schritte von {} aufgerundet",
    no_step="ohne Rundung",
    ignored="ein zweiter Preis für {} in diesem Element, nie verwendet",
    always="gilt jederzeit",
    applies="gilt {}",
    window="von {} bis {}",
    from_time="von {} bis Mitternacht",
    until_time="von Mitternacht bis {}",
    days="am {}",
    day_range="{} bis {}",
    from_date="ab {}",
    until_date="vor {}",
    min_kwh="sobald {} kWh geladen sind",
    max_kwh="bis {} kWh geladen sind",
    min_power="solange mit {} kW oder mehr geladen wird",
    max_power="solange mit weniger als {} kW geladen wird",
    min_current="solange der Strom {} A oder mehr beträgt",
    max_current="solange der Strom unter {} A liegt",
    min_duration="ab {} nach Beginn des Ladevorgangs",
    max_duration="in den ersten {} des Ladevorgangs",
    reservation="nur für reservierte Zeit vor dem Laden",
    reservation_expires="nur für eine ungenutzt abgelaufene Reservierung",
    with_vat="{} inkl. MwSt.",
    hours="{} Std.",
    minutes="{} Min.",
    seconds="{} Sek.",
    dimension_names={
        TariffDimension.ENERGY: "Energie",
        TariffDimension.FLAT: "Startgebühr",
        TariffDimension.PARKING_TIME: "Parkzeit",
        TariffDimension.TIME: "Ladezeit",
    },
)

DUTCH = Phrases(
    decimal_mark=",",
    weekdays=("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    title="Tarief {} (prijzen in {}, lokale tijd {})",
    type="Soort: {}",
    valid_from="Geldig voor laadsessies vanaf {}",
    valid_until="Geldig voor laadsessies die vóór {} beginnen",
    order="Voor energie, laadtijd, parkeertijd en starttarief geldt telkens het eerste element"
    " hieronder waarvan de voorwaarden kloppen; geldt er geen, dan is dat deel gratis.",
    min_price="Minimumprijs per laadsessie: {}",
    max_price="Maximumprijs per laadsessie: {}",
    element="Element {}:",
    per_kwh="{} per kWh",
    per_hour_charging="{} per uur laden",
    per_hour_parking="{} per uur parkeren (aangesloten, niet ladend)",
    per_hour_reserved="{} per uur gereserveerd",
    flat="{} eenmaal per laadsessie",
    flat_reservation="{} eenmaal per reservering",
    vat="plus {} % btw ({} incl. btw)",
    no_vat="geen btw",
    step_wh="de energie van de sessie wordt naar boven afgerond op stappen van {} Wh",
    step_time="de tijd van de sessie wordt naar boven afgerond op stappen van {}",
    no_step="zonder afronding",
    ignored="een tweede prijs voor {} in dit element, nooit gebruikt",
    always="geldt altijd",
    applies="geldt {}",
    window="van {} tot {}",
    from_time="van {} tot middernacht",
    until_time="van middernacht tot {}",
    days="op {}",
    day_range="{} t/m {}",
    from_date="vanaf {}",
    until_date="vóór {}",
    min_kwh="zodra {} kWh geladen is",
    max_kwh="tot {} kWh geladen is",
    min_power="zolang met {} kW of meer geladen wordt",
    max_power="zolang met minder dan {} kW geladen wordt",
    min_current="zolang de stroom {} A of meer is",
    max_current="zolang de stroom onder {} A is",
    min_duration="vanaf {} na het begin van de sessie",
    max_duration="in de eerste {} van de sessie",
    reservation="alleen voor gereserveerde tijd vóór het laden",
    reservation_expires="alleen voor een ongebruikt verlopen reservering",
    with_vat="{} incl. btw",
    hours="{} u",
    minutes="{} min",
    seconds="{} s",
    dimension_names={
        TariffDimension.ENERGY: "energie",
        TariffDimension.FLAT: "starttarief",
        TariffDimension.PARKING_TIME: "parkeertijd",
        TariffDimension.TIME: "laadtijd",
    },
)

LANGUAGES: Mapping[str, Phrases] = {"en": ENGLISH, "de": GERMAN, "nl": DUTCH}


def explain_tariff(tariff: Tariff, language: str, time_zone: ZoneInfo) -> tuple[str, ...]:
    """The tariff in plain words, one line per statement; KeyError for an unknown language
    (callers offer `LANGUAGES`)."""
    words = LANGUAGES[language]
    lines = [words.title.format(tariff.id, tariff.currency, time_zone.key)]
    if tariff.type is not None:
        lines.append(words.type.format(tariff.type.value))
    if tariff.start_date_time is not None:
        lines.append(words.valid_from.format(_instant(tariff.start_date_time, time_zone)))
    if tariff.end_date_time is not None:
        lines.append(words.valid_until.format(_instant(tariff.end_date_time, time_zone)))
    for alt in tariff.tariff_alt_text:
        lines.append(f'"{alt.text}" ({alt.language})')
    lines.append(words.order)
    for i, element in enumerate(tariff.elements, start=1):
        lines.append(words.element.format(i))
        lines.extend(f"  - {line}" for line in _element(element, tariff.currency, words))
    if tariff.min_price is not None:
        lines.append(words.min_price.format(_price(tariff.min_price, tariff.currency, words)))
    if tariff.max_price is not None:
        lines.append(words.max_price.format(_price(tariff.max_price, tariff.currency, words)))
    return tuple(lines)


def _element(element: TariffElement, currency: str, words: Phrases) -> list[str]:
    restrictions = element.restrictions or TariffRestrictions()
    reserved = restrictions.reservation is not None
    lines = []
    seen: set[TariffDimension] = set()
    for component in element.price_components:
        if component.dimension in seen:
            lines.append(words.ignored.format(words.dimension_names[component.dimension]))
            continue
        seen.add(component.dimension)
        lines.append(_component(component, currency, reserved, words))
    conditions = _conditions(restrictions, words)
    # "; " between conditions: a list of weekdays already uses commas.
    lines.append(words.applies.format("; ".join(conditions)) if conditions else words.always)
    return lines


def _component(component: PriceComponent, currency: str, reserved: bool, words: Phrases) -> str:
    amount = f"{_number(component.price, words)} {currency}"
    charge = {
        TariffDimension.ENERGY: words.per_kwh,
        TariffDimension.TIME: words.per_hour_reserved if reserved else words.per_hour_charging,
        TariffDimension.PARKING_TIME: words.per_hour_parking,
        TariffDimension.FLAT: words.flat_reservation if reserved else words.flat,
    }[component.dimension].format(amount)
    if component.vat_percent is None:
        vat = words.no_vat
    else:
        incl = PRICING_CONTEXT.multiply(component.price, component.vat_factor)
        vat = words.vat.format(
            _number(component.vat_percent, words), f"{_number(incl, words)} {currency}"
        )
    parts = [charge, vat]
    if component.dimension is not TariffDimension.FLAT:
        parts.append(_step(component, words))
    return ", ".join(parts)


def _step(component: PriceComponent, words: Phrases) -> str:
    if component.step_size <= 0:
        return words.no_step
    if component.dimension is TariffDimension.ENERGY:
        return words.step_wh.format(component.step_size)
    return words.step_time.format(_duration(component.step_size, words))


def _conditions(r: TariffRestrictions, words: Phrases) -> list[str]:
    out: list[str] = []
    if r.reservation is ReservationRestriction.RESERVATION:
        out.append(words.reservation)
    elif r.reservation is ReservationRestriction.RESERVATION_EXPIRES:
        out.append(words.reservation_expires)
    if r.day_of_week is not None:
        out.append(words.days.format(_days(sorted(d.weekday for d in r.day_of_week), words)))
    window = _window(r.start_time, r.end_time, words)
    if window:
        out.append(window)
    if r.start_date is not None:
        out.append(words.from_date.format(r.start_date.isoformat()))
    if r.end_date is not None:
        out.append(words.until_date.format(r.end_date.isoformat()))
    bounds: tuple[tuple[str, Decimal | None], ...] = (
        (words.min_kwh, r.min_kwh),
        (words.max_kwh, r.max_kwh),
        (words.min_power, r.min_power_kw),
        (words.max_power, r.max_power_kw),
        (words.min_current, r.min_current_a),
        (words.max_current, r.max_current_a),
    )
    lower = {words.min_kwh, words.min_power, words.min_current}
    for phrase, value in bounds:
        # A lower bound of 0 restricts nothing, so it is not worth a word.
        if value is not None and not (value == 0 and phrase in lower):
            out.append(phrase.format(_number(value, words)))
    if r.min_duration_s:
        out.append(words.min_duration.format(_duration(r.min_duration_s, words)))
    if r.max_duration_s is not None:
        out.append(words.max_duration.format(_duration(r.max_duration_s, words)))
    return out


def _days(weekdays: list[int], words: Phrases) -> str:
    """Runs of three or more days as a range ("Monday to Friday"), the rest listed."""
    runs: list[list[int]] = []
    for day in weekdays:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    names = []
    for run in runs:
        if len(run) >= 3:
            names.append(words.day_range.format(words.weekdays[run[0]], words.weekdays[run[-1]]))
        else:
            names.extend(words.weekdays[d] for d in run)
    return ", ".join(names)


def _window(start: time | None, end: time | None, words: Phrases) -> str | None:
    if start is None and end is None:
        return None
    if end is None:
        assert start is not None
        return words.from_time.format(_clock(start))
    if start is None:
        return words.until_time.format(_clock(end))
    return words.window.format(_clock(start), _clock(end))


def _clock(value: time) -> str:
    return value.strftime("%H:%M")


def _duration(seconds: int, words: Phrases) -> str:
    """Whole hours, minutes or seconds as given: 900 -> 15 min, 5400 -> 90 min, 3600 -> 1 h."""
    if seconds % SECONDS_PER_HOUR == 0:
        return words.hours.format(seconds // SECONDS_PER_HOUR)
    if seconds % SECONDS_PER_MINUTE == 0:
        return words.minutes.format(seconds // SECONDS_PER_MINUTE)
    return words.seconds.format(seconds)


def _price(price: Price, currency: str, words: Phrases) -> str:
    text = f"{_number(price.excl_vat, words)} {currency}"
    if price.incl_vat is None:
        return text
    return f"{text} / " + words.with_vat.format(f"{_number(price.incl_vat, words)} {currency}")


def _number(value: Decimal, words: Phrases) -> str:
    return decimal_text(value).replace(".", words.decimal_mark)


def _instant(instant: datetime, time_zone: ZoneInfo) -> str:
    return instant.astimezone(time_zone).strftime("%Y-%m-%d %H:%M %Z")

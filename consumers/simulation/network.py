"""The simulated operators: tariffs, locations, charge points, drivers, and their config events.

Everything here is a function of a `random.Random` the caller seeded, so one seed always
builds the same network. The shapes follow a small European CPO:
- OCPI 2.2.1 tariffs (prices excl. VAT, the country's VAT rate on every component):
  a standard AC tariff with a cheaper night element (22:00-06:00 local), an AC tariff with a
  flat start fee, an AC tariff with a parking-time fee in the daytime, a DC tariff with a
  charging-time fee after 45 minutes (and its own pre-authorization hold), and an ad hoc
  tariff (type AD_HOC_PAYMENT) for sessions paid at the charger's terminal;
- locations in the operator's time zone: one open-access supermarket, AC sites in the city,
  a residential street, a hotel and an office park, and two DC hubs; the city site and the
  DC hubs have a contactless payment terminal at every charge point;
- drivers for every per-session model: wallets funded by bank transfer or card, with and
  without auto-top-up (and one with a small balance that runs out), pre-authorization
  (and one card whose holds are declined), post-paid cards (good, one always declined, one
  "flaky" that fails its first attempts and then pays).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from consumers.simulation.parties import seller_fields
from ledger.domain.session_cdr import ALPHA3_OF_ALPHA2
from ledger.messages import (
    Configuration,
    DriverConfigured,
    LocationConfigured,
    TariffPublished,
    TenantConfigured,
)

CURRENCY = "EUR"
PARTY_ID = "EVL"
CONFIG_PRODUCER = "backoffice"
# The tenant's default pre-authorization hold, and the DC tariff's own (a longer session
# there costs more, but the hold is kept low enough that big DC sessions reach it).
PREAUTH_HOLD_EUR = Decimal("50.00")
DC_PREAUTH_HOLD_EUR = Decimal("45.00")
RETRY_SCHEDULE_HOURS: tuple[int, ...] = (1, 6, 24, 72, 168)
# What a terminal authorizes before a session: a typical AC and DC pre-authorization.
TERMINAL_HOLD_AC_EUR = Decimal("20.00")
TERMINAL_HOLD_DC_EUR = Decimal("60.00")
# The CSMS shows drivers their running cost: an update per 0.50 EUR, or every 5 minutes.
COST_UPDATE_STEP_EUR = Decimal("0.50")
COST_UPDATE_INTERVAL_S = 300
# Auto-top-up: below this balance, top up by that amount.
AUTO_TOP_UP_THRESHOLD_EUR = Decimal("10.00")
AUTO_TOP_UP_AMOUNT_EUR = Decimal("25.00")
# A network large enough for `sessions` in a day: charge points per location grow with it.
SESSIONS_PER_CHARGE_POINT_PER_DAY = 6
CHARGE_POINTS_PER_LOCATION_MIN = 2
CHARGE_POINTS_PER_LOCATION_MAX = 200
# Registered drivers per session of the day (a driver charges once or twice a day at most).
DRIVERS_PER_SESSION = Decimal("0.6")
DRIVERS_MIN = 12

PowerKind = Literal["AC", "DC"]


@dataclass(frozen=True, slots=True)
class Country:
    code: str  # ISO 3166 alpha-2, as OCPI's country_code
    tenant_slug: str
    time_zone: str
    vat_percent: Decimal
    city: str


# Operators are drawn in this order; the first is the one-tenant default.
COUNTRIES: tuple[Country, ...] = (
    Country("DE", "de", "Europe/Berlin", Decimal("19"), "berlin"),
    Country("NL", "nl", "Europe/Amsterdam", Decimal("21"), "amsterdam"),
    Country("BE", "be", "Europe/Brussels", Decimal("21"), "brussels"),
    Country("AT", "at", "Europe/Vienna", Decimal("20"), "vienna"),
    Country("ES", "es", "Europe/Madrid", Decimal("21"), "madrid"),
    Country("PT", "pt", "Europe/Lisbon", Decimal("23"), "lisbon"),
    Country("IE", "ie", "Europe/Dublin", Decimal("23"), "dublin"),
    Country("FI", "fi", "Europe/Helsinki", Decimal("25.5"), "helsinki"),
)
TENANTS_MAX = 64


@dataclass(frozen=True, slots=True)
class TariffSpec:
    tariff_id: str
    description: str
    ocpi: dict[str, Any]
    preauth_hold_amount: Decimal | None = None

    def ocpi_json(self) -> str:
        return ocpi_json(self.ocpi)


@dataclass(frozen=True, slots=True)
class ChargePoint:
    charge_point_id: str
    evse_count: int
    power: PowerKind
    max_power_kw: Decimal
    meter_interval_s: int  # OCPP TxUpdatedInterval
    terminal_id: str | None


@dataclass(frozen=True, slots=True)
class LocationSpec:
    location_id: str
    kind: str  # supermarket, city, residential, hotel, office, motorway, retail
    time_zone: str
    tariff_id: str
    open_access: bool
    charge_points: tuple[ChargePoint, ...]

    @property
    def power(self) -> PowerKind:
        return self.charge_points[0].power

    @property
    def has_terminal(self) -> bool:
        return any(cp.terminal_id for cp in self.charge_points)


DriverProfile = Literal[
    "wallet_bank", "wallet_card", "wallet_auto", "wallet_low",
    "pre_authorization", "pre_authorization_declined",
    "post_paid", "post_paid_declined", "post_paid_flaky",
]
# Profiles every operator has at least one driver of, so every path runs every day.
SPECIAL_PROFILES: tuple[DriverProfile, ...] = (
    "wallet_low", "pre_authorization_declined", "post_paid_declined", "post_paid_flaky",
)
# The rest of the drivers, by weight (percent).
ORDINARY_PROFILES: tuple[tuple[DriverProfile, int], ...] = (
    ("wallet_bank", 12), ("wallet_card", 8), ("wallet_auto", 15),
    ("pre_authorization", 25), ("post_paid", 40),
)
BILLING_MODEL_OF: dict[DriverProfile, Literal["wallet", "pre_authorization", "post_paid"]] = {
    "wallet_bank": "wallet", "wallet_card": "wallet", "wallet_auto": "wallet",
    "wallet_low": "wallet", "pre_authorization": "pre_authorization",
    "pre_authorization_declined": "pre_authorization", "post_paid": "post_paid",
    "post_paid_declined": "post_paid", "post_paid_flaky": "post_paid",
}


@dataclass(frozen=True, slots=True)
class DriverSpec:
    driver_id: str
    profile: DriverProfile
    id_token: str
    id_token_type: Literal["ISO14443", "eMAID"]
    payment_method_token: str | None
    # The first top-up of the day for wallets: (method, amount).
    initial_top_up: tuple[Literal["card", "bank_transfer"], Decimal] | None
    car_ac_kw: Decimal  # the car's on-board charger
    car_dc_kw: Decimal  # the car's DC peak

    @property
    def billing_model(self) -> Literal["wallet", "pre_authorization", "post_paid"]:
        return BILLING_MODEL_OF[self.profile]

    @property
    def auto_top_up(self) -> bool:
        return self.profile == "wallet_auto"


@dataclass(frozen=True, slots=True)
class TenantSpec:
    tenant_id: str
    country: Country
    tariffs: tuple[TariffSpec, ...]
    locations: tuple[LocationSpec, ...]
    drivers: tuple[DriverSpec, ...]

    @property
    def time_zone(self) -> str:
        return self.country.time_zone

    def location(self, location_id: str) -> LocationSpec:
        return next(loc for loc in self.locations if loc.location_id == location_id)

    def drivers_with(self, profile: DriverProfile) -> list[DriverSpec]:
        return [d for d in self.drivers if d.profile == profile]


# ---------------------------------------------------------------- building
def build_tenant(index: int, sessions: int, rng: random.Random) -> TenantSpec:
    """The `index`-th operator, sized for `sessions` sessions a day."""
    if not 0 <= index < TENANTS_MAX:
        raise ValueError(f"tenant index must be 0..{TENANTS_MAX - 1}")
    country = COUNTRIES[index % len(COUNTRIES)]
    round_ = index // len(COUNTRIES)
    tenant_id = f"cpo-{country.tenant_slug}" + (f"-{round_ + 1}" if round_ else "")
    prefix = country.code + (str(round_ + 1) if round_ else "")
    tariffs = _tariffs(country, prefix)
    locations = _locations(country, prefix, sessions, rng)
    drivers = _drivers(country, prefix, sessions, rng)
    return TenantSpec(tenant_id, country, tariffs, locations, drivers)


def _tariffs(country: Country, prefix: str) -> tuple[TariffSpec, ...]:
    vat = country.vat_percent

    def tariff(tariff_id: str, text: str, elements: list[dict[str, Any]],
               type_: str = "REGULAR") -> dict[str, Any]:
        return {
            "country_code": country.code, "party_id": PARTY_ID, "id": tariff_id,
            "currency": CURRENCY, "type": type_,
            "tariff_alt_text": [{"language": "en", "text": text}],
            "elements": elements, "last_updated": "2026-02-01T00:00:00Z",
        }

    def energy(price: str) -> dict[str, Any]:
        return {"type": "ENERGY", "price": Decimal(price), "vat": vat, "step_size": 1}

    specs: list[tuple[str, str, list[dict[str, Any]], str, Decimal | None]] = [
        (f"{prefix}-AC-STANDARD", "AC 0.35 EUR/kWh, 0.29 EUR/kWh from 22:00 to 06:00", [
            {"price_components": [energy("0.29")],
             "restrictions": {"start_time": "22:00", "end_time": "06:00"}},
            {"price_components": [energy("0.35")]},
        ], "REGULAR", None),
        (f"{prefix}-AC-START", "AC 1.00 EUR per session plus 0.32 EUR/kWh", [
            {"price_components": [
                {"type": "FLAT", "price": Decimal("1.00"), "vat": vat, "step_size": 1},
                energy("0.32"),
            ]},
        ], "REGULAR", None),
        (f"{prefix}-AC-PARKING", "AC 0.35 EUR/kWh; parking 4.80 EUR/h from 07:00 to 22:00", [
            {"price_components": [energy("0.35")]},
            {"price_components": [
                {"type": "PARKING_TIME", "price": Decimal("4.80"), "vat": vat, "step_size": 300},
            ], "restrictions": {"start_time": "07:00", "end_time": "22:00"}},
        ], "REGULAR", None),
        (f"{prefix}-DC-FAST", "DC 0.59 EUR/kWh; 6.00 EUR/h charging after 45 minutes", [
            {"price_components": [energy("0.59")]},
            {"price_components": [
                {"type": "TIME", "price": Decimal("6.00"), "vat": vat, "step_size": 60},
            ], "restrictions": {"min_duration": 2700}},
        ], "REGULAR", DC_PREAUTH_HOLD_EUR),
        (f"{prefix}-AD-HOC", "Card at the charger: 0.50 EUR per session plus 0.55 EUR/kWh", [
            {"price_components": [
                {"type": "FLAT", "price": Decimal("0.50"), "vat": vat, "step_size": 1},
                energy("0.55"),
            ]},
        ], "AD_HOC_PAYMENT", None),
    ]
    return tuple(
        TariffSpec(tariff_id, text, tariff(tariff_id, text, elements, type_), hold)
        for tariff_id, text, elements, type_, hold in specs
    )


# (kind, tariff suffix, power, max kW per charge point, open access, terminal, share of
# the day's sessions it hosts in percent)
_LOCATION_KINDS: tuple[tuple[str, str, PowerKind, str, bool, bool, int], ...] = (
    ("supermarket", "AC-STANDARD", "AC", "11", True, False, 10),
    ("city", "AC-STANDARD", "AC", "22", False, True, 20),
    ("residential", "AC-STANDARD", "AC", "11", False, False, 15),
    ("hotel", "AC-PARKING", "AC", "11", False, False, 10),
    ("office", "AC-START", "AC", "22", False, False, 15),
    ("motorway", "DC-FAST", "DC", "150", False, True, 20),
    ("retail", "DC-FAST", "DC", "50", False, True, 10),
)
AD_HOC_TARIFF_SUFFIX = "AD-HOC"


def _locations(
    country: Country, prefix: str, sessions: int, rng: random.Random
) -> tuple[LocationSpec, ...]:
    locations = []
    for number, (kind, tariff, power, max_kw, open_access, terminal, share) in enumerate(
        _LOCATION_KINDS, start=1
    ):
        location_id = f"{prefix}-{country.city.upper()}-{number:02d}-{kind.upper()}"
        wanted = sessions * share // 100 // SESSIONS_PER_CHARGE_POINT_PER_DAY + 1
        count = max(CHARGE_POINTS_PER_LOCATION_MIN, min(CHARGE_POINTS_PER_LOCATION_MAX, wanted))
        charge_points = tuple(
            ChargePoint(
                charge_point_id=f"{location_id}-CP{n:03d}",
                evse_count=2,
                power=power,
                max_power_kw=Decimal(max_kw),
                meter_interval_s=rng.choice((300, 600, 900)),
                terminal_id=f"TRM-{prefix}-{number:02d}-{n:03d}" if terminal else None,
            )
            for n in range(1, count + 1)
        )
        locations.append(LocationSpec(
            location_id=location_id, kind=kind, time_zone=country.time_zone,
            tariff_id=f"{prefix}-{tariff}", open_access=open_access,
            charge_points=charge_points,
        ))
    return tuple(locations)


def _drivers(
    country: Country, prefix: str, sessions: int, rng: random.Random
) -> tuple[DriverSpec, ...]:
    count = max(DRIVERS_MIN, int(sessions * DRIVERS_PER_SESSION))
    profiles: list[DriverProfile] = list(SPECIAL_PROFILES)
    names = [p for p, _ in ORDINARY_PROFILES]
    weights = [w for _, w in ORDINARY_PROFILES]
    # One of each ordinary profile first, then by weight.
    profiles.extend(names)
    while len(profiles) < count:
        profiles.append(rng.choices(names, weights)[0])
    drivers = []
    for number, profile in enumerate(profiles, start=1):
        driver_id = f"drv-{prefix.lower()}-{number:04d}"
        drivers.append(_driver(driver_id, profile, country, number, rng))
    return tuple(drivers)


def _driver(
    driver_id: str, profile: DriverProfile, country: Country, number: int, rng: random.Random
) -> DriverSpec:
    if rng.random() < 0.7:
        token = f"{rng.getrandbits(56):014X}"  # a 7-byte ISO 14443 UID
        token_type: Literal["ISO14443", "eMAID"] = "ISO14443"
    else:
        token = f"{country.code}{PARTY_ID}C{number:08d}{rng.randrange(10)}"
        token_type = "eMAID"
    card = f"pm_card_{driver_id}"
    top_up: tuple[Literal["card", "bank_transfer"], Decimal] | None = None
    if profile in ("pre_authorization_declined", "post_paid_declined"):
        card = f"pm_card_decline_{driver_id}"
    elif profile == "post_paid_flaky":
        card = f"pm_card_flaky_{driver_id}"
    elif profile == "wallet_bank":
        top_up = ("bank_transfer", _eur(rng.randrange(30, 101, 10)))
    elif profile == "wallet_card":
        top_up = ("card", _eur(rng.randrange(20, 61, 10)))
    elif profile == "wallet_auto":
        top_up = ("card", _eur(20))
    elif profile == "wallet_low":
        top_up = ("bank_transfer", _eur(8))
    return DriverSpec(
        driver_id=driver_id, profile=profile, id_token=token, id_token_type=token_type,
        payment_method_token=card, initial_top_up=top_up,
        car_ac_kw=Decimal(rng.choice(("7.4", "11", "11", "22"))),
        car_dc_kw=Decimal(rng.choice(("50", "75", "100", "150", "150"))),
    )


def _eur(whole_euros: int) -> Decimal:
    return Decimal(whole_euros).quantize(Decimal("0.01"))


# ---------------------------------------------------------------- configuration events
def configuration_events(
    tenant: TenantSpec, at: datetime, event_id: EventIds,
    owners: dict[str, str] | None = None,
) -> list[Configuration]:
    """The operator's configuration, effective (and published) at `at`, tenant first.

    `owners`: location id -> the partner who owns the site (corporate own-sites cover)."""
    owners = owners or {}
    tenant_id = tenant.tenant_id
    common: dict[str, Any] = {"tenant_id": tenant_id, "occurred_at": at, "effective_at": at,
                              "producer": CONFIG_PRODUCER}
    events: list[Configuration] = [TenantConfigured(
        event_id=event_id("tenant"), **common, currency=CURRENCY,
        preauth_hold_amount=PREAUTH_HOLD_EUR, preauth_stop_threshold_percent=Decimal(95),
        retry_schedule_hours=list(RETRY_SCHEDULE_HOURS), block_sessions_on_overdue_debt=True,
        time_zone=tenant.time_zone, cost_update_step=COST_UPDATE_STEP_EUR,
        cost_update_interval_s=COST_UPDATE_INTERVAL_S,
        **seller_fields(tenant_id, tenant.country),
    )]
    for tariff in tenant.tariffs:
        events.append(TariffPublished(
            event_id=event_id("tariff"), **common, tariff_id=tariff.tariff_id,
            ocpi_tariff_json=tariff.ocpi_json(), preauth_hold_amount=tariff.preauth_hold_amount,
        ))
    for location in tenant.locations:
        events.append(LocationConfigured(
            event_id=event_id("location"), **common, location_id=location.location_id,
            time_zone=location.time_zone, tariff_id=location.tariff_id,
            open_access=location.open_access,
            owner_partner_id=owners.get(location.location_id),
            # OCPI's Location.country is alpha-3; every simulated location is in its CPO's country.
            country_code=ALPHA3_OF_ALPHA2[tenant.country.code],
        ))
    for driver in tenant.drivers:
        events.append(DriverConfigured(
            event_id=event_id("driver"), **common, driver_id=driver.driver_id,
            id_tokens=[driver.id_token], billing_model=driver.billing_model,
            payment_method_token=driver.payment_method_token,
            auto_top_up_threshold=AUTO_TOP_UP_THRESHOLD_EUR if driver.auto_top_up else None,
            auto_top_up_amount=AUTO_TOP_UP_AMOUNT_EUR if driver.auto_top_up else None,
        ))
    return events


class EventIds:
    """Readable, unique, deterministic event ids: `<tenant>-<kind>-<n>`."""

    def __init__(self, tenant_id: str) -> None:
        self._tenant_id = tenant_id
        self._next = 0

    def __call__(self, kind: str) -> str:
        self._next += 1
        return f"{self._tenant_id}-{kind}-{self._next:06d}"


# ---------------------------------------------------------------- OCPI JSON
def ocpi_json(value: Any) -> str:
    """Compact JSON where Decimals are written as JSON numbers from their exact text.

    OCPI prices are JSON numbers; going through float would be exact for these prices but
    money never passes through a float here.
    """
    return _render(value)


def _render(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a JSON number must be finite")
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(
            f"{json.dumps(str(k))}:{_render(v)}" for k, v in value.items()
        ) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_render(v) for v in value) + "]"
    if isinstance(value, bool | int | str) or value is None:
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} as OCPI JSON")


def location_ids(tenant: TenantSpec, kinds: Sequence[str]) -> list[str]:
    return [loc.location_id for loc in tenant.locations if loc.kind in kinds]

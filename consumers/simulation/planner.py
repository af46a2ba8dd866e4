"""Who charges where and when: the day's session plans and wallet top-ups of one operator.

Pure: a function of the operator's network, the day and a seeded `random.Random`. Sessions
start through the day with morning and evening peaks (local time), never two at once on one
EVSE or for one driver. Every operator's day holds, whenever there are enough sessions:
a session for each special driver (a wallet that runs dry, a declined pre-authorization, a
declined and a flaky post-paid card), open access, ad hoc terminal sessions on AC and DC,
one session of each ordinary driver profile, a roaming token nobody knows, and, a week
later, the declined post-paid driver trying again while in overdue debt.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from consumers.simulation.charge_point import EndReason, SessionKind, SessionPlan
from consumers.simulation.network import (
    AD_HOC_TARIFF_SUFFIX,
    TERMINAL_HOLD_AC_EUR,
    TERMINAL_HOLD_DC_EUR,
    ChargePoint,
    DriverProfile,
    DriverSpec,
    LocationSpec,
    TenantSpec,
)

# Sessions start at or after this local time: wallet top-ups are booked before it.
FIRST_SESSION_LOCAL = time(0, 30)
# Relative likelihood of a session starting in each local hour (0..23): a commuter day.
START_HOUR_WEIGHTS: tuple[int, ...] = (
    2, 1, 1, 1, 1, 2, 4, 8, 10, 8, 6, 6, 7, 7, 6, 6, 8, 10, 11, 10, 8, 6, 4, 3,
)
# What a session is, by weight (percent), once the must-have sessions are planned.
KIND_WEIGHTS: tuple[tuple[SessionKind, int], ...] = (
    ("driver", 72), ("open_access", 10), ("ad_hoc_terminal", 16), ("unknown_token", 2),
)
# Where a driver charges, by weight (percent): location kinds of network.py.
DRIVER_LOCATION_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("city", 20), ("residential", 20), ("hotel", 12), ("office", 20),
    ("motorway", 18), ("retail", 10),
)
# Tries to find a free EVSE (and a free driver) for one session before giving it up.
PLACEMENT_TRIES_MAX = 40
# The blocked attempt: this long after the day starts (the retries have run out by then).
BLOCKED_ATTEMPT_AFTER = timedelta(days=8, hours=10)
# The wallet that ran dry is repaid by bank transfer the next morning.
REPAYMENT_AFTER = timedelta(days=1, hours=9)
REPAYMENT_EUR = Decimal("20.00")
TERMINAL_AUTHORIZED_BEFORE_START = timedelta(seconds=20)

assert len(START_HOUR_WEIGHTS) == 24


@dataclass(frozen=True, slots=True)
class Intent:
    kind: SessionKind
    driver: DriverSpec | None
    location_kinds: tuple[str, ...]
    at: datetime | None = None  # fixed start (the blocked attempt); else drawn
    energy_min_kwh: int | None = None
    # When set, any of these drivers will do (the one named is busy: try another).
    driver_choices: tuple[DriverSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class TopUp:
    driver_id: str
    method: Literal["card", "bank_transfer"]
    amount: Decimal
    at: datetime
    reference: str


@dataclass(frozen=True, slots=True)
class TerminalAuthorization:
    terminal_reference: str
    terminal_id: str
    location_id: str
    amount: Decimal
    at: datetime
    psp_reference: str


@dataclass(frozen=True, slots=True)
class DayPlan:
    sessions: tuple[SessionPlan, ...]
    top_ups: tuple[TopUp, ...]
    terminal_authorizations: tuple[TerminalAuthorization, ...]


def day_start_utc(day: date, time_zone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(time_zone)).astimezone(UTC)


def plan_day(tenant: TenantSpec, sessions: int, day: date, rng: random.Random) -> DayPlan:
    planner = _Planner(tenant, day, rng)
    for intent in _intents(tenant, sessions, day_start_utc(day, tenant.time_zone), rng):
        planner.place(intent)
    plans = _with_registers(planner.plans, rng)
    return DayPlan(
        sessions=tuple(plans),
        top_ups=tuple(_top_ups(tenant, day, rng)),
        terminal_authorizations=tuple(planner.authorizations),
    )


# ---------------------------------------------------------------- what happens
def _intents(
    tenant: TenantSpec, count: int, day_start: datetime, rng: random.Random
) -> list[Intent]:
    paid_ac = ("city", "residential", "hotel", "office")
    anywhere = tuple(kind for kind, _ in DRIVER_LOCATION_WEIGHTS)

    def one(profile: DriverProfile) -> DriverSpec:
        return tenant.drivers_with(profile)[0]

    must: list[Intent] = [
        Intent("driver", one("wallet_low"), paid_ac, energy_min_kwh=25),
        Intent("driver", one("post_paid_flaky"), anywhere),
        Intent("driver", one("post_paid_declined"), paid_ac),
        Intent("driver", one("pre_authorization_declined"), anywhere),
        Intent("open_access", rng.choice(tenant.drivers), ("supermarket",)),
        Intent("ad_hoc_terminal", None, ("city",)),
        Intent("ad_hoc_terminal", None, ("motorway", "retail")),
        Intent("driver", one("wallet_auto"), paid_ac, energy_min_kwh=20),
        Intent("driver", one("wallet_bank"), anywhere),
        Intent("driver", one("wallet_card"), anywhere),
        Intent("driver", one("pre_authorization"), ("motorway",), energy_min_kwh=50),
        Intent("driver", one("post_paid"), anywhere),
        Intent("unknown_token", None, paid_ac),
        Intent("blocked_by_debt", one("post_paid_declined"), ("residential",),
               at=day_start + BLOCKED_ATTEMPT_AFTER),
    ]
    intents = must[:count]
    ordinary = [d for d in tenant.drivers if d.profile not in _SPECIAL]
    kinds = [k for k, _ in KIND_WEIGHTS]
    weights = [w for _, w in KIND_WEIGHTS]
    while len(intents) < count:
        kind = rng.choices(kinds, weights)[0]
        if kind == "driver":
            where = rng.choices(
                [k for k, _ in DRIVER_LOCATION_WEIGHTS], [w for _, w in DRIVER_LOCATION_WEIGHTS]
            )[0]
            intents.append(Intent("driver", rng.choice(ordinary), (where,),
                                  driver_choices=tuple(ordinary)))
        elif kind == "open_access":
            known = rng.random() < 0.7
            intents.append(Intent(
                "open_access", rng.choice(ordinary) if known else None, ("supermarket",),
                driver_choices=tuple(ordinary) if known else (),
            ))
        elif kind == "ad_hoc_terminal":
            intents.append(Intent("ad_hoc_terminal", None, ("city", "motorway", "retail")))
        else:
            intents.append(Intent("unknown_token", None, paid_ac))
    return intents


_SPECIAL: frozenset[str] = frozenset(
    {"wallet_low", "pre_authorization_declined", "post_paid_declined", "post_paid_flaky"}
)

class _Planner:
    def __init__(self, tenant: TenantSpec, day: date, rng: random.Random) -> None:
        self.tenant = tenant
        self.day = day
        self.rng = rng
        self.plans: list[SessionPlan] = []
        self.authorizations: list[TerminalAuthorization] = []
        self._busy: dict[str, list[tuple[datetime, datetime]]] = {}
        self._terminal_counts: dict[str, int] = {}

    def place(self, intent: Intent) -> None:
        for attempt in range(PLACEMENT_TRIES_MAX):
            if attempt and intent.driver_choices:
                intent = replace(intent, driver=self.rng.choice(intent.driver_choices))
            start = intent.at or self._start_time()
            location = self._location(intent)
            plan = self._plan(intent, location, start)
            if plan is None:
                continue
            driver_key = f"driver:{intent.driver.driver_id}" if intent.driver else None
            end = plan.planned_end_at()
            if driver_key and not self._free(driver_key, start, end):
                continue
            evse_key = self._free_evse(location, plan, start, end)
            if evse_key is None:
                continue
            charge_point_id, evse_id = evse_key
            cp = next(c for c in location.charge_points if c.charge_point_id == charge_point_id)
            plan = replace(plan, charge_point_id=charge_point_id, evse_id=evse_id,
                           meter_interval_s=cp.meter_interval_s)
            if intent.kind == "ad_hoc_terminal":
                plan = self._with_terminal(plan, cp, location)
            self._book(f"evse:{charge_point_id}:{evse_id}", start, end)
            if driver_key:
                self._book(driver_key, start, end)
            self.plans.append(plan)
            return

    # -------------------------------------------------------------- choices
    def _start_time(self) -> datetime:
        rng = self.rng
        hour = rng.choices(range(24), START_HOUR_WEIGHTS)[0]
        first_minute = FIRST_SESSION_LOCAL.minute if hour == FIRST_SESSION_LOCAL.hour else 0
        local = datetime.combine(
            self.day, time(hour, rng.randrange(first_minute, 60), rng.randrange(60)),
            ZoneInfo(self.tenant.time_zone),
        )
        return local.astimezone(UTC)

    def _location(self, intent: Intent) -> LocationSpec:
        candidates = [loc for loc in self.tenant.locations if loc.kind in intent.location_kinds]
        assert candidates, f"no location of kinds {intent.location_kinds}"
        return self.rng.choice(candidates)

    def _plan(self, intent: Intent, location: LocationSpec, start: datetime) -> SessionPlan | None:
        rng = self.rng
        driver = intent.driver
        dc = location.power == "DC"
        cp_kw = location.charge_points[0].max_power_kw
        if dc:
            car_kw = driver.car_dc_kw if driver else Decimal(rng.choice((50, 75, 100, 150)))
            power = min(cp_kw, car_kw) * _uniform(rng, "0.75", "0.90")
            energy_kwh = _uniform(rng, "15", "70")
        else:
            car_kw = driver.car_ac_kw if driver else Decimal(rng.choice(("7.4", "11", "22")))
            power = min(cp_kw, car_kw) * _uniform(rng, "0.92", "0.98")
            energy_kwh = _uniform(rng, "10", "45") if location.kind == "hotel" else _uniform(
                rng, "4", "35")
        if intent.energy_min_kwh is not None:
            energy_kwh = max(energy_kwh, Decimal(intent.energy_min_kwh) + _uniform(rng, "0", "10"))
        parking_s = self._parking_s(location, dc)
        token, token_type = self._token(intent)
        return SessionPlan(
            tenant_id=self.tenant.tenant_id,
            kind=intent.kind,
            transaction_id=_transaction_id(rng),
            location_id=location.location_id,
            charge_point_id="",  # chosen with the EVSE
            evse_id=0,
            meter_interval_s=0,
            start_at=start,
            power_kw=power.quantize(Decimal("0.01"), ROUND_HALF_UP),
            dc=dc,
            energy_wanted_wh=int(energy_kwh * 1000),
            parking_s=parking_s,
            end_reason=self._end_reason(),
            register_begin_wh=0,  # set once every session of the EVSE is known
            power_wobble=tuple(_uniform(rng, "0.97", "1.03") for _ in range(8)),
            driver_id=driver.driver_id if driver else None,
            id_token=token,
            id_token_type=token_type,
        )

    def _parking_s(self, location: LocationSpec, dc: bool) -> int:
        rng = self.rng
        if dc:
            chance, low, high = 0.05, 5, 20
        elif location.kind == "hotel":
            chance, low, high = 0.6, 60, 600
        elif location.kind == "supermarket":
            chance, low, high = 0.2, 10, 45
        else:
            chance, low, high = 0.3, 10, 150
        if rng.random() >= chance:
            return 0
        return rng.randrange(low, high + 1) * 60 + rng.randrange(60)

    def _end_reason(self) -> EndReason:
        return "Local" if self.rng.random() < 0.4 else "EVDisconnected"

    def _token(
        self, intent: Intent
    ) -> tuple[str | None, Literal["ISO14443", "eMAID", "Central"]]:
        if intent.driver is not None:
            return intent.driver.id_token, intent.driver.id_token_type
        if intent.kind == "ad_hoc_terminal":
            return None, "Central"  # set with the terminal reference
        return f"{self.rng.getrandbits(56):014X}", "ISO14443"  # a roaming card we do not know

    def _with_terminal(
        self, plan: SessionPlan, cp: ChargePoint, location: LocationSpec
    ) -> SessionPlan:
        assert cp.terminal_id is not None
        number = self._terminal_counts.get(cp.terminal_id, 0) + 1
        self._terminal_counts[cp.terminal_id] = number
        reference = f"{cp.terminal_id}-{number:04d}"
        amount = TERMINAL_HOLD_DC_EUR if plan.dc else TERMINAL_HOLD_AC_EUR
        self.authorizations.append(TerminalAuthorization(
            terminal_reference=reference, terminal_id=cp.terminal_id,
            location_id=location.location_id, amount=amount,
            at=plan.start_at - TERMINAL_AUTHORIZED_BEFORE_START,
            psp_reference=f"psp_term_{uuid.UUID(int=self.rng.getrandbits(128)).hex[:20]}",
        ))
        tariff_hint = None if plan.dc else f"{self._prefix()}-{AD_HOC_TARIFF_SUFFIX}"
        return replace(plan, terminal_reference=reference, id_token=reference,
                       id_token_type="Central", tariff_hint=tariff_hint)

    def _prefix(self) -> str:
        return self.tenant.tariffs[0].tariff_id.split("-AC-")[0]

    # -------------------------------------------------------------- calendars
    def _free_evse(
        self, location: LocationSpec, plan: SessionPlan, start: datetime, end: datetime
    ) -> tuple[str, int] | None:
        evses = [(cp.charge_point_id, n) for cp in location.charge_points
                 for n in range(1, cp.evse_count + 1)]
        self.rng.shuffle(evses)
        for charge_point_id, evse_id in evses:
            if self._free(f"evse:{charge_point_id}:{evse_id}", start, end):
                return charge_point_id, evse_id
        return None

    def _free(self, key: str, start: datetime, end: datetime) -> bool:
        return all(end <= s or start >= e for s, e in self._busy.get(key, ()))

    def _book(self, key: str, start: datetime, end: datetime) -> None:
        self._busy.setdefault(key, []).append((start, end))


def _with_registers(plans: Sequence[SessionPlan], rng: random.Random) -> list[SessionPlan]:
    """Each EVSE's register grows across its sessions, in time order, never reset."""
    registers: dict[tuple[str, int], int] = {}
    placed = []
    for plan in sorted(plans, key=lambda p: (p.start_at, p.transaction_id)):
        key = (plan.charge_point_id, plan.evse_id)
        if key not in registers:
            registers[key] = rng.randrange(1_000_000, 60_000_000)
        begin = registers[key]
        registers[key] = begin + plan.energy_wanted_wh + rng.randrange(0, 500)
        placed.append(replace(plan, register_begin_wh=begin))
    return placed


def _top_ups(tenant: TenantSpec, day: date, rng: random.Random) -> list[TopUp]:
    start = day_start_utc(day, tenant.time_zone) + timedelta(minutes=5)
    top_ups = []
    for number, driver in enumerate(d for d in tenant.drivers if d.initial_top_up):
        assert driver.initial_top_up is not None
        method, amount = driver.initial_top_up
        top_ups.append(TopUp(
            driver_id=driver.driver_id, method=method, amount=amount,
            at=start + timedelta(seconds=number * 41 + rng.randrange(30)),
            reference=f"{tenant.tenant_id}-TU-{number + 1:05d}",
        ))
    for driver in tenant.drivers_with("wallet_low"):
        top_ups.append(TopUp(
            driver_id=driver.driver_id, method="bank_transfer", amount=REPAYMENT_EUR,
            at=day_start_utc(day, tenant.time_zone) + REPAYMENT_AFTER,
            reference=f"{tenant.tenant_id}-TU-{len(top_ups) + 1:05d}",
        ))
    return top_ups


def _transaction_id(rng: random.Random) -> str:
    """20 hex digits, as a station's own counter-and-random scheme might make them.

    OCPP recommends a UUID (36 characters), but the ledger's auto-top-up reference
    (`top_up:auto_top_up:<driver>:<transaction>`) then exceeds the 64-character limit of
    PaymentCommand.reference and the handler raises (reported); 20 digits keep it inside.
    """
    return f"{rng.getrandbits(80):020x}"


def _uniform(rng: random.Random, low: str, high: str) -> Decimal:
    """A uniform decimal in [low, high] with three places, from integers (no float)."""
    scale = 1000
    low_i, high_i = int(Decimal(low) * scale), int(Decimal(high) * scale)
    return Decimal(rng.randint(low_i, high_i)) / scale

"""Corporate partners and subscription plans in the simulated day.

Pure: a function of the operator's network, its day plan, the voucher plan (whose holders
are left alone, so the voucher stories stay as they are) and a seeded `random.Random` of its
own, so the rest of the day is drawn exactly as without sponsors. Every operator gets:
- `ptn-<prefix>-fleet`, a fleet operator: monthly periods, a 10 % discount, paying its
  settlement by card, and a pool small enough that its three drivers use it up during the
  day (the session that crosses it is split, the rest falls to the driver's own model);
- `ptn-<prefix>-employer`, an employer: quarterly periods, a 5 % discount, only its own
  site (the location where its drivers charge first), a large pool and a per-driver limit
  small enough that its two drivers reach it;
- `<prefix>-prepaid-flat`, a pre-paid plan on anniversary cycles whose kWh allowance two
  subscribers use up during the day, and `<prefix>-postpaid-city`, a post-paid plan on
  calendar cycles (the first month prorated) covering one session a month, with 15 % off
  the sessions beyond it; two subscribers each;
- all of it configured with the rest of the configuration, a week before the day; the
  enrolled and subscribed drivers are ordinary drivers who charge during the day and hold
  a card (plan fees are charged to it);
- a month-end tick: event time jumps past the end of the day's month plus the partners'
  settlement grace, and past the anniversary cycle's end, so the partners' settlement
  invoices, the post-paid cycle's invoice and the next pre-paid fee are issued.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from consumers.simulation.network import (
    CONFIG_PRODUCER,
    SPECIAL_PROFILES,
    Country,
    EventIds,
    TenantSpec,
)
from consumers.simulation.parties import buyer_fields
from consumers.simulation.planner import DayPlan
from consumers.simulation.vouchers import VoucherPlan
from ledger.domain.billing_calendar import (
    partner_period_containing,
    subscription_cycle_containing,
)
from ledger.limits import PARTNER_SETTLEMENT_GRACE_HOURS
from ledger.messages import (
    ClockTicked,
    Configuration,
    EnrolmentChanged,
    PartnerConfigured,
    PlanPublished,
    SubscriptionChanged,
)

CENT = Decimal("0.01")
# What a kWh costs a fleet at most in these tariffs, roughly: used to size pools and
# allowances from the energy the drivers will charge, so they run out during the day.
PRICE_PER_KWH_ESTIMATE = Decimal("0.45")
FLEET_DRIVERS = 3
EMPLOYER_DRIVERS = 2
SUBSCRIBERS_PER_PLAN = 2
# The fleet's pool covers about half of what its drivers charge in the day.
FLEET_POOL_SHARE = Decimal("0.5")
EMPLOYER_POOL_EUR = Decimal("500.00")
EMPLOYER_DRIVER_LIMIT_EUR = Decimal("6.00")
PREPAID_FEE_NET_EUR = Decimal("9.90")
POSTPAID_FEE_NET_EUR = Decimal("4.90")
# The pre-paid allowance: about a third of what its subscribers charge in the day.
PREPAID_ALLOWANCE_SHARE = Decimal("0.3")
MONTH_END_TICK_AFTER = timedelta(hours=1)
# The hourly ticks of the day are the "clock"'s; this one jump is the billing calendar's.
MONTH_END_CLOCK_PRODUCER = "billing-clock"


@dataclass(frozen=True, slots=True)
class SponsorPlan:
    tenant_id: str
    fleet_id: str
    employer_id: str
    employer_site: str | None
    vat_percent: Decimal
    fleet_drivers: tuple[str, ...]
    employer_drivers: tuple[str, ...]
    fleet_pool: Decimal
    prepaid_plan_id: str
    postpaid_plan_id: str
    prepaid_allowance_kwh: Decimal
    prepaid_subscribers: tuple[str, ...]
    postpaid_subscribers: tuple[str, ...]
    month_end_tick_at: datetime


def plan_sponsors(
    tenant: TenantSpec, day_plan: DayPlan, vouchers: VoucherPlan, day: date,
    configured_at: datetime, rng: random.Random,
) -> SponsorPlan:
    energy_kwh: dict[str, Decimal] = defaultdict(Decimal)
    first_site: dict[str, str] = {}
    for session in day_plan.sessions:
        if session.driver_id is None or session.terminal_reference is not None:
            continue
        energy_kwh[session.driver_id] += Decimal(session.energy_wanted_wh) / 1000
        first_site.setdefault(session.driver_id, session.location_id)
    holders = {r.driver_id for r in vouchers.redemptions}
    candidates = sorted(
        d.driver_id for d in tenant.drivers
        if d.profile not in SPECIAL_PROFILES and d.payment_method_token
        and d.driver_id in energy_kwh and d.driver_id not in holders
    )
    rng.shuffle(candidates)
    picked = iter(candidates)

    def take(count: int) -> tuple[str, ...]:
        return tuple(driver for _, driver in zip(range(count), picked, strict=False))

    fleet, employer = take(FLEET_DRIVERS), take(EMPLOYER_DRIVERS)
    prepaid, postpaid = take(SUBSCRIBERS_PER_PLAN), take(SUBSCRIBERS_PER_PLAN)
    prefix = tenant.tenant_id.removeprefix("cpo-")
    fleet_energy = sum((energy_kwh[d] for d in fleet), Decimal(0))
    prepaid_energy = sum((energy_kwh[d] for d in prepaid), Decimal(0))
    month_end = partner_period_containing(
        datetime.combine(day, time(12), UTC), "monthly", tenant.time_zone).end
    anniversary_end = subscription_cycle_containing(
        configured_at, "anniversary", configured_at, 1, tenant.time_zone).end
    settle_at = max(month_end + timedelta(hours=PARTNER_SETTLEMENT_GRACE_HOURS),
                    anniversary_end)
    return SponsorPlan(
        tenant_id=tenant.tenant_id, fleet_id=f"ptn-{prefix}-fleet",
        employer_id=f"ptn-{prefix}-employer",
        employer_site=first_site[employer[0]] if employer else None,
        vat_percent=tenant.country.vat_percent,
        fleet_drivers=fleet, employer_drivers=employer,
        fleet_pool=max((fleet_energy * PRICE_PER_KWH_ESTIMATE * FLEET_POOL_SHARE).quantize(CENT),
                       Decimal("1.00")),
        prepaid_plan_id=f"{prefix}-prepaid-flat", postpaid_plan_id=f"{prefix}-postpaid-city",
        prepaid_allowance_kwh=max((prepaid_energy * PREPAID_ALLOWANCE_SHARE).quantize(CENT),
                                  Decimal("1")),
        prepaid_subscribers=prepaid, postpaid_subscribers=postpaid,
        month_end_tick_at=settle_at + MONTH_END_TICK_AFTER,
    )


def sponsor_events(
    plan: SponsorPlan, at: datetime, event_id: EventIds, country: Country
) -> list[Configuration]:
    """Partners (in the operator's `country`), plans, enrolments and subscriptions,
    effective (and published) at `at`."""
    common = {"tenant_id": plan.tenant_id, "occurred_at": at, "effective_at": at,
              "producer": CONFIG_PRODUCER}
    events: list[Configuration] = [
        PartnerConfigured(
            event_id=event_id("partner"), **common, partner_id=plan.fleet_id,
            billing_period="monthly", pool_limit=plan.fleet_pool,
            discount_percent=Decimal(10), payment_terms="card",
            payment_method_token=f"tok-{plan.fleet_id}",
            **buyer_fields(plan.fleet_id, country),
        ),
        PartnerConfigured(
            event_id=event_id("partner"), **common, partner_id=plan.employer_id,
            billing_period="quarterly", pool_limit=EMPLOYER_POOL_EUR,
            discount_percent=Decimal(5), own_sites_only=True,
            **buyer_fields(plan.employer_id, country),
        ),
        PlanPublished(
            event_id=event_id("plan"), **common, plan_id=plan.prepaid_plan_id,
            payment="prepaid", fee_net=PREPAID_FEE_NET_EUR,
            fee_vat_rate_percent=plan.vat_percent, anchor="anniversary",
            allowance_kwh=plan.prepaid_allowance_kwh,
        ),
        PlanPublished(
            event_id=event_id("plan"), **common, plan_id=plan.postpaid_plan_id,
            payment="postpaid", fee_net=POSTPAID_FEE_NET_EUR,
            fee_vat_rate_percent=plan.vat_percent, anchor="calendar", allowance_sessions=1,
            overage_discount_percent=Decimal(15),
        ),
    ]
    for driver in plan.fleet_drivers:
        events.append(EnrolmentChanged(event_id=event_id("enrolment"), **common,
                                       partner_id=plan.fleet_id, driver_id=driver,
                                       action="enrol"))
    for driver in plan.employer_drivers:
        events.append(EnrolmentChanged(event_id=event_id("enrolment"), **common,
                                       partner_id=plan.employer_id, driver_id=driver,
                                       action="enrol", driver_limit=EMPLOYER_DRIVER_LIMIT_EUR))
    for plan_id, drivers in ((plan.prepaid_plan_id, plan.prepaid_subscribers),
                             (plan.postpaid_plan_id, plan.postpaid_subscribers)):
        for driver in drivers:
            events.append(SubscriptionChanged(event_id=event_id("subscription"), **common,
                                              driver_id=driver, plan_id=plan_id,
                                              action="subscribe"))
    return events


def month_end_tick(plan: SponsorPlan, event_id: EventIds) -> ClockTicked:
    """Event time jumps to the month's end: settlements, cycle invoices, the next fees."""
    at = plan.month_end_tick_at
    return ClockTicked(event_id=event_id("tick"), tenant_id=plan.tenant_id, occurred_at=at,
                       producer=MONTH_END_CLOCK_PRODUCER, now=at)

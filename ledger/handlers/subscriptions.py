"""Subscriptions: subscribe, cancel and change plan; cycle boundaries on event time; the
allowance a session may use; fees invoiced and charged; suspension while a fee is unpaid.

Cycle boundaries run on the tenant's schedule (`SUBSCRIPTION_CYCLE` entries, event time):
1. close the cycle that ended: a post-paid plan is invoiced (fee and the usage beyond the
   allowance) and charged with post-paid retries; a cancellation due then ends the plan;
2. start the cycle that begins: the plan due then (a change applies here), and a pre-paid
   fee (prorated for a calendar plan's partial first cycle) is invoiced and charged; a
   failed fee suspends the plan until a retry succeeds;
3. schedule the next boundary at the new cycle's end.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from ledger.batch import Batch
from ledger.domain.billing_calendar import (
    CycleAnchor,
    SubscriptionCycle,
    subscription_cycle_containing,
)
from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.journal import JournalEntry, account, sale
from ledger.domain.money import Money, round_to_minor_unit
from ledger.domain.payer import SubscriptionTerms
from ledger.domain.settlement import ChargeLine, ChargeLines, VatRate
from ledger.domain.subscription import AllowanceLeft, PlanTerms, Subscription
from ledger.handlers.documents import issue_document
from ledger.handlers.lookups import config_as_of, schedule_of
from ledger.handlers.orders import open_charge
from ledger.handlers.prerequisites import wait_for
from ledger.messages import PlanPublished, SubscriptionChanged

SUBSCRIPTION_CYCLE = "subscription_cycle"
FEE_PURPOSE = "subscription_fee"  # a pre-paid cycle's fee
POSTPAID_PURPOSE = "subscription"  # a post-paid cycle's invoice (fee and usage)
BOUNDARY_SEPARATOR = "@"


def check_plan(message: PlanPublished, batch: Batch) -> None:
    """A plan is refused when the ledger could not bill it as published."""
    if message.overage_tariff_id is not None and config_as_of(
        batch, "tariff", message.tenant_id, message.overage_tariff_id, message.effective_at
    ) is None:
        wait_for("tariff", message.tenant_id, message.overage_tariff_id, (
            f"plan {message.plan_id}: its own tariff {message.overage_tariff_id!r} is not "
            f"published at {message.effective_at.isoformat()}"
        ), InvalidInput)
    if message.anchor == "calendar" and 12 % message.cycle_months:
        raise InvalidInput(
            f"plan {message.plan_id}: a calendar cycle of {message.cycle_months} months does "
            "not divide the year"
        )


def change_subscription(
    message: SubscriptionChanged, tenant: dict[str, Any], batch: Batch
) -> None:
    """Check first, then change: a refused change leaves its reason and nothing else."""
    at = message.effective_at
    subscription = batch.get(
        Subscription, Subscription.create_id(message.tenant_id, message.driver_id)
    )
    live = subscription is not None and subscription.is_live
    if message.action == "subscribe":
        plan = _plan(batch, message, at)
        if live:
            raise RuleViolation(
                f"driver {message.driver_id} already holds a plan: change_plan or cancel it"
            )
        if subscription is None:
            subscription = Subscription(tenant_id=message.tenant_id, driver_id=message.driver_id)
            batch.add(subscription)
        subscription.subscribe(
            f"{message.driver_id}-{subscription.ordinal + 1}", plan.to_settings(), at
        )
        if at <= message.occurred_at:
            run_cycle_boundary(subscription, at, tenant, batch)
        else:
            _schedule_boundary(subscription, at, batch)
        return
    if subscription is None or not live:
        raise RuleViolation(
            f"driver {message.driver_id} holds no plan to {message.action.replace('_', ' ')}"
        )
    current = subscription.terms()
    if message.action == "cancel":
        cycle = _cycle(subscription, current, at, tenant)
        subscription.request_cancel(at, cycle.end)
        return
    plan = _plan(batch, message, at)
    if (plan.anchor, plan.cycle_months) != (current.anchor, current.cycle_months):
        raise RuleViolation(
            f"plan {plan.plan_id} has another cycle ({plan.anchor}, {plan.cycle_months} "
            f"months) than {current.plan_id}: cancel and subscribe instead"
        )
    subscription.request_plan_change(plan.to_settings(), at)


def _plan(batch: Batch, message: SubscriptionChanged, at: datetime) -> PlanTerms:
    settings = config_as_of(batch, "plan", message.tenant_id, message.plan_id, at)
    if settings is None:
        wait_for("plan", message.tenant_id, message.plan_id, (
            f"unknown plan {message.plan_id!r} (no PlanPublished in force at {at.isoformat()})"
        ), RuleViolation)
    return PlanTerms.from_settings(settings)


def _cycle(subscription: Subscription, plan: PlanTerms, at: datetime,
           tenant: dict[str, Any]) -> SubscriptionCycle:
    assert subscription.subscribed_at is not None
    anchor = cast(CycleAnchor, plan.anchor)
    return subscription_cycle_containing(
        at, anchor, subscription.subscribed_at, plan.cycle_months, _zone(tenant)
    )


def _zone(tenant: dict[str, Any]) -> str:
    return str(tenant.get("time_zone") or "UTC")


# ---------------------------------------------------------------- cycle boundaries
def _schedule_boundary(subscription: Subscription, at: datetime, batch: Batch) -> None:
    # One entry per boundary: the schedule marks an entry done by (kind, subject).
    schedule_of(subscription.tenant_id, batch).schedule(
        at, SUBSCRIPTION_CYCLE, f"{subscription.id.hex}{BOUNDARY_SEPARATOR}{at.isoformat()}"
    )


def run_scheduled_boundary(
    batch: Batch, subject: str, at: datetime, tenant: dict[str, Any]
) -> None:
    subscription_hex = subject.split(BOUNDARY_SEPARATOR, 1)[0]
    subscription = batch.get(Subscription, UUID(hex=subscription_hex))
    if subscription is not None:
        run_cycle_boundary(subscription, at, tenant, batch)


def run_cycle_boundary(
    subscription: Subscription, at: datetime, tenant: dict[str, Any], batch: Batch
) -> None:
    if subscription.status == "ended":
        return
    # 1. close the cycle that ended
    if subscription.cycle_index is not None:
        assert subscription.cycle_end is not None
        if at < subscription.cycle_end:
            return  # a boundary already run (a redelivered schedule entry)
        _close_cycle(subscription, subscription.cycle_index, at, tenant, batch)
        if subscription.cancel_at is not None and subscription.cancel_at <= at:
            subscription.end(at)
            return
    # 2. start the cycle that begins
    plan = PlanTerms.from_settings(subscription.pending_plan or subscription.plan or {})
    cycle = _cycle(subscription, plan, at, tenant)
    number: str | None = None
    entries: list[dict[str, Any]] = []
    if plan.payment == "prepaid":
        fee = _fee_lines(plan, tenant["currency"], cycle)
        if fee.gross > 0:
            number, entry = _invoice(subscription, fee, [], cycle.index, at, batch)
            entries.append(entry.to_dict())
            _charge(subscription, FEE_PURPOSE, f"{subscription.subscription_id}:{cycle.index}",
                    fee.gross, tenant, at, batch)
    subscription.start_cycle(cycle.index, cycle.start, cycle.end, plan.to_settings(), number,
                             entries)
    # 3. the next boundary
    _schedule_boundary(subscription, cycle.end, batch)


def _close_cycle(
    subscription: Subscription, index: int, at: datetime, tenant: dict[str, Any], batch: Batch
) -> None:
    plan = subscription.terms()
    number: str | None = None
    entries: list[dict[str, Any]] = []
    if plan.payment == "postpaid":
        used = subscription.usage.get(index) or {}
        assert subscription.cycle_start is not None
        fee = _fee_lines(plan, tenant["currency"],
                         _cycle(subscription, plan, subscription.cycle_start, tenant))
        usage_lines = _usage_lines(used.get("overage_lines") or [], tenant["currency"])
        if fee.gross > 0 or usage_lines:
            number, entry = _invoice(subscription, fee, usage_lines, index, at, batch)
            if fee.gross > 0:
                entries.append(entry.to_dict())
            total = fee.gross + sum(
                (Decimal(line["net"]) + Decimal(line["vat"]) for line in usage_lines),
                Decimal(0),
            )
            if total > 0:
                _charge(subscription, POSTPAID_PURPOSE, number, total, tenant, at, batch)
    subscription.close_cycle(index, number, entries)


def _fee_lines(plan: PlanTerms, currency: str, cycle: SubscriptionCycle) -> ChargeLines:
    """The cycle's fee (prorated for a partial first calendar cycle), rounded once."""
    net = round_to_minor_unit(cycle.prorated(Money(plan.fee_net, currency)).amount, currency)
    rate = plan.fee_vat_rate_percent
    vat = round_to_minor_unit(net * rate / 100, currency)
    return ChargeLines(currency, (ChargeLine(rate, net, vat),) if net or vat else ())


def _usage_lines(overage_lines: list[dict[str, Any]], currency: str) -> list[dict[str, Any]]:
    net: dict[VatRate, Decimal] = defaultdict(Decimal)
    vat: dict[VatRate, Decimal] = defaultdict(Decimal)
    for line in overage_lines:
        rate = None if line["vat_rate"] is None else Decimal(line["vat_rate"])
        net[rate] += Decimal(line["net"])
        vat[rate] += Decimal(line["vat"])
    return [
        {"description": "Charging beyond the allowance",
         "vat_rate": None if rate is None else str(rate), "net": str(net[rate]),
         "vat": str(vat[rate])}
        for rate in sorted(net, key=lambda r: Decimal(-1) if r is None else r)
        if net[rate] or vat[rate]
    ]


def _invoice(
    subscription: Subscription, fee: ChargeLines, usage_lines: list[dict[str, Any]],
    index: int, at: datetime, batch: Batch,
) -> tuple[str, JournalEntry]:
    """The cycle's subscription invoice, and the fee's sale (usage was booked per session)."""
    plan = subscription.terms() if subscription.plan else None
    plan_name = plan.plan_id if plan else ""
    lines = [line.to_dict(f"Plan {plan_name}, cycle {index + 1}") for line in fee.lines]
    number = issue_document(
        batch, subscription.tenant_id, "subscription_invoice",
        reference=f"subscription:{subscription.subscription_id}:{index}",
        bill_to=subscription.driver_id, currency=fee.currency, issued_at=at,
        lines=fee, description="", extra_lines=lines + usage_lines,
    )
    entry = sale(
        f"subscription:{subscription.tenant_id}:{subscription.subscription_id}:{index}",
        fee.currency, f"plan fee {subscription.subscription_id} cycle {index + 1} ({number})",
        account("driver_receivable", subscription.driver_id), fee.net_by_rate(),
        fee.vat_by_rate(),
    )
    return number, entry


def _charge(
    subscription: Subscription, purpose: str, reference: str, amount: Decimal,
    tenant: dict[str, Any], at: datetime, batch: Batch,
) -> None:
    driver = config_as_of(batch, "driver", subscription.tenant_id, subscription.driver_id, at)
    open_charge(
        batch, subscription.tenant_id, tenant["retry_schedule_hours"], purpose=purpose,
        reference=reference, driver_id=subscription.driver_id, amount=amount,
        currency=tenant["currency"],
        token=(driver or {}).get("payment_method_token"),
        settles_account=account("driver_receivable", subscription.driver_id), at=at,
    )


def fee_answered(batch: Batch, tenant_id: str, driver_id: str, paid: bool, reason: str) -> None:
    """A pre-paid fee's charge answered: a failure suspends the plan, a success resumes it."""
    subscription = batch.get(Subscription, Subscription.create_id(tenant_id, driver_id))
    if subscription is None or subscription.status == "ended":
        return
    if paid and subscription.status == "suspended":
        subscription.resume()
    elif not paid and subscription.status == "active":
        subscription.suspend(f"plan fee unpaid: {reason}")


# ---------------------------------------------------------------- sessions
def subscription_cover_at_start(
    batch: Batch, tenant: dict[str, Any], tenant_id: str, driver_id: str, location_id: str,
    at: datetime,
) -> SubscriptionTerms | None:
    """The driver's live plan in the cycle holding `at`, if it covers this site."""
    subscription = batch.get(Subscription, Subscription.create_id(tenant_id, driver_id))
    if subscription is None or subscription.status != "active":
        return None
    assert subscription.subscribed_at is not None and subscription.subscription_id
    if at < subscription.subscribed_at:
        return None
    if subscription.cancel_at is not None and at >= subscription.cancel_at:
        return None
    start, end = subscription.cycle_start, subscription.cycle_end
    if subscription.cycle_index is not None and start is not None and end is not None and (
        start <= at < end
    ):
        plan, index = subscription.terms(), subscription.cycle_index
    else:  # the boundary has not run yet (the next tick runs it): the plan due then
        plan = PlanTerms.from_settings(subscription.pending_plan or subscription.plan or {})
        index = _cycle(subscription, plan, at, tenant).index
    if not plan.covers_site(location_id):
        return None
    return SubscriptionTerms(subscription.subscription_id, index, plan)


def record_allowance_use(
    batch: Batch, tenant_id: str, driver_id: str, transaction_id: str,
    terms: SubscriptionTerms, kwh: Decimal, covered: Decimal, counted: bool,
    postpaid_usage: ChargeLines | None,
) -> None:
    subscription = batch.get(Subscription, Subscription.create_id(tenant_id, driver_id))
    if subscription is None or subscription.subscription_id != terms.subscription_id:
        return
    if subscription.counted(terms.cycle_index, transaction_id):
        return
    subscription.record_usage(
        terms.cycle_index, transaction_id, kwh, 1 if counted else 0, covered,
        [line.to_dict("usage") for line in postpaid_usage.lines] if postpaid_usage else [],
    )


def allowance_left_for(batch: Batch, tenant_id: str, driver_id: str,
                       terms: SubscriptionTerms) -> AllowanceLeft | None:
    subscription = batch.get(Subscription, Subscription.create_id(tenant_id, driver_id))
    if subscription is None or subscription.subscription_id != terms.subscription_id:
        return None
    return subscription.allowance_left(terms.cycle_index, terms.plan)

"""A driver's subscription to a plan: cycles, fees, allowance used, suspension, invoices.

One aggregate per tenant and driver holds the driver's current subscription (a driver holds
at most one plan at a time; a later subscription after one ended gets the next ordinal in
its id). Plan terms are copied at each cycle start, so a plan republished mid-cycle never
reprices the cycle a driver is in; a plan change or a cancellation takes effect at the next
cycle boundary (BILLING_RULES.md, "Subscriptions").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """A plan as published (PlanPublished settings), typed."""

    plan_id: str
    payment: str  # "prepaid" | "postpaid"
    fee_net: Decimal
    fee_vat_rate_percent: Decimal
    cycle_months: int
    anchor: str  # "anniversary" | "calendar"
    allowance_kwh: Decimal | None
    allowance_sessions: int | None
    allowance_amount: Decimal | None
    overage_discount_percent: Decimal
    site_location_ids: tuple[str, ...]
    overage_tariff_id: str | None = None  # the plan's own tariff for its subscribers

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> PlanTerms:
        def dec(name: str) -> Decimal | None:
            value = settings.get(name)
            return None if value is None else Decimal(value)

        sessions = settings.get("allowance_sessions")
        return cls(
            plan_id=settings["plan_id"], payment=settings["payment"],
            fee_net=Decimal(settings["fee_net"]),
            fee_vat_rate_percent=Decimal(settings["fee_vat_rate_percent"]),
            cycle_months=int(settings.get("cycle_months") or 1),
            anchor=settings.get("anchor") or "anniversary",
            allowance_kwh=dec("allowance_kwh"),
            allowance_sessions=None if sessions is None else int(sessions),
            allowance_amount=dec("allowance_amount"),
            overage_discount_percent=dec("overage_discount_percent") or Decimal(0),
            site_location_ids=tuple(settings.get("site_location_ids") or ()),
            overage_tariff_id=settings.get("overage_tariff_id"),
        )

    def to_settings(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id, "payment": self.payment, "fee_net": self.fee_net,
            "fee_vat_rate_percent": self.fee_vat_rate_percent,
            "cycle_months": self.cycle_months, "anchor": self.anchor,
            "allowance_kwh": self.allowance_kwh, "allowance_sessions": self.allowance_sessions,
            "allowance_amount": self.allowance_amount,
            "overage_discount_percent": self.overage_discount_percent,
            "site_location_ids": list(self.site_location_ids),
            "overage_tariff_id": self.overage_tariff_id,
        }

    @property
    def is_unlimited(self) -> bool:
        """No allowance of any kind: the fee covers every session (a flat rate)."""
        return (self.allowance_kwh is None and self.allowance_sessions is None
                and self.allowance_amount is None)

    def covers_site(self, location_id: str) -> bool:
        return not self.site_location_ids or location_id in self.site_location_ids


@dataclass(frozen=True, slots=True)
class AllowanceLeft:
    """What a cycle's allowance still holds (None: that kind of allowance is not limited)."""

    kwh: Decimal | None
    sessions: int | None
    amount: Decimal | None

    def fraction_of(self, energy_kwh: Decimal, price_gross: Decimal) -> Decimal:
        """The share of a session (by energy, and within the money left) it still covers."""
        fraction = Decimal(1)
        if self.sessions is not None and self.sessions <= 0:
            return Decimal(0)
        if self.kwh is not None:
            if self.kwh <= 0:
                return Decimal(0)
            if energy_kwh > self.kwh:
                fraction = min(fraction, self.kwh / energy_kwh)
        if self.amount is not None:
            if self.amount <= 0:
                return Decimal(0)
            if price_gross > self.amount:
                fraction = min(fraction, self.amount / price_gross)
        return fraction


class Subscription(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, driver_id: str) -> UUID:
        return natural_id("driver_subscription", tenant_id, driver_id)  # not the config kind

    @event("Opened")
    def __init__(self, tenant_id: str, driver_id: str) -> None:
        self.tenant_id = tenant_id
        self.driver_id = driver_id
        self.ordinal = 0
        self.subscription_id: str | None = None
        self.status = "none"  # none | active | suspended | ended
        self.plan: dict[str, Any] | None = None  # PlanTerms settings of the current cycle
        self.pending_plan: dict[str, Any] | None = None  # from the next cycle
        self.subscribed_at: datetime | None = None
        self.cancel_at: datetime | None = None
        self.cycle_index: int | None = None
        self.cycle_start: datetime | None = None
        self.cycle_end: datetime | None = None
        # Per cycle index: kWh, sessions and money covered; overage lines billed (post-paid).
        self.usage: dict[int, dict[str, Any]] = {}

    # ------------------------------------------------------------------ lifecycle
    @event("Subscribed")
    def subscribe(self, subscription_id: str, plan: dict[str, Any], at: datetime) -> None:
        self.ordinal += 1
        self.subscription_id = subscription_id
        self.status = "active"
        self.plan = plan
        self.pending_plan = None
        self.subscribed_at = at
        self.cancel_at = None
        self.cycle_index = None
        self.cycle_start = None
        self.cycle_end = None
        self.usage = {}

    @event("CancelRequested")
    def request_cancel(self, effective_at: datetime, cancel_at: datetime) -> None:
        self.cancel_at = cancel_at

    @event("PlanChangeRequested")
    def request_plan_change(self, plan: dict[str, Any], effective_at: datetime) -> None:
        self.pending_plan = plan

    @event("CycleStarted")
    def start_cycle(
        self, index: int, start: datetime, end: datetime, plan: dict[str, Any],
        invoice_number: str | None, journal_entries: list[dict[str, Any]],
    ) -> None:
        """A cycle begins under `plan`; a pre-paid fee is invoiced (and booked) now."""
        self.cycle_index = index
        self.cycle_start = start
        self.cycle_end = end
        self.plan = plan
        self.pending_plan = None
        self.usage.setdefault(index, _empty_usage())

    @event("CycleClosed")
    def close_cycle(
        self, index: int, invoice_number: str | None, journal_entries: list[dict[str, Any]]
    ) -> None:
        """A cycle ended; a post-paid cycle is invoiced (fee and usage) and booked now."""
        self.usage.setdefault(index, _empty_usage())["closed"] = True

    @event("Suspended")
    def suspend(self, reason: str) -> None:
        self.status = "suspended"

    @event("Resumed")
    def resume(self) -> None:
        self.status = "active"

    @event("Ended")
    def end(self, at: datetime) -> None:
        self.status = "ended"

    @event("UsageRecorded")
    def record_usage(
        self, index: int, transaction_id: str, kwh: Decimal, sessions: int,
        amount: Decimal, overage_lines: list[dict[str, Any]],
    ) -> None:
        """A session counted against a cycle's allowance (and, post-paid, its overage)."""
        used = self.usage.setdefault(index, _empty_usage())
        used["kwh"] += kwh
        used["sessions"] += sessions
        used["amount"] += amount
        used["transactions"].append(transaction_id)
        used["overage_lines"].extend(overage_lines)

    # ------------------------------------------------------------------ questions
    @property
    def is_live(self) -> bool:
        return self.status in ("active", "suspended")

    def terms(self) -> PlanTerms:
        assert self.plan is not None
        return PlanTerms.from_settings(self.plan)

    def allowance_left(self, index: int, plan: PlanTerms) -> AllowanceLeft:
        used = self.usage.get(index) or _empty_usage()
        return AllowanceLeft(
            kwh=None if plan.allowance_kwh is None else plan.allowance_kwh - used["kwh"],
            sessions=(None if plan.allowance_sessions is None
                      else plan.allowance_sessions - used["sessions"]),
            amount=(None if plan.allowance_amount is None
                    else plan.allowance_amount - used["amount"]),
        )

    def counted(self, index: int, transaction_id: str) -> bool:
        return transaction_id in (self.usage.get(index) or _empty_usage())["transactions"]


def _empty_usage() -> dict[str, Any]:
    return {"kwh": Decimal(0), "sessions": 0, "amount": Decimal(0), "transactions": [],
            "overage_lines": [], "closed": False}

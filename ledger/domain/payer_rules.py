"""Who pays for a session (BILLING_RULES.md, "Who pays"): pure, decided once at start.

The first rule that applies wins: open access, ad hoc terminal, corporate, subscription,
then the driver's own per-session model. A sponsor (the partner, a plan) covers what it may
and the driver's own model stands behind it for the rest, so a sponsored session carries
both.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.domain.billing_model import BillingModel
from ledger.domain.payer import PartnerTerms, SubscriptionTerms


@dataclass(frozen=True, slots=True)
class PayerContext:
    location: dict[str, Any]  # LocationConfigured settings in force at start
    evse_id: str | None
    terminal_reference: str | None
    terminal_hold: Decimal | None  # the terminal's authorized amount, when known
    driver_id: str | None
    driver: dict[str, Any] | None  # DriverConfigured settings in force at start
    driver_has_overdue_debt: bool
    tenant: dict[str, Any]  # TenantConfigured settings in force at start
    tariff_hold_override: Decimal | None
    # The partner covering this driver here (enrolment, site), with the room its pool and
    # the driver limit have left at start; None when no partner covers the session.
    partner: tuple[PartnerTerms, Decimal] | None = None
    # The driver's live plan, in the cycle holding the start, when it covers this site.
    subscription: SubscriptionTerms | None = None


@dataclass(frozen=True, slots=True)
class PayerDecision:
    billing_model: BillingModel | None  # None: nobody can pay, the session must stop
    driver_id: str | None = None
    payment_method_token: str | None = None
    hold_amount: Decimal | None = None
    refusal_reason: str | None = None
    own_model: BillingModel | None = None  # what pays the rest of a sponsored session
    partner: PartnerTerms | None = None
    subscription: SubscriptionTerms | None = None


def decide_payer(ctx: PayerContext) -> PayerDecision:
    open_evses = ctx.location.get("open_access_evse_ids") or []
    if ctx.location.get("open_access") or (ctx.evse_id is not None and ctx.evse_id in open_evses):
        return PayerDecision(BillingModel.OPEN_ACCESS, driver_id=ctx.driver_id)
    if ctx.terminal_reference is not None:
        return PayerDecision(BillingModel.AD_HOC_TERMINAL, hold_amount=ctx.terminal_hold)
    own = _driver_own_model(ctx)
    sponsor: BillingModel | None = None
    if ctx.partner is not None and ctx.partner[1] > 0:
        # 3. The partner covers what its pool and the driver limit allow; a plan's allowance
        # what it can of the rest (4); the driver's own model, if it can pay, stands behind
        # both (decisions: docs/billing-decisions.md).
        sponsor = BillingModel.CORPORATE
    elif ctx.subscription is not None:
        sponsor = ctx.subscription.billing_model
    if sponsor is None:
        return own
    return PayerDecision(
        sponsor, driver_id=ctx.driver_id, payment_method_token=own.payment_method_token,
        hold_amount=own.hold_amount, own_model=own.billing_model,
        partner=ctx.partner[0] if sponsor == BillingModel.CORPORATE and ctx.partner else None,
        subscription=ctx.subscription,
    )


def _driver_own_model(ctx: PayerContext) -> PayerDecision:
    if ctx.driver is None or ctx.driver_id is None:
        return PayerDecision(None, refusal_reason="unknown id token: no driver to bill")
    model = BillingModel(ctx.driver["billing_model"])
    token = ctx.driver.get("payment_method_token")
    if ctx.driver_has_overdue_debt and ctx.tenant.get("block_sessions_on_overdue_debt", True):
        # The card stays known: what is delivered before the stop is billed post-paid.
        return PayerDecision(
            None, driver_id=ctx.driver_id, payment_method_token=token,
            refusal_reason="driver has overdue debt",
        )
    if model in (BillingModel.POST_PAID, BillingModel.PRE_AUTHORIZATION) and not token:
        return PayerDecision(
            None, driver_id=ctx.driver_id, refusal_reason="no payment method on file"
        )
    if model == BillingModel.PRE_AUTHORIZATION:
        hold = _hold_amount(ctx)
        return PayerDecision(model, ctx.driver_id, token, hold_amount=hold, own_model=model)
    return PayerDecision(model, ctx.driver_id, token, own_model=model)


def _hold_amount(ctx: PayerContext) -> Decimal:
    """Tenant default, overridden by the location, overridden by the tariff."""
    if ctx.tariff_hold_override is not None:
        return ctx.tariff_hold_override
    location_hold = ctx.location.get("preauth_hold_amount")
    if location_hold is not None:
        return Decimal(location_hold)
    return Decimal(ctx.tenant["preauth_hold_amount"])

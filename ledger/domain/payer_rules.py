"""Who pays for a session (BILLING_RULES.md, "Who pays"): pure, decided once at start.

The first rule that applies wins: open access, ad hoc terminal, corporate, subscription,
then the driver's own per-session model. Corporate and subscription slot in at their place
in `decide_payer` when those models exist; until then a driver's own model applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


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


@dataclass(frozen=True, slots=True)
class PayerDecision:
    billing_model: str | None  # None: nobody can pay, the session must stop
    driver_id: str | None = None
    payment_method_token: str | None = None
    hold_amount: Decimal | None = None
    refusal_reason: str | None = None


def decide_payer(ctx: PayerContext) -> PayerDecision:
    open_evses = ctx.location.get("open_access_evse_ids") or []
    if ctx.location.get("open_access") or (ctx.evse_id is not None and ctx.evse_id in open_evses):
        return PayerDecision("open_access", driver_id=ctx.driver_id)
    if ctx.terminal_reference is not None:
        return PayerDecision("ad_hoc_terminal", hold_amount=ctx.terminal_hold)
    # 3. corporate and 4. subscription come here (issues to follow).
    return _driver_own_model(ctx)


def _driver_own_model(ctx: PayerContext) -> PayerDecision:
    if ctx.driver is None or ctx.driver_id is None:
        return PayerDecision(None, refusal_reason="unknown id token: no driver to bill")
    model = ctx.driver["billing_model"]
    token = ctx.driver.get("payment_method_token")
    if ctx.driver_has_overdue_debt and ctx.tenant.get("block_sessions_on_overdue_debt", True):
        # The card stays known: what is delivered before the stop is billed post-paid.
        return PayerDecision(
            None, driver_id=ctx.driver_id, payment_method_token=token,
            refusal_reason="driver has overdue debt",
        )
    if model in ("post_paid", "pre_authorization") and not token:
        return PayerDecision(
            None, driver_id=ctx.driver_id, refusal_reason="no payment method on file"
        )
    if model == "pre_authorization":
        hold = _hold_amount(ctx)
        return PayerDecision(model, ctx.driver_id, token, hold_amount=hold)
    return PayerDecision(model, ctx.driver_id, token)


def _hold_amount(ctx: PayerContext) -> Decimal:
    """Tenant default, overridden by the location, overridden by the tariff."""
    if ctx.tariff_hold_override is not None:
        return ctx.tariff_hold_override
    location_hold = ctx.location.get("preauth_hold_amount")
    if location_hold is not None:
        return Decimal(location_hold)
    return Decimal(ctx.tenant["preauth_hold_amount"])

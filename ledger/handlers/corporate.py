"""Corporate billing: a partner's cover decided at session start, its pool, its settlement.

At start the enrolment, the partner's terms and the pool's remaining room are read as they
stand then (rule 3); the session carries the terms. At the end the settlement plan takes the
partner's share within what the pool and the driver limit still allow (they may have been
used up by other sessions meanwhile) and books it on the pool. At each period's end (event
time, on the tenant's schedule) the pool is invoiced to the partner in its own series.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.batch import Batch
from ledger.domain.billing_calendar import partner_period_containing
from ledger.domain.configuration import EffectiveDated, config_id
from ledger.domain.corporate_pool import CorporatePool
from ledger.domain.journal import account
from ledger.domain.partner_settlement import partner_invoice
from ledger.domain.payer import PartnerTerms
from ledger.domain.settlement import ChargeLines
from ledger.handlers.documents import issue_document
from ledger.handlers.lookups import config_as_of, schedule_of
from ledger.handlers.orders import open_charge
from ledger.limits import PARTNER_SETTLEMENT_GRACE_HOURS

SETTLE_PARTNER_PERIOD = "settle_partner_period"


def partner_cover_at_start(
    batch: Batch, tenant: dict[str, Any], tenant_id: str, driver_id: str,
    location: dict[str, Any], at: datetime,
) -> tuple[PartnerTerms, Decimal] | None:
    """The partner's terms for a session of `driver_id` starting `at` at `location`, and what
    the pool and the driver limit still allow then; None when no partner covers it."""
    enrolment = config_as_of(batch, "enrolment", tenant_id, driver_id, at)
    if enrolment is None or enrolment["action"] != "enrol":
        return None
    partner_id: str = enrolment["partner_id"]
    partner = config_as_of(batch, "partner", tenant_id, partner_id, at)
    if partner is None:
        return None
    if partner.get("own_sites_only") and location.get("owner_partner_id") != partner_id:
        return None
    terms = partner_terms(batch, tenant, tenant_id, partner_id, partner, enrolment, at)
    return terms, partner_capacity_now(batch, tenant_id, driver_id, terms)


def partner_terms(
    batch: Batch, tenant: dict[str, Any], tenant_id: str, partner_id: str,
    partner: dict[str, Any], enrolment: dict[str, Any], at: datetime,
) -> PartnerTerms:
    first_start = _first_effective_at(batch, tenant_id, partner_id)
    period = partner_period_containing(
        at, partner["billing_period"], tenant.get("time_zone") or "UTC", first_start
    )
    driver_limit = enrolment.get("driver_limit")
    return PartnerTerms(
        partner_id=partner_id, pool_limit=Decimal(partner["pool_limit"]),
        driver_limit=None if driver_limit is None else Decimal(driver_limit),
        discount_percent=Decimal(partner.get("discount_percent") or 0),
        period_start=period.start, period_end=period.end,
    )


def _first_effective_at(batch: Batch, tenant_id: str, partner_id: str) -> datetime | None:
    configured = batch.get(EffectiveDated, config_id("partner", tenant_id, partner_id))
    if configured is None or not configured.versions:
        return None
    first: datetime = configured.versions[0]["effective_at"]
    return first


def partner_capacity_now(
    batch: Batch, tenant_id: str, driver_id: str, terms: PartnerTerms
) -> Decimal:
    """What the partner may still pay for this driver in the session's period, now; 0 once the
    period is settled (a session ending later than the settlement grace falls back to the
    driver's own model: docs/billing-decisions.md)."""
    pool = batch.get(
        CorporatePool, CorporatePool.create_id(tenant_id, terms.partner_id, terms.period_start)
    )
    if pool is None:
        room = terms.pool_limit
        return room if terms.driver_limit is None else min(room, terms.driver_limit)
    if pool.is_settled:
        return Decimal(0)
    return pool.remaining(terms.pool_limit, driver_id, terms.driver_limit)


def book_partner_share(
    batch: Batch, tenant_id: str, transaction_id: str, driver_id: str, terms: PartnerTerms,
    currency: str, share: ChargeLines, billed: ChargeLines,
) -> None:
    """The partner pays `billed` (its share `share` less its discount) of this session."""
    pool_id = CorporatePool.create_id(tenant_id, terms.partner_id, terms.period_start)
    pool = batch.get(CorporatePool, pool_id)
    if pool is None:
        pool = CorporatePool(
            tenant_id=tenant_id, partner_id=terms.partner_id, period_start=terms.period_start,
            period_end=terms.period_end, pool_limit=terms.pool_limit, currency=currency,
        )
        batch.add(pool)
        schedule_of(tenant_id, batch).schedule(
            terms.period_end + timedelta(hours=PARTNER_SETTLEMENT_GRACE_HOURS),
            SETTLE_PARTNER_PERIOD, pool.id.hex,
        )
    if pool.covers(transaction_id):
        return
    pool.cover(transaction_id, driver_id, billed.gross,
               [line.to_dict("share") for line in share.lines],
               [line.to_dict("billed") for line in billed.lines], pool.used + billed.gross)


def settle_partner_period(
    batch: Batch, tenant_id: str, pool_hex: str, at: datetime, tenant: dict[str, Any]
) -> None:
    """Invoice one partner period: a line per driver and VAT rate (the sessions attached),
    the discount as its own line per rate, VAT per rate on the rate's basis, totals; the VAT
    rounding against what the sessions booked is journalled with the settlement; charged by
    card or left receivable."""
    pool = batch.get(CorporatePool, UUID(hex=pool_hex))
    if pool is None or pool.is_settled:
        return
    if not pool.covered:
        pool.settle(None, [])
        return
    invoice = partner_invoice(pool.covered, pool.currency)
    partner = config_as_of(batch, "partner", tenant_id, pool.partner_id, pool.period_start) or {}
    period = pool.period_start.isoformat()
    number = issue_document(
        batch, tenant_id, "corporate_settlement",
        reference=f"corporate:{pool.partner_id}:{period}",
        bill_to=pool.partner_id, currency=pool.currency, issued_at=at,
        lines=ChargeLines(pool.currency, ()), description="",
        extra_lines=invoice.lines,
    )
    if partner.get("payment_terms") == "card" and partner.get("payment_method_token"):
        open_charge(
            batch, tenant_id, tenant["retry_schedule_hours"], purpose="partner_settlement",
            reference=number, driver_id=pool.partner_id, amount=invoice.total_incl_vat,
            currency=pool.currency, token=partner["payment_method_token"],
            settles_account=account("partner_receivable", pool.partner_id), at=at,
        )
    rounding = invoice.vat_rounding_entry(
        f"settlement_vat_rounding:{tenant_id}:{pool.partner_id}:{period}", pool.partner_id,
        number,
    )
    pool.settle(number, [] if rounding is None else [rounding.to_dict()])

"""Event time: a ClockTicked runs what the tenant's schedule has due, in due order."""

from __future__ import annotations

from uuid import UUID

from ledger.batch import Batch
from ledger.domain.payment import Charge
from ledger.domain.session import ChargingSession
from ledger.handlers.corporate import SETTLE_PARTNER_PERIOD, settle_partner_period
from ledger.handlers.lookups import require_tenant, schedule_of
from ledger.handlers.orders import issue_attempt
from ledger.handlers.settle import settle_session
from ledger.handlers.subscriptions import SUBSCRIPTION_CYCLE, run_scheduled_boundary
from ledger.messages import ClockTicked


def handle_clock_ticked(message: ClockTicked, batch: Batch) -> None:
    schedule = schedule_of(message.tenant_id, batch)
    if schedule.now is not None and message.now <= schedule.now:
        return  # time never runs backwards; an old tick has nothing left to do
    for entry in schedule.due(message.now):
        kind, subject = entry["kind"], entry["subject"]
        if kind == "charge_retry":
            charge = batch.get(Charge, UUID(hex=subject))
            if charge is not None and charge.status == "failed":
                issue_attempt(charge, entry["due_at"], batch)
        elif kind == "settle_session":
            session = batch.get(
                ChargingSession, ChargingSession.create_id(message.tenant_id, subject)
            )
            if session is not None and not session.is_settled and session.payer is not None:
                tenant = require_tenant(batch, message.tenant_id, entry["due_at"])
                settle_session(session, tenant, batch)
        elif kind == SUBSCRIPTION_CYCLE:
            tenant = require_tenant(batch, message.tenant_id, entry["due_at"])
            run_scheduled_boundary(batch, subject, entry["due_at"], tenant)
        elif kind == SETTLE_PARTNER_PERIOD:
            tenant = require_tenant(batch, message.tenant_id, entry["due_at"])
            settle_partner_period(batch, message.tenant_id, subject, entry["due_at"], tenant)
        schedule.mark_done(kind, subject, message.now)
    schedule.advance(message.now)

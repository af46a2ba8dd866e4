"""Reading (and opening) the aggregates every handler needs, within one batch.

The bottom of the handler layer: it imports only the batch and the domain, so any handler may
import it and nothing here imports a handler.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger.batch import Batch
from ledger.domain.configuration import EffectiveDated, config_id
from ledger.domain.errors import InvalidInput
from ledger.domain.schedule import Schedule
from ledger.domain.wallet import Wallet
from ledger.handlers.prerequisites import wait_for


def config_as_of(
    batch: Batch, kind: str, tenant_id: str, key: str, moment: datetime
) -> dict[str, Any] | None:
    found = batch.get(EffectiveDated, config_id(kind, tenant_id, key))
    return None if found is None else found.as_of(moment)


def require_tenant(batch: Batch, tenant_id: str, moment: datetime) -> dict[str, Any]:
    """The tenant's settings in force at `moment`; an unknown tenant is waited for, then
    invalid input."""
    settings = config_as_of(batch, "tenant", tenant_id, tenant_id, moment)
    if settings is None:
        wait_for("tenant", tenant_id, tenant_id,
                f"unknown tenant {tenant_id!r} (no TenantConfigured in force)", InvalidInput)
    return settings


def schedule_of(tenant_id: str, batch: Batch) -> Schedule:
    schedule = batch.get(Schedule, Schedule.create_id(tenant_id))
    if schedule is None:
        schedule = Schedule(tenant_id=tenant_id)
        batch.add(schedule)
    return schedule


def wallet_of(tenant_id: str, driver_id: str, currency: str, batch: Batch) -> Wallet:
    wallet = batch.get(Wallet, Wallet.create_id(tenant_id, driver_id))
    if wallet is None:
        wallet = Wallet(tenant_id=tenant_id, driver_id=driver_id, currency=currency)
        batch.add(wallet)
    return wallet

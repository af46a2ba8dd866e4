"""Builders for inbound messages and a small in-memory ledger driver for tests.

`LedgerDriver` applies messages one batch at a time to a Ledger on any store (in-memory by
default) and answers questions about the result: outbound commands, aggregates, journal.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from eventsourcing.utils import get_topic

from ledger.application import BatchResult, Inbound, Ledger
from ledger.domain.inbox import DeadLetter, ProcessedBatch, Refusal
from ledger.domain.journal import JournalEntry
from ledger.domain.session import ChargingSession
from ledger.messages import (
    ClockTicked,
    DriverConfigured,
    Envelope,
    LocationConfigured,
    OcppTransactionEvent,
    PaymentResult,
    TariffPublished,
    TenantConfigured,
    TerminalAuthorized,
    TransactionEvent,
    WalletTopUpRequested,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday
_ids = itertools.count(1)

ENERGY_TARIFF = {
    "country_code": "DE", "party_id": "EVL", "id": "energy", "currency": "EUR",
    "elements": [{"price_components": [
        {"type": "ENERGY", "price": 0.40, "vat": 19.0, "step_size": 1}]}],
    "last_updated": "2026-01-01T00:00:00Z",
}


def envelope(tenant: str = "t1", at: datetime = T0, event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or f"ev-{next(_ids)}", "tenant_id": tenant,
            "occurred_at": at, "producer": "test"}


def tenant(tenant_id: str = "t1", **settings: Any) -> TenantConfigured:
    return TenantConfigured(
        **envelope(tenant_id, T0 - timedelta(days=30)), effective_at=T0 - timedelta(days=30),
        currency="EUR", preauth_hold_amount=Decimal("25.00"), **settings,
    )


def tariff(tariff_id: str = "energy", body: dict[str, Any] | None = None, tenant_id: str = "t1",
           **extra: Any) -> TariffPublished:
    return TariffPublished(
        **envelope(tenant_id, T0 - timedelta(days=30)), effective_at=T0 - timedelta(days=30),
        tariff_id=tariff_id, ocpi_tariff_json=json.dumps(body or ENERGY_TARIFF), **extra,
    )


def location(location_id: str = "L1", tenant_id: str = "t1", **settings: Any) -> LocationConfigured:
    settings.setdefault("tariff_id", "energy")
    return LocationConfigured(
        **envelope(tenant_id, T0 - timedelta(days=30)), effective_at=T0 - timedelta(days=30),
        location_id=location_id, time_zone="Europe/Berlin", **settings,
    )


def driver(driver_id: str, model: str, token: str | None = "tok-ok", tenant_id: str = "t1",
           at: datetime | None = None, **settings: Any) -> DriverConfigured:
    when = at or T0 - timedelta(days=30)
    return DriverConfigured(
        **envelope(tenant_id, when), effective_at=when, driver_id=driver_id,
        id_tokens=[f"rfid-{driver_id}"], billing_model=model, payment_method_token=token,
        **settings,
    )


def top_up(driver_id: str, amount: str, method: str = "bank_transfer",
           at: datetime = T0 - timedelta(days=1), tenant_id: str = "t1") -> WalletTopUpRequested:
    return WalletTopUpRequested(**envelope(tenant_id, at), driver_id=driver_id,
                                amount=Decimal(amount), method=method,
                                reference=f"ref-{next(_ids)}")


def tick(now: datetime, tenant_id: str = "t1") -> ClockTicked:
    return ClockTicked(**envelope(tenant_id, now), now=now)


def tx_event(
    transaction_id: str, kind: str, seq_no: int, at: datetime, energy_wh: int | None,
    *, driver_id: str | None = None, state: str = "Charging", location_id: str = "L1",
    tenant_id: str = "t1", terminal_reference: str | None = None,
    stopped_reason: str | None = None,
) -> TransactionEvent:
    ocpp: dict[str, Any] = {
        "eventType": kind, "timestamp": at, "triggerReason": "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id, "chargingState": state,
                            "stoppedReason": stopped_reason},
    }
    if energy_wh is not None:
        ocpp["meterValue"] = [{"timestamp": at, "sampledValue": [
            {"value": Decimal(energy_wh), "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "Wh", "multiplier": 0}}]}]
    if kind == "Started":
        ocpp["triggerReason"] = "Authorized"
        ocpp["evse"] = {"id": 1, "connectorId": 1}
        if driver_id:
            ocpp["idToken"] = {"idToken": f"rfid-{driver_id}", "type": "ISO14443"}
    return TransactionEvent(
        **envelope(tenant_id, at), location_id=location_id, charge_point_id="CP1",
        terminal_reference=terminal_reference,
        transaction=OcppTransactionEvent.model_validate(ocpp),
    )


def session_events(
    transaction_id: str, driver_id: str | None, kwh: str, minutes: int = 60,
    start: datetime = T0, updates: int = 2, **kwargs: Any,
) -> list[TransactionEvent]:
    """Started at register 1,000,000 Wh, evenly spaced updates, Ended after `kwh`."""
    begin = 1_000_000
    total_wh = int(Decimal(kwh) * 1000)
    events = [tx_event(transaction_id, "Started", 0, start, begin, driver_id=driver_id,
                       **kwargs)]
    for n in range(1, updates + 1):
        at = start + timedelta(minutes=minutes * n / (updates + 1))
        events.append(tx_event(transaction_id, "Updated", n, at,
                               begin + total_wh * n // (updates + 1), **kwargs))
    events.append(tx_event(transaction_id, "Ended", updates + 1,
                           start + timedelta(minutes=minutes), begin + total_wh,
                           state="EVConnected", stopped_reason="EVDisconnected", **kwargs))
    return events


def terminal_authorized(reference: str, amount: str, at: datetime = T0,
                        tenant_id: str = "t1") -> TerminalAuthorized:
    return TerminalAuthorized(**envelope(tenant_id, at), terminal_reference=reference,
                              terminal_id="TERM1", location_id="L1", amount=Decimal(amount),
                              currency="EUR", psp_reference=f"psp-{reference}"[:64])


class LedgerDriver:
    """Feeds a Ledger and reads back what it did."""

    def __init__(self, ledger: Ledger | None = None, source: str = "test") -> None:
        self.ledger = ledger or Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.source = source
        self._position = itertools.count(1)
        self._seen_commands = 0

    def apply(self, *messages: Envelope) -> BatchResult:
        items = [Inbound(self.source, next(self._position), m, key=None,
                         raw=m.model_dump_json()) for m in messages]
        return self.ledger.apply_batch(items)

    def give_up_waiting(self) -> BatchResult:
        """What parked messages wait for will not come: apply them without it (as `ledger
        ingest` does at the end of its file)."""
        return self.ledger.release_parked()

    def apply_each(self, messages: Iterable[Envelope]) -> None:
        for message in messages:
            self.apply(message)

    def _all(self, topic_cls: type) -> list[Any]:
        topic = get_topic(topic_cls)
        notifications = self.ledger.recorder.select_notifications(
            start=1, limit=1_000_000, topics=[topic])
        return [self.ledger.mapper.to_domain_event(n) for n in notifications]

    def commands(self) -> list[dict[str, Any]]:
        return [c.payload | {"_type": c.type_name} for _, c in self.ledger.recorded_commands()]

    def new_commands(self) -> list[dict[str, Any]]:
        found = self.commands()
        new = found[self._seen_commands:]
        self._seen_commands = len(found)
        return new

    def answer(self, command: dict[str, Any], outcome: str, amount: str | None = None,
               at: datetime | None = None) -> BatchResult:
        return self.apply(PaymentResult(
            **envelope(command["tenant_id"], at or datetime.fromisoformat(
                command["occurred_at"].replace("Z", "+00:00"))),
            request_id=command["event_id"], outcome=outcome,
            amount=Decimal(amount if amount is not None else command["amount"]),
            currency=command["currency"], psp_reference=f"psp-{command['event_id'][:8]}",
        ))

    def dead_letters(self) -> list[Any]:
        return self._all(DeadLetter.Recorded)

    def refusals(self) -> list[Any]:
        return self._all(Refusal.Refused)

    def journal(self) -> list[JournalEntry]:
        entries: list[JournalEntry] = []
        notifications = self.ledger.recorder.select_notifications(start=1, limit=1_000_000)
        for n in notifications:
            event = self.ledger.mapper.to_domain_event(n)
            for data in getattr(event, "journal_entries", None) or []:
                entries.append(JournalEntry.from_dict(data))
        return entries

    def balance(self, account_name: str) -> Decimal:
        return sum((p.amount for e in self.journal() for p in e.postings
                    if p.account == account_name), Decimal(0))

    def get(self, cls: type, aggregate_id: Any) -> Any:
        return self.ledger.repository.get(aggregate_id)


# ---------------------------------------------------------------- vouchers
# Kept together at the end of this module, so the voucher builders read as one section.
from ledger.domain.invoice import InvoiceSeries  # noqa: E402
from ledger.messages import (  # noqa: E402
    PartnerConfigured,
    VoucherBatchIssued,
    VoucherRedemptionRequested,
)

VOUCHER_ISSUED_AT = T0 - timedelta(days=2)
VOUCHER_EXPIRES_AT = T0 + timedelta(days=30)


def voucher_batch(
    batch_id: str, codes: list[str], kind: str = "session_credit", amount: str = "10.00", *,
    expires_at: datetime = VOUCHER_EXPIRES_AT, at: datetime = VOUCHER_ISSUED_AT,
    tenant_id: str = "t1", currency: str = "EUR", site_location_ids: list[str] | None = None,
    partner_id: str | None = None, price_per_code_net: str | None = None,
    vat_rate_percent: str | None = None,
) -> VoucherBatchIssued:
    return VoucherBatchIssued(
        **envelope(tenant_id, at), batch_id=batch_id, kind=kind, currency=currency,
        amount_per_code=Decimal(amount), codes=codes, expires_at=expires_at,
        site_location_ids=site_location_ids or [], bought_by_partner_id=partner_id,
        price_per_code_net=None if price_per_code_net is None else Decimal(price_per_code_net),
        vat_rate_percent=None if vat_rate_percent is None else Decimal(vat_rate_percent),
    )


def redeem(code: str, driver_id: str, at: datetime = T0 - timedelta(days=1),
           tenant_id: str = "t1") -> VoucherRedemptionRequested:
    return VoucherRedemptionRequested(**envelope(tenant_id, at), code=code, driver_id=driver_id)


def voucher_buying_partner(partner_id: str, tenant_id: str = "t1") -> PartnerConfigured:
    """A partner as configured for buying voucher batches (corporate terms left default)."""
    when = T0 - timedelta(days=30)
    return PartnerConfigured(
        **envelope(tenant_id, when), effective_at=when, partner_id=partner_id,
        billing_period="monthly", pool_limit=Decimal("1000.00"),
    )


def settlement_of(d: LedgerDriver, tx: str, tenant_id: str = "t1") -> dict[str, Any]:
    """A settled session's settlement (who paid what, totals, model)."""
    session = d.get(ChargingSession, ChargingSession.create_id(tenant_id, tx))
    assert session.settlement is not None, f"{tx} not settled"
    return dict(session.settlement)


def issued_documents(d: LedgerDriver) -> list[dict[str, Any]]:
    """Every invoice or receipt issued, with its number, in issue order."""
    return [e.document | {"number": e.number} for e in d._all(InvoiceSeries.Issued)]


# ---------------------------------------------------------------- state-machine helpers
# For tests/application/test_ledger_state_machine.py: a driver that records what it applied
# (so a fresh ledger can replay it), and reads of the whole store by tenant.
from dataclasses import dataclass  # noqa: E402
from uuid import UUID  # noqa: E402

from eventsourcing.domain import Aggregate  # noqa: E402

# What an aggregate's state is, for comparing a replay with the live ledger: everything but
# the wall-clock stamps eventsourcing puts on each event (a replay runs at another time).
_WALL_CLOCK_ATTRIBUTES = frozenset({"_created_on", "_modified_on", "_pending_events"})


class RecordingLedgerDriver(LedgerDriver):
    """A LedgerDriver that keeps every batch it applied, in order, for a replay."""

    def __init__(self, ledger: Ledger | None = None, source: str = "test") -> None:
        super().__init__(ledger, source)
        self.batches: list[tuple[Envelope, ...]] = []

    def apply(self, *messages: Envelope) -> BatchResult:
        self.batches.append(messages)
        return super().apply(*messages)

    def give_up_waiting(self) -> BatchResult:
        self.batches.append(())  # replayed at the same point
        return super().give_up_waiting()

    def replayed(self, *, one_batch: bool = False) -> LedgerDriver:
        """A fresh in-memory ledger fed the same messages at the same positions (in one
        batch: one between two points where the waiting was given up)."""
        fresh = LedgerDriver(source=self.source)
        pending: list[Envelope] = []
        for batch in self.batches:
            if batch and one_batch:
                pending.extend(batch)
            elif batch:
                fresh.apply(*batch)
            else:
                if pending:
                    fresh.apply(*pending)
                    pending = []
                fresh.give_up_waiting()
        if pending:
            fresh.apply(*pending)
        return fresh


def domain_events(d: LedgerDriver) -> list[Any]:
    """Every stored domain event, in notification order."""
    notifications = d.ledger.recorder.select_notifications(start=1, limit=1_000_000)
    return [d.ledger.mapper.to_domain_event(n) for n in notifications]


# The key under which `store_view` keeps every applied event id of all `ProcessedBatch`es.
APPLIED_EVENT_IDS = UUID(int=0)


@dataclass(frozen=True, slots=True)
class StoreView:
    """One read of the whole store: its events, every aggregate's state, the journal."""

    events: list[Any]
    # Aggregate id -> its attributes (wall-clock stamps left out) and "__class__".
    states: dict[UUID, dict[str, Any]]
    journals: dict[str, list[JournalEntry]]  # per tenant (entry ids are unique per tenant)


def store_view(d: LedgerDriver) -> StoreView:
    """Folds the stored events into aggregates (as the repository would) in one pass."""
    events = domain_events(d)
    aggregates: dict[UUID, Aggregate] = {}
    for event in events:
        aggregates[event.originator_id] = event.mutate(aggregates.get(event.originator_id))
    states = {
        aggregate_id: {name: value for name, value in vars(aggregate).items()
                       if name not in _WALL_CLOCK_ATTRIBUTES}
        | {"__class__": type(aggregate).__qualname__}
        for aggregate_id, aggregate in aggregates.items()
        if not isinstance(aggregate, ProcessedBatch)
    }
    # Which event ids were applied, whatever batches they came in (the transport's grouping).
    applied = sorted(entry for a in aggregates.values() if isinstance(a, ProcessedBatch)
                     for entry in a.entries)
    if applied:
        states[APPLIED_EVENT_IDS] = {"__class__": "ProcessedBatch", "entries": applied}
    journals: dict[str, list[JournalEntry]] = {}
    for event in events:
        booked = getattr(event, "journal_entries", None) or []
        if booked:
            tenant_id: str = states[event.originator_id]["tenant_id"]
            journals.setdefault(tenant_id, []).extend(JournalEntry.from_dict(e) for e in booked)
    return StoreView(events, states, journals)


def aggregate_states(d: LedgerDriver) -> dict[UUID, dict[str, Any]]:
    return store_view(d).states


def journal_by_tenant(d: LedgerDriver) -> dict[str, list[JournalEntry]]:
    return store_view(d).journals


def payment_result(
    command: dict[str, Any], outcome: str, *, at: datetime, amount: Decimal | None = None,
    tenant_id: str | None = None, request_id: str | None = None, currency: str | None = None,
) -> PaymentResult:
    """The PSP's answer to `command` (a `LedgerDriver.commands()` item), any field overridden."""
    return PaymentResult(
        **envelope(tenant_id or command["tenant_id"], at),
        request_id=request_id or command["event_id"], outcome=outcome,
        amount=Decimal(command["amount"]) if amount is None else amount,
        currency=currency or command["currency"],
        psp_reference=f"psp-{command['event_id'][:8]}",
    )

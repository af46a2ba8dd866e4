"""Events -> read-model rows: the pure functions, without a database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledger.domain.inbox import DeadLetter, ProcessedBatch, ProcessedMessage, Refusal
from ledger.domain.invoice import InvoiceSeries, document
from ledger.domain.outbox import OutboundCommand
from ledger.domain.session import ChargingSession
from ledger.domain.wallet import Wallet
from projections import sql
from projections.changes import RowChange
from projections.identities import Identity, identity_of
from projections.mapping import HANDLERS, changes_for
from projections.values import ProjectionError
from tests.unit.projections.events import (
    T,
    card_payment,
    identities_of,
    session_sale,
    stored,
)


def _settled_session(tenant_id: str = "t1", tx: str = "tx-1") -> list[Any]:
    session = ChargingSession(tenant_id=tenant_id, transaction_id=tx, location_id="L1",
                              charge_point_id="CP1")
    session.resolve_payer({
        "billing_model": "post_paid", "driver_id": "d1", "tariff_id": "T1",
        "tariff_json": "{}", "time_zone": "UTC", "currency": "EUR",
        "stop_threshold_percent": "95",
    })
    session.settle(
        {
            "billing_model": "post_paid", "currency": "EUR",
            "total_excl_vat": Decimal("4"), "total_vat": Decimal("0.76"),
            "total_incl_vat": Decimal("4.76"),
            "charged_to": [
                {"payer": "voucher", "id": "V1", "amount_incl_vat": "1.5"},
                {"payer": "driver", "id": "d1", "amount_incl_vat": "3.26"},
            ],
            "receipt_number": "R-000001", "cost": {"total_cost": {"excl_vat": "4.0001"}},
            "driver_id": "d1", "ended_at": T,
        },
        [session_sale(tx, "driver_receivable:d1", "4.00", "0.76")],
    )
    return stored(session)


def _all_changes(events: list[Any]) -> list[RowChange]:
    identities = identities_of(events)
    return [change for event in events for change in changes_for(event, identities)]


def test_an_opened_session_is_an_open_row_keyed_by_tenant_and_transaction_id() -> None:
    opened = _settled_session()[0]

    (change,) = changes_for(opened, {})

    assert change.statement is sql.SESSION_OPENED
    assert change.values["tenant_id"] == "t1"
    assert change.values["session_id"] == "tx-1"
    assert change.values["location_id"] == "L1"


def test_a_settled_session_has_totals_at_the_currency_exponent_and_payers_in_order() -> None:
    changes = _all_changes(_settled_session())

    (settled,) = [c for c in changes if c.statement is sql.SESSION_SETTLED]
    assert settled.values["billing_model"] == "post_paid"
    assert settled.values["total_excl_vat"] == "4.00"
    assert settled.values["total_vat"] == "0.76"
    assert settled.values["total_incl_vat"] == "4.76"
    assert settled.values["ended_at"] == "2026-03-02T09:00:00Z"
    assert settled.values["cost_json"] == '{"total_cost":{"excl_vat":"4.0001"}}'
    payers = [c.values for c in changes if c.statement is sql.SESSION_PAYER]
    assert [(p["seq"], p["payer"], p["payer_id"], p["amount_incl_vat"]) for p in payers] == [
        (0, "voucher", "V1", "1.50"),
        (1, "driver", "d1", "3.26"),
    ]


def test_a_settled_session_books_its_entry_under_the_session_tenant_in_minor_units() -> None:
    changes = _all_changes(_settled_session(tenant_id="t9"))

    (entry,) = [c.values for c in changes if c.statement is sql.JOURNAL_ENTRY]
    postings = [c.values for c in changes if c.statement is sql.JOURNAL_POSTING]
    assert entry["tenant_id"] == "t9"
    assert entry["entry_id"] == "session:tx-1"
    assert entry["booked_by"] == "ChargingSession.Settled"
    assert [(p["account"], p["amount"], p["amount_minor"]) for p in postings] == [
        ("driver_receivable:d1", "4.76", 476),
        ("revenue", "-4.00", -400),
        ("vat_payable:19", "-0.76", -76),
    ]
    assert sum(int(str(p["amount_minor"])) for p in postings) == 0


def test_an_event_of_an_aggregate_whose_creation_was_never_seen_is_an_error() -> None:
    settled = _settled_session()[-1]

    with pytest.raises(ProjectionError, match="arrived before the event that created it"):
        changes_for(settled, {})


def test_a_wallet_credit_books_its_entries_under_the_wallet_tenant() -> None:
    wallet = Wallet(tenant_id="t2", driver_id="d7", currency="EUR")
    wallet.credit(Decimal("20"), "top_up", "ref-1", [card_payment("top:1", "wallet:d7", "20")])
    changes = _all_changes(stored(wallet))

    assert changes[0] == RowChange(
        sql.WALLET_OPENED, {"tenant_id": "t2", "driver_id": "d7", "currency": "EUR"}
    )
    postings = [c.values for c in changes if c.statement is sql.JOURNAL_POSTING]
    assert [(p["tenant_id"], p["account"], p["amount"]) for p in postings] == [
        ("t2", "psp_clearing", "20.00"),
        ("t2", "wallet:d7", "-20.00"),
    ]


def test_an_issued_invoice_carries_the_document_totals_and_a_utc_issue_time() -> None:
    series = InvoiceSeries(tenant_id="t1", series="session_receipt")
    series.issue(
        "R-000001",
        document(kind="session_receipt", reference="tx-1", bill_to="d1", currency="EUR",
                 issued_at=T, lines=[{"description": "s", "vat_rate": "19", "net": "4.0",
                                      "vat": "0.76"}]),
    )
    changes = _all_changes(stored(series))

    (invoice,) = [c.values for c in changes if c.statement is sql.INVOICE_ISSUED]
    assert invoice["number"] == "R-000001"
    assert invoice["kind"] == "session_receipt"
    assert invoice["total_excl_vat"] == "4.00"
    assert invoice["total_vat"] == "0.76"
    assert invoice["total_incl_vat"] == "4.76"
    assert invoice["issued_at"] == "2026-03-02T09:00:00Z"
    assert '"net":"4.0"' in str(invoice["lines_json"])


def test_a_dead_letter_keeps_its_reason_provenance_and_raw_line() -> None:
    letter = DeadLetter(source="file:day.jsonl", position="7", tenant_id=None, event_id=None,
                        type_name=None, key=None, reason="line is not JSON", payload="{oops",
                        received_at=None)

    (change,) = changes_for(stored(letter)[0], {})

    assert change.statement is sql.DEAD_LETTER_RECORDED
    assert change.values["source"] == "file:day.jsonl"
    assert change.values["source_position"] == "7"
    assert change.values["reason"] == "line is not JSON"
    assert change.values["payload"] == "{oops"


def test_a_refusal_and_an_outbound_command_are_kept_as_recorded() -> None:
    refusal = Refusal(tenant_id="t1", event_id="e1", type_name="VoucherRedemptionRequested",
                      subject="CODE", reason="expired", at=T)
    command = OutboundCommand(tenant_id="t1", command_id="c1", topic="psp.commands",
                              key="t1:d1", type_name="PaymentCommand",
                              payload={"b": "2.00", "a": 1}, subject={"kind": "charge"})

    changes = _all_changes(stored(refusal, command))

    assert [c.statement for c in changes] == [sql.REFUSAL_RECORDED, sql.COMMAND_ISSUED]
    assert changes[0].values["reason"] == "expired"
    assert changes[1].values["payload_json"] == '{"a":1,"b":"2.00"}'


def test_readings_and_processed_markers_change_no_row() -> None:
    session = ChargingSession(tenant_id="t1", transaction_id="tx", location_id="L1",
                              charge_point_id="CP1")
    session.record_reading({"seq_no": 0, "event_type": "Updated", "timestamp": T})
    marker = ProcessedMessage("t1", "e1", "file:x")  # the scheme before ProcessedBatch
    reading, processed, batch = stored(session, marker, ProcessedBatch([["t1", "e2", "d"]]))[1:]

    assert changes_for(processed, {}) == []
    assert changes_for(batch, {}) == []
    assert changes_for(reading, {reading.originator_id: Identity("ChargingSession", "t1",
                                                                   "tx")}) == []


def test_a_posting_with_a_fraction_of_a_cent_is_refused() -> None:
    wallet = Wallet(tenant_id="t1", driver_id="d1", currency="EUR")
    entry = card_payment("top:1", "wallet:d1", "20")
    entry["postings"] = [{"account": "psp_clearing", "amount": "20.005"},
                         {"account": "wallet:d1", "amount": "-20.005"}]
    wallet.credit(Decimal("20"), "top_up", "ref-1", [entry])

    with pytest.raises(ProjectionError, match="unreadable journal entry"):
        _all_changes(stored(wallet))


def test_an_unbalanced_entry_is_refused() -> None:
    wallet = Wallet(tenant_id="t1", driver_id="d1", currency="EUR")
    entry = card_payment("top:1", "wallet:d1", "20")
    entry["postings"][1]["amount"] = "-19.99"
    wallet.credit(Decimal("20"), "top_up", "ref-1", [entry])

    with pytest.raises(ProjectionError, match="does not balance"):
        _all_changes(stored(wallet))


def test_identities_come_from_creation_events_only_and_skip_single_event_aggregates() -> None:
    wallet = Wallet(tenant_id="t1", driver_id="d1", currency="EUR")
    wallet.credit(Decimal("1"), "top_up", "r", [])
    opened, credited = stored(wallet)
    marker, batch = stored(ProcessedMessage("t1", "e1", "file:x"),
                           ProcessedBatch([["t1", "e2", "d"]]))

    assert identity_of(opened) == Identity("Wallet", "t1", "d1")
    assert identity_of(credited) is None
    assert identity_of(marker) is None
    assert identity_of(batch) is None


def test_every_projected_event_is_a_real_event_class_of_the_domain() -> None:
    names = sorted(cls.__qualname__ for cls in HANDLERS)

    assert names == [
        "ChargingSession.Opened", "ChargingSession.PayerResolved",
        "ChargingSession.ReadingRecorded", "ChargingSession.Settled",
        "ChargingSession.StopRequested",
        "CorporatePool.Opened", "CorporatePool.SessionCovered", "DeadLetter.Recorded",
        "EffectiveDated.Changed", "InvoiceSeries.Issued", "OutboundCommand.Issued",
        "ParkingLot.Parked", "ParkingLot.Released",
        "Refusal.Refused", "SessionRefunds.Refunded", "TariffPublication.Published",
        "Wallet.Opened",
    ]

"""Every stored event carries the business time of the message that caused it, also when one
batch holds many messages touching the same aggregates (ledger/domain/business_time.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger.application import Inbound
from ledger.domain.business_time import business_time_of
from ledger.domain.inbox import DeadLetter, ProcessedBatch, Refusal
from ledger.domain.session import ChargingSession
from ledger.domain.wallet import Wallet
from tests.builders import LedgerDriver, driver, location, session_events, tariff, tenant, top_up

MARCH_2 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
MARCH_10 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
MARCH_1 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def stored(d: LedgerDriver) -> list[Any]:
    notifications = d.ledger.recorder.select_notifications(start=1, limit=100_000)
    return [d.ledger.mapper.to_domain_event(n) for n in notifications]


def named(events: list[Any], cls: type, name: str) -> list[Any]:
    return [e for e in events if type(e) is getattr(cls, name)]


def test_one_batch_of_many_messages_stamps_each_event_with_its_own_message() -> None:
    d = LedgerDriver()
    d.apply(tenant(), tariff(), location("L1"), driver("w", "wallet"))
    first, late = top_up("w", "50.00", at=MARCH_2), top_up("w", "5.00", at=MARCH_1)
    session = session_events("tx1", "w", "25", start=MARCH_10)
    # The wallet is touched by the first top-up, the session's end and the late top-up.
    d.apply(first, *session, late)
    events = stored(d)

    credited = named(events, Wallet, "Credited")
    assert [business_time_of(e) for e in credited[-2:]] == [MARCH_2, MARCH_1]
    [debited] = named(events, Wallet, "Debited")
    [settled] = named(events, ChargingSession, "Settled")
    ended_at = session[-1].transaction.timestamp
    assert business_time_of(debited) == business_time_of(settled) == ended_at
    [opened] = named(events, ChargingSession, "Opened")
    assert business_time_of(opened) == MARCH_10
    readings = named(events, ChargingSession, "ReadingRecorded")
    assert [business_time_of(e) for e in readings] == [
        m.transaction.timestamp for m in session]
    # The batch's one record of its event ids spans messages: it has no business time.
    [processed] = named(events, ProcessedBatch, "Processed")[-1:]
    assert business_time_of(processed) is None
    assert [e[1] for e in processed.entries] == [
        m.event_id for m in (first, *session, late)]


def test_refusals_are_stamped_and_an_undecodable_message_has_no_business_time() -> None:
    d = LedgerDriver()
    d.apply(tenant(), driver("w", "wallet"))
    refused = top_up("w", "5.00", at=MARCH_1)
    again = refused.model_copy(update={"event_id": "another"})  # the same reference
    d.ledger.apply_batch([
        Inbound("kafka:wallets:0", 1, refused, raw="{}"),
        Inbound("kafka:wallets:0", 2, None, raw="garbage", error="not Avro"),
        Inbound("kafka:wallets:0", 3, again, raw="{}"),
    ])
    events = stored(d)
    [refusal] = named(events, Refusal, "Refused")
    assert business_time_of(refusal) == MARCH_1
    [dead] = named(events, DeadLetter, "Recorded")
    assert business_time_of(dead) is None, "no message, no business time: recording time"


def test_aggregates_rebuilt_from_stamped_events_do_not_see_the_stamp() -> None:
    d = LedgerDriver()
    d.apply(tenant(), driver("w", "wallet"), top_up("w", "50.00", at=MARCH_2))
    wallet_id = Wallet.create_id("t1", "w")
    version = d.get(Wallet, wallet_id).version
    # With a version the repository replays the stored events (no cache, no snapshot).
    wallet = d.ledger.repository.get(wallet_id, version=version)
    assert not hasattr(wallet, "business_time")
    assert str(wallet.balance) == "50.00"

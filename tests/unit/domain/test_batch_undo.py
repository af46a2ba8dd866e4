"""A message undone in place (Batch.undo_message) leaves the batch exactly as before it:
what it created is gone, what it changed is as the earlier messages left it."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from ledger.batch import Batch, StaleRead
from ledger.domain.inbox import processed_key
from ledger.domain.wallet import TopUpReference, Wallet
from ledger.held_aggregates import HeldAggregates


def _stored_wallet() -> Wallet:
    wallet = Wallet(tenant_id="t1", driver_id="d1", currency="EUR")
    wallet.credit(Decimal("5.00"), "bank_transfer", "r0", [])
    wallet.collect_events()  # as if written: nothing pending
    return wallet


def _read_stored(aggregate_id: UUID) -> Aggregate | None:
    """A fresh copy of the stored wallet, as a read from the store gives."""
    wallet = _stored_wallet()
    return wallet if aggregate_id == wallet.id else None


def _none_processed(keys: Sequence[UUID]) -> dict[UUID, str]:
    return {}


def test_undo_drops_what_the_message_created_and_keeps_earlier_messages_changes() -> None:
    stored = _stored_wallet()
    batch = Batch(_read_stored, _none_processed)
    wallet_id = Wallet.create_id("t1", "d1")

    batch.begin_message()  # message 1: credits 1.00
    first = batch.get(Wallet, wallet_id)
    assert first is not None
    first.credit(Decimal("1.00"), "bank_transfer", "r1", [])

    batch.begin_message()  # message 2: credits 2.00, takes a reference, then is refused
    again = batch.get(Wallet, wallet_id)
    assert again is first
    again.credit(Decimal("2.00"), "bank_transfer", "r2", [])
    batch.add(TopUpReference("t1", "r2", "d1"))
    batch.undo_message()

    wallet = batch.get(Wallet, wallet_id)
    assert wallet is not None
    assert wallet.balance == Decimal("6.00")
    assert [type(e).__name__ for e in wallet.pending_events] == ["Credited"]
    assert wallet.version == stored.version + 1
    assert [a.id for a in batch.aggregates()] == [wallet_id]


def test_an_aggregate_another_writer_changed_during_the_batch_cannot_be_rebuilt() -> None:
    stored = _stored_wallet()
    held = HeldAggregates(10)
    held.hold([stored])
    newer = _stored_wallet()
    newer.credit(Decimal("9.00"), "bank_transfer", "other", [])
    newer.collect_events()  # another process wrote it: the store is a version ahead

    def read(aggregate_id: UUID) -> Aggregate | None:
        return newer if aggregate_id == newer.id else None

    batch = Batch(read, _none_processed, held=held)
    batch.begin_message()  # message 1 takes the wallet from memory and credits it
    wallet = batch.get(Wallet, stored.id)
    assert wallet is stored  # taken from memory, not read
    assert batch.held_versions == {stored.id: stored.version}
    wallet.credit(Decimal("1.00"), "bank_transfer", "r1", [])
    batch.begin_message()  # message 2 credits it too, then is refused
    again = batch.get(Wallet, stored.id)
    assert again is wallet
    again.credit(Decimal("2.00"), "bank_transfer", "r2", [])
    with pytest.raises(StaleRead):
        batch.undo_message()


def test_what_the_refused_message_read_first_is_dropped_and_read_again() -> None:
    batch = Batch(_read_stored, _none_processed)
    wallet_id = Wallet.create_id("t1", "d1")
    batch.begin_message()
    wallet = batch.get(Wallet, wallet_id)
    assert wallet is not None
    wallet.credit(Decimal("2.00"), "bank_transfer", "r2", [])
    batch.undo_message()
    assert list(batch.aggregates()) == []
    again = batch.get(Wallet, wallet_id)
    assert again is not None and again is not wallet
    assert again.balance == Decimal("5.00") and not again.pending_events


def test_undo_forgets_the_event_ids_the_message_marked_and_a_batch_asks_the_store_once() -> None:
    asked: list[list[UUID]] = []

    def store_knows_e0(keys: Sequence[UUID]) -> dict[UUID, str]:
        asked.append(list(keys))
        return {k: "d0" for k in keys if k == processed_key("t1", "e0")}

    batch = Batch(_read_stored, store_knows_e0)
    batch.look_up_processed([processed_key("t1", "e0"), processed_key("t1", "e1")])
    batch.begin_message()
    batch.mark_processed("t1", "e1", "d1")
    batch.begin_message()
    batch.mark_processed("t1", "e2", "d2")
    batch.undo_message()

    assert batch.processed_digest("t1", "e0") == "d0"  # applied before the batch
    assert batch.processed_digest("t1", "e1") == "d1"  # by this batch
    assert len(asked) == 1, "both were asked in the batch's one query"
    assert batch.processed_digest("t1", "e2") is None  # undone: asked again, one key
    assert asked[1:] == [[processed_key("t1", "e2")]]
    processed = batch.processed_batch()
    assert processed is not None and processed.entries == [["t1", "e1", "d1"]]

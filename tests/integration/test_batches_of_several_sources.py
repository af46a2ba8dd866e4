"""One transaction for records of several sources (the consumer's event-time merge hands over
partitions interleaved): every source's position is recorded with the effects, or none is;
a resumed batch skips per source; a store that records one position per transaction gets a
transaction per run instead."""

from __future__ import annotations

from contextlib import closing
from decimal import Decimal
from typing import Any

import pytest

from consumers.store import open_ledger
from ledger.application import RECORDS_SEVERAL_SOURCES, Ledger
from ledger.batch import Inbound
from ledger.domain.wallet import Wallet
from ledger.messages import Envelope
from tests.builders import driver, tenant, top_up


def _items(*placed: tuple[str, int, Envelope]) -> list[Inbound]:
    return [Inbound(source, position, message, key=None, raw=message.event_id)
            for source, position, message in placed]


def _balance(ledger: Ledger, driver_id: str) -> Decimal:
    wallet: Any = ledger.repository.get(Wallet.create_id("t1", driver_id))
    return Decimal(wallet.balance)


def test_one_transaction_records_every_sources_position(store_url: str) -> None:
    with closing(open_ledger(store_url)) as ledger:
        assert getattr(ledger.recorder, RECORDS_SEVERAL_SOURCES)
        writes = 0
        record = ledger._record

        def counting(processing_event: Any) -> Any:
            nonlocal writes
            writes += 1
            return record(processing_event)

        ledger._record = counting  # type: ignore[method-assign]
        result = ledger.apply_batch(_items(
            ("config:0", 0, tenant()), ("config:0", 1, driver("d1", "wallet")),
            ("wallets:1", 7, top_up("d1", "5.00")), ("config:0", 2, driver("d2", "wallet")),
            ("wallets:2", 3, top_up("d2", "4.00")), ("wallets:1", 9, top_up("d1", "1.00")),
        ))
        assert result.applied == 6 and writes == 1
        # Each source's share, for the consumer's metrics per topic.
        assert {source: share.applied for source, share in result.by_source.items()} == {
            "config:0": 3, "wallets:1": 2, "wallets:2": 1}
        assert {s: ledger.position(s) for s in ("config:0", "wallets:1", "wallets:2")} == {
            "config:0": 2, "wallets:1": 9, "wallets:2": 3}
        assert _balance(ledger, "d1") == Decimal("6.00")

        # Resumed after a crash that lost the consumer's memory: what each source recorded
        # is skipped, the rest applied.
        again = ledger.apply_batch(_items(
            ("wallets:1", 9, top_up("d1", "1.00")), ("wallets:2", 4, top_up("d2", "2.00")),
        ))
        assert again.skipped_before_position == 1 and again.applied == 1
        assert again.of("wallets:1").skipped_before_position == 1
        assert again.of("wallets:2").applied == 1
        assert ledger.position("wallets:2") == 4
        assert _balance(ledger, "d2") == Decimal("6.00")


def test_a_failed_write_records_no_source(store_url: str) -> None:
    with closing(open_ledger(store_url)) as ledger:
        ledger.apply_batch(_items(("config:0", 0, tenant()),
                                  ("config:0", 1, driver("d1", "wallet"))))
        record = ledger._record

        def failing(processing_event: Any) -> Any:
            raise RuntimeError("the database went away mid-write")

        ledger._record = failing  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            ledger.apply_batch(_items(("wallets:0", 0, top_up("d1", "5.00")),
                                      ("config:0", 2, driver("d2", "wallet"))))
        ledger._record = record  # type: ignore[method-assign]
        assert ledger.position("wallets:0") is None and ledger.position("config:0") == 1


def test_a_store_of_one_position_per_transaction_gets_one_per_run() -> None:
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    assert not getattr(ledger.recorder, RECORDS_SEVERAL_SOURCES, False)
    result = ledger.apply_batch(_items(
        ("config:0", 0, tenant()), ("config:0", 1, driver("d1", "wallet")),
        ("wallets:1", 7, top_up("d1", "5.00")), ("config:0", 2, driver("d2", "wallet")),
    ))
    assert result.applied == 4
    assert ledger.position("config:0") == 2 and ledger.position("wallets:1") == 7

"""A ledger process keeps the aggregates it wrote between batches; another process writing
the same aggregates in between must never be overwritten or read stale (both stores)."""

from __future__ import annotations

from contextlib import closing
from decimal import Decimal

from consumers.store import open_ledger
from ledger.domain.wallet import Wallet
from ledger.messages import Envelope
from tests.builders import LedgerDriver, driver, location, tariff, tenant, top_up


def _driver(store_url: str, source: str) -> LedgerDriver:
    return LedgerDriver(open_ledger(store_url), source=source)


def _balance(store_url: str) -> Decimal:
    with closing(open_ledger(store_url)) as ledger:
        wallet = ledger.repository.get(Wallet.create_id("t1", "w1"))
        assert isinstance(wallet, Wallet)
        return wallet.balance


def test_a_wallet_another_process_credited_meanwhile_is_read_again_not_overwritten(
    store_url: str,
) -> None:
    first, second = _driver(store_url, "kafka:a:0"), _driver(store_url, "kafka:a:1")
    with closing(first.ledger), closing(second.ledger):
        first.apply(tenant(), tariff(), location(), driver("w1", "wallet"))
        first.apply(top_up("w1", "10.00"))  # the first process now holds the wallet
        assert second.apply(top_up("w1", "5.00")).applied == 1
        result = first.apply(top_up("w1", "1.00"))  # its held wallet is stale: re-read
        assert result.applied == 1
        assert second.apply(top_up("w1", "2.00")).applied == 1
    assert _balance(store_url) == Decimal("18.00")


def test_an_aggregate_held_absent_that_another_process_created_is_seen(store_url: str) -> None:
    first, second = _driver(store_url, "kafka:b:0"), _driver(store_url, "kafka:b:1")
    config: list[Envelope] = [tenant(), tariff(), location()]
    with closing(first.ledger), closing(second.ledger):
        first.apply(*config)
        # Unknown driver: the wallet is looked up, found absent and held as absent; the
        # top-up is parked until its driver arrives.
        assert first.apply(top_up("w1", "3.00")).parked == 1
        second.apply(driver("w1", "wallet"), top_up("w1", "4.00"))
        # The driver the other process configured is seen: this top-up applies, and the
        # parked one with it.
        first.apply(top_up("w1", "6.00"))
    assert _balance(store_url) == Decimal("13.00")

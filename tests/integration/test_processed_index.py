"""Applied event ids: one `ProcessedBatch` event per batch, indexed in the batch's transaction
(consumers/processed_index.py), on both stores; and the `ProcessedMessage` markers of stores
written before still make a redelivered message a duplicate or a conflict."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import closing
from decimal import Decimal
from uuid import UUID

from eventsourcing.utils import get_topic

from consumers.processed_index import processed_table_name
from consumers.store import open_ledger, processed_lookup
from ledger.application import Ledger
from ledger.domain.inbox import ProcessedBatch, ProcessedMessage, processed_key
from ledger.domain.wallet import Wallet
from tests.builders import LedgerDriver, driver, location, tariff, tenant, top_up


def _driver(store_url: str, source: str) -> LedgerDriver:
    return LedgerDriver(open_ledger(store_url), source=source)


def _balance(ledger: Ledger) -> Decimal:
    wallet = ledger.repository.get(Wallet.create_id("t1", "w1"))
    assert isinstance(wallet, Wallet)
    return wallet.balance


def _index(ledger: Ledger) -> dict[UUID, str]:
    """Every row of the index, read with the recorder's own connection."""
    table = processed_table_name(ledger.recorder.events_table_name)  # type: ignore[attr-defined]
    with ledger.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(f"SELECT processed_id, payload_digest FROM {table}")
        rows = [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in cursor.fetchall()]
    return {k if isinstance(k, UUID) else UUID(k): str(d) for k, d in rows}


def _batch_entries(ledger: Ledger) -> dict[UUID, str]:
    topic = get_topic(vars(ProcessedBatch)["Processed"])
    found: dict[UUID, str] = {}
    for n in ledger.recorder.select_notifications(start=1, limit=1_000_000, topics=[topic]):
        for tenant_id, event_id, digest in json.loads(n.state)["entries"]:
            found[processed_key(tenant_id, event_id)] = digest
    return found


def test_each_batch_stores_one_processed_event_and_the_index_holds_exactly_its_ids(
    store_url: str,
) -> None:
    d = _driver(store_url, "kafka:wallets:0")
    with closing(d.ledger):
        config = [tenant(), tariff(), location(), driver("w1", "wallet")]
        ups = [top_up("w1", "1.00"), top_up("w1", "2.00")]
        d.apply(*config)
        assert d.apply(*ups, ups[0]).duplicates == 1  # a copy within the batch
        assert d.apply(ups[1]).duplicates == 1  # and in a later one
        topic = get_topic(vars(ProcessedBatch)["Processed"])
        batches = d.ledger.recorder.select_notifications(start=1, limit=100, topics=[topic])
        assert len(batches) == 2, "one per batch that applied something; none for duplicates"
        marker_topic = get_topic(vars(ProcessedMessage)["Processed"])
        assert not d.ledger.recorder.select_notifications(
            start=1, limit=100, topics=[marker_topic])
        index = _index(d.ledger)
        assert index == _batch_entries(d.ledger)
        assert set(index) == {processed_key(m.tenant_id, m.event_id) for m in config + ups}
        assert index[processed_key("t1", ups[0].event_id)] == ups[0].payload_digest()
    with closing(open_ledger(store_url)) as fresh:  # a new process: from the store, not memory
        again = LedgerDriver(fresh, source="kafka:wallets:1")
        assert again.apply(*ups).duplicates == 2
        assert _balance(fresh) == Decimal("3.00")


def test_a_message_marked_under_the_old_scheme_is_a_duplicate_or_a_conflict_after_upgrade(
    store_url: str,
) -> None:
    d = _driver(store_url, "kafka:wallets:0")
    old, old_without_digest = top_up("w1", "5.00"), top_up("w1", "7.00")
    with closing(d.ledger):
        d.apply(tenant(), tariff(), location(), driver("w1", "wallet"))
        # What the ledger wrote per message before ProcessedBatch: a marker aggregate (the
        # oldest without a digest). Its effects are left out, so applying it would show.
        d.ledger.save(ProcessedMessage("t1", old.event_id, "kafka:old:0", old.payload_digest()))
        d.ledger.save(ProcessedMessage("t1", old_without_digest.event_id, "kafka:old:0"))
    changed = old.model_copy(update={"amount": Decimal("6.00")})
    with closing(open_ledger(store_url)) as upgraded:
        after = LedgerDriver(upgraded, source="kafka:wallets:1")
        assert after.apply(old, old_without_digest).duplicates == 2
        result = after.apply(changed)
        assert (result.conflicts, result.dead_lettered) == (1, 1)
        [letter] = after.dead_letters()
        assert old.payload_digest() in letter.reason
        assert changed.payload_digest() in letter.reason
        # A marker without a digest cannot tell another payload: a duplicate, as before.
        assert after.apply(old_without_digest.model_copy(
            update={"amount": Decimal("1.00")})).duplicates == 1
        assert Wallet.create_id("t1", "w1") not in upgraded.repository, "nothing credited"
        assert after.apply(top_up("w1", "4.00")).applied == 1  # new ids still apply
        assert _balance(upgraded) == Decimal("4.00")


def _stale_once(lookup: Callable[[Sequence[UUID]], dict[UUID, str]],
                ) -> Callable[[Sequence[UUID]], dict[UUID, str]]:
    """The index as read just before another writer committed the same event id."""
    calls = iter([False])

    def stale(keys: Sequence[UUID]) -> dict[UUID, str]:
        return {} if next(calls, True) is False else lookup(keys)

    return stale


def test_two_writers_applying_one_event_id_at_once_apply_it_once(store_url: str) -> None:
    first, second = _driver(store_url, "kafka:wallets:0"), _driver(store_url, "kafka:wallets:1")
    redelivered = top_up("w1", "5.00")
    with closing(first.ledger), closing(second.ledger):
        first.apply(tenant(), tariff(), location(), driver("w1", "wallet"))
        assert first.apply(redelivered).applied == 1
        index = processed_lookup(second.ledger)
        assert index is not None
        second.ledger.use_processed_index(_stale_once(index))
        # The second writer misses the first's commit: its insert of the same id into the
        # index violates the key, the batch rolls back and is applied again: a duplicate.
        result = second.apply(redelivered)
        assert (result.applied, result.duplicates) == (0, 1)
        assert second.ledger.batches_retried == 1
        assert _balance(second.ledger) == Decimal("5.00")
        assert _index(second.ledger) == _batch_entries(second.ledger)

"""The batch protocol: exactly-once effect, dead letters, refusals that change nothing."""

from decimal import Decimal
from pathlib import Path

from ledger.application import Inbound
from ledger.domain.wallet import Wallet
from tests.builders import LedgerDriver, driver, location, tariff, tenant, top_up


def configured() -> LedgerDriver:
    d = LedgerDriver()
    d.apply(tenant(), tariff(), location(), driver("w1", "wallet"),
            driver("w2", "wallet", token=None))
    return d


def test_a_bank_transfer_credits_the_wallet_with_a_balanced_entry() -> None:
    d = configured()
    d.apply(top_up("w1", "20.00"))
    wallet = d.get(Wallet, Wallet.create_id("t1", "w1"))
    assert wallet.balance == Decimal("20.00")
    assert d.balance("wallet:w1") == Decimal("-20.00")  # a liability: credit balance
    assert sum(p.amount for e in d.journal() for p in e.postings) == 0


def test_a_batch_applied_again_at_the_same_position_changes_nothing() -> None:
    d = configured()
    message = top_up("w1", "20.00")
    items = [Inbound("file:x", 10, message, raw="{}")]
    first = d.ledger.apply_batch(items)
    again = d.ledger.apply_batch(items)
    assert first.applied == 1
    assert again.skipped_before_position == 1
    assert d.get(Wallet, Wallet.create_id("t1", "w1")).balance == Decimal("20.00")


def test_a_republished_event_at_a_new_offset_is_a_duplicate() -> None:
    d = configured()
    message = top_up("w1", "20.00")
    d.apply(message)
    result = d.apply(message)
    assert result.duplicates == 1
    assert d.get(Wallet, Wallet.create_id("t1", "w1")).balance == Decimal("20.00")


def test_an_undecodable_message_is_dead_lettered_with_its_reason_and_the_batch_goes_on() -> None:
    d = configured()
    items = [
        Inbound("kafka:wallets:0", 5, None, raw="garbage", error="not Avro: bad header"),
        Inbound("kafka:wallets:0", 6, top_up("w1", "5.00"), raw="{}"),
    ]
    result = d.ledger.apply_batch(items)
    assert (result.dead_lettered, result.applied) == (1, 1)
    [letter] = d.dead_letters()
    assert letter.reason == "not Avro: bad header"
    assert (letter.source, letter.position, letter.payload) == ("kafka:wallets:0", "5", "garbage")
    assert d.ledger.position("kafka:wallets:0") == 6


def test_an_event_of_an_unknown_tenant_is_dead_lettered_and_moves_no_money() -> None:
    d = configured()
    result = d.apply(top_up("w1", "20.00", tenant_id="other-cpo"))
    assert result.parked == 1, "its TenantConfigured may still come"
    assert d.give_up_waiting().dead_lettered == 1
    assert "unknown tenant" in d.dead_letters()[0].reason
    assert d.journal() == []


def test_a_refused_top_up_leaves_a_reason_and_the_rest_of_the_batch_applies() -> None:
    d = configured()
    result = d.apply(top_up("w1", "7.00"), top_up("w2", "10.00", method="card"),
                     top_up("w1", "3.00"))
    assert (result.applied, result.refused) == (2, 1)
    [refusal] = d.refusals()
    assert "no card on file" in refusal.reason
    assert d.get(Wallet, Wallet.create_id("t1", "w1")).balance == Decimal("10.00")
    assert d.commands() == []


def test_configuration_of_an_unknown_tenant_is_dead_lettered() -> None:
    d = LedgerDriver()
    d.apply(location())
    d.give_up_waiting()
    assert "unknown tenant" in d.dead_letters()[0].reason


def test_a_republished_event_is_a_duplicate_on_a_real_store_too(tmp_path: Path) -> None:
    # On SQLite and PostgreSQL the duplicate check asks the store once per batch.
    from consumers.store import open_ledger

    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        d = LedgerDriver(ledger, source="file:a")
        d.apply(tenant(), tariff(), location(), driver("w1", "wallet"))
        message = top_up("w1", "20.00")
        d.apply(message)
        again = LedgerDriver(ledger, source="file:b")  # same event, another file
        result = again.apply(message, top_up("w1", "1.00"))
        assert (result.duplicates, result.applied) == (1, 1)
        assert d.get(Wallet, Wallet.create_id("t1", "w1")).balance == Decimal("21.00")
    finally:
        ledger.close()

"""A dead letter whose cause is fixed can be redriven: it applies once, and only once."""

import base64
from decimal import Decimal
from pathlib import Path

import pytest

from consumers.avro_codec import encode
from consumers.cli import main
from consumers.commands.ingest import DEAD_LETTERED_EXIT_CODE
from consumers.event_file import write_event_file
from consumers.store import open_ledger
from ledger.application import Inbound
from ledger.domain.wallet import Wallet
from tests.builders import LedgerDriver, driver, location, tariff, tenant, top_up


def wallet_balance(store: str, driver_id: str) -> Decimal:
    ledger = open_ledger(store)
    try:
        wallet: Wallet = ledger.repository.get(Wallet.create_id("t1", driver_id))
        return wallet.balance
    finally:
        ledger.close()


def test_a_top_up_that_came_before_its_driver_applies_once_redriven(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    early = tmp_path / "early.jsonl"
    write_event_file(early, [tenant(), tariff(), location(), top_up("w1", "20.00")])
    # The top-up is dead-lettered (no driver yet): ingest says so with its exit code.
    assert main(["ingest", "--events", str(early), "--store", store]) == DEAD_LETTERED_EXIT_CODE
    assert main(["dead-letters", "list", "--store", store]) == 0
    listed = capsys.readouterr().out
    assert "file:early.jsonl@4" in listed and "unknown driver 'w1'" in listed

    late = tmp_path / "late.jsonl"
    write_event_file(late, [driver("w1", "wallet")])
    assert main(["ingest", "--events", str(late), "--store", store]) == 0
    assert main(["dead-letters", "redrive", "--all", "--store", store]) == 0
    assert "file:early.jsonl@4: applied" in capsys.readouterr().out
    assert wallet_balance(store, "w1") == Decimal("20.00")

    assert main(["dead-letters", "redrive", "--all", "--store", store]) == 0
    assert wallet_balance(store, "w1") == Decimal("20.00"), "never twice"
    assert main(["dead-letters", "redrive", "--id", "file:early.jsonl@4",
                 "--store", store]) == 0
    assert wallet_balance(store, "w1") == Decimal("20.00"), "never twice, even asked by id"


def test_a_kafka_dead_letter_is_decoded_from_its_bytes(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(store)
    try:
        d = LedgerDriver(ledger)
        d.apply(tenant(), tariff(), location())
        early = top_up("w2", "5.00")
        raw = "base64:" + base64.b64encode(encode(early)).decode()
        ledger.apply_batch([Inbound("kafka:wallets:1", 7, early, raw=raw,
                                    type_name="WalletTopUpRequested")])
        d.give_up_waiting()  # its driver came too late for parking: a dead letter
        d.apply(driver("w2", "wallet"))
    finally:
        ledger.close()
    assert main(["dead-letters", "redrive", "--id", "kafka:wallets:1@7", "--store", store]) == 0
    assert "kafka:wallets:1@7: applied" in capsys.readouterr().out
    assert wallet_balance(store, "w2") == Decimal("5.00")


def test_redriving_an_unknown_dead_letter_is_an_error(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    open_ledger(store).close()  # a store without that dead letter (a missing store: no store)
    assert main(["dead-letters", "redrive", "--id", "nope@1", "--store", store]) == 2
    assert "no dead letter nope@1" in capsys.readouterr().err

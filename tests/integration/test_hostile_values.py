"""No poison pill through the real stores: hostile lines are dead-lettered, values that got
past the edge never stop the read models, and `ledger report` goes on (issue 10, 1 and 7)."""

from __future__ import annotations

import json
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consumers.commands.ingest import DEAD_LETTERED_EXIT_CODE
from consumers.event_file import write_event_file
from consumers.store import open_ledger
from ledger.domain.inbox import DeadLetter
from projections.database import open_read_model
from projections.inbox import UNPROJECTABLE_SOURCE
from projections.report import build_report
from projections.runner import catch_up, ensure_schema
from tests.builders import LedgerDriver, driver, location, tariff, tenant, top_up
from tests.integration.test_ingest import STORE_KINDS, ledger_cli, report_json, store_for

pytestmark = pytest.mark.integration


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_for(str(request.param), "store.db", tmp_path, request, "fresh_database")


def line(event: dict[str, Any], key: str = "t1:w1", type_name: str = "WalletTopUpRequested"
         ) -> str:
    # json.dumps writes NUL as \u0000: valid JSON, a NUL once parsed.
    return json.dumps({"topic": "wallets", "key": key, "type": type_name, "event": event})


def top_up_event(**changes: Any) -> dict[str, Any]:
    return json.loads(top_up("w1", "5.00").model_dump_json()) | changes


def test_hostile_lines_are_dead_lettered_and_ingest_report_and_projection_go_on(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "hostile.jsonl"
    write_event_file(events, [
        tenant(), tariff(), location(), driver("w1", "wallet"),
        line(top_up_event(amount="1" + "0" * 30)),
        line(top_up_event(amount="1" + "0" * 20)),
        line(top_up_event(reference="ref\x00")),
        line(top_up_event(tenant_id="t1\x00")),
        line(top_up_event(), key="t1:\x00w1", type_name="WalletTopUp\x00Requested"),
        line(top_up_event(event_id="healthy-1")),
    ])

    code, _out, err = ledger_cli(capsys, "ingest", "--events", str(events), "--store", store_url)

    assert code == DEAD_LETTERED_EXIT_CODE, err
    assert "applied 5, duplicates 0, dead-lettered 5" in err
    report = json.loads(report_json(capsys, store_url))
    assert [w["balance"] for w in report["wallets"]] == ["5.00"]
    dead = report["dead_letters"]
    assert dead["count"] == 5
    assert "\x00" not in json.dumps(dead)
    assert any(d["key"] == "t1:\\u0000w1" for d in dead["items"])
    assert any(d["type"] == "WalletTopUp\\u0000Requested" for d in dead["items"])
    assert report["journal"]["sum_of_postings"] == "0.00"


def test_values_that_got_past_the_edge_never_stop_the_read_models(store_url: str) -> None:
    with closing(open_ledger(store_url)) as ledger:
        d = LedgerDriver(ledger)
        d.apply(tenant(), tariff(), location(), driver("w1", "wallet"))
        # Built without validation, as a store written before the edge checked would hold:
        # 10^20 EUR is 10^22 cents, beyond a BIGINT; a NUL in a reference and a key.
        huge = top_up("w1", "1.00").model_copy(update={"amount": Decimal(10**20)})
        nul = top_up("w1", "1.00").model_copy(update={"reference": "ref\x00"})
        result = d.apply(huge, nul, top_up("w1", "5.00"))
        assert result.applied == 3
        with closing(open_read_model(ledger)) as db:
            ensure_schema(db)
            applied = catch_up(ledger, db)
            report = build_report(db)

    assert applied > 0
    unprojectable = [item for item in report["dead_letters"]["items"]
                     if item["source"] == UNPROJECTABLE_SOURCE]
    assert len(unprojectable) == 1, report["dead_letters"]
    assert "BIGINT" in unprojectable[0]["reason"]
    # The entry that could not be held is left out whole: the journal still balances.
    assert report["journal"]["sum_of_postings"] == "0.00"
    assert "\x00" not in json.dumps(report)


def test_a_dead_letter_with_a_nul_in_every_text_is_projected_escaped(store_url: str) -> None:
    with closing(open_ledger(store_url)) as ledger:
        # As an older ledger stored it, before dead letters were made storable.
        letter = DeadLetter(source="kafka:wallets:0", position="7", tenant_id="t\x00",
                            event_id="e\x00", type_name="T\x00", key="k\x00",
                            reason="r\x00", payload="p\x00", received_at=None)
        ledger.save(letter)
        with closing(open_read_model(ledger)) as db:
            ensure_schema(db)
            catch_up(ledger, db)
            [item] = build_report(db)["dead_letters"]["items"]
    assert (item["key"], item["type"], item["reason"]) == ("k\\u0000", "T\\u0000", "r\\u0000")


@pytest.mark.parametrize("command", [
    ["report", "--json"], ["dead-letters", "list"],
    ["receipt", "--tenant", "t1", "--terminal-reference", "x"],
])
def test_a_read_only_command_on_a_missing_store_creates_nothing_and_fails(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"

    code, out, err = ledger_cli(capsys, *command, "--store", store)

    assert code != 0
    assert "no store at" in err and out == ""
    assert not (tmp_path / "no").exists()

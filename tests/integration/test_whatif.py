"""`ledger audit whatif` (issue 9 item 4) on SQLite and PostgreSQL: a past period re-billed
under a new tariff in scratch stores, the differences computed by hand below, and the real
store unchanged (its report byte-identical, its events and, on SQLite, its file's bytes).

Tariff 0.40 EUR/kWh excl. VAT, 19 % VAT; proposed 0.50. 25 kWh: 11.90 -> 12.50 + 2.38 (2.375
rounded half up) = 14.88; 10 kWh: 4.76 -> 5.00 + 0.95 = 5.95. Partner P1: monthly pool 20.00,
driver c enrolled (own model post-paid). The period is March 2026 in Berlin: 28 February
23:00 UTC .. 31 March 21:59:59.999999 UTC.
  tx0 w 25 kWh, 20 February                    before the period: not compared
  tx5 post 25 kWh, 28 Feb 22:30-23:30 UTC      started before the period, ended in it: the
                                               new tariff does not reprice it (11.90 both)
  tx1 w 25 kWh, 10 March (wallet)              11.90 -> 14.88   +2.98
  tx2 post 10 kWh, 15 March (card)              4.76 ->  5.95   +1.19
  tx3 c 25 kWh, 20 March: partner pays all     11.90 -> 14.88   (partner +2.98)
  tx4 c 25 kWh, 25 March: the pool has 8.10 left (5.12 under the new tariff): partner 8.10
      and c 3.80 -> partner 5.12 and c 9.76
Per billing model: wallet 11.90 -> 14.88 (+2.98); post_paid (tx2, tx5) 16.66 -> 17.85
(+1.19); corporate (tx3, tx4) 23.80 -> 29.76 (+5.96). Per driver (own shares): w +2.98,
post +1.19, c 3.80 -> 9.76 (+5.96). Per partner: P1 20.00 -> 20.00 (the cap holds).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consumers.event_file import read_event_file, write_event_file
from consumers.store import open_ledger
from ledger.messages import EnrolmentChanged, PartnerConfigured
from tests.builders import (
    ENERGY_TARIFF,
    driver,
    envelope,
    location,
    session_events,
    tariff,
    tenant,
    top_up,
)
from tests.integration.test_ingest import ingest, ledger_cli, report_json

pytestmark = pytest.mark.integration
CONFIGURED_AT = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def write_history(path: Path) -> None:
    write_event_file(path, [
        tenant(time_zone="Europe/Berlin"), tariff(), location("L1"),
        driver("w", "wallet"), driver("post", "post_paid"), driver("c", "post_paid"),
        PartnerConfigured(**envelope("t1", CONFIGURED_AT), effective_at=CONFIGURED_AT,
                          partner_id="P1", billing_period="monthly",
                          pool_limit=Decimal("20.00")),
        EnrolmentChanged(**envelope("t1", CONFIGURED_AT), effective_at=CONFIGURED_AT,
                         partner_id="P1", driver_id="c", action="enrol"),
        top_up("w", "100.00", at=at(2, 1, 8)),
        *session_events("tx0", "w", "25", start=at(2, 20, 10)),
        *session_events("tx5", "post", "25", start=at(2, 28, 22, 30)),
        *session_events("tx1", "w", "25", start=at(3, 10, 10)),
        *session_events("tx2", "post", "10", start=at(3, 15, 10)),
        *session_events("tx3", "c", "25", start=at(3, 20, 10)),
        *session_events("tx4", "c", "25", start=at(3, 25, 10)),
    ])


def write_proposal(path: Path, price: float) -> None:
    body = {**ENERGY_TARIFF, "elements": [{"price_components": [
        {"type": "ENERGY", "price": price, "vat": 19.0, "step_size": 1}]}]}
    write_event_file(path, [tariff(body=body)])


def fingerprint(store_url: str, tmp_path: Path) -> tuple[int, str]:
    """The events' count, and the SQLite file's bytes (or the events' ids and states)."""
    if store_url.startswith("sqlite:"):
        data = Path(store_url.removeprefix("sqlite:///")).read_bytes()
        with closing(open_ledger(store_url, create=False)) as ledger:
            return ledger.recorder.max_notification_id() or 0, hashlib.sha256(data).hexdigest()
    with closing(open_ledger(store_url, create=False)) as ledger:
        records = ledger.recorder.select_notifications(0, limit=1_000_000)
        digest = hashlib.sha256(b"".join(r.id.to_bytes(8, "big") + r.state for r in records))
        return len(records), digest.hexdigest()


def whatif(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return ledger_cli(capsys, "audit", "whatif", *args)


def rows(document: dict[str, Any], name: str) -> dict[str, tuple[str, str, str]]:
    key = {"by_billing_model": "billing_model", "by_driver": "driver_id",
           "by_partner": "partner_id"}[name]
    return {r[key]: (r["before"], r["after"], r["difference"]) for r in document[name]}


def test_a_new_tariff_changes_the_periods_bills_as_computed_by_hand_and_not_the_store(
    capsys: pytest.CaptureFixture[str], store_url: str, tmp_path: Path,
) -> None:
    history, proposal = tmp_path / "history.jsonl", tmp_path / "tariff.jsonl"
    write_history(history)
    write_proposal(proposal, 0.50)
    ingest(capsys, history, store_url, exit_code=0)
    report_before = report_json(capsys, store_url)
    store_before = fingerprint(store_url, tmp_path)

    args = ("--store", store_url, "--events", str(history), "--from", "2026-03-01",
            "--to", "2026-03-31", "--config", str(proposal))
    code, out, err = whatif(capsys, *args, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["period"]["tenants"] == {"t1": {
        "start": "2026-02-28T23:00:00Z", "until": "2026-03-31T21:59:59.999999Z"}}
    assert document["sessions"] == {"before": 5, "after": 5, "changed": 4,
                                    "in_one_run_only": 0}
    assert document["changed_sessions"] == ["t1/tx1", "t1/tx2", "t1/tx3", "t1/tx4"]
    assert rows(document, "by_billing_model") == {
        "corporate": ("23.80", "29.76", "5.96"),
        "post_paid": ("16.66", "17.85", "1.19"),
        "wallet": ("11.90", "14.88", "2.98"),
    }
    assert rows(document, "by_driver") == {
        "c": ("3.80", "9.76", "5.96"), "post": ("16.66", "17.85", "1.19"),
        "w": ("11.90", "14.88", "2.98"),
    }
    assert rows(document, "by_partner") == {"P1": ("20.00", "20.00", "0.00")}

    code, text, err = whatif(capsys, *args)
    assert code == 0, err
    assert "per partner: 0 of 1 changed" in text
    assert text.splitlines()[-1].startswith("VERDICT: CHANGED: 4 of 5 sessions")

    assert fingerprint(store_url, tmp_path) == store_before
    assert report_json(capsys, store_url) == report_before


def test_the_same_tariff_again_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    history, proposal = tmp_path / "history.jsonl", tmp_path / "tariff.jsonl"
    write_history(history)
    write_proposal(proposal, 0.40)
    ingest(capsys, history, store_url, exit_code=0)
    code, out, err = whatif(capsys, "--store", store_url, "--events", str(history),
                            "--from", "2026-03-01", "--to", "2026-03-31",
                            "--config", str(proposal))
    assert code == 0, err
    assert out.splitlines()[-1].startswith("VERDICT: UNCHANGED: 0 of 5 sessions")


def test_a_simulated_day_with_faults_republished_tariff_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """A demo-like store (two tenants, dead letters, duplicates): the event file is checked
    to be the store's history, and a tariff published again as it was changes no bill."""
    events, proposal = tmp_path / "day.jsonl", tmp_path / "same.jsonl"
    code, _out, err = ledger_cli(capsys, "simulate", "--sessions", "30", "--seed", "3",
                                 "--tenants", "2", "--faults", "--out", str(events))
    assert code == 0, err
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    ingest(capsys, events, store_url)
    first_tariff = next(line for line in read_event_file(events)
                        if line.type_name == "TariffPublished" and line.error is None)
    again = {**json.loads(first_tariff.raw)}
    again["event"] = {**again["event"], "event_id": "whatif-same-tariff"}
    write_event_file(proposal, [json.dumps(again)])
    days = sorted(line.payload["occurred_at"][:10] for line in read_event_file(events)
                  if line.error is None and "occurred_at" in line.payload)
    code, out, err = whatif(capsys, "--store", store_url, "--events", str(events),
                            "--from", days[0], "--to", days[-1], "--config", str(proposal))
    assert code == 0, err
    assert "VERDICT: UNCHANGED: 0 of " in out.splitlines()[-1]
    assert " 0 of 0 sessions" not in out, "the period holds the day's sessions"


def test_an_event_file_of_another_store_or_a_bad_proposal_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    history, other = tmp_path / "history.jsonl", tmp_path / "other.jsonl"
    proposal, not_config = tmp_path / "tariff.jsonl", tmp_path / "top-up.jsonl"
    write_history(history)
    ingest(capsys, history, store_url, exit_code=0)
    write_event_file(other, [tenant(time_zone="Europe/Berlin"), tariff(), location("L1")])
    write_proposal(proposal, 0.50)
    write_event_file(not_config, [top_up("w", "1.00")])
    common = ("--store", store_url, "--from", "2026-03-01", "--to", "2026-03-31")
    code, _out, err = whatif(capsys, *common, "--events", str(other), "--config", str(proposal))
    assert code == 2 and "is not the history of the store" in err
    code, _out, err = whatif(capsys, *common, "--events", str(history),
                             "--config", str(not_config))
    assert code == 2 and "is not configuration" in err
    code, _out, err = whatif(capsys, "--store", store_url, "--from", "2026-03-31",
                             "--to", "2026-03-01", "--events", str(history),
                             "--config", str(proposal))
    assert code == 2 and "is after" in err

"""`ledger ingest` then `ledger report --json`, on SQLite and on a real PostgreSQL.

Every test body runs against both stores (`store_url` is parametrized). The event file is
built here from the wire models: configuration first (tenant, OCPI tariff, locations one of
them open access, drivers), wallet top-ups, then sessions as OCPP TransactionEvents, each
post-paid session followed by the PSP's answer to the charge the ledger asked for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from consumers.cli import main
from consumers.commands.ingest import DEAD_LETTERED_EXIT_CODE
from consumers.event_file import write_event_file
from consumers.scratch_database import scratch_database
from consumers.store import open_ledger
from ledger.domain.ids import command_id
from ledger.domain.money import round_to_minor_unit
from ledger.limits import BATCH_MESSAGES_MAX
from ledger.messages import Envelope, PaymentResult
from tests.builders import (
    T0,
    driver,
    envelope,
    location,
    session_events,
    tariff,
    tenant,
    top_up,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# The builders' tariff: 0.40 EUR/kWh excl. VAT, 19 % VAT.
PRICE_PER_KWH_NET = Decimal("0.40")
VAT_FACTOR = Decimal("1.19")
DRIVERS_PER_TENANT = 6
# A subprocess ingest of a few thousand lines takes seconds; these bound a hang.
INGEST_DEADLINE_S = 300
KILL_POLL_INTERVAL_S = 0.005
# The installed `ledger` script, from this checkout: `python -m consumers.cli` would load the
# CLI twice (as __main__ and as consumers.cli), and its CliError would escape as a traceback.
LEDGER_COMMAND = (
    sys.executable, "-c", "import sys; from consumers.cli import main; sys.exit(main())",
)
MALFORMED_LINE = '{"topic": "config", "type": "TenantConfigured", "event": '


# ---------------------------------------------------------------------------- stores
@pytest.fixture
def another_database(database_url: str) -> Iterator[str]:
    """A second empty PostgreSQL database, for a clean pass beside the one under test."""
    with scratch_database(database_url, "t_") as url:
        yield url


def store_for(kind: str, name: str, tmp_path: Path, request: pytest.FixtureRequest,
              postgres_fixture: str) -> str:
    """A store URL of `kind`: an SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / name}"
    return str(request.getfixturevalue(postgres_fixture))


STORE_KINDS = ("sqlite", "postgresql")


@pytest.fixture
def clean_store_url(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second store of the same kind, for the reference single pass."""
    return store_for(store_kind, "clean.db", tmp_path, request, "another_database")


# ---------------------------------------------------------------------------- event files
def _charge_answer(tenant_id: str, transaction_id: str, kwh: int, at_minutes: int) -> Envelope:
    gross = round_to_minor_unit(PRICE_PER_KWH_NET * kwh * VAT_FACTOR, "EUR")
    return PaymentResult(
        **envelope(tenant_id, T0 + timedelta(minutes=at_minutes)),
        request_id=command_id(tenant_id, "charge", "session", transaction_id, "1"),
        outcome="charge_succeeded", amount=gross, currency="EUR",
        psp_reference=f"psp-{transaction_id}",
    )


def day_messages(sessions_per_tenant: int, tenants: tuple[str, ...] = ("t1", "t2")) -> list[
    Envelope
]:
    """Configuration, top-ups, then sessions round-robin over the drivers of each tenant."""
    messages: list[Envelope] = []
    for tenant_id in tenants:
        messages += [
            tenant(tenant_id), tariff(tenant_id=tenant_id), location("L1", tenant_id=tenant_id),
            location("L2", tenant_id=tenant_id, open_access=True),
        ]
        for n in range(DRIVERS_PER_TENANT):
            model = "wallet" if n % 2 else "post_paid"
            messages.append(driver(f"{tenant_id}-d{n}", model, tenant_id=tenant_id))
            if model == "wallet":
                messages.append(top_up(f"{tenant_id}-d{n}", "500.00", tenant_id=tenant_id))
    for i in range(sessions_per_tenant):
        for tenant_id in tenants:
            n = i % DRIVERS_PER_TENANT
            driver_id = f"{tenant_id}-d{n}"
            transaction_id = f"{tenant_id}-tx{i:05d}"
            kwh = 1 + i % 9
            open_access = i % 7 == 3
            messages += session_events(
                transaction_id, driver_id, str(kwh), minutes=30,
                start=T0 + timedelta(minutes=i), tenant_id=tenant_id,
                location_id="L2" if open_access else "L1",
            )
            if n % 2 == 0 and not open_access:
                messages.append(_charge_answer(tenant_id, transaction_id, kwh, i + 31))
    return messages


def write_day_file(path: Path, sessions_per_tenant: int, bad_lines: int = 1) -> int:
    """The day's event file, with `bad_lines` malformed lines after the configuration."""
    messages = day_messages(sessions_per_tenant)
    lines: list[Envelope | str] = [*messages[:8], *[MALFORMED_LINE] * bad_lines, *messages[8:]]
    return write_event_file(path, lines)


# ---------------------------------------------------------------------------- the CLI
def ledger_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def report_json(capsys: pytest.CaptureFixture[str], store: str) -> str:
    code, out, err = ledger_cli(capsys, "report", "--store", store, "--json")
    assert code == 0, err
    return out


def ingest(capsys: pytest.CaptureFixture[str], events: Path, store: str,
           exit_code: int | None = None) -> str:
    """`ledger ingest`; exits 0, or DEAD_LETTERED_EXIT_CODE when a line was dead-lettered
    (the day files carry malformed lines): `exit_code` pins which one is expected."""
    code, _out, err = ledger_cli(capsys, "ingest", "--events", str(events), "--store", store)
    expected = {0, DEAD_LETTERED_EXIT_CODE} if exit_code is None else {exit_code}
    assert code in expected, err
    assert (code == DEAD_LETTERED_EXIT_CODE) == (" dead-lettered 0," not in err), err
    return err


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = "error"
    return env


# ---------------------------------------------------------------------------- tests
def test_ingesting_the_same_file_twice_gives_a_byte_identical_report(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "day.jsonl"
    write_day_file(events, sessions_per_tenant=12)

    first_summary = ingest(capsys, events, store_url)
    first = report_json(capsys, store_url)
    second_summary = ingest(capsys, events, store_url)
    second = report_json(capsys, store_url)

    assert second == first
    assert "dead-lettered 1," in first_summary
    assert "applied 0," in second_summary and "dead-lettered 0," in second_summary
    assert '"billing_model": "post_paid"' in first
    assert '"billing_model": "wallet"' in first
    assert '"billing_model": "open_access"' in first


def test_an_ingest_killed_part_way_then_resumed_reports_the_same_as_one_clean_pass(
    tmp_path: Path, store_url: str, clean_store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "day.jsonl"
    lines = write_day_file(events, sessions_per_tenant=330)
    assert lines > 4 * BATCH_MESSAGES_MAX
    source = "file:day.jsonl"

    process = subprocess.Popen(
        [*LEDGER_COMMAND, "ingest", "--events", str(events),
         "--store", store_url],
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    with closing(open_ledger(store_url)) as ledger:
        deadline = time.monotonic() + INGEST_DEADLINE_S
        position: int | None = None
        while time.monotonic() < deadline and process.poll() is None:
            position = ledger.position(source)
            if position is not None:
                break  # the first batch has committed: kill mid-file
            time.sleep(KILL_POLL_INTERVAL_S)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=INGEST_DEADLINE_S)
        killed_at = ledger.position(source)
    assert process.returncode == -signal.SIGKILL, "the ingest finished before it was killed"
    assert killed_at is not None and killed_at < lines

    resumed_summary = ingest(capsys, events, store_url)
    ingest(capsys, events, clean_store_url)

    assert f"already ingested {killed_at}" in resumed_summary
    assert report_json(capsys, store_url) == report_json(capsys, clean_store_url)


def test_a_malformed_line_is_dead_lettered_with_its_reason(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "day.jsonl"
    write_day_file(events, sessions_per_tenant=2, bad_lines=1)
    bad_type = '{"topic":"config","key":"k","type":"NoSuchEvent","event":{}}'
    with events.open("a", encoding="utf-8") as file:
        file.write(bad_type + "\n")

    ingest(capsys, events, store_url)
    report = report_json(capsys, store_url)

    assert '"count": 2' in report
    assert '"position": "9"' in report
    assert '"reason": "line is not JSON: ' in report
    assert "\"reason\": \"unknown message type 'NoSuchEvent'\"" in report
    assert '"source": "file:day.jsonl"' in report


def test_the_journal_balances_and_every_session_is_charged_its_total(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    events = tmp_path / "day.jsonl"
    write_day_file(events, sessions_per_tenant=14)

    ingest(capsys, events, store_url)
    report = json.loads(report_json(capsys, store_url))

    assert report["journal"]["sum_of_postings"] == "0.00"
    assert report["journal"]["entries"] > 0
    assert report["journal"]["unbalanced_entries"] == []
    assert len(report["sessions"]) == 28
    for session in report["sessions"]:
        paid = sum((Decimal(p["amount_incl_vat"]) for p in session["charged_to"]), Decimal(0))
        assert paid == Decimal(session["total_incl_vat"]), session["session_id"]
    balances = {(w["tenant_id"], w["driver_id"]): Decimal(w["balance"])
                for w in report["wallets"]}
    assert balances[("t1", "t1-d1")] < Decimal("500.00")


def test_a_missing_file_or_a_bad_store_url_is_an_error_that_changes_nothing(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "day.jsonl"
    write_day_file(events, sessions_per_tenant=1)

    missing_code, _, missing_err = ledger_cli(
        capsys, "ingest", "--events", str(tmp_path / "nope.jsonl"), "--store", store_url)
    bad_url_code, _, bad_url_err = ledger_cli(
        capsys, "ingest", "--events", str(events), "--store", "mysql://x/y")

    assert missing_code != 0 and "does not exist" in missing_err
    assert bad_url_code != 0 and "unsupported store URL" in bad_url_err
    if store_url.startswith("sqlite:///"):
        # Nothing written, not even an empty store: the report says there is none.
        assert not Path(store_url[len("sqlite:///"):]).exists()
        code, _out, err = ledger_cli(capsys, "report", "--json", "--store", store_url)
        assert code != 0 and "no store at" in err
        return
    assert '"sessions": []' in report_json(capsys, store_url)
    assert '"entries": 0' in report_json(capsys, store_url)


def test_a_simulated_day_ingested_twice_reports_the_same_and_every_session_is_paid(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    events = tmp_path / "simulated.jsonl"
    code, _out, err = ledger_cli(capsys, "simulate", "--sessions", "60", "--seed", "11",
                                 "--out", str(events))
    assert code == 0, err

    ingest(capsys, events, store_url)
    first = report_json(capsys, store_url)
    ingest(capsys, events, store_url)

    assert report_json(capsys, store_url) == first
    report = json.loads(first)
    assert report["journal"]["sum_of_postings"] == "0.00"
    assert len(report["sessions"]) + report["sessions_open"] == 60
    assert len({s["billing_model"] for s in report["sessions"]}) >= 4
    for session in report["sessions"]:
        paid = sum((Decimal(p["amount_incl_vat"]) for p in session["charged_to"]), Decimal(0))
        assert paid == Decimal(session["total_incl_vat"]), session["session_id"]

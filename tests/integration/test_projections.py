"""The projection runner against real stores: rebuilds, the long-running projector, as-of
views, and the same report from SQLite and PostgreSQL. Each body runs on both stores."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consumers.benchmarks.ingest import wait_until
from consumers.event_file import write_event_file
from consumers.store import open_ledger
from ledger.application import Inbound, Ledger
from ledger.domain.journal import transfer
from ledger.domain.wallet import Wallet
from ledger.limits import PROJECTION_PAGE_EVENTS_MAX, PROJECTION_POLL_INTERVAL_MS
from projections.database import open_read_model
from projections.runner import catch_up, ensure_schema, run_forever, stored_position
from projections.sql import TABLE_NAMES, select_all
from projections.values import ProjectionError
from tests.application.test_business_as_of import live_month
from tests.builders import LedgerDriver, driver, tenant, top_up
from tests.integration.test_ingest import (
    LEDGER_COMMAND,
    day_messages,
    ingest,
    ledger_cli,
    report_json,
    subprocess_env,
    write_day_file,
)
from tests.ports import free_port

pytestmark = pytest.mark.integration

# How long the projector may take to reach the log's end: NOTIFY wakes it at once, the poll
# at the latest after PROJECTION_POLL_INTERVAL_MS; this bounds a hang on a loaded machine.
PROJECTOR_DEADLINE_S = 60
POSITION_POLL_INTERVAL_S = 0.05
METRICS_SCRAPE_TIMEOUT_S = 10


def read_models(store: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read-model table, in a fixed order."""
    with closing(open_ledger(store)) as ledger, closing(open_read_model(ledger)) as db:
        return {name: sorted(db.query(select_all(name)), key=repr) for name in TABLE_NAMES}


def apply_without_projecting(store: str, source: str, messages: list[Any]) -> int:
    """Messages applied to the ledger only (no catch-up); returns the log's last id."""
    with closing(open_ledger(store)) as ledger:
        ledger.apply_batch([
            Inbound(source, n, message, raw=message.model_dump_json())
            for n, message in enumerate(messages, start=1)
        ])
        last_id = ledger.recorder.max_notification_id()
    assert last_id is not None
    return last_id


def wait_for_position(ledger: Ledger, target: int, deadline_s: float) -> int | None:
    with closing(open_read_model(ledger)) as db:
        ensure_schema(db)
        deadline = time.monotonic() + deadline_s
        position = stored_position(db)
        while (position or 0) < target and time.monotonic() < deadline:
            time.sleep(POSITION_POLL_INTERVAL_S)
            position = stored_position(db)
        return position


def test_a_rebuild_gives_the_same_rows_as_the_live_read_models(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "day.jsonl"
    write_day_file(events, sessions_per_tenant=20)
    ingest(capsys, events, store_url)
    live = read_models(store_url)
    live_report = report_json(capsys, store_url)

    code, _out, err = ledger_cli(capsys, "project", "--rebuild", "--store", store_url)

    assert code == 0, err
    assert "rebuilt from" in err
    assert read_models(store_url) == live
    assert report_json(capsys, store_url) == live_report
    assert len(live["rm_sessions"]) == 40
    assert live["rm_journal_postings"]


def test_the_projector_follows_new_events_and_stops_cleanly_on_sigterm(
    tmp_path: Path, store_url: str
) -> None:
    projector = subprocess.Popen(
        [*LEDGER_COMMAND, "project", "--store", store_url],
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        last_id = apply_without_projecting(store_url, "test:projector", day_messages(3))
        with closing(open_ledger(store_url)) as ledger:
            position = wait_for_position(ledger, last_id, PROJECTOR_DEADLINE_S)
        assert position == last_id
        assert projector.poll() is None, "the projector runs until it is told to stop"
    finally:
        projector.send_signal(signal.SIGTERM)
        _out, err = projector.communicate(timeout=PROJECTOR_DEADLINE_S)

    assert projector.returncode == 0, err
    assert f"read models at notification {last_id}" in err


def test_a_lost_notify_delays_the_projector_by_one_poll_at_most(
    store_url: str, store_kind: str
) -> None:
    apply_without_projecting(store_url, "test:before", day_messages(1, tenants=("t1",)))
    stop = threading.Event()
    # The runner's connection is its own: the test reads the position through another one
    # (one psycopg connection used by two threads fails: "another command is already in
    # progress").
    with closing(open_ledger(store_url)) as follower, \
            closing(open_read_model(follower)) as runner_db, \
            closing(open_read_model(follower)) as db:
        ensure_schema(db)
        if store_kind == "postgresql":
            # LISTEN on a channel nobody notifies: every NOTIFY is "lost" for this runner.
            follower.recorder.channel_name = "evledger_no_notify"  # type: ignore[attr-defined]
        thread = threading.Thread(target=run_forever, args=(follower, runner_db, stop))
        thread.start()
        try:
            with closing(open_ledger(store_url)) as writer:
                writer.apply_batch([Inbound("test:after", 1, top_up("t1-d1", "9.00"),
                                            raw="top-up")])
                last_id = writer.recorder.max_notification_id()
            assert last_id is not None
            deadline = time.monotonic() + 3 * PROJECTION_POLL_INTERVAL_MS / 1000 + 5
            while (stored_position(db) or 0) < last_id and time.monotonic() < deadline:
                time.sleep(POSITION_POLL_INTERVAL_S)
            reached = stored_position(db)
        finally:
            stop.set()
            thread.join(timeout=PROJECTOR_DEADLINE_S)

    assert not thread.is_alive()
    assert reached == last_id


def test_the_report_as_of_an_instant_shows_only_what_was_recorded_by_then(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    write_day_file(first, sessions_per_tenant=6)
    ingest(capsys, first, store_url)
    between = datetime.now(UTC)
    time.sleep(0.01)  # recording times are wall-clock: keep the two files apart
    write_event_file(second, [top_up("t1-d1", "11.00", tenant_id="t1")])
    ingest(capsys, second, store_url)
    current = report_json(capsys, store_url)

    code, as_of_between, err = ledger_cli(
        capsys, "report", "--store", store_url, "--json",
        "--recorded-as-of", between.isoformat())
    _, as_of_epoch, _ = ledger_cli(
        capsys, "report", "--store", store_url, "--json",
        "--recorded-as-of", "2000-01-01T00:00:00Z")
    _, as_of_future, _ = ledger_cli(
        capsys, "report", "--store", store_url, "--json",
        "--recorded-as-of", "2999-01-01T00:00:00Z")

    assert code == 0, err
    assert as_of_future == current
    assert json.loads(as_of_epoch)["sessions"] == []
    balance_then = {w["driver_id"]: w["balance"] for w in json.loads(as_of_between)["wallets"]}
    balance_now = {w["driver_id"]: w["balance"] for w in json.loads(current)["wallets"]}
    assert len(json.loads(as_of_between)["sessions"]) == 12
    assert Decimal(balance_now["t1-d1"]) - Decimal(balance_then["t1-d1"]) == Decimal("11.00")


def test_sqlite_and_postgresql_give_byte_identical_reports_for_the_same_file(
    tmp_path: Path, fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "day.jsonl"
    write_day_file(events, sessions_per_tenant=25, bad_lines=2)
    sqlite_store = f"sqlite:///{tmp_path / 'store.db'}"

    ingest(capsys, events, sqlite_store)
    ingest(capsys, events, fresh_database)

    assert report_json(capsys, sqlite_store) == report_json(capsys, fresh_database)


def test_a_double_booking_stops_the_projection_and_writes_nothing_of_its_page(
    store_url: str,
) -> None:
    with closing(open_ledger(store_url)) as ledger, closing(open_read_model(ledger)) as db:
        LedgerDriver(ledger).apply(tenant(), driver("d2", "wallet"), top_up("d2", "50.00"))
        ensure_schema(db)
        catch_up(ledger, db)
        position = stored_position(db)
        before = db.query(select_all("rm_journal_postings"))
        wallet: Wallet = ledger.repository.get(Wallet.create_id("t1", "d2"))
        entry = transfer("dup", "EUR", "twice", "psp_clearing", "wallet:d2", Decimal(1))
        wallet.credit(Decimal(1), "top_up", "r1", [entry.to_dict()])
        wallet.credit(Decimal(1), "top_up", "r2", [entry.to_dict()])
        ledger.save(wallet)

        with pytest.raises(ProjectionError, match="double booking"):
            catch_up(ledger, db)

        assert stored_position(db) == position
        assert db.query(select_all("rm_journal_postings")) == before


# ---------------------------------------------------------------------------- observability


def scrape(port: int) -> str:
    """The metrics page, or "" while the server is not listening yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                    timeout=METRICS_SCRAPE_TIMEOUT_S) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return ""


def sample(page: str, name: str) -> float | None:
    """The value of an unlabelled sample on a Prometheus text page."""
    for line in page.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_the_projector_logs_a_json_line_per_page_and_serves_its_metrics(
    tmp_path: Path, store_url: str
) -> None:
    # More than two pages wait before it starts, so it begins with a lag and several pages.
    waiting = apply_without_projecting(store_url, "test:before",
                                       day_messages(120, tenants=("t1",)))
    assert waiting > 2 * PROJECTION_PAGE_EVENTS_MAX
    port = free_port()
    projector = subprocess.Popen(
        [*LEDGER_COMMAND, "project", "--store", store_url, "--metrics-port", str(port)],
        cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    scraped: list[str] = []
    try:
        with closing(open_ledger(store_url)) as writer:
            writer.apply_batch([Inbound("test:after", 1, top_up("t1-d1", "7.00"), raw="top-up")])
            last_id = writer.recorder.max_notification_id()
        assert last_id is not None

        def caught_up() -> bool:
            scraped.append(scrape(port))
            return sample(scraped[-1], "evledger_projection_position") == last_id or (
                projector.poll() is not None)

        wait_until(caught_up, PROJECTOR_DEADLINE_S, "metrics showing the log's last event")
        assert projector.poll() is None, "the projector runs until it is told to stop"
    finally:
        projector.send_signal(signal.SIGTERM)
        stdout, stderr = projector.communicate(timeout=PROJECTOR_DEADLINE_S)

    assert projector.returncode == 0, stderr
    assert stdout == ""
    logged = [json.loads(line) for line in stderr.splitlines()]  # every line is JSON
    assert all(line["logger"] == "evledger.project" for line in logged), stderr
    assert logged[0]["event"] == "started"
    assert (logged[0]["position"], logged[0]["metrics_port"]) == (0, port)
    # Behind by everything: the top-up may have been recorded before it started, or not.
    assert logged[0]["lag"] in (waiting, last_id)
    assert logged[-1]["event"] == "stopped"
    assert logged[-1]["position"] == last_id
    assert f"read models at notification {last_id}" in logged[-1]["summary"]
    pages = [line for line in logged if line["event"] == "page_applied"]
    assert len(pages) >= 3
    assert pages[0]["first_notification_id"] == 1
    for before, after in itertools.pairwise(pages):
        assert after["first_notification_id"] > before["last_notification_id"]
    assert pages[-1]["last_notification_id"] == last_id
    assert all(0 < p["events"] <= PROJECTION_PAGE_EVENTS_MAX and p["seconds"] >= 0
               for p in pages)
    assert pages[-1]["lag"] == 0

    page = scraped[-1]
    with closing(open_ledger(store_url)) as ledger:
        notifications = len(ledger.recorder.select_notifications(start=1, limit=1_000_000))
    assert sample(page, "evledger_projection_events_total") == notifications
    assert sum(p["events"] for p in pages) == notifications
    assert sample(page, "evledger_projection_pages_total") == len(pages)
    assert sample(page, "evledger_projection_lag_notifications") == 0
    assert sample(page, "evledger_projection_page_seconds_count") == len(pages)
    assert 'evledger_projection_page_seconds_bucket{le="+Inf"}' in page


def test_the_metrics_port_comes_from_the_option_else_the_environment(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from consumers.cli import CliError, build_parser
    from consumers.commands.project import metrics_port_from

    def port(*argv: str, env: dict[str, str]) -> int:
        return metrics_port_from(build_parser().parse_args(["project", *argv]), env)

    assert port(env={}) == 0
    assert port(env={"LEDGER_METRICS_PORT": "9464"}) == 9464
    assert port("--metrics-port", "9100", env={"LEDGER_METRICS_PORT": "9464"}) == 9100
    for argv, env, message in (
        ((), {"LEDGER_METRICS_PORT": "lots"}, "is not an integer"),
        (("--metrics-port", "70000"), {}, "bad metrics port 70000"),
    ):
        with pytest.raises(CliError, match=message):
            port(*argv, env=env)

    code, _out, err = ledger_cli(capsys, "project", "--once", "--metrics-port", "9100",
                                 "--store", store_url)
    assert code == 2
    assert "--metrics-port is for the long-running projector" in err


def test_report_as_of_business_dates_on_a_real_store_matches_the_hand_figures(
    store_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """The month of tests/application/test_business_as_of.py (figures computed by hand
    there), applied to SQLite and PostgreSQL: the business times survive the store."""
    recorded: list[datetime] = []

    def between() -> None:
        time.sleep(0.01)  # recording times are wall-clock: keep the two parts apart
        recorded.append(datetime.now(UTC))
        time.sleep(0.01)

    with closing(open_ledger(store_url)) as ledger:
        live_month(LedgerDriver(ledger), before_late=between)
    views = {}
    for day in ("2026-03-28", "2026-03-29", "2026-04-03"):
        code, out, err = ledger_cli(capsys, "report", "--store", store_url, "--json",
                                    "--as-of", day)
        assert code == 0, err
        views[day] = json.loads(out)
    assert [{w["driver_id"]: w["balance"] for w in views[d]["wallets"]} for d in views] == [
        {"w": "53.34"}, {"w": "53.34"}, {"w": "41.44"}]
    assert [views[d]["sessions_open"] for d in views] == [0, 1, 0]
    assert [len(views[d]["invoices"]) for d in views] == [7, 7, 9]
    assert [[(p["pool_used"]) for p in views[d]["corporate_accounts"]] for d in views] == [
        ["8.10"], ["20.00"], ["20.00"]]
    assert [{x["driver_id"]: x["outstanding"] for x in views[d]["debts"]} for d in views] == [
        {"post": "11.90", "c": "3.80"}, {"c": "3.80"}, {"c": "3.80"}]
    code, out, err = ledger_cli(capsys, "report", "--store", store_url, "--as-of", "2026-03-29")
    assert code == 0, err
    assert "until 2026-03-29T21:59:59.999999Z (Europe/Berlin)" in out
    # What the books had recorded before the late arrivals: not the late top-up of 20.00
    # nor tx7 (4.76), both in every business view above; tx6 is there, recorded before.
    code, out, err = ledger_cli(capsys, "report", "--store", store_url, "--json",
                                "--recorded-as-of", recorded[0].isoformat())
    assert code == 0, err
    assert {w["driver_id"]: w["balance"] for w in json.loads(out)["wallets"]} == {
        "w": "26.20"}  # 50.00 - 11.90 (tx1) - 11.90 (tx6)

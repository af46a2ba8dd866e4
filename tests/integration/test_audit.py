"""`ledger audit verify|seal|replay` on SQLite and on a real PostgreSQL.

The tampering is done the way an intruder with database access would do it: plain SQL on
the event table and the chain table, behind the ledger's back.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from consumers.commands.ingest import DEAD_LETTERED_EXIT_CODE
from consumers.store import open_ledger
from projections.sql import TABLE_NAMES
from tests.integration.test_ingest import (
    ROOT,
    ingest,
    ledger_cli,
    subprocess_env,
    write_day_file,
)

pytestmark = pytest.mark.integration

HEAD = re.compile(r"^head: notification (\d+) ([0-9a-f]{64})$", re.MULTILINE)
# Each ingest subprocess of the concurrency test must finish within this on a busy machine.
INGEST_DEADLINE_S = 300


@pytest.fixture
def filled_store(store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    events = tmp_path / "day.jsonl"
    write_day_file(events, sessions_per_tenant=6)
    ingest(capsys, events, store_url)
    return store_url


def tamper(store: str, *statements: str) -> None:
    """Run SQL directly on the store's database (`{events}`/`{chain}`/`{id}` by dialect)."""
    if store.startswith("sqlite:///"):
        names = {"events": "stored_events", "chain": "stored_events_chain", "id": "rowid",
                 "processed": "stored_events_processed", "a_key": f"'{'0' * 31}1'"}
        with closing(sqlite3.connect(store[len("sqlite:///"):])) as connection:
            for statement in statements:
                connection.execute(statement.format(**names))
            connection.commit()
        return
    names = {"events": "ledger_events", "chain": "ledger_events_chain", "id": "notification_id",
             "processed": "ledger_events_processed",
             "a_key": "'00000000-0000-0000-0000-000000000001'::uuid"}
    with psycopg.connect(store) as connection:
        for statement in statements:
            connection.execute(statement.format(**names).encode())


def audit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code, out, _err = ledger_cli(capsys, "audit", *args)
    return code, out


def breaks(out: str) -> list[tuple[int, str]]:
    return [(int(n), kind) for n, kind in re.findall(r"^notification (\d+): (\w+):", out,
                                                     re.MULTILINE)]


def head_of(out: str) -> str:
    found = HEAD.search(out)
    assert found is not None, out
    return found.group(2)


def event_count(store: str) -> int:
    with closing(open_ledger(store)) as ledger:
        return int(ledger.recorder.max_notification_id() or 0)


# ---------------------------------------------------------------------------- verify
def test_a_clean_store_verifies_and_its_head_is_a_checkpoint_later_verifies_accept(
    filled_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = audit(capsys, "verify", "--store", filled_store)
    assert code == 0, out
    assert out.splitlines()[-1].startswith("VERDICT: INTACT")
    earlier_head = head_of(out)
    more = tmp_path / "more.jsonl"
    write_day_file(more, sessions_per_tenant=7)  # one more session per tenant, the rest again
    ingest(capsys, more, filled_store)
    code, out = audit(capsys, "verify", "--store", filled_store, "--expect-head", earlier_head)
    assert code == 0, out
    assert head_of(out) != earlier_head
    assert "expected head found at notification" in out


def test_verify_names_each_edited_deleted_inserted_and_swapped_event(
    filled_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    last = event_count(filled_store)
    tamper(
        filled_store,
        # edited: one byte more in the state of 10
        "UPDATE {events} SET state = state || x'20' WHERE {id} = 10".replace(
            "x'20'", "x'20'" if filled_store.startswith("sqlite") else "'\\x20'::bytea"),
        # deleted: 20 alone; 30 together with its link
        "DELETE FROM {events} WHERE {id} = 20",
        "DELETE FROM {events} WHERE {id} = 30",
        "DELETE FROM {chain} WHERE notification_id = 30",
        # swapped: 40 and 41 change places
        "UPDATE {events} SET {id} = -1 WHERE {id} = 40",
        "UPDATE {events} SET {id} = 40 WHERE {id} = 41",
        "UPDATE {events} SET {id} = 41 WHERE {id} = -1",
        # inserted: a copy of 50 under a new version, at the end of the log
        "INSERT INTO {events} (originator_id, originator_version, topic, state)"
        " SELECT originator_id, originator_version + 1000, topic, state FROM {events}"
        " WHERE {id} = 50",
    )
    code, out = audit(capsys, "verify", "--store", filled_store)
    assert code == 1, out
    assert breaks(out) == [(10, "edited"), (20, "deleted"), (30, "deleted"), (40, "edited"),
                           (41, "edited"), (last + 1, "inserted")]
    assert out.splitlines()[-1] == "VERDICT: BROKEN: 6 breaks in the chain"


def test_verify_names_each_row_of_the_processed_index_that_its_events_do_not_record(
    filled_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The index of applied event ids is no event: an intruder who deletes a row there could
    # have a message applied twice, so verify checks it against the chained events.
    last_batch = "(SELECT MAX(notification_id) FROM {processed})"
    tamper(
        filled_store,
        # the last batch's first event id is forgotten; one of its digests changed
        "DELETE FROM {processed} WHERE processed_id = (SELECT processed_id FROM {processed}"
        " WHERE notification_id = " + last_batch + " ORDER BY processed_id LIMIT 1)",
        "UPDATE {processed} SET payload_digest = 'ab' WHERE processed_id = (SELECT processed_id"
        " FROM {processed} WHERE notification_id = " + last_batch
        + " ORDER BY processed_id DESC LIMIT 1)",
        # a row added by hand, at an event that records no event ids
        "INSERT INTO {processed} (processed_id, payload_digest, notification_id)"
        " VALUES ({a_key}, 'cd', 5)",
    )
    code, out = audit(capsys, "verify", "--store", filled_store)
    assert code == 1, out
    found = breaks(out)
    assert found.count((5, "index")) == 1
    [(_batch_at, kind)] = {b for b in found if b[0] != 5}
    assert kind == "index" and len(found) == 4, out  # two rows missing there, one extra
    assert "has no index row: a redelivered copy would apply again" in out
    assert out.splitlines()[-1] == "VERDICT: BROKEN: 4 breaks in the chain"


def test_a_rewritten_chain_passes_alone_but_not_against_an_earlier_head(
    filled_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _code, out = audit(capsys, "verify", "--store", filled_store)
    earlier_head = head_of(out)
    # The intruder edits an event, throws the chain away and seals the store again.
    statement = ("UPDATE {events} SET topic = topic || 'x' WHERE {id} = 5")
    tamper(filled_store, statement, "DELETE FROM {chain}")
    code, out = audit(capsys, "seal", "--store", filled_store)
    assert code == 0, out
    code, out = audit(capsys, "verify", "--store", filled_store)
    assert code == 0, out  # a consistent forgery: only a copy of the head taken earlier shows it
    code, out = audit(capsys, "verify", "--store", filled_store, "--expect-head", earlier_head)
    assert code == 1, out
    assert f"expected head {earlier_head} is not in the chain" in out


def test_a_store_from_before_the_chain_is_unsealed_until_sealed_then_every_write_links(
    filled_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(filled_store, "DELETE FROM {chain}")  # as if written by an older version
    more = tmp_path / "more.jsonl"
    write_day_file(more, sessions_per_tenant=7)
    ingest(capsys, more, filled_store)  # new events are not linked onto nothing
    code, out = audit(capsys, "verify", "--store", filled_store)
    assert code == 1
    assert "VERDICT: UNSEALED" in out
    code, out = audit(capsys, "seal", "--store", filled_store)
    assert (code, out.startswith(f"sealed: {event_count(filled_store)} events linked")) == (
        0, True), out
    code, out = audit(capsys, "seal", "--store", filled_store)
    assert code == 2  # never twice
    write_day_file(more, sessions_per_tenant=8)
    ingest(capsys, more, filled_store)
    code, out = audit(capsys, "verify", "--store", filled_store)
    assert code == 0, out


def _ingest_process(events: Path, store: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "ingest", "--events", str(events), "--store",
         store], cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def test_concurrent_writers_leave_one_valid_chain(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files: list[Path] = []
    for name, sessions in (("a", 12), ("b", 13), ("c", 14)):
        files.append(tmp_path / f"{name}.jsonl")
        write_day_file(files[-1], sessions_per_tenant=sessions)
    # Three writers at once on the same aggregates, as consumers of one group after a
    # rebalance: their batches interleave, conflict and retry under the store's lock.
    writers = [_ingest_process(events, store_url) for events in files]
    try:
        for writer in writers:
            _out, err = writer.communicate(timeout=INGEST_DEADLINE_S)
            # The day's malformed line, and messages the other writers' days made invalid,
            # are dead-lettered (exit 3): the chain must hold whatever was applied.
            assert writer.returncode in (0, DEAD_LETTERED_EXIT_CODE), err.decode()
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
            writer.communicate()
    code, out = audit(capsys, "verify", "--store", store_url)
    assert code == 0, out
    assert f"head at notification {event_count(store_url)}" in out


def test_bad_arguments_are_usage_errors(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        audit(capsys, "verify", "--store", store_url, "--expect-head", "not-a-hash")
    assert exited.value.code == 2
    assert "not a chain hash" in capsys.readouterr().err
    code, _out, err = ledger_cli(capsys, "audit", "replay", "--store", "mysql://x/y")
    assert code == 2
    assert "unsupported store URL" in err


# ---------------------------------------------------------------------------- replay
def test_replay_of_a_clean_store_equals_the_live_read_models_and_leaves_no_scratch(
    filled_store: str, store_kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ledger_cli(capsys, "audit", "replay", "--store", filled_store)
    assert code == 0, out + err
    verdict = f"VERDICT: EQUAL: {len(TABLE_NAMES)} read-model tables"
    assert out.splitlines()[-1].startswith(verdict)
    assert f"replayed to notification {event_count(filled_store)} of" in err  # progress
    if store_kind == "postgresql":
        assert _scratch_schemas(filled_store) == []


def _scratch_schemas(store: str) -> Sequence[str]:
    with psycopg.connect(store) as connection:
        rows = connection.execute("SELECT nspname FROM pg_namespace").fetchall()
    return [str(row[0]) for row in rows if str(row[0]).startswith("audit_replay_")]


def test_replay_names_each_row_and_column_that_differs_and_a_table_it_cannot_rebuild(
    filled_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(
        filled_store,
        "UPDATE rm_invoices SET total_vat = '9.99' WHERE number = (SELECT MIN(number)"
        " FROM rm_invoices WHERE tenant_id = 't1') AND tenant_id = 't1'",
        "DELETE FROM rm_wallets WHERE tenant_id = 't2' AND driver_id = 't2-d1'",
        # A read model someone added without a projection: found in the catalog anyway.
        "CREATE TABLE rm_added_later (k TEXT PRIMARY KEY, v TEXT)",
    )
    code, out = audit(capsys, "replay", "--store", filled_store)
    assert code == 1, out
    lines = out.splitlines()
    assert "rm_added_later [] *: live a table | replayed (no table)" in lines
    [invoice] = [line for line in lines if line.startswith("rm_invoices [tenant_id='t1'")]
    assert " total_vat: live '9.99' | replayed '" in invoice, out
    assert "rm_wallets [tenant_id='t2', driver_id='t2-d1'] *: live (no row) | replayed a row" \
        in lines
    assert lines[-1].startswith("VERDICT: DIFFERENT: 3 differences")


def test_a_batch_whose_links_fail_is_not_stored_at_all(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import consumers.chained_store

    def failing(*_args: object) -> None:
        raise RuntimeError("linking failed")

    # eventsourcing's PostgreSQL recorder would commit the events despite this: the chained
    # recorder must make the transaction fail instead.
    monkeypatch.setattr(consumers.chained_store, "links_after", failing)
    events = tmp_path / "day.jsonl"
    write_day_file(events, sessions_per_tenant=2)
    with pytest.raises(Exception, match="link"):
        ledger_cli(capsys, "ingest", "--events", str(events), "--store", store_url)
    assert event_count(store_url) == 0


def test_bench_chain_reports_the_seconds_linking_added_to_an_ingest(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "day.jsonl"
    write_day_file(events, sessions_per_tenant=2)
    code, out, err = ledger_cli(capsys, "bench", "chain", "--events", str(events), "--store",
                                store_url)
    assert code == 0, err
    assert re.match(rf"ledger bench chain: ingest \S+ s; linking {event_count(store_url)}"
                    r" events \S+ s \(\S+ % of the ingest\)$", out.strip()), out
    code, _out, err = ledger_cli(capsys, "bench", "chain", "--events", str(events), "--store",
                                 store_url)
    assert (code, "not empty" in err) == (2, True)

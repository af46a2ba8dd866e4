"""The runner on an in-memory ledger and an in-memory SQLite read model: pages, positions,
atomicity, rebuilds, as-of views. (The same runner against real stores: tests/integration.)"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import _GeneratorContextManager
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from consumers.benchmarks.ingest import wait_until
from ledger.domain.wallet import Wallet
from projections import runner
from projections.as_of import replay_until
from projections.database import SqliteReadModel, Transaction
from projections.report import build_report, render_json
from projections.runner import (
    PositionConflict,
    apply_page,
    catch_up,
    ensure_schema,
    read_page,
    rebuild,
    run_forever,
    stored_position,
)
from projections.sql import TABLE_NAMES, select_all
from projections.values import ProjectionError
from tests.builders import (
    LedgerDriver,
    driver,
    location,
    session_events,
    tariff,
    tenant,
    top_up,
)
from tests.unit.projections.events import card_payment


@pytest.fixture
def db() -> Iterator[SqliteReadModel]:
    database = SqliteReadModel(":memory:")
    ensure_schema(database)
    yield database
    database.close()


@pytest.fixture
def fed() -> LedgerDriver:
    """A ledger with configuration, a top-up and two settled sessions."""
    ledger = LedgerDriver()
    ledger.apply(tenant(), tariff(), location(), driver("d1", "post_paid"),
                 driver("d2", "wallet"), top_up("d2", "50.00"))
    ledger.apply_each(session_events("tx1", "d1", "10"))
    ledger.apply_each(session_events("tx2", "d2", "5"))
    return ledger


def snapshot(db: SqliteReadModel) -> dict[str, list[tuple[object, ...]]]:
    return {name: sorted(db.query(select_all(name)), key=repr) for name in TABLE_NAMES}


def test_catch_up_applies_every_notification_and_stores_the_last_id(
    fed: LedgerDriver, db: SqliteReadModel
) -> None:
    last_id = fed.ledger.recorder.max_notification_id()

    applied = catch_up(fed.ledger, db)

    assert applied == last_id
    assert stored_position(db) == last_id
    assert catch_up(fed.ledger, db) == 0


def test_small_pages_give_the_same_read_models_as_large_ones(
    fed: LedgerDriver, db: SqliteReadModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    catch_up(fed.ledger, db)
    other = SqliteReadModel(":memory:")
    try:
        ensure_schema(other)
        monkeypatch.setattr(runner, "PROJECTION_PAGE_EVENTS_MAX", 3)

        catch_up(fed.ledger, other)

        assert snapshot(other) == snapshot(db)
    finally:
        other.close()


def test_a_runner_that_lost_the_race_for_a_page_changes_nothing(
    fed: LedgerDriver, db: SqliteReadModel
) -> None:
    catch_up(fed.ledger, db)
    before = snapshot(db)
    fed.apply(top_up("d2", "5.00"))
    stale_start = 3
    page = read_page(fed.ledger, stale_start)

    with pytest.raises(PositionConflict):
        apply_page(db, stale_start, page)

    assert snapshot(db) == before


def test_a_page_that_fails_half_way_leaves_rows_and_position_as_they_were(
    fed: LedgerDriver, db: SqliteReadModel
) -> None:
    catch_up(fed.ledger, db)
    before = snapshot(db)
    position = stored_position(db)
    wallet: Wallet = fed.ledger.repository.get(Wallet.create_id("t1", "d2"))
    # The same entry id booked twice: a double booking upstream must stop the projection.
    wallet.credit(Decimal("1"), "top_up", "r1", [card_payment("dup", "wallet:d2", "1")])
    wallet.credit(Decimal("1"), "top_up", "r2", [card_payment("dup", "wallet:d2", "1")])
    fed.ledger.save(wallet)

    with pytest.raises(ProjectionError, match="double booking"):
        catch_up(fed.ledger, db)

    assert stored_position(db) == position
    assert snapshot(db) == before


def test_a_rebuild_gives_the_same_rows_as_the_live_read_models(
    fed: LedgerDriver, db: SqliteReadModel
) -> None:
    catch_up(fed.ledger, db)
    fed.apply(top_up("d2", "7.00"))
    catch_up(fed.ledger, db)
    live = snapshot(db)

    rebuild(fed.ledger, db)

    assert snapshot(db) == live


def test_as_of_replays_up_to_the_first_event_recorded_after_the_cutoff(
    fed: LedgerDriver, db: SqliteReadModel
) -> None:
    cutoff = datetime.now(UTC)
    fed.apply(top_up("d2", "7.00"))

    replayed = replay_until(fed.ledger, db, cutoff)

    everything = fed.ledger.recorder.max_notification_id()
    assert everything is not None
    assert 0 < replayed < everything
    before_top_up = build_report(db)
    assert [w["balance"] for w in before_top_up["wallets"]] == ["47.62"]


def test_as_of_far_in_the_future_is_the_whole_log_and_the_current_report(
    fed: LedgerDriver, db: SqliteReadModel
) -> None:
    live = SqliteReadModel(":memory:")
    try:
        ensure_schema(live)
        catch_up(fed.ledger, live)

        replay_until(fed.ledger, db, datetime(2999, 1, 1, tzinfo=UTC))

        assert render_json(build_report(db)) == render_json(build_report(live))
    finally:
        live.close()


def test_run_forever_catches_up_and_returns_once_asked_to_stop(
    fed: LedgerDriver, db: SqliteReadModel
) -> None:
    applied: list[int] = []
    run_until_caught_up(fed, db, lambda stop: applied.append(
        run_forever(fed.ledger, db, stop, poll_interval_ms=20)))

    assert applied == [fed.ledger.recorder.max_notification_id()]


# A bound for a busy machine, not a speed expectation: the waits end on the condition.
CATCH_UP_DEADLINE_S = 60


class _LostOnFirstTransaction(SqliteReadModel):
    """A read model whose connection is lost once, at the projector's very first step."""

    connection_errors: tuple[type[Exception], ...] = (ConnectionError,)

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.lost = 0

    def transaction(self) -> _GeneratorContextManager[Transaction]:
        if not self.lost:
            self.lost += 1
            raise ConnectionError("server closed the connection unexpectedly")
        return super().transaction()


def test_run_forever_rides_through_a_connection_lost_while_it_starts(
    fed: LedgerDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `ledger project` exited 1 when its backend was terminated while it made sure of the
    # schema: that first step was outside the reconnect loop.
    monkeypatch.setattr(runner, "reconnect_delay_s", lambda _attempt: 0.0)
    db = _LostOnFirstTransaction()
    changes: list[runner.ConnectionChange] = []
    starts: list[int | None] = []
    run_until_caught_up(fed, db, lambda stop: run_forever(
        fed.ledger, db, stop, poll_interval_ms=20, on_connection=changes.append,
        on_start=lambda: starts.append(stored_position(db))))
    assert db.lost == 1 and [c.restored for c in changes] == [False, True]
    assert starts == [None]  # once, after the schema exists: nothing projected yet
    assert stored_position(db) == fed.ledger.recorder.max_notification_id()
    db.close()


def stored_position_or_none(db: SqliteReadModel) -> int | None:
    try:
        return stored_position(db)
    except sqlite3.OperationalError:
        return None  # no schema yet


def run_until_caught_up(fed: LedgerDriver, db: SqliteReadModel,
                        projector: Callable[[threading.Event], object]) -> None:
    """Run `projector(stop)` in a thread until `db` holds the ledger's last position, then
    stop it; it must have returned."""
    stop = threading.Event()
    thread = threading.Thread(target=projector, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: stored_position_or_none(db) == fed.ledger.recorder.max_notification_id(),
                   CATCH_UP_DEADLINE_S, "the runner caught up")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()

"""`ledger project [--store URL] [--metrics-port PORT] [--once | --rebuild]`: keep the read
models up to date.

Long-running by default: catches up, then waits for new events (PostgreSQL NOTIFY, with a
poll every PROJECTION_POLL_INTERVAL_MS so a lost NOTIFY never stalls it; SQLite: the poll
only). SIGTERM or SIGINT lets the page in progress commit, then exits 0. While it runs it
logs JSON lines on stderr (consumers/observability.py): `started`, one `page_applied` per
page committed (events, first and last notification id, seconds, lag), `stopped` (with a
human summary); and, with a metrics port (`--metrics-port`, else $LEDGER_METRICS_PORT,
else 0 = off), serves `evledger_projection_*` Prometheus metrics: events and pages applied,
the lag behind the log, the position, page latency.

`--once` catches up and exits; `--rebuild` drops every read-model table, projects the whole
log again and exits (stop the long-running projector first). Both print their throughput to
stderr as one line of text, and serve no metrics (an explicit --metrics-port is an error;
$LEDGER_METRICS_PORT, meant for the long-running projector, is ignored).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from contextlib import closing

from eventsourcing.persistence import PersistenceError

from consumers.cli import CliError
from consumers.observability import (
    Metrics,
    ProjectionMetrics,
    configure_logging,
    get_logger,
    log_event,
)
from consumers.reconnect import DatabaseUnusable, recorder_without_library_retries
from consumers.settings import METRICS_PORT_ENV_VAR, PORT_MAX
from consumers.signals import StopRequested, stop_on_signals
from consumers.store import (
    open_ledger,
    open_store,
    open_when_database_available,
    redacted_url,
    store_url_from,
)
from ledger.application import Ledger
from ledger.limits import LONG_RUNNING_STORE_CONNECT_TIMEOUT_S
from projections.database import ReadModelDatabase, open_read_model
from projections.runner import (
    ConnectionChange,
    PageApplied,
    catch_up,
    ensure_schema,
    rebuild,
    run_forever,
    stored_position,
)
from projections.values import ProjectionError

# Seconds in the JSON lines: enough digits for a page that takes a millisecond.
LOGGED_SECONDS_DIGITS = 4


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "project",
        help="keep the read models up to date from the event log (long-running)",
        description="Project the ledger's events into the read-model tables, a page per"
        " transaction. Stops cleanly on SIGTERM/SIGINT.",
    )
    parser.add_argument(
        "--store", metavar="URL",
        help="sqlite:///PATH or postgresql://USER@HOST/DB (default: $LEDGER_STORE, else"
        " sqlite:///./evledger.db)",
    )
    parser.add_argument(
        "--metrics-port", metavar="PORT", type=int,
        help=f"serve Prometheus metrics on this port while running, 0 = off (default: "
        f"${METRICS_PORT_ENV_VAR}, else 0)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="catch up, then exit")
    mode.add_argument(
        "--rebuild", action="store_true",
        help="drop the read models and project the whole log again, then exit",
    )
    parser.set_defaults(handler=run)


def metrics_port_from(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """--metrics-port, else $LEDGER_METRICS_PORT, else 0 (off); as `ledger consume` reads it."""
    env = os.environ if environ is None else environ
    port: int | None = args.metrics_port
    if port is None:
        text = env.get(METRICS_PORT_ENV_VAR, "")
        if text == "":
            return 0
        try:
            port = int(text)
        except ValueError:
            raise CliError(f"{METRICS_PORT_ENV_VAR}={text!r} is not an integer") from None
    if not 0 <= port <= PORT_MAX:
        raise CliError(f"bad metrics port {port}: 0 (off) or 1..{PORT_MAX}")
    return port


def run(args: argparse.Namespace) -> int:
    if args.once or args.rebuild:
        if args.metrics_port is not None:
            raise CliError("--metrics-port is for the long-running projector, not --once or"
                           " --rebuild")
        return run_to_the_end(args)
    return run_until_stopped(args, metrics_port_from(args))


def run_to_the_end(args: argparse.Namespace) -> int:
    """--once or --rebuild: one pass, one line of text on stderr."""
    with closing(open_store(store_url_from(args.store))) as ledger, \
            closing(open_read_model(ledger)) as db:
        started_s = time.monotonic()
        try:
            if args.rebuild:
                applied = rebuild(ledger, db)
                what = "rebuilt from"
            else:
                ensure_schema(db)
                applied = catch_up(ledger, db)
                what = "caught up with"
        except ProjectionError as exc:
            raise CliError(f"projection stopped: {exc}") from exc
        print(summary(what, applied, time.monotonic() - started_s, stored_position(db) or 0),
              file=sys.stderr)
    return 0


def run_until_stopped(args: argparse.Namespace, metrics_port: int) -> int:
    """The long-running projector: JSON lines on stderr, metrics on `metrics_port`."""
    store_url = store_url_from(args.store)
    configure_logging()
    log = get_logger("project")
    metrics = Metrics()
    projection = ProjectionMetrics(metrics.registry)
    # Signals first: a SIGTERM while the store is still being reached is a clean stop too.
    with stop_on_signals() as stop:
        try:
            # A database not up yet (or restarting) is waited for, each attempt logged.
            ledger = open_when_database_available(
                lambda: open_ledger(store_url,
                                    connect_timeout_s=LONG_RUNNING_STORE_CONNECT_TIMEOUT_S),
                store_url, stop, log)
        except StopRequested:
            log_event(log, "stopped", events=0, seconds=0, position=None,
                      summary="stopped before the store was reached")
            return 0
        except DatabaseUnusable as exc:
            raise CliError(f"cannot use store {redacted_url(store_url)}: {exc}") from exc
        return _project_until_stopped(ledger, store_url, stop, log, metrics, projection,
                                      metrics_port)


def _project_until_stopped(
    ledger: Ledger, store_url: str, stop: threading.Event, log: logging.Logger,
    metrics: Metrics, projection: ProjectionMetrics, metrics_port: int,
) -> int:
    with closing(ledger), closing(open_read_model(ledger)) as db:
        # The loop reconnects and logs each attempt (run_forever): the library's own ten
        # silent retries, each waiting for the pool, kept it mute for over a minute while
        # the server was stopped (tests/integration/test_postgres_stopped.py).
        recorder_without_library_retries(ledger.recorder)
        try:
            metrics.serve(metrics_port)
            last_position = [0]
            started = [False]  # the schema exists and the position was read

            def on_start() -> None:
                started[0] = True
                position = stored_position(db) or 0
                lag = _lag(ledger, position)
                last_position[0] = position
                projection.position.set(position)
                projection.lag.set(lag)
                log_event(log, "started", store=redacted_url(store_url), position=position,
                          lag=lag, metrics_port=metrics_port)

            def on_page(page: PageApplied) -> None:
                last_position[0] = page.last_id
                page_lag = _lag(ledger, page.last_id)
                projection.events.inc(page.events)
                projection.pages.inc()
                projection.page_seconds.observe(page.seconds)
                projection.position.set(page.last_id)
                projection.lag.set(page_lag)
                log_event(log, "page_applied", events=page.events,
                          first_notification_id=page.first_id,
                          last_notification_id=page.last_id,
                          seconds=round(page.seconds, LOGGED_SECONDS_DIGITS), lag=page_lag)

            def on_connection(change: ConnectionChange) -> None:
                if change.restored:
                    log_event(log, "reconnected", attempts=change.attempt)
                else:
                    log_event(log, "connection_lost", logging.WARNING, attempt=change.attempt,
                              retry_in_s=change.delay_s, error=change.error)

            started_s = time.monotonic()
            applied = run_forever(ledger, db, stop, on_page=on_page,
                                  on_connection=on_connection, on_start=on_start)
            elapsed_s = time.monotonic() - started_s
        except ProjectionError as exc:
            log_event(log, "failed", logging.ERROR, error=str(exc))
            raise CliError(f"projection stopped: {exc}") from exc
        finally:
            metrics.close()
        # Stopped while the database is away: report the last position a page reached.
        final = (_position_if_reachable(db) if started[0] else None) or last_position[0]
        log_event(log, "stopped", events=applied,
                  seconds=round(elapsed_s, LOGGED_SECONDS_DIGITS), position=final,
                  summary=summary("stopped after", applied, elapsed_s, final))
    return 0


def _position_if_reachable(db: ReadModelDatabase) -> int | None:
    unreachable: tuple[type[Exception], ...] = (*db.connection_errors, PersistenceError)
    try:
        return stored_position(db)
    except unreachable:
        return None


def _lag(ledger: Ledger, position: int) -> int:
    """How far the read models are behind the log: its last notification id - position."""
    return max((ledger.recorder.max_notification_id() or 0) - position, 0)


def summary(what: str, applied: int, elapsed_s: float, position: int) -> str:
    rate = f"{applied / elapsed_s:,.0f} events/s" if elapsed_s > 0 and applied else "-"
    return (
        f"ledger project: {what} {applied} events in {elapsed_s:.2f} s ({rate});"
        f" read models at notification {position}"
    )

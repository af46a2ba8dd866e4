"""Running the finance desk for tests: a simulated two-tenant day in a store, keys, and a
real `ledger serve` process (uvicorn) on a free port, stopped with SIGTERM afterwards."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from psycopg import sql as psycopg_sql

from consumers.cli import main
from consumers.commands.ingest import DEAD_LETTERED_EXIT_CODE
from consumers.scratch_database import scratch_database
from tests.ports import free_port

TENANTS = ("cpo-de", "cpo-nl")
# A small day with faults (a dead letter) and refusals, for both tenants: enough documents
# for several pages, ingested in a few seconds.
DAY_SESSIONS = 30
DAY_SEED = 3
# uvicorn answers within a second or two; a loaded 2-core box gets generous slack.
SERVER_START_S_MAX = 90
SERVER_STOP_S_MAX = 30
POLL_INTERVAL_S = 0.1
HTTP_TIMEOUT_S = 30.0
LEDGER_COMMAND = (
    sys.executable, "-c", "import sys; from consumers.cli import main; sys.exit(main())",
)
READER_ROLE = "evledger_finance_reader"


def run_cli(*argv: str, exit_codes: tuple[int, ...] = (0,)) -> str:
    """`ledger ARGV` in this process; its stdout (fails the test on another exit code)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    assert status in exit_codes, (argv, out.getvalue())
    return out.getvalue()


def ingest(events: Path, store_url: str) -> str:
    """`ledger ingest`: a day with faults dead-letters its bad lines (exit 3), the rest lands."""
    return run_cli("ingest", "--events", str(events), "--store", store_url,
                   exit_codes=(0, DEAD_LETTERED_EXIT_CODE))


def simulated_day(directory: Path) -> Path:
    events = directory / "day.jsonl"
    if not events.exists():
        run_cli("simulate", "--sessions", str(DAY_SESSIONS), "--seed", str(DAY_SEED),
                "--tenants", str(len(TENANTS)), "--faults", "--out", str(events))
    return events


def issue_keys(store_url: str) -> dict[str, str]:
    return {tenant: run_cli("api-keys", "create", "--tenant", tenant, "--store", store_url)
            .strip() for tenant in TENANTS}


def ensure_reader_role(database_url: str) -> None:
    """The reader role exists and the application role may switch to it (scripts/services
    creates it; a testcontainers superuser creates it here)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                              (READER_ROLE,)).fetchone()
        if not exists:
            conn.execute(psycopg_sql.SQL("CREATE ROLE {} NOLOGIN").format(
                psycopg_sql.Identifier(READER_ROLE)))
        member = conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')",
                              (READER_ROLE,)).fetchone()
        if not (member and member[0]):
            conn.execute(psycopg_sql.SQL("GRANT {} TO CURRENT_USER").format(
                psycopg_sql.Identifier(READER_ROLE)))


def new_database(database_url: str) -> contextlib.AbstractContextManager[str]:
    return scratch_database(database_url, "t_")


@contextlib.contextmanager
def serving(store_url: str, log_path: Path) -> Iterator[str]:
    """`ledger serve` on `store_url`; yields its base URL once /openapi.json answers."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*LEDGER_COMMAND, "serve", "--store", store_url, "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + SERVER_START_S_MAX
            while True:
                assert process.poll() is None, log_path.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base_url}/openapi.json", timeout=HTTP_TIMEOUT_S
                                 ).status_code == 200:
                        break
                assert time.monotonic() < deadline, "ledger serve did not answer in time"
                time.sleep(POLL_INTERVAL_S)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=SERVER_STOP_S_MAX)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=SERVER_STOP_S_MAX)

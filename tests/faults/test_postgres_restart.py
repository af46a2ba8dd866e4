"""A PostgreSQL server restart mid-stream: the simulated day through the shared broker into a
PostgreSQL server of this test's own (tests/postgres_server.py; the shared server is never
touched) while `ledger consume`, `relay` and `project` run against it. At one seeded point
of the day the server is restarted crash-like (`pg_ctl restart -m immediate`: no shutdown,
recovery at start); at another it is stopped cleanly (`-m fast`) and started again after a
seeded down time longer than the database library's own silent retries. No ledger process
is restarted: each must ride through, logging each reconnect attempt. The end checks are
those of the crash matrix (`assert_took_effect_once`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from consumers.scratch_database import scratch_database
from tests.faults.conftest import InjectionLog, rng_for
from tests.faults.harness import (
    DayRun,
    FaultStack,
    KillPlan,
    assert_took_effect_once,
    ingest,
    publish_day,
    settle,
    simulated_day,
    stack_for,
)
from tests.postgres_server import PostgresServer, own_postgres

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SESSIONS = 10
IMMEDIATE = "PostgreSQL restarted crash-like (pg_ctl restart -m immediate)"
STOPPED = "PostgreSQL stopped (pg_ctl stop -m fast), started again after a down time"
# The down time of the clean stop, drawn per seed: longer than eventsourcing's own retries
# (10 attempts 0.2 s apart, ~2 s), so a process that leaned on them alone would fail.
DOWN_S_MIN, DOWN_S_MAX = 3.0, 6.0
# What each process logs per failed attempt to reach the database.
RETRY_MARKERS = {
    "consume": '"event":"database_unavailable"',
    "relay": '"event":"database_unavailable"',
    "project": '"event":"connection_lost"',
}
# The processes that read the database while idle: the outage must have reached them
# before the server comes back (consume meets it only if it was applying a batch).
POLLING_PROCESSES = ("relay", "project")
SEEN_DEADLINE_S = 60


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with own_postgres() as started:
        yield started


def _retries(stack: FaultStack) -> dict[str, int]:
    """Failed attempts each running process logged so far (its current incarnation)."""
    return {name: process.log_path.read_text(errors="replace").count(RETRY_MARKERS[name])
            for name, process in stack.processes.items()}


def _restart(server: PostgresServer, down_s: float | None
             ) -> Callable[[FaultStack], dict[str, object]]:
    """`down_s` None: `pg_ctl restart -m immediate`; else stop `-m fast`, keep the server
    down `down_s` and until the polling processes logged a failed attempt, then start."""
    def act(stack: FaultStack) -> dict[str, object]:
        before = _retries(stack)
        stack.forget_watch_connection()
        began = time.monotonic()
        if down_s is None:
            server.restart("immediate")
        else:
            server.stop("fast")
            deadline = began + SEEN_DEADLINE_S
            while True:
                now = time.monotonic()
                seen = _retries(stack)
                if now - began >= down_s and all(
                        seen[name] > before[name] for name in POLLING_PROCESSES):
                    break
                assert now < deadline, (f"no failed attempt logged in {SEEN_DEADLINE_S} s"
                                        f" of the server's absence: {seen}; logs in {stack.logs}")
                stack.check_alive()
                time.sleep(0.05)
            server.start()
        return {"back_after_s": round(time.monotonic() - began, 1)}
    return act


def test_postgres_restarted_crash_like_and_stopped_mid_stream_lose_and_double_nothing(
    server: PostgresServer, database_url: str, kafka_bootstrap_servers: str,
    faults_seed: int, injections: InjectionLog, request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    rng = rng_for(faults_seed, request.node.name)
    day = simulated_day(SESSIONS, seed=rng.randrange(1_000_000))
    records = len(day.messages)
    logs = tmp_path_factory.mktemp("postgres-restart-logs")
    down_s = round(rng.uniform(DOWN_S_MIN, DOWN_S_MAX), 1)
    with scratch_database(database_url, "faults_ingest_", hex_digits=12) as reference:
        ingest(day.write(logs / "day.jsonl"), reference)
        stack = stack_for(server.url, kafka_bootstrap_servers,
                          f"faults-{uuid.uuid4().hex[:8]}-", logs)
        plans = [
            KillPlan(None, IMMEDIATE, [rng.randint(records // 5, records * 2 // 5)],
                     lambda p: p.records_applied, act=_restart(server, None)),
            KillPlan(None, STOPPED, [rng.randint(records * 3 // 5, records * 4 // 5)],
                     lambda p: p.records_applied, act=_restart(server, down_s)),
        ]
        print(f"PostgreSQL restarts (seed {faults_seed}): "
              + "; ".join(f"{p.fault} at {p.targets}" for p in plans)
              + f"; down {down_s} s")

        def injected(fault: str, **detail: object) -> None:
            injections.injected(request.node.name, fault, **detail, retries=_retries(stack))

        started = time.monotonic()
        stack.start("consume", "relay", "project")
        try:
            publish_day(stack, day, plans, injected)
            settle(stack, plans, injected, records)
            retried = _retries(stack)
        finally:
            codes = stack.stop()
        print(f"day published, applied and settled in {time.monotonic() - started:.1f} s;"
              f" failed attempts logged: {retried}")
        assert codes == dict.fromkeys(codes, 0), f"processes did not stop cleanly: {codes}"
        # consume too: its pooled connections are broken by each restart.
        assert all(retried.values()), f"a process logged no reconnect attempt: {retried}"
        run = DayRun(stack, day, reference, records)
        for plan in plans:
            assert_took_effect_once(run, injections, plan.fault)
        assert [len(p.fired) for p in plans] == [1, 1], "a restart point was not reached"

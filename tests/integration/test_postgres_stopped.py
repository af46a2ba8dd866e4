"""`ledger project`, `relay` and `consume` while their PostgreSQL server is stopped (not only
their backends terminated, as in test_project_reconnects.py): a server of this test's own
(tests/postgres_server.py), stopped with `pg_ctl stop -m fast`. Each process logs every
failed attempt while the server is away (the projector and `consume` went quiet inside the
database library's own silent retries, and `consume` had no reconnect of its own), goes on
once it is back, and exits 0 on SIGTERM while it is away (issue 10, item 3).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from consumers import kafka_clients
from consumers.avro_codec import encode, headers_for, key_for
from consumers.benchmarks.day import create_store
from consumers.benchmarks.ingest import wait_until
from consumers.commands.topics import create_topics
from consumers.consumer_loop import source_name
from consumers.kafka_topics import topic_of
from consumers.settings import Settings, settings_from
from consumers.store import open_ledger
from ledger.messages import Envelope
from tests.builders import top_up
from tests.faults.harness import untouched_messages
from tests.integration.test_ingest import LEDGER_COMMAND, day_messages, subprocess_env
from tests.integration.test_project_reconnects import append, events_named, logged
from tests.integration.test_projections import wait_for_position
from tests.postgres_server import PostgresServer, own_postgres

pytestmark = pytest.mark.integration

# A loaded 2-core machine: a process's start and a catch-up fit well within this.
PROCESS_DEADLINE_S = 60
# Three failed attempts of a backoff that starts at 0.1-0.2 s and doubles take under 2 s
# plus the 1 s connect timeout each; the library's silent retries took over a minute.
ATTEMPTS_LOGGED = 3
ATTEMPTS_DEADLINE_S = 20
FAILED_ATTEMPT = {"project": "connection_lost", "relay": "database_unavailable",
                  "consume": "database_unavailable"}
RECONNECTED = {"project": "reconnected", "relay": "database_reconnected",
               "consume": "database_reconnected"}


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    with own_postgres() as started:
        yield started


def lines_logged(path: Path, event: str, count: int) -> Callable[[], bool]:
    return lambda: len(events_named(path, event)) >= count


@contextmanager
def running(kind: str, argv: list[str], log_path: Path) -> Iterator[subprocess.Popen[str]]:
    with log_path.open("w") as log_file:
        process = subprocess.Popen([*LEDGER_COMMAND, kind, *argv], cwd=log_path.parent,
                                   env=subprocess_env(), stdout=subprocess.DEVNULL,
                                   stderr=log_file, text=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(PROCESS_DEADLINE_S)


def test_project_and_relay_log_each_attempt_while_the_server_is_stopped_and_exit_zero(
    server: PostgresServer, kafka_bootstrap_servers: str, tmp_path: Path,
) -> None:
    store = server.url
    first = append(store, "test:before", day_messages(2, tenants=("t1",)))
    logs = {kind: tmp_path / f"{kind}.log" for kind in ("project", "relay")}
    relay_argv = ["--store", store, "--bootstrap-servers", kafka_bootstrap_servers,
                  "--topic-prefix", f"pgstop-{uuid.uuid4().hex[:8]}-"]
    with running("project", ["--store", store], logs["project"]) as project, \
            running("relay", relay_argv, logs["relay"]) as relay:
        processes = {"project": project, "relay": relay}
        with closing(open_ledger(store)) as ledger:
            assert wait_for_position(ledger, first, PROCESS_DEADLINE_S) == first
        for kind, path in logs.items():
            wait_until(lines_logged(path, "started", 1), PROCESS_DEADLINE_S,
                       f"ledger {kind} started (log {path})")

        # Stopped, then back: each logs its attempts meanwhile, then goes on.
        server.stop("fast")
        for kind, path in logs.items():
            wait_until(lines_logged(path, FAILED_ATTEMPT[kind], ATTEMPTS_LOGGED),
                       ATTEMPTS_DEADLINE_S, f"ledger {kind}: {ATTEMPTS_LOGGED} failed attempts"
                       f" logged while the server is stopped (log {path})")
            assert processes[kind].poll() is None, path.read_text()[-2000:]
        server.start()
        second = append(store, "test:after", [top_up("t1-d1", "7.00")])
        with closing(open_ledger(store)) as ledger:
            assert wait_for_position(ledger, second, PROCESS_DEADLINE_S) == second, (
                logs["project"].read_text()[-2000:])
        for kind, path in logs.items():
            wait_until(lines_logged(path, RECONNECTED[kind], 1), PROCESS_DEADLINE_S,
                       f"ledger {kind} reconnected (log {path})")

        # Stopped again, and SIGTERM while it is away: a clean stop.
        server.stop("fast")
        for kind, path in logs.items():
            before = len(events_named(path, FAILED_ATTEMPT[kind]))
            wait_until(lines_logged(path, FAILED_ATTEMPT[kind], before + 1),
                       ATTEMPTS_DEADLINE_S, f"ledger {kind}: a failed attempt logged")
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for kind, process in processes.items():
            assert process.wait(PROCESS_DEADLINE_S) == 0, logs[kind].read_text()[-2000:]
            assert logged(logs[kind])[-1]["event"] == "stopped"


def _publish(settings: Settings, messages: list[Envelope]) -> dict[str, int]:
    """The last offset written per source."""
    with closing(kafka_clients.producer(settings)) as producer:
        futures = [producer.send(settings.topic(topic_of(m)), value=encode(m), key=key_for(m),
                                 headers=headers_for(m)) for m in messages]
        producer.flush()
        written = [f.get(timeout=PROCESS_DEADLINE_S) for f in futures]
    return {source_name(w.topic, w.partition): w.offset for w in written}


def _topics_store_and_one_partitions_messages(
    server: PostgresServer, bootstrap: str
) -> tuple[Settings, list[Envelope]]:
    """Fresh topics of one partition each, the store's tables, and a tenant's configuration
    messages that all go to one partition (applied in this order)."""
    prefix = f"pgstop-{uuid.uuid4().hex[:8]}-"
    settings = settings_from(argparse.Namespace(
        bootstrap_servers=bootstrap, topic_prefix=prefix, store=server.url,
        group_id=f"{prefix}ledger"), environ={})
    with closing(kafka_clients.admin(settings)) as admin:
        create_topics(admin, settings.all_topics(), partitions=1, replication_factor=1)
    create_store(server.url)
    config = day_messages(1, tenants=("t1",))
    return settings, [m for m in config if topic_of(m) == topic_of(config[0])]


def test_consume_logs_each_attempt_while_the_server_is_stopped_and_applies_what_came_meanwhile(
    server: PostgresServer, kafka_bootstrap_servers: str, tmp_path: Path,
) -> None:
    store = server.url
    settings, config = _topics_store_and_one_partitions_messages(server, kafka_bootstrap_servers)
    prefix = settings.topic_prefix
    half = len(config) // 2
    log_path = tmp_path / "consume.log"
    argv = ["--store", store, "--bootstrap-servers", kafka_bootstrap_servers,
            "--topic-prefix", prefix, "--group-id", settings.group_id]
    failed = FAILED_ATTEMPT["consume"]
    with running("consume", argv, log_path) as consume:
        wait_until(lines_logged(log_path, "partition_assigned", 1), PROCESS_DEADLINE_S,
                   f"ledger consume assigned its partitions (log {log_path})")

        # Records arrive while the server is stopped: attempts logged, applied once back.
        server.stop("fast")
        first = _publish(settings, config[:half])
        wait_until(lines_logged(log_path, failed, ATTEMPTS_LOGGED), ATTEMPTS_DEADLINE_S,
                   f"ledger consume: {ATTEMPTS_LOGGED} failed attempts logged while the server"
                   f" is stopped (log {log_path})")
        assert consume.poll() is None, log_path.read_text()[-2000:]
        server.start()
        with closing(open_ledger(store)) as reader:
            def applied(last: dict[str, int]) -> Callable[[], bool]:
                def done() -> bool:
                    positions = {s: reader.position(s) for s in last}
                    return all(p is not None and p >= last[s] for s, p in positions.items())
                return done

            wait_until(applied(first), PROCESS_DEADLINE_S, "records applied after the stop")
            wait_until(applied(_publish(settings, config[half:])), PROCESS_DEADLINE_S,
                       "records applied afterwards")
        assert untouched_messages(store, config) == []
        assert events_named(log_path, RECONNECTED["consume"])

        # Stopped again, a record to apply, and SIGTERM while the server is away.
        server.stop("fast")
        before = len(events_named(log_path, failed))
        _publish(settings, config[:1])  # a copy: a duplicate once applied
        wait_until(lines_logged(log_path, failed, before + 1), ATTEMPTS_DEADLINE_S,
                   "ledger consume: a failed attempt logged")
        consume.send_signal(signal.SIGTERM)
        assert consume.wait(PROCESS_DEADLINE_S) == 0, log_path.read_text()[-2000:]
        assert logged(log_path)[-1]["event"] == "stopped"


def test_project_relay_and_consume_started_while_the_server_is_stopped_wait_for_it(
    server: PostgresServer, kafka_bootstrap_servers: str, tmp_path: Path,
) -> None:
    """Started before their database (a host's boot order, a server restarting): each logs
    its attempts, starts once the server is back and does its work; none exits (`consume`
    exited 1 at once, `project` too)."""
    store = server.url
    settings, config = _topics_store_and_one_partitions_messages(server, kafka_bootstrap_servers)
    prefix = settings.topic_prefix
    kafka = ["--bootstrap-servers", kafka_bootstrap_servers, "--topic-prefix", prefix]
    argv = {"project": ["--store", store], "relay": ["--store", store, *kafka],
            "consume": ["--store", store, *kafka, "--group-id", settings.group_id]}
    logs = {kind: tmp_path / f"{kind}.log" for kind in argv}
    server.stop("fast")
    with running("project", argv["project"], logs["project"]) as project, \
            running("relay", argv["relay"], logs["relay"]) as relay, \
            running("consume", argv["consume"], logs["consume"]) as consume:
        processes = {"project": project, "relay": relay, "consume": consume}
        for kind, path in logs.items():
            wait_until(lines_logged(path, "database_unavailable", ATTEMPTS_LOGGED),
                       ATTEMPTS_DEADLINE_S, f"ledger {kind}: {ATTEMPTS_LOGGED} failed attempts"
                       f" logged before the server started (log {path})")
            assert processes[kind].poll() is None, path.read_text()[-2000:]
        server.start()
        for kind, path in logs.items():
            wait_until(lines_logged(path, "started", 1), PROCESS_DEADLINE_S,
                       f"ledger {kind} started once the server was up (log {path})")
            assert events_named(path, "database_reconnected"), path.read_text()[-2000:]

        last = _publish(settings, config)
        with closing(open_ledger(store)) as reader:
            def applied() -> bool:
                return all((reader.position(s) or -1) >= offset for s, offset in last.items())

            wait_until(applied, PROCESS_DEADLINE_S, f"records applied (log {logs['consume']})")
            newest = reader.recorder.max_notification_id() or 0
            assert (wait_for_position(reader, newest, PROCESS_DEADLINE_S) or 0) >= newest
        assert untouched_messages(store, config) == []

        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for kind, process in processes.items():
            assert process.wait(PROCESS_DEADLINE_S) == 0, logs[kind].read_text()[-2000:]
            assert logged(logs[kind])[-1]["event"] == "stopped"

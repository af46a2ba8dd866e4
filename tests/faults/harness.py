"""The fault suite's stack and checks: `ledger consume`, `relay` and `project` as processes
that a test kills and restarts, the simulated day published through Kafka, and the checks
every scenario ends with.

Determinism. The reference is `ledger ingest` of the same events file, which applies the
lines in file order. Kafka orders records per partition only, so the day goes to topics of
ONE partition each, and is published in runs of consecutive lines of one topic, each run
published once the previous one is applied: the ledger then applies the day in file order,
whatever crashes happen, and its report must equal the ingested one byte for byte. The PSP's
answers are the simulation's own (its PSP policy answering the ledger's commands, as
`ledger simulate` writes them), published like every other line: a live `ledger
psp-simulator` would answer at its own moment, and the run would then equal no single file.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from kafka import TopicPartition

from consumers import kafka_clients
from consumers.avro_codec import decode, encode, headers_for, key_for, type_from_headers
from consumers.benchmarks.day import create_store
from consumers.benchmarks.ingest import end_offsets
from consumers.commands.topics import create_topics
from consumers.consumer_loop import source_name
from consumers.event_file import parse_event_line
from consumers.kafka_topics import topic_of
from consumers.relay import RELAY_TRACKING_NAME, RELAYED_TOPICS
from consumers.settings import Settings, settings_from
from consumers.simulation.scenario import SimulationOptions, simulate
from consumers.store import open_ledger
from ledger.domain.inbox import PROCESSED_BATCH_TOPIC
from ledger.messages import MESSAGE_TYPES, Envelope, parse_message
from tests.faults.conftest import InjectionLog

ROOT = Path(__file__).resolve().parents[2]
# Anything one step of the pipeline does takes seconds on a busy 2-core machine; more is a hang.
STEP_DEADLINE_S = 90
PROCESS_EXIT_DEADLINE_S = 30
# How often progress (and so every kill point) is read: a batch takes tens of milliseconds.
WATCH_INTERVAL_S = 0.005
RAW_POLL_TIMEOUT_MS = 200
# The broker's floor; a restart in the old group waits this long for the dead member to go.
SESSION_TIMEOUT_MS = 6_000
# The log line each process writes once it is running (consume: once a partition is sought).
READY_MARKERS = {
    "consume": '"event":"partition_assigned"',
    "relay": '"event":"started"',
    "project": '"event":"started"',
}
PROGRESS_SQL = """
SELECT
  (SELECT coalesce(sum(m + 1), 0) FROM (SELECT max(notification_id) AS m FROM ledger_tracking
     WHERE application_name LIKE 'kafka:%%' GROUP BY application_name) AS s),
  (SELECT coalesce(max(notification_id), 0) FROM relay_tracking
     WHERE application_name = %(relay)s),
  (SELECT coalesce(max(notification_id), 0) FROM rm_tracking),
  (SELECT coalesce(max(notification_id), 0) FROM ledger_events),
  (SELECT coalesce(max(notification_id), 0) FROM ledger_events WHERE topic = ANY(%(relayed)s))
"""


# ---------------------------------------------------------------- the day
@dataclass(frozen=True)
class Day:
    lines: list[str]  # the events file: every line that Kafka can carry
    messages: list[Envelope]  # the same, parsed, in file order

    def write(self, path: Path) -> Path:
        path.write_text("".join(line + "\n" for line in self.lines), encoding="utf-8")
        return path

    def runs(self) -> list[list[Envelope]]:
        """Consecutive messages of one topic: each run is published once the last is applied."""
        return [list(g) for _t, g in itertools.groupby(self.messages, key=topic_of)]


def simulated_day(sessions: int, seed: int) -> Day:
    """`ledger simulate --faults` (duplicates, a late and an overtaken meter value, an
    unknown operator); its one line that is not JSON cannot be an Avro record and is left out
    of both the file and the topics."""
    lines, messages = [], []
    for number, text in enumerate(
        simulate(SimulationOptions(sessions=sessions, seed=seed, faults=True)).lines, start=1
    ):
        line = parse_event_line(number, text.encode("utf-8"))
        if line.error is not None:
            continue
        lines.append(text)
        messages.append(parse_message(line.type_name, line.payload))
    return Day(lines, messages)


# ---------------------------------------------------------------- processes
class LedgerProcess:
    """One `ledger NAME` subprocess; its output in a log file per incarnation."""

    def __init__(self, kind: str, argv: list[str], log_path: Path) -> None:
        self.kind = kind
        self.log_path = log_path
        self._ready = False
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", *argv], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        if not self._ready:
            self._ready = READY_MARKERS[self.kind] in self.log_path.read_text(errors="replace")
        return self._ready

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(PROCESS_EXIT_DEADLINE_S)
        self._log.close()

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(PROCESS_EXIT_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code


@dataclass(frozen=True)
class Progress:
    records_applied: int  # inbound records whose offset the database holds
    relayed: int  # the relay's position (a notification id)
    projected: int  # the read models' position (a notification id)
    last_event: int  # the log's last notification id
    last_relayable: int  # the last command or dead letter in the log


@dataclass
class FaultStack:
    """consume, relay and project on one database and one topic prefix."""

    settings: Settings
    logs: Path
    processes: dict[str, LedgerProcess] = field(default_factory=dict)
    incarnations: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    consume_group: str = ""
    _watch: Any = None

    @property
    def database(self) -> str:
        return self.settings.store_url

    def start(self, *names: str) -> None:
        for name in names:
            self._launch(name)

    def _launch(self, name: str) -> None:
        """Start `name`: consume, relay, project, or another consume member (`consume-B`)."""
        self.incarnations[name] += 1
        kind = name.split("-")[0]
        common = ["--bootstrap-servers", ",".join(self.settings.bootstrap_servers),
                  "--topic-prefix", self.settings.topic_prefix, "--store", self.database]
        if kind == "consume":
            self.consume_group = self.consume_group or self.settings.group_id
            argv = ["consume", *common, "--group-id", self.consume_group,
                    "--session-timeout-ms", str(SESSION_TIMEOUT_MS)]
        elif kind == "relay":
            argv = ["relay", *common]
        else:
            argv = ["project", "--store", self.database]
        log = self.logs / f"{name}-{self.incarnations[name]}.log"
        self.processes[name] = LedgerProcess(kind, argv, log)

    def kill_and_restart(self, name: str, new_group: bool = False) -> None:
        """SIGKILL, then start again at once; consume in a new consumer group if asked (the
        database holds the positions, so the group only decides who reads which partition,
        and a new one spares waiting out the dead member's session)."""
        self.processes[name].kill()
        if name == "consume" and new_group:
            self.consume_group = f"{self.settings.group_id}-{self.incarnations[name] + 1}"
        self._launch(name)

    def stop_one(self, name: str) -> int:
        return self.processes.pop(name).stop()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if not process.alive():
                raise AssertionError(f"ledger {name} exited {process.process.returncode}:\n"
                                     f"{process.tail()}")

    def stop(self) -> dict[str, int]:
        codes = {name: process.stop() for name, process in self.processes.items()}
        self.processes.clear()
        self.forget_watch_connection()
        return codes

    def watch_connection(self) -> Any:
        if self._watch is None:
            self._watch = psycopg.connect(self.database, autocommit=True)
        return self._watch

    def forget_watch_connection(self) -> None:
        """Before the server goes away: the next read opens a new connection."""
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def position(self, source: str) -> int:
        """The stored position of a Kafka source, -1 before any."""
        row = self.watch_connection().execute(
            "SELECT coalesce(max(notification_id), -1) FROM ledger_tracking"
            " WHERE application_name = %s", (source,)).fetchone()
        return int(row[0])

    def progress(self) -> Progress:
        row = self.watch_connection().execute(PROGRESS_SQL, {
            "relay": RELAY_TRACKING_NAME,
            "relayed": list(RELAYED_TOPICS),
        }).fetchone()
        return Progress(*(int(v) for v in row))


def stack_for(database: str, bootstrap: str, prefix: str, logs: Path) -> FaultStack:
    """Topics of one partition each (the day is then applied in file order), every table
    created before any process starts (docs/kafka.md, "Start members one at a time")."""
    settings = settings_from(argparse.Namespace(
        bootstrap_servers=bootstrap, topic_prefix=prefix, store=database,
        group_id=f"{prefix}ledger", metrics_port=0, session_timeout_ms=SESSION_TIMEOUT_MS,
    ), environ={})
    with closing(kafka_clients.admin(settings)) as admin:
        create_topics(admin, settings.all_topics(), partitions=1, replication_factor=1)
    create_store(database)
    logs.mkdir(parents=True, exist_ok=True)
    return FaultStack(settings, logs)


# ---------------------------------------------------------------- waiting, with kills
@dataclass
class KillPlan:
    """Points at which to hurt one process: once `measure(progress)` reaches each target
    (and the running incarnation is ready), SIGKILL it and start it again at once; or, with
    `process` None, `act` on the stack instead (e.g. terminate its database connections)."""

    process: str | None
    fault: str
    targets: list[int]
    measure: Callable[[Progress], int]
    new_group: Callable[[], bool] = lambda: False
    act: Callable[[FaultStack], dict[str, object]] | None = None
    fired: list[int] = field(default_factory=list)

    def due(self, progress: Progress) -> bool:
        return bool(self.targets) and self.measure(progress) >= self.targets[0]

    def ready(self, stack: FaultStack) -> bool:
        return self.process is None or stack.processes[self.process].ready()

    def fire(self, stack: FaultStack, progress: Progress) -> dict[str, object]:
        target = self.targets.pop(0)
        at = self.measure(progress)
        self.fired.append(at)
        if self.act is not None:
            return {"target": target, "at": at, **self.act(stack)}
        assert self.process is not None
        new_group = self.process == "consume" and self.new_group()
        stack.kill_and_restart(self.process, new_group=new_group)
        restart = ("new group" if new_group else "same group") if self.process == "consume" \
            else "at once"
        return {"target": target, "at": at, "restart": restart}


Injected = Callable[..., None]


def watch(stack: FaultStack, plans: Sequence[KillPlan], done: Callable[[Progress], bool],
          what: str, injected: Injected) -> Progress:
    """Read progress until `done`; fire every injection that is due on the way."""
    deadline = time.monotonic() + STEP_DEADLINE_S
    while True:
        progress = stack.progress()
        for plan in plans:
            if plan.due(progress) and plan.ready(stack):
                injected(plan.fault, **plan.fire(stack, progress))
                deadline = time.monotonic() + STEP_DEADLINE_S
        if done(progress) and not any(p.due(progress) for p in plans):
            return progress
        stack.check_alive()
        if time.monotonic() > deadline:
            unfired = [f"{p.process or 'database'} at {p.targets}" for p in plans if p.targets]
            raise AssertionError(f"{what}: not done after {STEP_DEADLINE_S} s; {progress};"
                                 f" kill points not reached: {unfired}; logs in {stack.logs}")
        time.sleep(WATCH_INTERVAL_S)


def wait_for(stack: FaultStack, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP_DEADLINE_S
    while not condition():
        stack.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {STEP_DEADLINE_S} s; logs in {stack.logs}")
        time.sleep(WATCH_INTERVAL_S * 10)


def terminate_connections(stack: FaultStack) -> dict[str, object]:
    """pg_terminate_backend on every other connection to the stack's own database (never
    the shared server's others): the processes must reconnect and go on."""
    row = stack.watch_connection().execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND usename = current_user").fetchone()
    return {"terminated": int(row[0])}


def publish_day(stack: FaultStack, day: Day, plans: Sequence[KillPlan],
                injected: Injected) -> None:
    """Each run of one topic published once the previous run is applied: its partition's
    stored position is the last offset the broker gave the run."""
    producer = kafka_clients.producer(stack.settings)
    try:
        for run in day.runs():
            source, last_offset = publish_run(producer, stack.settings, run)

            def applied(_p: Progress, source: str = source, last: int = last_offset) -> bool:
                return stack.position(source) >= last

            watch(stack, plans, applied, f"{source} applied up to offset {last_offset}",
                  injected)
    finally:
        producer.close()


def publish_run(producer: Any, settings: Settings, run: Sequence[Envelope]) -> tuple[str, int]:
    """Publish messages of one topic (of one partition); its source and the last offset."""
    futures = [producer.send(settings.topic(topic_of(m)), value=encode(m), key=key_for(m),
                             headers=headers_for(m)) for m in run]
    producer.flush()
    written = [f.get(timeout=STEP_DEADLINE_S) for f in futures]
    assert len({(w.topic, w.partition) for w in written}) == 1, "a run is one partition's"
    return source_name(written[-1].topic, written[-1].partition), written[-1].offset


def settle(stack: FaultStack, plans: Sequence[KillPlan], injected: Injected,
           records: int) -> Progress:
    """Every record applied, the outbox relayed, the read models at the end of the log, and
    no kill due (a kill point beyond the end of the log stays unfired: the caller checks)."""
    def quiet(p: Progress) -> bool:
        # Every process running, too: one restarted a moment ago has no SIGTERM handler yet.
        return (p.records_applied >= records and p.relayed >= p.last_relayable
                and p.projected >= p.last_event
                and all(process.ready() for process in stack.processes.values()))

    return watch(stack, plans, quiet, "the pipeline settling", injected)


# ---------------------------------------------------------------- checks
def ledger_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumers.cli", *argv], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=STEP_DEADLINE_S * 3, check=False,
    )


def ingest(events: Path, database: str) -> None:
    """The reference: a clean `ledger ingest` (exit 3: some lines were dead-lettered)."""
    result = ledger_cli("ingest", "--events", str(events), "--store", database)
    assert result.returncode in (0, 3), result.stderr


def report(database: str) -> dict[str, Any]:
    """`ledger report --json`, its dead letters without where they came from (a file line or a
    Kafka offset: the one thing a Kafka run and `ledger ingest` may not share)."""
    result = ledger_cli("report", "--store", database, "--json")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    letters = parsed["dead_letters"]
    letters["items"] = sorted(
        ({k: v for k, v in item.items() if k not in ("source", "position", "key")}
         for item in letters["items"]), key=lambda i: json.dumps(i, sort_keys=True))
    return parsed


# A dead letter's id and fields that say where the message came from (a file line or a
# Kafka offset), not what it was.
_DEAD_LETTER_PROVENANCE = ("source", "position", "key", "payload")
_TRANSPORTS = ("file:", "kafka:")
_DEAD_LETTER_TOPIC = "ledger.domain.inbox:DeadLetter"
_PARKING_TOPIC = "ledger.domain.parking:"


def stored_events(database: str) -> list[str]:
    """Every stored event (aggregate, version, type, state) as one JSON text each, sorted,
    without the wall-clock timestamp and a message's provenance (dead letters, parking).
    A `ProcessedBatch` is one item per event id it records: how messages were grouped
    into batches is the transport's, not what was applied."""
    with psycopg.connect(database) as connection:
        rows = connection.execute(
            "SELECT originator_id, originator_version, topic, state FROM ledger_events"
        ).fetchall()
    events: list[str] = []
    for originator_id, version, topic, state in rows:
        payload = json.loads(bytes(state))
        if topic == PROCESSED_BATCH_TOPIC:
            events.extend(json.dumps(["processed", *entry]) for entry in payload["entries"])
            continue
        payload.pop("timestamp", None)
        aggregate = str(originator_id)
        if str(payload.get("source", "")).startswith(_TRANSPORTS):
            payload["source"] = "transport"  # the file or the Kafka partition it came by
        if topic.startswith(_DEAD_LETTER_TOPIC):
            aggregate = "dead letter"
            for name in _DEAD_LETTER_PROVENANCE:
                payload.pop(name, None)
        if topic.startswith(_PARKING_TOPIC):
            payload = _without_provenance(payload)
        events.append(json.dumps([aggregate, version, topic, payload], sort_keys=True))
    return sorted(events)


def _without_provenance(value: Any) -> Any:
    """Parking keeps where a message came from (source, offset or line, raw bytes)."""
    if isinstance(value, dict):
        return {k: _without_provenance(v) for k, v in value.items()
                if k not in ("source", "position", "positions", "raw")}
    if isinstance(value, list):
        return [_without_provenance(v) for v in value]
    return value


def event_digest(database: str) -> tuple[int, str]:
    events = stored_events(database)
    return len(events), hashlib.sha256("\n".join(events).encode()).hexdigest()


def assert_same_events(database: str, reference: str, redelivered: bool = False) -> None:
    """The stored events equal the reference's. After a redelivery, the dead letters and
    parked messages aside: a record dead-lettered once is parked or dead-lettered again at
    each delivery (a dead letter is about a delivery); the caller checks those by id."""
    found, expected = stored_events(database), stored_events(reference)
    if redelivered:
        found, expected = ([e for e in events if not _about_a_delivery(e)]
                           for events in (found, expected))
    if found != expected:
        extra, missing = sorted(set(found) - set(expected)), sorted(set(expected) - set(found))
        raise AssertionError(
            f"stored events differ from the reference: {len(found)} vs {len(expected)};"
            f" {len(extra)} not in the reference, e.g. {extra[:2]};"
            f" {len(missing)} missing, e.g. {missing[:2]}")


def untouched_messages(database: str, messages: Sequence[Envelope]) -> list[str]:
    """Event ids of published messages the ledger holds no trace of: neither processed
    (an entry of a ProcessedBatch) nor dead-lettered."""
    traces: set[tuple[str, str]] = set()
    with psycopg.connect(database) as connection:
        for topic, state in connection.execute(
            "SELECT topic, state FROM ledger_events WHERE topic IN"
            " (%s, 'ledger.domain.inbox:DeadLetter.Recorded')", (PROCESSED_BATCH_TOPIC,)
        ).fetchall():
            payload = json.loads(bytes(state))
            if topic == PROCESSED_BATCH_TOPIC:
                traces.update((str(t), str(e)) for t, e, _digest in payload["entries"])
            else:
                traces.add((str(payload.get("tenant_id")), str(payload.get("event_id"))))
    return sorted({m.event_id for m in messages if (m.tenant_id, m.event_id) not in traces})


def report_differences(found: dict[str, Any], expected: dict[str, Any]) -> str:
    """The sections of two reports that differ, briefly (a full diff is pages long)."""
    lines = []
    for section in sorted(set(found) | set(expected)):
        mine, theirs = found.get(section), expected.get(section)
        if mine != theirs:
            lines.append(f"{section}: {json.dumps(mine, sort_keys=True)[:300]}"
                         f" != expected {json.dumps(theirs, sort_keys=True)[:300]}")
    return "\n".join(lines)


def _about_a_delivery(event: str) -> bool:
    return f'"{_DEAD_LETTER_TOPIC}' in event or f'"{_PARKING_TOPIC}' in event


def assert_same_report_after_redelivery(found: dict[str, Any],
                                        expected: dict[str, Any]) -> None:
    """Equal but for dead letters and parked messages, which may only be copies of what was
    dead-lettered the first time (and still all of that)."""
    sections = ("dead_letters", "parked")
    rest_found = {k: v for k, v in found.items() if k not in sections}
    rest_expected = {k: v for k, v in expected.items() if k not in sections}
    assert rest_found == rest_expected, ("report differs from ledger ingest:\n"
                                         + report_differences(rest_found, rest_expected))
    dead = {i["event_id"] for i in expected["dead_letters"]["items"]}
    again = {i["event_id"] for i in found["dead_letters"]["items"]} | {
        i["event_id"] for i in found.get("parked", {}).get("items", [])}
    assert dead <= again, f"dead letters lost: {sorted(dead - again)}"
    assert again <= dead, f"dead-lettered or parked only after redelivery: {again - dead}"


def journal_imbalance(database: str) -> list[tuple[str, str, int]]:
    """(tenant, currency, sum) of every journal that does not sum to zero."""
    with psycopg.connect(database) as connection:
        rows = connection.execute(
            "SELECT tenant_id, currency, SUM(amount_minor) FROM rm_journal_postings"
            " GROUP BY tenant_id, currency HAVING SUM(amount_minor) <> 0"
        ).fetchall()
    return [(str(t), str(c), int(s)) for t, c, s in rows]


def read_models(database: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model table's rows, sorted (the projection's own position left out)."""
    with psycopg.connect(database) as connection:
        tables = [r[0] for r in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_name LIKE 'rm\\_%' AND table_name <> 'rm_tracking' ORDER BY 1"
        ).fetchall()]
        # Table names from the catalog, never from input.
        return {table: sorted(tuple(str(v) for v in row) for row in connection.execute(
                    f'SELECT * FROM "{table}"').fetchall())
                for table in tables}


def rebuilt_read_models(database: str) -> dict[str, list[tuple[Any, ...]]]:
    result = ledger_cli("project", "--store", database, "--rebuild")
    assert result.returncode == 0, result.stderr
    return read_models(database)


def issued_commands(database: str) -> dict[str, bytes]:
    """Every command in the ledger's outbox: its id and the bytes the relay must send."""
    found: dict[str, bytes] = {}
    with closing(open_ledger(database)) as ledger:
        for _, command in ledger.recorded_commands():
            message = MESSAGE_TYPES[command.type_name].model_validate(command.payload)
            found[command.command_id] = encode(message)
    return found


def sent_commands(settings: Settings) -> dict[str, set[bytes]]:
    """Per command id (the record's event id), every distinct value sent on the outbound
    command topics."""
    sent: dict[str, set[bytes]] = defaultdict(set)
    topics = [settings.topic(topic_of(MESSAGE_TYPES[name]))
              for name in ("PaymentCommand", "StopSessionRequested")]
    for record in _every_record(settings, topics):
        message = decode(type_from_headers(record.headers), record.value)
        sent[message.event_id].add(record.value)
    return sent


def _every_record(settings: Settings, topics: Sequence[str]) -> Iterator[Any]:
    ends = end_offsets(settings, topics)
    with closing(kafka_clients.raw_consumer(settings)) as consumer:
        partitions = [TopicPartition(t, p) for t in topics
                      for p in sorted(consumer.partitions_for_topic(t))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        total = sum(ends.values())
        read = 0
        deadline = time.monotonic() + STEP_DEADLINE_S
        records: list[Any] = []
        while read < total:
            assert time.monotonic() < deadline, f"read {read} of {total} records of {topics}"
            for batch in consumer.poll(timeout_ms=RAW_POLL_TIMEOUT_MS).values():
                records.extend(batch)
                read += len(batch)
    records.sort(key=lambda r: (r.topic, r.partition, r.offset))
    yield from records


def inbound_records(settings: Settings) -> dict[str, list[Any]]:
    """Every record of every inbound topic, per topic in offset order."""
    by_topic: dict[str, list[Any]] = defaultdict(list)
    for record in _every_record(settings, settings.inbound_topics()):
        by_topic[record.topic].append(record)
    return dict(by_topic)


@dataclass
class DayRun:
    stack: FaultStack
    day: Day
    reference: str  # the database of the clean `ledger ingest`
    records: int


def assert_took_effect_once(run: DayRun, injections: InjectionLog, fault: str,
                            redelivered: bool = False) -> None:
    """The checks every scenario ends with (the processes stopped); `redelivered`: every
    record came more than once (a dead-lettered record is then dead-lettered or parked again
    at each delivery)."""
    database = run.stack.database
    untouched = untouched_messages(database, run.day.messages)
    assert not untouched, (f"{len(untouched)} published messages never took effect nor were"
                           f" dead-lettered, e.g. {untouched[:5]}")
    found, expected = report(database), report(run.reference)
    if redelivered:
        assert_same_report_after_redelivery(found, expected)
    else:
        assert found == expected, ("report differs from ledger ingest:\n"
                                   + report_differences(found, expected))
    assert_same_events(database, run.reference, redelivered=redelivered)
    issued = issued_commands(database)
    sent = sent_commands(run.stack.settings)
    assert issued, "the day issued no command: nothing was tested"
    missing = sorted(set(issued) - set(sent))
    assert not missing, f"{len(missing)} commands never sent, e.g. {missing[:3]}"
    twice = {cid: len(values) for cid, values in sent.items() if len(values) > 1}
    assert not twice, f"command ids sent with different payloads: {twice}"
    wrong = sorted(cid for cid, value in issued.items() if sent[cid] != {value})
    assert not wrong, f"commands sent with another payload than the outbox's: {wrong[:3]}"
    assert set(sent) <= set(issued), "a command was sent that the outbox does not hold"
    assert journal_imbalance(database) == []
    assert read_models(database) == rebuilt_read_models(database), (
        "read models differ from a clean rebuild")
    injections.checked(
        fault, "report == ledger ingest (byte-identical, dead letters without provenance)",
        "event digest == ledger ingest", "every outbox command sent, one payload per id",
        "journal sums to zero", "read models == ledger project --rebuild",
    )

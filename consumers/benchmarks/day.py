"""`end_to_end_ratio`: a simulated day through Kafka, as production would see it, against a
raw kafka-python read of the same topics, in the same run.

1. The day (`ledger simulate`'s scenario) is published to its topics in file order, except the
   PSP's answers: those come from `ledger psp-simulator`, only after the ledger's commands
   reached it through `ledger relay`, as in production.
2. `ledger consume`, `relay`, `project` and `psp-simulator` run as processes (consumers/
   benchmarks/stack.py), started and joined before the clock starts; the clock stops when
   the whole pipeline is quiet: every inbound record (the published day and every PSP answer)
   applied, every PSP command answered, the outbox relayed and the read models at the end of
   the log, twice in a row (the clock stops at the first of the two).
3. Then a group-less kafka-python consumer reads the same inbound records, bytes only.
The ratio is ledger msgs/s over raw msgs/s; the peak RSS of `ledger consume` is kept for
`rss_growth_ratio`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from consumers import kafka_clients
from consumers.benchmarks.ingest import behind, end_offsets, publish, raw_consume_seconds
from consumers.benchmarks.stack import Stack
from consumers.benchmarks.stop_latency import StopLatency, measure_stop_latency
from consumers.consumer_loop import parse_source
from consumers.event_file import parse_event_line
from consumers.kafka_topics import topic_of
from consumers.relay import RELAY_TRACKING_NAME, RELAYED_TOPICS, open_relay_tracking
from consumers.settings import Settings
from consumers.simulation.scenario import SimulationOptions, simulate
from consumers.store import open_ledger
from ledger.application import Ledger
from ledger.messages import (
    Envelope,
    PaymentCommand,
    PaymentResult,
    SessionCostUpdated,
    parse_message,
)
from projections.database import open_read_model
from projections.runner import ensure_schema, stored_position
from projections.sql import SELECT_COMMAND_COUNTS

# The whole pipeline must be quiet this many checks in a row, this far apart, to be done: a
# PSP answer in flight (relay -> PSP -> Kafka -> consume) shows up within one interval.
QUIET_CHECKS = 2
QUIET_CHECK_INTERVAL_S = 1.0
# The day's pipeline on a busy 2-core machine: minutes; more than this is stuck, not slow.
DAY_DEADLINE_S = 900
# The processes have started and joined their groups when the consumer logs its first poll;
# Python start-up and the first rebalance on a busy machine stay well within this.
STACK_READY_DEADLINE_S = 120
STACK_READY_MARKER = '"event":"started"'
SIMULATION_SEED = 7
# The stop bench's tenant with cost updates on: the simulated tenants' step.
STOP_COST_UPDATE_STEP = Decimal("0.50")


@dataclass(frozen=True, slots=True)
class DayRun:
    sessions: int
    published: int  # day records published (PSP answers excluded)
    psp_answers: int
    consumed: int  # every inbound record the ledger applied: published + PSP answers
    ledger_seconds: float
    raw_seconds: float
    ledger_msgs_per_s: float
    raw_msgs_per_s: float
    end_to_end_ratio: float
    consume_peak_rss_kb: int
    stop_latency: StopLatency | None
    cost_updates_sent: int = 0  # SessionCostUpdated commands of the day (projected)


def without_cost_updates(lines: list[str]) -> list[str]:
    """The same day with every tenant's cost updates switched off (step 0)."""
    off = []
    for text in lines:
        line = json.loads(text)
        if line.get("type") == "TenantConfigured":
            line["event"]["cost_update_step"] = "0"
            text = json.dumps(line, sort_keys=True, separators=(",", ":"))
        off.append(text)
    return off


def day_messages(sessions: int, cost_updates: bool = True) -> tuple[list[str], list[Envelope]]:
    """The simulated day as event lines (for `ledger ingest`) and as the messages a
    production CSMS and configuration source would publish (the PSP's answers left out);
    `cost_updates` False: the same day with the tenants' cost updates switched off."""
    lines = simulate(SimulationOptions(sessions=sessions, seed=SIMULATION_SEED)).lines
    if not cost_updates:
        lines = without_cost_updates(lines)
    messages = []
    for number, text in enumerate(lines, start=1):
        line = parse_event_line(number, text.encode("utf-8"))
        assert line.error is None, f"simulated line {number}: {line.error}"
        message = parse_message(line.type_name, line.payload)
        if not isinstance(message, PaymentResult):
            messages.append(message)
    return lines, messages


def run_day(settings: Settings, sessions: int, logs: Path, stop_samples: int = 0,
            cost_updates: bool = True) -> DayRun:
    """Steps 1-3 on fresh topics (`settings.topic_prefix`) and an empty store; then, with
    the day applied and the stack still running, `stop_samples` stop latencies.
    `cost_updates` False: the tenants of the day and of the stops send no cost updates."""
    _lines, messages = day_messages(sessions, cost_updates)
    create_store(settings.store_url)
    stack = Stack(settings, logs)
    stack.start()
    try:
        _wait(stack, lambda: all(_started(logs, name) for name in stack.processes),
              STACK_READY_DEADLINE_S, "the ledger processes starting")
        with closing(open_ledger(settings.store_url)) as ledger:
            producer = kafka_clients.producer(settings)
            try:
                started_s = time.perf_counter()
                published = publish(producer, settings, messages)
            finally:
                producer.close()
            # psp.results also carries the day's terminal authorizations, published above.
            not_answers = sum(1 for m in messages if topic_of(m) == topic_of(PaymentResult))
            quiet = _QuietCheck(settings, ledger, not_answers)
            _wait(stack, quiet, DAY_DEADLINE_S, "the day applied")
            ledger_seconds = quiet.quiet_since_s - started_s
            peak_rss_kb = stack.peak_rss_kb("consume")
            # The day's records only: the stop latency below publishes more.
            inbound = settings.inbound_topics()
            ends = end_offsets(settings, inbound)
            consumed = sum(ends.values())
            psp_answers = _records_of(settings.topic(topic_of(PaymentResult)), ends) - not_answers
            cost_updates_sent = _commands_projected(ledger, SessionCostUpdated.type_name())
            stop_latency = (
                measure_stop_latency(settings, ledger, stop_samples,
                                     STOP_COST_UPDATE_STEP if cost_updates else Decimal(0))
                if stop_samples else None
            )
    finally:
        stack.stop()
    raw_seconds = raw_consume_seconds(settings, inbound, consumed)
    ledger_rate, raw_rate = consumed / ledger_seconds, consumed / raw_seconds
    return DayRun(
        sessions=sessions, published=published, psp_answers=psp_answers, consumed=consumed,
        ledger_seconds=round(ledger_seconds, 3), raw_seconds=round(raw_seconds, 3),
        ledger_msgs_per_s=round(ledger_rate, 1), raw_msgs_per_s=round(raw_rate, 1),
        end_to_end_ratio=round(ledger_rate / raw_rate, 4), consume_peak_rss_kb=peak_rss_kb,
        stop_latency=stop_latency, cost_updates_sent=cost_updates_sent,
    )


def create_store(store_url: str) -> None:
    """Every table the processes use, created before they start: processes creating them at
    the same instant on an empty database fail (docs/kafka.md, "Start members one at a time")."""
    with closing(open_ledger(store_url)) as ledger, closing(open_read_model(ledger)) as db:
        ensure_schema(db)
    factory, _tracking = open_relay_tracking(store_url)
    factory.close()


def _started(logs: Path, name: str) -> bool:
    path = logs / f"{name}.log"
    return path.exists() and STACK_READY_MARKER in path.read_text(errors="replace")


def _wait(stack: Stack, condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        stack.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {deadline_s} s")
        time.sleep(QUIET_CHECK_INTERVAL_S / 4)


class _QuietCheck:
    """Done when the pipeline is quiet QUIET_CHECKS checks in a row; the day ended at the
    first of them (the later ones only confirm it), so the confirming wait is not timed."""

    def __init__(self, settings: Settings, ledger: Ledger, not_answers: int) -> None:
        self._settings, self._ledger, self._not_answers = settings, ledger, not_answers
        self._quiet_in_a_row = 0
        self._last_check_s = 0.0
        self.quiet_since_s = 0.0  # time.perf_counter() of the streak's first quiet check

    def __call__(self) -> bool:
        if time.monotonic() - self._last_check_s < QUIET_CHECK_INTERVAL_S:
            return False
        self._last_check_s = time.monotonic()
        checked_s = time.perf_counter()
        if not _pipeline_quiet(self._settings, self._ledger, self._not_answers):
            self._quiet_in_a_row = 0
            return False
        if self._quiet_in_a_row == 0:
            self.quiet_since_s = checked_s
        self._quiet_in_a_row += 1
        return self._quiet_in_a_row >= QUIET_CHECKS


def _records_of(topic: str, ends: dict[str, int]) -> int:
    """Records of `topic` in end offsets per source (`kafka:topic:partition`)."""
    return sum(end for source, end in ends.items()
               if (parse_source(source) or ("", 0))[0] == topic)


def _commands_projected(ledger: Ledger, type_name: str) -> int:
    db = open_read_model(ledger)
    try:
        return sum(int(count) for _tenant, name, count in db.query(SELECT_COMMAND_COUNTS.text)
                   if name == type_name)
    finally:
        db.close()


def _pipeline_quiet(settings: Settings, ledger: Ledger, not_answers: int) -> bool:
    inbound = end_offsets(settings, settings.inbound_topics())
    if behind(ledger, inbound):
        return False
    commands = sum(end_offsets(settings, [settings.topic(topic_of(PaymentCommand))]).values())
    answers = _records_of(settings.topic(topic_of(PaymentResult)), inbound) - not_answers
    if answers < commands:
        return False
    last_id = ledger.recorder.max_notification_id() or 0
    factory, tracking = open_relay_tracking(settings.store_url)
    try:
        relayed = tracking.max_tracking_id(RELAY_TRACKING_NAME) or 0
    finally:
        factory.close()
    unrelayed = ledger.recorder.select_notifications(
        start=relayed, limit=1, topics=RELAYED_TOPICS, inclusive_of_start=False)
    if unrelayed:
        return False
    db = open_read_model(ledger)
    try:
        return (stored_position(db) or 0) >= last_id
    finally:
        db.close()

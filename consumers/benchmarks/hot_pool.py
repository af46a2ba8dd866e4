"""`hot_pool_ratio`: the simulated day with every driver's sessions charged to ONE partner's
pool, over the same day with each driver on a pool of its own, in the same run.

Both days are the `ledger simulate` day (without its month-end tick) plus, with the rest of
its configuration, one `PartnerConfigured` per pool (a pool far larger than the day, so every
session stays on it) and one `EnrolmentChanged` per driver. The configuration is applied
first, not timed; then two ledger processes apply the rest at once, each the messages of half
of the keys (as two `ledger consume` members with their partitions would), on one PostgreSQL
store. A pool is
one aggregate every session charged to it reads and writes, so on the hot day the two
writers meet on it: what one holds goes stale when the other writes it, and the batch is
applied again (ledger/application.py). The ratio is the spread day's seconds over the hot
day's (1.0: a hot pool costs nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from consumers.commands.ingest import ingest_file, source_for
from consumers.event_file import event_line_for
from consumers.simulation.sponsors import MONTH_END_CLOCK_PRODUCER
from consumers.store import open_ledger
from ledger.messages import EnrolmentChanged, PartnerConfigured

WRITERS = 2
# Far above what any day charges: the pool never runs out, so every session stays on it.
POOL_LIMIT = Decimal("10000000.00")
# Two writers applying half a default day each: seconds; more than this is stuck.
WRITERS_DEADLINE_S = 900
CONFIG_TOPIC = "config"
WRITER_PROGRAM = ("import json, sys; from consumers.benchmarks.hot_pool import apply_file;"
                  " print(json.dumps(apply_file(sys.argv[1], sys.argv[2])))")


@dataclass(frozen=True, slots=True)
class HotPoolRun:
    drivers: int  # enrolled, each on the hot pool or on a pool of its own
    messages: int  # applied by the writers (the configuration before excluded)
    hot_seconds: float
    spread_seconds: float
    # Batches a writer applied again because the other had written what it held or read.
    hot_batches_retried: int
    spread_batches_retried: int
    hot_pool_ratio: float


def pool_day(lines: list[str], *, hot: bool) -> tuple[list[str], list[str]]:
    """The day's configuration with the partners and enrolments added, and the rest."""
    # Without the month-end tick: it settles the pools, and with two writers it may come
    # before sessions the other writer still applies, which the pool then no longer covers
    # (the two days would not do the same work).
    lines = [line for line in lines
             if json.loads(line)["event"].get("producer") != MONTH_END_CLOCK_PRODUCER]
    documents = [json.loads(line) for line in lines]
    first_other = next(i for i, d in enumerate(documents) if d["topic"] != CONFIG_TOPIC)
    drivers = [d["event"] for d in documents[:first_other] if d["type"] == "DriverConfigured"]
    assert drivers, "the simulated day configures drivers"
    added: list[str] = []
    for number, driver in enumerate(drivers):
        tenant_id, at = driver["tenant_id"], datetime.fromisoformat(driver["effective_at"])
        partner_id = f"ptn-bench-{tenant_id}" if hot else f"ptn-bench-{number}"
        common = {"tenant_id": tenant_id, "occurred_at": at, "effective_at": at,
                  "producer": "bench"}
        if not hot or number == 0:
            added.append(event_line_for(PartnerConfigured(
                event_id=f"bench-partner-{number}", **common, partner_id=partner_id,
                billing_period="monthly", pool_limit=POOL_LIMIT,
            )))
        added.append(event_line_for(EnrolmentChanged(
            event_id=f"bench-enrolment-{number}", **common, partner_id=partner_id,
            driver_id=driver["driver_id"], action="enrol",
        )))
    return [*lines[:first_other], *added], lines[first_other:]


def run_hot_pool(hot_store_url: str, spread_store_url: str, lines: list[str],
                 work_dir: Path) -> HotPoolRun:
    """Both days, each on its own (empty) store."""
    hot = _run_day(hot_store_url, lines, work_dir / "hot", hot=True)
    spread = _run_day(spread_store_url, lines, work_dir / "spread", hot=False)
    return HotPoolRun(
        drivers=hot.drivers, messages=hot.messages, hot_seconds=round(hot.seconds, 3),
        spread_seconds=round(spread.seconds, 3), hot_batches_retried=hot.batches_retried,
        spread_batches_retried=spread.batches_retried,
        hot_pool_ratio=round(spread.seconds / hot.seconds, 4),
    )


@dataclass(frozen=True, slots=True)
class _Day:
    seconds: float
    drivers: int
    messages: int
    batches_retried: int


def _run_day(store_url: str, lines: list[str], work_dir: Path, *,
             hot: bool) -> _Day:
    work_dir.mkdir(parents=True, exist_ok=True)
    config, rest = pool_day(lines, hot=hot)
    config_file = work_dir / "config.jsonl"
    config_file.write_text("\n".join(config) + "\n", encoding="utf-8")
    apply_file(store_url, str(config_file))
    halves: list[list[str]] = [[] for _ in range(WRITERS)]
    for line in rest:
        key = json.loads(line)["key"].encode("utf-8")
        halves[zlib.crc32(key) % WRITERS].append(line)
    files = []
    for number, half in enumerate(halves):
        files.append(work_dir / f"writer-{number}.jsonl")
        files[-1].write_text("\n".join(half) + "\n", encoding="utf-8")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER_PROGRAM, store_url, str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for path in files
    ]
    spans = []
    for writer in writers:
        out, err = writer.communicate(timeout=WRITERS_DEADLINE_S)
        if writer.returncode != 0:
            raise RuntimeError(f"hot pool writer failed: {err.decode()[-2000:]}")
        spans.append(json.loads(out.decode().strip().splitlines()[-1]))
    return _Day(
        seconds=max(s["ended"] for s in spans) - min(s["started"] for s in spans),
        drivers=sum(1 for line in config if '"type":"EnrolmentChanged"' in line),
        messages=len(rest), batches_retried=int(sum(s["batches_retried"] for s in spans)),
    )


def apply_file(store_url: str, path: str) -> dict[str, float]:
    """Apply one event file (a writer process; the wall clock is shared between them)."""
    ledger = open_ledger(store_url)
    try:
        started = time.time()
        ingest_file(ledger, Path(path), source_for(Path(path)))
        return {"started": started, "ended": time.time(),
                "batches_retried": ledger.batches_retried}
    finally:
        ledger.close()

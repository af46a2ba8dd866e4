"""`ledger bench [--json] [--size small|default|large]`: the real workload, every ratio
against a raw baseline measured in the same run (so a busy machine moves both).

Against services that already run (it starts none, and says so when they are not there):
the PostgreSQL server of --store / $LEDGER_STORE (a role that may CREATE DATABASE: each
measure gets a scratch database, dropped afterwards) and the broker of --bootstrap-servers /
$KAFKA_BOOTSTRAP_SERVERS (fresh topics per run). The measures and their baselines:

- end_to_end_ratio: a simulated day through consume/relay/project/psp-simulator, over a
  kafka-python read of the same records (consumers/benchmarks/day.py);
- ingest_ratio: parsing + decoding the day's file, over `ledger ingest` of it;
- store_write_ratio: psycopg executemany of the day's events, over eventsourcing's recorder
  writing them (COPY: store_copy_ratio, the ceiling);
- projection_ratio / rebuild_ratio: a raw scan of the event table, over the projector's
  catch-up / a full rebuild (consumers/benchmarks/store_paths.py);
- stop_latency_p50_ms / _p99_ms: meter update over a hold's limit -> stop readable on Kafka
  (consumers/benchmarks/stop_latency.py);
- rss_growth_ratio: peak RSS of `ledger consume` at N sessions over N/10;
- hot_pool_ratio: the day with every driver on one partner's pool over the same day with a
  pool per driver, two ledger writers at once (consumers/benchmarks/hot_pool.py).
Every ratio is "ledger speed over raw speed" (1.0: as fast as the raw baseline).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from contextlib import AbstractContextManager, closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from consumers import kafka_clients
from consumers.benchmarks.day import DayRun, day_messages, run_day
from consumers.benchmarks.hot_pool import run_hot_pool
from consumers.benchmarks.store_paths import run_store_paths
from consumers.cli import CliError
from consumers.commands.topics import create_topics
from consumers.scratch_database import scratch_database
from consumers.settings import Settings, settings_from
from consumers.store import redacted_url, store_url_from

SERVICES_HINT = ("`ledger bench` starts no services; start them first, e.g. "
                 '`eval "$(scripts/services up)"` in a checkout')
# A local server answers a connection in milliseconds; a missing one must not hang the bench.
SERVICE_CONNECT_TIMEOUT_S = 5
TOPIC_PARTITIONS = 3


@dataclass(frozen=True, slots=True)
class Size:
    sessions: int  # of the simulated day
    stop_samples: int
    # A second day of a tenth of the sessions, for rss_growth_ratio: a second start of the
    # four processes, which a CI run cannot afford (and a 1-session day says nothing).
    rss_baseline: bool


SIZES = {
    "small": Size(sessions=10, stop_samples=5, rss_baseline=False),  # CI: mostly start-up
    "default": Size(sessions=300, stop_samples=50, rss_baseline=True),  # the README's day
    "large": Size(sessions=1_000, stop_samples=100, rss_baseline=True),
}
RSS_NOTE = "not measured at size small (no second, tenth-size day)"


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--size", choices=sorted(SIZES), default="default",
                        help="small (CI, < 1 min), default (a 300-session day), large")
    add_service_arguments(parser)


def run_workload(args: argparse.Namespace) -> int:
    size = SIZES[args.size]
    store_url = checked_services(args)
    started_s = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as work:
        work_dir = Path(work)
        day = day_on_scratch(args, store_url, size.sessions, work_dir / "day", size.stop_samples)
        small_day = (day_on_scratch(args, store_url, size.sessions // 10, work_dir / "tenth", 0)
                     if size.rss_baseline else None)
        lines, _messages = day_messages(size.sessions)
        with _scratch(store_url) as url:
            store = run_store_paths(url, lines, work_dir)
        with _scratch(store_url) as hot_url, _scratch(store_url) as spread_url:
            hot_pool = run_hot_pool(hot_url, spread_url, lines, work_dir / "hot-pool")
    stop = day.stop_latency
    result: dict[str, Any] = {
        "size": args.size, "sessions": size.sessions,
        "end_to_end_ratio": day.end_to_end_ratio,
        "ingest_ratio": store.ingest_ratio,
        "store_write_ratio": store.store_write_ratio,
        "store_copy_ratio": store.store_copy_ratio,
        "projection_ratio": store.projection_ratio,
        "rebuild_ratio": store.rebuild_ratio,
        "stop_latency_p50_ms": None if stop is None else stop.p50_ms,
        "stop_latency_p99_ms": None if stop is None else stop.p99_ms,
        "rss_growth_ratio": (None if small_day is None else
                             _ratio(day.consume_peak_rss_kb, small_day.consume_peak_rss_kb)),
        "hot_pool_ratio": hot_pool.hot_pool_ratio,
        "notes": {"rss_growth_ratio": RSS_NOTE} if small_day is None else {},
        "details": {"day": asdict(day), "store": asdict(store), "hot_pool": asdict(hot_pool),
                    "tenth_day": None if small_day is None else asdict(small_day)},
        "seconds": round(time.monotonic() - started_s, 1),
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            if key not in ("details", "notes"):
                print(f"{key:<22} {value}")
        for key, note in result["notes"].items():
            print(f"{key + ' note':<22} {note}")
    return 0


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if not numerator or not denominator else round(numerator / denominator, 3)


def day_on_scratch(args: argparse.Namespace, store_url: str, sessions: int, logs: Path,
                   stop_samples: int, cost_updates: bool = True) -> DayRun:
    """`run_day` on a scratch database and fresh topics (`args`: --bootstrap-servers)."""
    with _scratch(store_url) as url:
        settings = _settings(args, url, f"bench-{uuid.uuid4().hex[:8]}-")
        with closing(kafka_clients.admin(settings)) as admin:
            create_topics(admin, settings.all_topics(), TOPIC_PARTITIONS, 1)
        return run_day(settings, sessions, logs, stop_samples, cost_updates)


def _settings(args: argparse.Namespace, store_url: str, prefix: str) -> Settings:
    return settings_from(argparse.Namespace(
        bootstrap_servers=args.bootstrap_servers, topic_prefix=prefix, store=store_url,
        group_id=f"{prefix}ledger", metrics_port=0,
    ))


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL",
                        help="postgresql://USER@HOST/DB of a role that may CREATE DATABASE"
                        " (default: $LEDGER_STORE)")
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT",
                        help="Kafka (default: $KAFKA_BOOTSTRAP_SERVERS)")


def checked_services(args: argparse.Namespace) -> str:
    """The PostgreSQL store URL of --store / $LEDGER_STORE, once it and the broker answer."""
    store_url = store_url_from(args.store)
    if urlsplit(store_url).scheme not in ("postgresql", "postgres"):
        raise CliError(f"ledger bench needs a PostgreSQL store URL, got"
                       f" {redacted_url(store_url)} (--store or $LEDGER_STORE)")
    _check_services(_settings(args, store_url, "bench-check-"))
    return store_url


def _check_services(settings: Settings) -> None:
    try:
        psycopg.connect(settings.store_url, connect_timeout=SERVICE_CONNECT_TIMEOUT_S).close()
    except psycopg.OperationalError as exc:
        raise CliError(f"PostgreSQL is not reachable at {redacted_url(settings.store_url)}:"
                       f" {' '.join(str(exc).split())}; {SERVICES_HINT}") from exc
    try:
        kafka_clients.admin(settings).close()
    except kafka_clients.KafkaUnavailable as exc:
        raise CliError(f"{exc}; {SERVICES_HINT}") from exc


def _scratch(store_url: str) -> AbstractContextManager[str]:
    """A database of the bench's own beside `store_url`'s (`bench_` + 12 hex digits)."""
    return scratch_database(store_url, "bench_", hex_digits=12)

"""`ledger bench parking [--parked N] [--unrelated M] [--json]`: how the parking lot scales
(docs/reliability.md, "Parking").

In memory (eventsourcing's POPO store), so only the ledger's own work is timed. N top-ups of
N drivers not configured yet are parked (each its own lane, in batches of 100, as a consumer
hands them over); then M top-ups of a known driver are applied one batch each (each asks the
lot whether it releases something); then the N drivers are configured, one batch of 100 each,
each DriverConfigured releasing its lane.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from consumers.avro_codec import key_for
from consumers.cli import CliError
from consumers.kafka_topics import topic_of
from ledger.application import Inbound, Ledger
from ledger.domain.parking import ParkingLot
from ledger.messages import DriverConfigured, Envelope, TenantConfigured, WalletTopUpRequested
from ledger.parking import LOT_ID

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BATCH_MESSAGES = 100  # what one consumer poll of one partition may hand over here
PARKED_DEFAULT = 2_000
UNRELATED_DEFAULT = 200
PARKED_MAX = 100_000  # in memory: a bound that keeps a typo from eating the machine


@dataclass(frozen=True, slots=True)
class ParkingFigures:
    parked: int
    unrelated: int
    park_ms_per_message: float
    unrelated_ms_per_message: float
    release_ms_per_message: float
    max_rss_mb: int
    left_parked: int  # after the release: 0, or the figures measured something else


class _Feed:
    """Messages of one tenant, fed as `ledger consume` hands them over: a batch per topic."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._ids = itertools.count(1)
        self._offsets: dict[str, Iterator[int]] = {}

    def envelope(self, at: datetime) -> dict[str, object]:
        return {"event_id": f"ev-{next(self._ids)}", "tenant_id": "t1", "occurred_at": at,
                "producer": "bench"}

    def driver(self, driver_id: str) -> DriverConfigured:
        when = T0 - timedelta(days=30)
        return DriverConfigured(**self.envelope(when), effective_at=when, driver_id=driver_id,
                                id_tokens=[f"rfid-{driver_id}"], billing_model="wallet",
                                payment_method_token="tok")

    def top_up(self, driver_id: str, at: datetime) -> WalletTopUpRequested:
        return WalletTopUpRequested(**self.envelope(at), driver_id=driver_id,
                                    amount=Decimal("5.00"), method="bank_transfer",
                                    reference=f"ref-{next(self._ids)}")

    def consume(self, messages: Sequence[Envelope]) -> None:
        source = f"kafka:{topic_of(messages[0])}:0"
        offsets = self._offsets.setdefault(source, itertools.count())
        self.ledger.apply_batch([Inbound(source, next(offsets), m, key=key_for(m).decode(),
                                         raw=m.model_dump_json()) for m in messages])

    def consume_in_batches(self, messages: Sequence[Envelope]) -> None:
        for start in range(0, len(messages), BATCH_MESSAGES):
            self.consume(messages[start:start + BATCH_MESSAGES])


def measure_parking(parked: int, unrelated: int) -> ParkingFigures:
    feed = _Feed(Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}))
    when = T0 - timedelta(days=30)
    feed.consume([TenantConfigured(**feed.envelope(when), effective_at=when, currency="EUR",
                                   preauth_hold_amount=Decimal("25.00"))])
    feed.consume([feed.driver("known")])
    ghosts = [f"ghost-{i}" for i in range(parked)]

    started = time.perf_counter()
    feed.consume_in_batches([feed.top_up(g, T0) for g in ghosts])
    park_s = time.perf_counter() - started

    started = time.perf_counter()
    for i in range(unrelated):
        feed.consume([feed.top_up("known", T0 + timedelta(seconds=i))])
    unrelated_s = time.perf_counter() - started

    started = time.perf_counter()
    feed.consume_in_batches([feed.driver(g) for g in ghosts])
    release_s = time.perf_counter() - started

    lot: object = feed.ledger.repository.get(LOT_ID)
    return ParkingFigures(
        parked=parked, unrelated=unrelated,
        park_ms_per_message=round(park_s * 1000 / max(parked, 1), 3),
        unrelated_ms_per_message=round(unrelated_s * 1000 / max(unrelated, 1), 3),
        release_ms_per_message=round(release_s * 1000 / max(parked, 1), 3),
        # ru_maxrss is in kB on Linux.
        max_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        left_parked=lot.size() if isinstance(lot, ParkingLot) else 0,
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "parking", help="how the parking lot scales with what it holds",
        description="In memory: park N top-ups of unknown drivers, time M unrelated top-ups,"
        " then release the N by configuring their drivers; per-message times and peak RSS.",
    )
    parser.add_argument("--parked", type=int, default=PARKED_DEFAULT, metavar="N",
                        help=f"messages parked (default {PARKED_DEFAULT})")
    parser.add_argument("--unrelated", type=int, default=UNRELATED_DEFAULT, metavar="M",
                        help=f"unrelated messages timed (default {UNRELATED_DEFAULT})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.parked <= PARKED_MAX:
        raise CliError(f"--parked must be 1..{PARKED_MAX}, got {args.parked}")
    if args.unrelated < 1:
        raise CliError(f"--unrelated must be at least 1, got {args.unrelated}")
    figures = measure_parking(args.parked, args.unrelated)
    if args.json:
        print(json.dumps(asdict(figures), sort_keys=True))
    else:
        print(f"ledger bench parking: {figures.parked} parked at"
              f" {figures.park_ms_per_message} ms each; an unrelated message"
              f" {figures.unrelated_ms_per_message} ms; release"
              f" {figures.release_ms_per_message} ms each; peak RSS {figures.max_rss_mb} MB")
    return 0

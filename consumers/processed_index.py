"""The index of applied event ids: one row per event id a `ProcessedBatch` event records.

Every batch writes one `ProcessedBatch` event (ledger/domain/inbox.py) listing the event ids
it applied, with their payload digests. The ledger's recorder (consumers/chained_store.py)
inserts this index's rows from that event in the very transaction that inserts the event,
the batch's other events and its tracking row; so the index holds exactly the event ids of
the committed `ProcessedBatch` events, and a batch finds which of its event ids were applied
in one query (consumers/store.py, `processed_lookup`).

Its key is `processed_key(tenant, event id)` (a uuid5), the id the `ProcessedMessage` marker
of the earlier scheme had: the lookup reads this table and those markers in one statement,
so a store written before keeps every event id it applied. A second batch recording an event
id already here (two writers applying one redelivered message at once) violates the primary
key: the batch rolls back and is applied again, where the id is a duplicate.

Only the key, the digest (64 hex digits) and the event's notification id are kept: an event
id from outside may hold any character (a NUL a text column refuses), and the event has it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.domain.inbox import PROCESSED_BATCH_TOPIC, processed_key

# (processed key, payload digest, notification id of the ProcessedBatch event)
IndexRow = tuple[UUID, str, int]


def processed_table_name(events_table_name: str) -> str:
    return f"{events_table_name}_processed"


def index_rows(ids: Sequence[int], stored_events: Sequence[StoredEvent]) -> list[IndexRow]:
    """The index rows of the `ProcessedBatch` events among `stored_events` (inserted at
    notification `ids`). The state is the library's JSON of the event (no cipher and no
    compression are configured, consumers/store.py)."""
    return [
        row for notification_id, stored in zip(ids, stored_events, strict=True)
        if stored.topic == PROCESSED_BATCH_TOPIC
        for row in batch_rows(notification_id, stored.state)
    ]


def batch_rows(notification_id: int, state: bytes) -> list[IndexRow]:
    """The index rows of the `ProcessedBatch` event stored at `notification_id`."""
    return [(processed_key(tenant_id, event_id), digest, notification_id)
            for tenant_id, event_id, digest in json.loads(state)["entries"]]


def marker_digest(state: bytes) -> str:
    """The payload digest a `ProcessedMessage` marker kept ("" if written before digests)."""
    return str(json.loads(bytes(state)).get("payload_digest", ""))


def index_breaks(
    batch_pages: Iterable[Sequence[tuple[int, bytes]]],
    rows_between: Callable[[int, int], Sequence[IndexRow]],
    stop: int,
) -> Iterator[str]:
    """Every difference between the index and the `ProcessedBatch` events it comes from.

    `batch_pages`: the `ProcessedBatch` events (notification id, state) up to `stop`, in
    order, a page at a time; `rows_between(after, upto)`: the index rows whose notification
    id is in (after, upto]. Consecutive ranges cover every row up to `stop` exactly once, so
    a row added by hand, a row deleted (a redelivered copy of its message would apply
    again) and a digest changed are each found, at the event's notification id."""
    after = 0
    for page in batch_pages:
        if not page:
            continue
        expected: set[IndexRow] = set()
        for notification_id, state in page:
            expected.update(batch_rows(notification_id, state))
        upto = page[-1][0]
        yield from _differences(expected, set(rows_between(after, upto)))
        after = upto
    yield from _differences(set(), set(rows_between(after, stop)))


def _differences(expected: set[IndexRow], found: set[IndexRow]) -> Iterator[str]:
    for key, digest, notification_id in sorted(expected - found, key=lambda r: r[2]):
        yield (f"notification {notification_id}: index: event id key {key} (sha256"
               f" {digest[:12]}...) has no index row: a redelivered copy would apply again")
    for key, digest, notification_id in sorted(found - expected, key=lambda r: r[2]):
        yield (f"notification {notification_id}: index: row {key} (sha256 {digest[:12]}...)"
               " is recorded by no ProcessedBatch event there")

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
from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from ledger.domain.inbox import processed_key

PROCESSED_BATCH_TOPIC = "ledger.domain.inbox:ProcessedBatch.Processed"
PROCESSED_MESSAGE_TOPIC = "ledger.domain.inbox:ProcessedMessage.Processed"

# (processed key, payload digest, notification id of the ProcessedBatch event)
IndexRow = tuple[UUID, str, int]


def processed_table_name(events_table_name: str) -> str:
    return f"{events_table_name}_processed"


def index_rows(ids: Sequence[int], stored_events: Sequence[StoredEvent]) -> list[IndexRow]:
    """The index rows of the `ProcessedBatch` events among `stored_events` (inserted at
    notification `ids`). The state is the library's JSON of the event (no cipher and no
    compression are configured, consumers/store.py)."""
    rows: list[IndexRow] = []
    for notification_id, stored in zip(ids, stored_events, strict=True):
        if stored.topic != PROCESSED_BATCH_TOPIC:
            continue
        for tenant_id, event_id, digest in json.loads(stored.state)["entries"]:
            rows.append((processed_key(tenant_id, event_id), digest, notification_id))
    return rows


def marker_digest(state: bytes) -> str:
    """The payload digest a `ProcessedMessage` marker kept ("" if written before digests)."""
    return str(json.loads(bytes(state)).get("payload_digest", ""))

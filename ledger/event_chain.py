"""The hash chain over the stored events: how a link is computed, and how a chain is checked.

Pure: no database here (consumers/chained_store.py writes and reads the links).

Each stored event record at notification id N has one link (N, P, H) where P is the
notification id of the record linked before it (0 for the first) and

    H = SHA-256( "evledger-chain-v1" | H_P | P | N | originator id | version | topic | state )

with H_P the previous link's hash (32 zero bytes for the first), integers as 8 bytes
big-endian and every text or byte string preceded by its length, so no two different
records encode the same. P is stored because notification ids have gaps (a rolled-back
batch uses ids it never commits): the link, not the id's successor, says what came before.

`find_breaks` walks the events and the links side by side in notification-id order and names
every position where they disagree. It follows the STORED hashes, so one edited event is
reported once, where it is, and not as a break of every later link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from uuid import UUID

CHAIN_VERSION = b"evledger-chain-v1"
HASH_BYTES = 32
GENESIS_HASH = bytes(HASH_BYTES)
GENESIS_ID = 0  # the "previous id" of the first link: notification ids start at 1
_INT_BYTES = 8


@dataclass(frozen=True, slots=True)
class ChainedRecord:
    """What a link covers: one stored event record as the event table holds it."""

    notification_id: int
    originator_id: UUID | str
    originator_version: int
    topic: str
    state: bytes


@dataclass(frozen=True, slots=True)
class Link:
    notification_id: int
    previous_id: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class Break:
    """A position where the stored events and their chain disagree."""

    notification_id: int
    kind: str  # "edited" | "deleted" | "inserted"
    detail: str

    def __str__(self) -> str:
        return f"notification {self.notification_id}: {self.kind}: {self.detail}"


def _sized(data: bytes) -> bytes:
    return len(data).to_bytes(_INT_BYTES, "big") + data


def link_hash(previous_hash: bytes, previous_id: int, record: ChainedRecord) -> bytes:
    assert len(previous_hash) == HASH_BYTES, "a link hash is a SHA-256 digest"
    digest = hashlib.sha256(CHAIN_VERSION)
    digest.update(previous_hash)
    digest.update(previous_id.to_bytes(_INT_BYTES, "big"))
    digest.update(record.notification_id.to_bytes(_INT_BYTES, "big"))
    digest.update(_sized(str(record.originator_id).encode()))
    digest.update(record.originator_version.to_bytes(_INT_BYTES, "big", signed=True))
    digest.update(_sized(record.topic.encode()))
    digest.update(_sized(bytes(record.state)))
    return digest.digest()


def links_after(head: Link | None, records: Iterable[ChainedRecord]) -> list[Link]:
    """The links of `records` (in notification-id order) continuing the chain at `head`."""
    previous_id, previous_hash = (
        (GENESIS_ID, GENESIS_HASH) if head is None else (head.notification_id, head.hash)
    )
    links: list[Link] = []
    for record in records:
        assert record.notification_id > previous_id, "links follow notification-id order"
        previous_hash = link_hash(previous_hash, previous_id, record)
        links.append(Link(record.notification_id, previous_id, previous_hash))
        previous_id = record.notification_id
    return links


@dataclass(slots=True)
class Walk:
    """What `find_breaks` saw: every break, how many records and links, the stored head."""

    records: int = 0
    links: int = 0
    head: Link | None = None


def find_breaks(
    records: Iterable[ChainedRecord], links: Iterable[Link], walk: Walk
) -> Iterator[Break]:
    """Every position where `records` and `links` (both in notification-id order) disagree.

    - a record whose link's hash does not cover its content: edited (or moved: a swap shows
      as two edited records, each where the other belongs);
    - a link with no record: the record was deleted;
    - a record with no link: it was inserted behind the ledger's back;
    - a link whose previous id is not the link before it: a record was deleted with its link
      (named at that previous id) or a record was inserted with a forged link.
    """
    record_iter, link_iter = iter(records), iter(links)
    record, link = next(record_iter, None), next(link_iter, None)
    previous = Link(GENESIS_ID, GENESIS_ID, GENESIS_HASH)
    while record is not None or link is not None:
        if link is None or (record is not None and record.notification_id < link.notification_id):
            assert record is not None
            walk.records += 1
            yield Break(record.notification_id, "inserted",
                        "the event table holds a record the chain never linked")
            record = next(record_iter, None)
            continue
        walk.links += 1
        walk.head = link
        relinked = link.previous_id != previous.notification_id
        if link.previous_id > previous.notification_id:
            yield Break(link.previous_id, "deleted",
                        f"the record and its link are gone: the link of notification"
                        f" {link.notification_id} still names it as the one before")
        elif relinked:
            yield Break(previous.notification_id, "inserted",
                        f"a link was added here: the link of notification"
                        f" {link.notification_id} names {link.previous_id} as the one before")
        if record is None or link.notification_id < record.notification_id:
            yield Break(link.notification_id, "deleted",
                        "the chain links a record the event table no longer holds")
        else:
            walk.records += 1
            # Across a relink the previous hash is unknown: the break is named above.
            expected = link_hash(previous.hash, link.previous_id, record)
            if not relinked and expected != link.hash:
                yield Break(link.notification_id, "edited",
                            "the record's content (or the link before it) is not what was"
                            " linked")
            record = next(record_iter, None)
        previous = link
        link = next(link_iter, None)

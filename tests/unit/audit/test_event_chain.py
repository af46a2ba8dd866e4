"""The hash chain's rules, pure: an untouched chain has no break; every single tampering is
named at its position, and nowhere else."""

from __future__ import annotations

import dataclasses
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from ledger.event_chain import ChainedRecord, Link, Walk, find_breaks, links_after

ids_with_gaps = st.lists(st.integers(1, 5), min_size=2, max_size=40).map(
    lambda steps: [sum(steps[: i + 1]) for i in range(len(steps))]
)


def records_at(ids: list[int]) -> list[ChainedRecord]:
    return [ChainedRecord(n, UUID(int=n % 3), n, f"topic{n % 2}", bytes([n % 256]) * (n % 7))
            for n in ids]


def found(records: list[ChainedRecord], links: list[Link]) -> list[tuple[int, str]]:
    return [(b.notification_id, b.kind) for b in find_breaks(records, links, Walk())]


@given(ids_with_gaps)
def test_an_untouched_chain_has_no_break_and_ends_at_the_last_record(ids: list[int]) -> None:
    records = records_at(ids)
    walk = Walk()
    links = links_after(None, records)
    assert list(find_breaks(records, links, walk)) == []
    assert walk.head == links[-1] and walk.records == walk.links == len(ids)


@given(ids_with_gaps, st.data())
def test_a_chain_continued_from_its_head_equals_one_built_in_one_go(
    ids: list[int], data: st.DataObject
) -> None:
    records = records_at(ids)
    cut = data.draw(st.integers(1, len(records) - 1))
    first = links_after(None, records[:cut])
    assert first + links_after(first[-1], records[cut:]) == links_after(None, records)


@given(ids_with_gaps, st.data())
def test_an_edited_record_is_named_alone(ids: list[int], data: st.DataObject) -> None:
    records = records_at(ids)
    links = links_after(None, records)
    at = data.draw(st.integers(0, len(records) - 1))
    field = data.draw(st.sampled_from(["originator_id", "originator_version", "topic", "state"]))
    changed = {"originator_id": UUID(int=99), "originator_version": -1, "topic": "other",
               "state": b"forged"}[field]
    records[at] = dataclasses.replace(records[at], **{field: changed})
    assert found(records, links) == [(ids[at], "edited")]


@given(ids_with_gaps, st.data())
def test_a_deleted_record_is_named_with_or_without_its_link(
    ids: list[int], data: st.DataObject
) -> None:
    records = records_at(ids)
    links = links_after(None, records)
    at = data.draw(st.integers(0, len(records) - 2))  # not the head: see the next test
    del records[at]
    if data.draw(st.booleans()):
        del links[at]
    assert found(records, links) == [(ids[at], "deleted")]


@given(ids_with_gaps)
def test_a_record_added_after_the_head_without_a_link_is_named(ids: list[int]) -> None:
    records = records_at(ids)
    links = links_after(None, records)
    assert found([*records, *records_at([ids[-1] + 1])], links) == [(ids[-1] + 1, "inserted")]


@given(ids_with_gaps, st.data())
def test_two_swapped_records_are_both_named(ids: list[int], data: st.DataObject) -> None:
    records = records_at(ids)
    links = links_after(None, records)
    at = data.draw(st.integers(0, len(records) - 2))
    a, b = records[at], records[at + 1]
    records[at] = dataclasses.replace(b, notification_id=a.notification_id)
    records[at + 1] = dataclasses.replace(a, notification_id=b.notification_id)
    assert found(records, links) == [(ids[at], "edited"), (ids[at + 1], "edited")]

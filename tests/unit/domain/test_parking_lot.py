"""The parking lot's indexes (ledger/domain/parking.py) answer as a scan of its entries would,
and a lot read back from its events, from a snapshot, or from a snapshot taken before the
indexes existed, is the same lot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.domain import Snapshot
from eventsourcing.utils import get_topic
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.application import Ledger
from ledger.domain.parking import ANY_TENANT, ParkedEntry, ParkingLot

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
AWAITS = ("driver:t1/a", "driver:t2/b", "tenant:t3/t3", "request:t1/r")


def entry(n: int, lane: str, awaits: str, minutes: int, tenant_id: str = "t1") -> ParkedEntry:
    return ParkedEntry(
        source=f"kafka:topic-{n % 2}:0", position=n, lane=lane, key=lane, tenant_id=tenant_id,
        event_id=f"ev-{n}", type_name="WalletTopUpRequested", payload={"n": n}, raw="{}",
        awaits=awaits, reason="missing", occurred_at=(T0 + timedelta(minutes=minutes)).isoformat(),
    )


# One step: park a message in one of a few lanes (behind the lane's first one, if it has
# any), or release the lane of one of the parked ones.
steps = st.lists(st.tuples(
    st.booleans(), st.integers(0, 5), st.integers(0, len(AWAITS) - 1),
    st.integers(-30, 30), st.integers(0, 50),
), max_size=60)


def scan_model(ops: list[tuple[bool, int, int, int, int]]) -> tuple[ParkingLot,
                                                                     list[ParkedEntry]]:
    """The lot after `ops`, and the list of entries a scan would look at."""
    lot = ParkingLot(tenant_id="-")
    model: list[ParkedEntry] = []
    for n, (parks, lane_no, awaits_no, minutes, pick) in enumerate(ops):
        if parks or not model:
            lane = f"wallet|{lane_no}"
            head = next((e for e in model if e["lane"] == lane), None)
            awaits = head["awaits"] if head else AWAITS[awaits_no]
            tenant_id = awaits.split(":")[1].split("/")[0]
            parked = entry(n, lane, awaits, minutes, tenant_id)
            lot.park(parked)
            model.append(parked)
        else:
            lane = model[pick % len(model)]["lane"]
            gone = [e for e in model if e["lane"] == lane]
            lot.release([[e["source"], e["position"]] for e in gone], "released")
            model = [e for e in model if e["lane"] != lane]
    return lot, model


def heads_of(model: list[ParkedEntry]) -> list[ParkedEntry]:
    seen: set[str] = set()
    return [e for e in model if not (e["lane"] in seen or seen.add(e["lane"]))]


@settings(max_examples=200, deadline=None)
@given(ops=steps, cut=st.integers(-40, 40))
def test_the_indexes_answer_as_a_scan_of_the_entries_would(
    ops: list[tuple[bool, int, int, int, int]], cut: int,
) -> None:
    lot, model = scan_model(ops)
    heads = heads_of(model)
    assert lot.heads() == heads
    assert lot.size() == len(model)
    assert sorted(map(str, lot.entries)) == sorted(map(str, model))
    for awaits in AWAITS:
        assert lot.waiting_for(awaits) == [h for h in heads if h["awaits"] == awaits]
    before = T0 + timedelta(minutes=cut)
    for scopes in (("t1",), ("t2", ANY_TENANT), ("t1", "t2", ANY_TENANT)):
        assert lot.due(scopes, before) == [
            h for h in heads
            if (ANY_TENANT if h["awaits"].startswith("tenant:") else h["tenant_id"]) in scopes
            and datetime.fromisoformat(h["occurred_at"]) < before
        ]
    for e in model:
        assert lot.holds_event(e["tenant_id"], e["event_id"])
        assert lot.lane(e["lane"]) == [m for m in model if m["lane"] == e["lane"]]
    assert not lot.holds_event("t1", "ev-never")


@settings(max_examples=50, deadline=None)
@given(ops=steps)
def test_a_lot_read_back_from_its_events_or_a_snapshot_is_the_same_lot(
    ops: list[tuple[bool, int, int, int, int]],
) -> None:
    lot, _model = scan_model(ops)
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    ledger.save(lot)
    replayed = ledger.repository.get(lot.id)
    assert vars(replayed) == vars(lot)
    # Through the store's own encoding (JSON), as the snapshots a ledger takes every so often.
    stored = ledger.mapper.to_stored_event(Snapshot.take(lot))
    restored = ledger.mapper.to_domain_event(stored).mutate(None)
    assert vars(restored) == vars(lot)


@settings(max_examples=50, deadline=None)
@given(ops=steps)
def test_a_snapshot_taken_before_the_indexes_is_upcast_to_the_same_lot(
    ops: list[tuple[bool, int, int, int, int]],
) -> None:
    lot, model = scan_model(ops)
    # What a snapshot of class version 1 held: the entries in arrival order, lane sizes.
    lane_sizes: dict[str, int] = {}
    for e in model:
        lane_sizes[e["lane"]] = lane_sizes.get(e["lane"], 0) + 1
    old_state: dict[str, Any] = {"tenant_id": "-", "entries": model, "lane_sizes": lane_sizes,
                                 "_created_on": lot.created_on, "_modified_on": lot.modified_on}
    old = Snapshot(originator_id=lot.id, originator_version=lot.version,
                   timestamp=lot.modified_on, topic=get_topic(ParkingLot), state=old_state)
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    upcast = ledger.mapper.to_domain_event(ledger.mapper.to_stored_event(old)).mutate(None)
    assert isinstance(upcast, ParkingLot)
    assert upcast.heads() == lot.heads()
    assert upcast.entries == lot.entries
    for awaits in AWAITS:
        assert upcast.waiting_for(awaits) == lot.waiting_for(awaits)
    assert upcast.due(("t1", "t2", ANY_TENANT), T0 + timedelta(hours=1)) == lot.due(
        ("t1", "t2", ANY_TENANT), T0 + timedelta(hours=1))

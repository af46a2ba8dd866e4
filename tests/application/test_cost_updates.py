"""The cost a driver pays, told to the CSMS while charging and at the end (issue 13; OCPP
2.0.1 I02/I03). Tariff 0.40 EUR/kWh + 19 % VAT: each kWh is 0.476."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import Mapper, StoredEvent

from ledger.domain.outbox import command_recorded_by
from ledger.domain.session import ChargingSession
from ledger.messages import EnrolmentChanged, PartnerConfigured, SessionCostUpdated
from tests.builders import (
    _WALL_CLOCK_ATTRIBUTES,
    ENERGY_TARIFF,
    T0,
    LedgerDriver,
    domain_events,
    driver,
    envelope,
    location,
    session_events,
    tariff,
    tenant,
)


def network(**settings: Any) -> LedgerDriver:
    d = LedgerDriver()
    d.apply(tenant(**settings), tariff(), location(), driver("post", "post_paid"))
    d.new_commands()
    return d


def updates(d: LedgerDriver) -> list[dict[str, Any]]:
    return [c for c in d.commands() if c["_type"] == "SessionCostUpdated"]


def test_no_cost_updates_unless_the_tenant_asks_for_them() -> None:
    d = network()
    d.apply_each(session_events("tx1", "post", "10", updates=5))
    assert updates(d) == []


def test_updates_follow_the_step_never_decrease_and_end_at_the_settled_total() -> None:
    d = network(cost_update_step=Decimal("1.00"), cost_update_interval_s=3600)
    d.apply_each(session_events("tx1", "post", "10", updates=9))  # +0.476 every 6 minutes
    sent = updates(d)
    running = [u for u in sent if not u["final"]]
    # 0.48, 0.95 stay below the step; 1.43 goes; 1.90, 2.38 are within 1.00 of it; ...
    assert [u["total_cost"] for u in running] == ["1.43", "2.86", "4.28"]
    assert [u["sequence"] for u in sent] == [0, 1, 2, 3]
    final = sent[-1]
    assert (final["final"], final["total_cost"], final["full_price"]) == (True, "4.76", "4.76")
    assert all(u["transaction_id"] == "tx1" and u["currency"] == "EUR" for u in sent)


def test_a_quiet_session_gets_an_update_once_the_interval_passed() -> None:
    d = network(cost_update_step=Decimal("50.00"), cost_update_interval_s=600)
    d.apply_each(session_events("tx1", "post", "2", minutes=60, updates=5))  # every 10 min
    running = [u for u in updates(d) if not u["final"]]
    assert len(running) == 5, "one per interval, never more often"
    totals = [Decimal(u["total_cost"]) for u in running]
    assert totals == sorted(totals)


def test_an_update_applied_again_keeps_its_id_and_sends_nothing_new() -> None:
    d = network(cost_update_step=Decimal("0.50"))
    events = session_events("tx1", "post", "10", updates=3)
    d.apply_each(events[:3])
    before = [u["event_id"] for u in updates(d)]
    d.apply(events[1], events[2])  # redelivered: duplicates
    assert [u["event_id"] for u in updates(d)] == before


def test_a_partner_covered_session_shows_what_the_driver_pays() -> None:
    configured = T0 - timedelta(days=30)
    common = {**envelope("t1", configured), "effective_at": configured}
    d = network(cost_update_step=Decimal("0.50"))
    d.apply(PartnerConfigured(**common, partner_id="P1", billing_period="monthly",
                              pool_limit=Decimal("2.00")),
            EnrolmentChanged(**{**common, **envelope("t1", configured)}, partner_id="P1",
                             driver_id="post", action="enrol"))
    d.apply_each(session_events("tx1", "post", "10", updates=4))
    sent = updates(d)
    assert sent[-1]["total_cost"] == "2.76" and sent[-1]["full_price"] == "4.76"
    assert all(Decimal(u["total_cost"]) <= Decimal("2.76") for u in sent)


READING_RECORDED = "ledger.domain.session:ChargingSession.ReadingRecorded"
COST_UPDATE_SENT = "ledger.domain.session:ChargingSession.CostUpdateSent"


def test_a_running_update_rides_on_its_readings_event() -> None:
    """One stored event per update sent (the outbox command), not two: the session's record
    of it is part of the meter update's own event; only the final one (after settlement)
    is an event of its own."""
    d = network(cost_update_step=Decimal("1.00"), cost_update_interval_s=3600)
    d.apply_each(session_events("tx1", "post", "10", updates=9))
    stored = _session_events(d, "tx1")
    carried = [e.cost_update for e in stored
               if type(e).__name__ == "ReadingRecorded" and e.cost_update is not None]
    own = [e for e in stored if type(e).__name__ == "CostUpdateSent"]
    sent = updates(d)
    assert [str(c["total"]) for c in carried] == [u["total_cost"] for u in sent[:-1]]
    assert [c["command_id"] for c in carried] == [u["event_id"] for u in sent[:-1]]
    assert [(e.sequence, e.command_id) for e in own] == [(3, sent[-1]["event_id"])]


def test_a_running_update_stores_no_command_of_its_own() -> None:
    """The command a meter update's cost update sends is carried by the reading's event: no
    `OutboundCommand` is stored for it, and the outbox (`recorded_commands`, which the relay,
    the read model and the tests read) holds it once, valid, keyed by the transaction."""
    d = network(cost_update_step=Decimal("1.00"), cost_update_interval_s=3600)
    d.apply_each(session_events("tx1", "post", "10", updates=9))
    issued = [e for e in domain_events(d) if type(e).__qualname__ == "OutboundCommand.Issued"
              and e.type_name == "SessionCostUpdated"]
    recorded = [c for _, c in d.ledger.recorded_commands()
                if c.type_name == "SessionCostUpdated"]
    assert [e.command_id for e in issued] == [recorded[-1].command_id], "only the final one"
    assert len({c.command_id for c in recorded}) == len(recorded) == 4
    session_id = ChargingSession.create_id("t1", "tx1").hex
    for command in recorded:
        message = SessionCostUpdated.model_validate(command.payload)
        assert message.event_id == command.command_id
        assert (command.recipient, command.key) == (SessionCostUpdated.RECIPIENT, "t1:tx1")
        assert command.subject == {"kind": "session", "id": session_id}


def test_a_reading_stored_by_the_first_fold_records_no_command() -> None:
    """Readings stored before they carried the command (`cost_update` without `command`)
    went with an `OutboundCommand.Issued` of their own: the outbox must not send it twice."""
    d = network(cost_update_step=Decimal("1.00"), cost_update_interval_s=3600)
    d.apply_each(session_events("tx1", "post", "10", updates=9))
    for event in _session_events(d, "tx1"):
        if type(event).__name__ == "ReadingRecorded" and event.cost_update is not None:
            assert command_recorded_by(event) is not None
            first_fold = {k: v for k, v in event.cost_update.items() if k != "command"}
            object.__setattr__(event, "cost_update", first_fold)
            assert command_recorded_by(event) is None


def test_a_session_stored_before_the_fold_replays_to_the_same_state() -> None:
    """Logs written before a reading's event carried the update (a ReadingRecorded without
    `cost_update`, then a CostUpdateSent) give the same session as the new shape; a flat
    fee at start sends an update after the payer is decided (its own event, both shapes)."""
    d = network(cost_update_step=Decimal("0.50"), cost_update_interval_s=600)
    flat = {**ENERGY_TARIFF, "id": "flat", "elements": [{"price_components": [
        {"type": "FLAT", "price": 1.00, "vat": 19.0, "step_size": 1},
        {"type": "ENERGY", "price": 0.40, "vat": 19.0, "step_size": 1}]}]}
    d.apply(tariff("flat", body=flat), location("L2", tariff_id="flat"))
    d.apply_each(session_events("tx1", "post", "10", updates=7))
    d.apply_each(session_events("tx2", "post", "10", updates=7, location_id="L2"))
    for tx in ("tx1", "tx2"):
        new = _session_events(d, tx)
        old = _before_the_fold(new, d.ledger.mapper)
        assert len(old) > len(new), "the old shape stored an event more per running update"
        assert _state(old) == _state(new)
        assert _state(new)["last_cost_update"] is not None


def _session_events(d: LedgerDriver, tx: str) -> list[Any]:
    session_id = ChargingSession.create_id("t1", tx)
    return [e for e in domain_events(d) if e.originator_id == session_id]


def _before_the_fold(events: list[Any], mapper: Mapper[Any]) -> list[Any]:
    """The same session as the code before the fold stored it, read back through the mapper:
    each update a reading carries moved to a CostUpdateSent right after that reading."""
    old: list[Any] = []
    for event in events:
        stored = mapper.to_stored_event(event)
        if stored.topic != READING_RECORDED:
            old.append(_stored(mapper, stored.topic, mapper.transcoder.decode(stored.state),
                               stored.originator_id, len(old) + 1))
            continue
        state = mapper.transcoder.decode(stored.state)
        told = state.pop("cost_update")
        if told is not None:
            told.pop("command")  # the old shape's command was an OutboundCommand of its own
        old.append(_stored(mapper, READING_RECORDED, state, stored.originator_id, len(old) + 1))
        if told is not None:
            sent = {"timestamp": state["timestamp"], **told,
                    "business_time": state["business_time"]}
            old.append(_stored(mapper, COST_UPDATE_SENT, sent, stored.originator_id,
                               len(old) + 1))
    return old


def _stored(mapper: Mapper[Any], topic: str, state: dict[str, Any], originator_id: Any,
            version: int) -> Any:
    return mapper.to_domain_event(StoredEvent(
        originator_id=originator_id, originator_version=version, topic=topic,
        state=mapper.transcoder.encode(state),
    ))


def _state(events: list[Any]) -> dict[str, Any]:
    session = None
    for event in events:
        session = event.mutate(session)
    assert session is not None
    # The version counts stored events, which the fold changed on purpose.
    return {name: value for name, value in vars(session).items()
            if name not in _WALL_CLOCK_ATTRIBUTES | {"_version"}}

"""Parking (ledger/parking.py): a message that arrives before what it needs waits, keyed,
and is applied in order as soon as that arrives; after the bounded wait in event time it is
dead-lettered or refused with what it waited for.

Messages go in as the Kafka consumer hands them over: one source per topic partition, each
with its record key, in batches of one partition.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.avro_codec import key_for
from consumers.kafka_topics import topic_of
from ledger.application import BatchResult, Inbound, Ledger
from ledger.domain.inbox import processed_key
from ledger.domain.parking import ParkingLot
from ledger.limits import PARKED_WAIT_MINUTES
from ledger.messages import Envelope
from ledger.parking import LOT_ID
from tests.builders import (
    T0,
    LedgerDriver,
    driver,
    location,
    payment_result,
    session_events,
    settlement_of,
    tariff,
    tenant,
    terminal_authorized,
    tick,
    top_up,
)

# What the read side of the report would not tell apart: where and when each came in.
BOOKKEEPING = frozenset({"ParkingLot", "ProcessedBatch", "DeadLetter", "Refusal"})


class KafkaLikeDriver(LedgerDriver):
    """Feeds messages as `ledger consume` does: source per topic, record keys, positions
    growing per source."""

    def __init__(self) -> None:
        super().__init__()
        self._offsets: dict[str, itertools.count[int]] = {}

    def consume(self, *messages: Envelope) -> BatchResult:
        """One batch of one topic (all `messages` must be on it)."""
        [topic] = {topic_of(m) for m in messages}
        source = f"kafka:{topic}:0"
        offsets = self._offsets.setdefault(source, itertools.count())
        return self.ledger.apply_batch([
            Inbound(source, next(offsets), m, key=key_for(m).decode(), raw=m.model_dump_json())
            for m in messages
        ])

    def parked(self) -> list[dict[str, Any]]:
        lot = self.ledger.repository.get(LOT_ID) if LOT_ID in self.ledger.repository else None
        return list(lot.entries) if isinstance(lot, ParkingLot) else []

    def applied(self, message: Envelope) -> bool:
        key = processed_key(message.tenant_id, message.event_id)
        return key in self.ledger.processed_digests([key])


def configuration(*drivers: Envelope) -> list[Envelope]:
    return [tenant(), tariff(), location(), *drivers]


def test_a_session_started_before_its_drivers_configuration_waits_then_applies_in_order(
) -> None:
    late_driver = driver("late", "post_paid", at=T0 - timedelta(minutes=1))
    events = session_events("tx1", "late", "10")
    d = KafkaLikeDriver()
    d.consume(*configuration())
    assert d.consume(events[0]).parked == 1, "the token's driver may still come"
    assert d.consume(*events[1:]).parked == len(events) - 1, "the rest waits behind it"
    assert [e["awaits"] for e in d.parked()] == ["id_token:t1/rfid-late"] * len(events)
    result = d.consume(late_driver)
    assert (result.unparked, result.applied) == (len(events), 1 + len(events))
    assert d.parked() == []

    in_order = KafkaLikeDriver()
    in_order.consume(*configuration(late_driver))
    in_order.consume(*events)
    assert settlement_of(d, "tx1") == settlement_of(in_order, "tx1")
    assert settlement_of(d, "tx1")["billing_model"] == "post_paid"
    assert d.commands() == in_order.commands()


def test_updates_and_the_end_before_the_start_settle_as_in_order() -> None:
    events = session_events("tx1", "post", "10")
    d = KafkaLikeDriver()
    d.consume(*configuration())
    d.consume(*reversed(events[1:]))  # nothing is known of the driver yet
    assert d.consume(events[0]).parked == 1, "Started waits for its driver"
    d.consume(driver("post", "post_paid"))
    in_order = KafkaLikeDriver()
    in_order.consume(*configuration(driver("post", "post_paid")))
    in_order.consume(*events)
    assert settlement_of(d, "tx1") == settlement_of(in_order, "tx1")


def test_a_psp_result_before_the_command_it_answers_waits_for_it() -> None:
    events = session_events("tx1", "post", "10")
    in_order = KafkaLikeDriver()
    in_order.consume(*configuration(driver("post", "post_paid")))
    in_order.consume(*events)
    [charge] = in_order.new_commands()
    answer = payment_result(charge, "charge_succeeded", at=events[-1].occurred_at)
    in_order.consume(answer)

    d = KafkaLikeDriver()
    d.consume(*configuration(driver("post", "post_paid")))
    result = d.consume(answer)
    assert result.parked == 1
    assert d.parked()[0]["awaits"] == f"request:t1/{charge['event_id']}"
    assert d.consume(*events).unparked == 1, "the charge command released its answer"
    assert d.applied(answer) and d.parked() == []
    assert d.journal() == in_order.journal()
    assert d.balance("psp_clearing") == in_order.balance("psp_clearing") != 0


def test_after_the_bounded_wait_in_event_time_it_is_dead_lettered_with_what_it_waited_for(
) -> None:
    d = KafkaLikeDriver()
    d.consume(*configuration(driver("known", "wallet")))
    at = T0
    early = top_up("ghost", "5.00", at=at)
    assert d.consume(early).parked == 1

    def data(minutes: int, seconds: int = 0) -> BatchResult:
        """A message of the tenant on another topic: its event time moves the wait."""
        return d.consume(top_up("known", "1.00", at=at + timedelta(
            minutes=PARKED_WAIT_MINUTES + minutes, seconds=seconds)))

    d.consume(tick(at + timedelta(minutes=PARKED_WAIT_MINUTES)))
    data(0)
    assert len(d.parked()) == 1 and d.dead_letters() == [], "not past the bound yet"
    data(0, seconds=1)
    assert len(d.parked()) == 1, "the data is past the bound, the tenant's clock is not"
    d.consume(tick(at + timedelta(minutes=PARKED_WAIT_MINUTES, seconds=2)))
    assert len(d.parked()) == 1, "a tick alone ends no wait (it may run ahead of the data)"
    result = data(0, seconds=2)
    assert (result.applied, result.expired, result.dead_lettered) == (1, 1, 1)
    [letter] = d.dead_letters()
    assert letter.reason == (
        f"unknown driver 'ghost' (parked {PARKED_WAIT_MINUTES} min of event time waiting"
        " for driver:t1/ghost)")
    assert (letter.source, letter.position) == ("kafka:wallets:0", "0")
    assert d.parked() == [] and d.balance("wallet:ghost") == 0
    # The same message again is a dead letter no more: redrive works as before.
    d.consume(driver("ghost", "wallet", at=at - timedelta(days=1)))
    assert d.consume(top_up("ghost", "5.00", at=at)).applied == 1


def test_a_clock_read_far_ahead_does_not_give_up_a_wait_the_data_has_not_passed() -> None:
    """The clock topic consumed hours ahead of the others (a consumer catching up): the
    tick alone expires nothing; the driver, one topic-lag away, releases the top-up."""
    d = KafkaLikeDriver()
    d.consume(*configuration(driver("known", "wallet")))
    early = top_up("ghost", "5.00", at=T0)
    assert d.consume(early).parked == 1
    d.consume(tick(T0 + timedelta(hours=5)))
    d.consume(top_up("known", "1.00", at=T0 + timedelta(minutes=PARKED_WAIT_MINUTES)))
    assert len(d.parked()) == 1 and d.dead_letters() == [], "the data is not past the bound"
    result = d.consume(driver("ghost", "wallet", at=T0 - timedelta(days=1)))
    assert (result.unparked, d.parked(), d.dead_letters()) == (1, [], [])
    assert d.applied(early) and d.balance("wallet:ghost") == -5


def test_a_message_waiting_for_its_tenant_expires_on_any_tenants_data_and_clock() -> None:
    d = KafkaLikeDriver()
    d.consume(*configuration(driver("known", "wallet")))
    assert d.consume(top_up("w", "5.00", at=T0, tenant_id="t9")).parked == 1
    later = T0 + timedelta(minutes=PARKED_WAIT_MINUTES, seconds=1)
    d.consume(tick(later + timedelta(hours=3)))
    assert len(d.parked()) == 1, "t1's clock alone"
    assert d.consume(top_up("known", "1.00", at=later)).expired == 1
    [letter] = d.dead_letters()
    assert letter.reason.endswith("waiting for tenant:t9/t9)")


def test_a_message_of_another_tenant_does_not_move_a_tenants_event_time() -> None:
    d = KafkaLikeDriver()
    d.consume(*configuration(), tenant("t2"))
    d.consume(top_up("ghost", "5.00", at=T0))
    d.consume(tick(T0 + timedelta(hours=5), tenant_id="t2"))
    assert len(d.parked()) == 1, "t1's time has not moved"


def test_a_copy_of_a_parked_message_is_a_duplicate() -> None:
    d = KafkaLikeDriver()
    d.consume(*configuration())
    early = top_up("w", "5.00")
    d.consume(early)
    assert d.consume(early).duplicates == 1
    assert d.consume(driver("w", "wallet")).unparked == 1
    assert d.balance("wallet:w") == -5  # a wallet is a liability: credit is negative


# ---------------------------------------------------------------- any interleaving of topics
def day(terminal_first: bool = False) -> list[Envelope]:
    """Configuration, three sessions (two drivers, a payment terminal) and the PSP's
    answers, in the order a live system would publish them.

    Receipts are numbered in the order sessions settle, so the day is one where every
    order considered settles the sessions in the file's order: the terminal's session last
    for any interleaving (its TerminalAuthorized is on `psp.results`, which may come after
    everything), or first when the answers come first and the configuration last (released
    by their location, in arrival order, before the drivers' sessions their drivers)."""
    config = configuration(driver("a", "post_paid"), driver("b", "post_paid"),
                           location("L2"))
    terminal_session = session_events("tx-t", None, "4", start=T0 + timedelta(minutes=10),
                                      terminal_reference="TR1")
    sessions = [
        *(terminal_session if terminal_first else []),
        *session_events("tx-a", "a", "10"),
        *session_events("tx-b", "b", "7", start=T0 + timedelta(minutes=5)),
        *([] if terminal_first else terminal_session),
    ]
    terminal = terminal_authorized("TR1", "30.00", at=T0 - timedelta(minutes=1))
    live = KafkaLikeDriver()
    for message in (*config, terminal, *sessions):
        live.consume(message)
    answers = [
        payment_result(c, {"charge": "charge_succeeded", "capture": "captured",
                           "release": "released"}[c["action"]], at=T0 + timedelta(hours=2))
        for c in live.commands() if c["_type"] == "PaymentCommand"
    ]
    return [*config, terminal, *sessions, *answers]


DAY = day()
TOPICS = sorted({topic_of(m) for m in DAY})


def interleaved(messages: Sequence[Envelope], choices: list[int]) -> list[list[Envelope]]:
    """The messages as Kafka may hand them over: each topic in its own order, topics
    interleaved by `choices` (which topic goes next, and how many of it in one batch)."""
    queues = {t: [m for m in messages if topic_of(m) == t] for t in TOPICS}
    batches: list[list[Envelope]] = []
    pick = iter(choices)
    while any(queues.values()):
        waiting = [t for t in TOPICS if queues[t]]
        topic = waiting[next(pick, 0) % len(waiting)]
        size = 1 + next(pick, 0) % 4
        batches.append(queues[topic][:size])
        del queues[topic][:size]
    return batches


def end_state(d: LedgerDriver) -> dict[Any, Any]:
    from tests.builders import aggregate_states

    return {k: v for k, v in aggregate_states(d).items() if v["__class__"] not in BOOKKEEPING}


def differences(got: dict[Any, Any], want: dict[Any, Any]) -> dict[str, Any]:
    """Per aggregate class and attribute: (got, wanted), where they differ."""
    found: dict[str, Any] = {}
    for key in got.keys() | want.keys():
        mine, theirs = got.get(key, {}), want.get(key, {})
        kind = (mine or theirs)["__class__"]
        for name in mine.keys() | theirs.keys():
            if mine.get(name) != theirs.get(name):
                found[f"{kind}.{name}"] = (mine.get(name), theirs.get(name))
    return found


IN_ORDER = KafkaLikeDriver()
for _message in DAY:
    IN_ORDER.consume(_message)


@settings(max_examples=30, deadline=None)
@given(choices=st.lists(st.integers(min_value=0, max_value=50), max_size=200))
def test_any_interleaving_of_the_topics_ends_as_the_in_order_day(choices: list[int]) -> None:
    d = KafkaLikeDriver()
    for batch in interleaved(DAY, choices):
        d.consume(*batch)
    assert d.parked() == [] and d.dead_letters() == []
    got, numbers = receipt_numbers_aside(end_state(d))
    want, wanted_numbers = receipt_numbers_aside(end_state(IN_ORDER))
    assert differences(got, want) == {}
    # Receipts are numbered as sessions settle, and a session parked behind its driver
    # settles after one that was not: the same gapless numbers, maybe given in another
    # order (docs/reliability.md, "What parking alone gives when the order is wrong";
    # through Kafka, `ledger consume` merges the topics in event time instead).
    assert sorted(numbers) == sorted(wanted_numbers)
    assert sorted(d.journal(), key=lambda e: e.entry_id) == sorted(
        IN_ORDER.journal(), key=lambda e: e.entry_id)
    for tx in ("tx-a", "tx-b", "tx-t"):
        assert ({**settlement_of(d, tx), "receipt_number": None}
                == {**settlement_of(IN_ORDER, tx), "receipt_number": None})


def receipt_numbers_aside(state: dict[Any, Any]) -> tuple[dict[Any, Any], list[str]]:
    """The state with each session's receipt number taken out, and those numbers."""
    numbers: list[str] = []
    kept: dict[Any, Any] = {}
    for key, value in state.items():
        settlement = value.get("settlement") if value["__class__"] == "ChargingSession" else None
        if settlement and settlement.get("receipt_number"):
            numbers.append(settlement["receipt_number"])
            value = {**value, "settlement": {**settlement, "receipt_number": None}}
        kept[key] = value
    return kept, numbers


def test_the_in_order_day_needed_no_parking() -> None:
    assert IN_ORDER.parked() == [] and IN_ORDER.dead_letters() == []
    assert isinstance(IN_ORDER.ledger, Ledger)

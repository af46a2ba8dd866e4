"""Parking: a message that arrives before what it needs waits, and is applied once it comes.

Kafka orders nothing across topics. A handler that finds a prerequisite missing raises
`PrerequisiteMissing` (`ledger/handlers/prerequisites.py`); the ledger then parks the
message in the `ParkingLot`, in the batch's own transaction. Per batch:
  - a message whose key (its lane: a session, a wallet, a PSP request) has messages parked
    is parked behind them, so a key's messages are applied in the order they came;
  - after each message applied, what it made available (a configuration, the id tokens of a
    driver, a terminal authorization, voucher codes, a command a PSP result answers)
    releases the lanes waiting for it: their messages are applied again, in order, in the
    same transaction (and may release others in turn);
  - the bounded wait: a lane whose first message's prerequisite has not come is applied
    without waiting (`deciding_now`: dead-lettered or refused as before parking existed,
    with what it waited for in the reason) once its tenant's event time is more than
    `PARKED_WAIT` past that message's `occurred_at` on BOTH measures: the clock (the
    tenant's last ClockTicked) and the data (a message of the tenant on any other topic,
    whose arrival is when this is checked). For a message waiting for its tenant: the two
    of any tenant.
Why both: Kafka orders nothing across topics. The clock topic alone, read hours ahead of the
others by a consumer catching up, would end waits whose prerequisite is one topic-lag
away; the data alone, a topic read ahead of another, would give up on what the other
brings (a PSP result hours "early" waiting for the retry a later tick issues). Nothing
expires while no data comes; `ledger ingest` gives up at the end of its file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from ledger.batch import Batch, Inbound
from ledger.domain.errors import PrerequisiteMissing
from ledger.domain.parking import ANY_TENANT, ParkedEntry, ParkingLot
from ledger.domain.schedule import Schedule
from ledger.handlers.config import CONFIG_KINDS
from ledger.handlers.prerequisites import awaited_key
from ledger.limits import PARKED_WAIT_MINUTES
from ledger.messages import (
    ClockTicked,
    Configuration,
    DebtPaymentReceived,
    DriverConfigured,
    Envelope,
    PaymentResult,
    TerminalAuthorized,
    TransactionEvent,
    VoucherBatchIssued,
    WalletTopUpRequested,
    parse_message,
)

PARKED_WAIT = timedelta(minutes=PARKED_WAIT_MINUTES)
# Messages whose order is kept together under one key: a session's events, a PSP request's
# results, a wallet's top-ups; configuration in the order it was published.
LANE_KINDS: dict[type[Envelope], str] = {
    TransactionEvent: "session", PaymentResult: "psp", TerminalAuthorized: "psp",
    WalletTopUpRequested: "wallet", DebtPaymentReceived: "wallet",
    **{kind: "config" for kind in CONFIG_KINDS},
}
# One lot for every tenant: a message of a tenant not configured yet has a lot too, and the
# bounded wait of such a message needs the other tenants' event time.
LOT_ID = ParkingLot.create_id("-")
REQUEST_KIND = "request"


@dataclass(frozen=True, slots=True)
class Release:
    """A parked message to apply again: its prerequisite came, or its wait is over."""

    inbound: Inbound
    expired_waiting_for: str | None  # None: released because what it needed arrived


# (tenant id, command id) of the commands a message issued: a PSP result may wait for one.
IssuedCommands = Sequence[tuple[str, str]]
# Applies one released message (under `deciding_now` when its wait is over); returns its
# outcome ("applied", "refused", "dead_lettered", "parked" again, ...) and the commands it
# issued.
ApplyReleased = Callable[[Release], tuple[str, IssuedCommands]]


class Parking:
    """The parking lot as one batch sees it."""

    def __init__(self, batch: Batch) -> None:
        self._batch = batch

    def _lot(self) -> ParkingLot | None:
        return self._batch.get(ParkingLot, LOT_ID)

    # ------------------------------------------------------------ on arrival
    def holds(self, message: Envelope) -> bool:
        """A copy of a message already parked (a producer's re-publish)."""
        lot = self._lot()
        return lot is not None and lot.holds_event(message.tenant_id, message.event_id)

    def lane_waiting(self, item: Inbound) -> bool:
        lot = self._lot()
        return lot is not None and lot.has_lane(lane_of(item))

    def park(self, item: Inbound, missing: PrerequisiteMissing | None) -> None:
        """Park `item`: waiting for `missing`, or (None) behind its lane's earlier messages."""
        message = item.message
        assert message is not None
        lot = self._lot()
        if lot is None:
            lot = ParkingLot(tenant_id="-")
            self._batch.add(lot)
        lane = lane_of(item)
        if missing is None:
            head = lot.lane(lane)[0]
            awaits, reason = head["awaits"], "behind an earlier message of its key"
        else:
            awaits, reason = missing.awaits, missing.reason
        lot.park(ParkedEntry(
            source=item.source, position=item.position, lane=lane, key=item.key,
            tenant_id=message.tenant_id, event_id=message.event_id,
            type_name=message.type_name(), payload=message.model_dump(mode="json"),
            raw=item.raw, awaits=awaits, reason=reason,
            occurred_at=message.occurred_at.isoformat(),
        ))

    # ------------------------------------------------------------ after a message
    def settle(self, message: Envelope, issued_commands: IssuedCommands,
               apply: ApplyReleased, *, applied: bool = True, arrived: bool = False,
               ) -> tuple[int, int]:
        """After `message`: apply what it released (if it was `applied`, or refused) and,
        if it just `arrived` and is no tick, what its event time expired; then what those
        released, until nothing more moves. Returns how many parked messages left the lot
        (released, expired)."""
        if self._lot() is None:
            return 0, 0
        released = expired = 0
        work: list[tuple[Envelope, IssuedCommands]] = (
            [(message, issued_commands)] if applied else [])
        expiring = message if arrived and not isinstance(message, ClockTicked) else None
        while work or expiring is not None:
            if work:  # what it brought first: a message released by it goes on waiting
                brought, issued = work.pop(0)
                releases = self._released_by(brought, issued)
            else:
                assert expiring is not None
                releases = self._expired_by(expiring)
                expiring = None
            for release in releases:
                outcome, issued = apply(release)
                if outcome == "parked":
                    continue
                if release.expired_waiting_for is None:
                    released += 1
                else:
                    expired += 1
                if outcome == "applied":
                    assert release.inbound.message is not None
                    work.append((release.inbound.message, issued))
        return released, expired

    def expire_all(self, apply: ApplyReleased) -> int:
        """No more messages will come (the end of an event file): apply every parked message
        without waiting. Returns how many left the lot."""
        done = 0
        while (lot := self._lot()) is not None and lot.size():
            heads = lot.heads()
            releases = self._take(heads, lot, expired=True)
            for release in releases:
                outcome, issued = apply(release)
                if outcome == "parked":
                    continue
                done += 1
                if outcome == "applied":
                    assert release.inbound.message is not None
                    released, expired = self.settle(release.inbound.message, issued, apply)
                    done += released + expired
        return done

    def _released_by(self, message: Envelope, issued_commands: IssuedCommands,
                     ) -> list[Release]:
        lot = self._lot()
        if lot is None or not lot.size():
            return []
        arrived = [*arrivals(message), *(
            awaited_key(REQUEST_KIND, tenant_id, command_id)
            for tenant_id, command_id in issued_commands)]
        waiting = [head for awaits in dict.fromkeys(arrived) for head in lot.waiting_for(awaits)]
        # In the order they came, as when every lane was looked at in turn.
        waiting.sort(key=lot.arrival)
        return self._take(waiting, lot, expired=False)

    def _expired_by(self, message: Envelope) -> list[Release]:
        """The lanes whose wait is over by `message`'s event time and its tenant's clock
        (for a lane waiting for its tenant: of any tenant), both past the deadline."""
        lot = self._lot()
        scopes = (message.tenant_id, ANY_TENANT)
        if lot is None or not lot.any_due(scopes, message.occurred_at - PARKED_WAIT):
            return []  # the common case, without reading the clock
        schedule = self._batch.get(Schedule, Schedule.create_id(message.tenant_id))
        if schedule is None or schedule.now is None:
            return []  # no tick yet: the tenant's clock has not started
        over = lot.due(scopes, min(message.occurred_at, schedule.now) - PARKED_WAIT)
        return self._take(over, lot, expired=True)

    def _take(self, heads: Iterable[ParkedEntry], lot: ParkingLot, expired: bool,
              ) -> list[Release]:
        """Take the lanes of `heads` out of the lot, as releases in their arrival order."""
        releases: list[Release] = []
        for head in heads:
            lane = lot.lane(head["lane"])
            lot.release([[e["source"], e["position"]] for e in lane],
                        "expired" if expired else "released")
            for entry in lane:
                waited = head["awaits"] if expired and entry is head else None
                releases.append(Release(inbound_of(entry), waited))
        return releases


def lane_of(item: Inbound) -> str:
    """A message's lane: its kind and key (keys are tenant-scoped, but two kinds may share
    one: a tenant's clock and its voucher redemptions), else the message alone."""
    message = item.message
    assert message is not None
    kind = LANE_KINDS.get(type(message), message.type_name())
    return f"{kind}|{item.key or f'event:{message.tenant_id}/{message.event_id}'}"


def arrivals(message: Envelope) -> Iterable[str]:
    """What an applied message makes available to messages waiting for it."""
    tenant = message.tenant_id
    if isinstance(message, Configuration):
        kind, key_field = CONFIG_KINDS[type(message)]
        yield awaited_key(kind, tenant, str(getattr(message, key_field)))
        if isinstance(message, DriverConfigured):
            for token in message.id_tokens:
                yield awaited_key("id_token", tenant, token)
    elif isinstance(message, TerminalAuthorized):
        yield awaited_key("terminal", tenant, message.terminal_reference)
    elif isinstance(message, VoucherBatchIssued):
        for code in message.codes:
            yield awaited_key("voucher", tenant, code)


def inbound_of(entry: ParkedEntry) -> Inbound:
    return Inbound(
        entry["source"], entry["position"], parse_message(entry["type_name"], entry["payload"]),
        key=entry["key"], raw=entry["raw"], type_name=entry["type_name"],
    )


__all__ = ["LOT_ID", "PARKED_WAIT", "IssuedCommands", "Parking", "Release"]

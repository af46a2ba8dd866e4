"""The simulated day, played out against the real ledger, as the Kafka topics would carry it.

`simulate(options)` returns the event lines of `ledger simulate`, in publication order:
1. every operator's configuration (tenant, tariffs, locations, drivers, and the partner who
   buys vouchers), a week before;
2. then, in event-time order: voucher batches (a campaign two days before, the partner's
   the day before; `vouchers.py`), voucher redemptions (three of them refused by the
   ledger with a reason), wallet top-ups, terminal authorizations, the charging stations'
   TransactionEvents, hourly ClockTicked events through eight days after the day (so
   post-paid retries run), and the PSP's answers.

The PSP's answers are the only events that depend on the ledger: a PaymentCommand exists
only once the ledger has decided to send it. So the simulation runs the real `Ledger` in
memory (eventsourcing's POPO store) and applies every event as it is published; after each
one it reads the outbound commands that event caused (`Ledger.recorded_commands`) and
- answers each PaymentCommand with the PSP policy (`psp.py`): the PaymentResult, addressed
  by the command's id, is published a few seconds of event time later, and may itself cause
  new commands (a failed charge schedules a retry; a hold's capture follows its session);
- hands each StopSessionRequested to the simulated charging station, which ends that
  session at its next meter interval (stoppedReason Remote). Commands are not written to
  the file: they are in the ledger's outbox.

With `faults`, the first operator's stream also carries what real feeds do: a few events
published twice (same event id), a meter update overtaken by the next one, a meter update
that arrives after its session's Ended, one line that is not JSON, and one event of an
operator the ledger does not know. The ledger must deduplicate, reorder by seqNo, and
dead-letter the last two with their reasons.

Deterministic: the same options give the same lines, byte for byte.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from consumers.avro_codec import key_for
from consumers.event_file import event_line_for
from consumers.event_time_merge import merged
from consumers.kafka_topics import merge_rank, topic_of
from consumers.simulation.charge_point import CSMS_PRODUCER, SessionPlan, SessionRun
from consumers.simulation.network import (
    CURRENCY,
    TENANTS_MAX,
    EventIds,
    TenantSpec,
    build_tenant,
    configuration_events,
)
from consumers.simulation.planner import DayPlan, day_start_utc, plan_day
from consumers.simulation.psp import Psp, PspPolicy
from consumers.simulation.refunds import (
    REFUNDS_AFTER_DAY_START,
    SettledSession,
    refund_requests,
)
from consumers.simulation.sponsors import (
    SponsorPlan,
    month_end_tick,
    plan_sponsors,
    sponsor_events,
)
from consumers.simulation.vouchers import (
    VoucherPlan,
    batch_issued,
    partner_configured,
    plan_vouchers,
    redemption_requested,
)
from ledger.application import Inbound, Ledger
from ledger.domain.payment import Charge
from ledger.domain.session import ChargingSession
from ledger.messages import (
    ClockTicked,
    Envelope,
    OcppTransactionEvent,
    PaymentCommand,
    StopSessionRequested,
    TerminalAuthorized,
    TransactionEvent,
    WalletTopUpRequested,
)

# A Tuesday, three weeks before the EU's switch to summer time.
DEFAULT_DAY = date(2026, 3, 10)
CONFIGURED_BEFORE_DAY = timedelta(days=7)
TICK_INTERVAL = timedelta(hours=1)
# Ticks run hourly from the day's start until eight days after its last session ended
# (the default retry schedule's last retry is 168 h after the first failure).
TICKS_AFTER_LAST_SESSION = timedelta(days=8)
SESSIONS_MAX = 100_000
SOURCE = "simulate"
DECLINE_RATE_DEFAULT = 0.02
# Events the simulation may publish per session planned (config, ticks and answers
# included, generously): a guard against a feedback loop between ledger and simulator.
EVENTS_PER_SESSION_MAX = 1_000
EVENTS_FIXED_MAX = 100_000
UNKNOWN_TENANT_ID = "cpo-unknown"
# Faults: when a copy is re-published, and how late the late meter update arrives.
DUPLICATE_AFTER = timedelta(seconds=45)
LATE_BY = timedelta(minutes=3)



@dataclass(frozen=True, slots=True)
class SimulationOptions:
    sessions: int
    seed: int
    tenants: int = 1
    faults: bool = False
    day: date = DEFAULT_DAY
    decline_rate: float = DECLINE_RATE_DEFAULT
    result_delay_s: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.tenants <= TENANTS_MAX:
            raise ValueError(f"tenants must be 1..{TENANTS_MAX}")
        if not self.tenants <= self.sessions <= SESSIONS_MAX:
            raise ValueError(f"sessions must be {self.tenants}..{SESSIONS_MAX} "
                             "(at least one per tenant)")


@dataclass(slots=True)
class SimulationResult:
    lines: list[str]
    tenants: list[TenantSpec]
    counts: Counter[str] = field(default_factory=Counter)
    vouchers: list[VoucherPlan] = field(default_factory=list)
    sponsors: list[SponsorPlan] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Faults:
    duplicate_seq: dict[str, int]  # transaction id -> seqNo published twice
    swapped_tx: str | None  # its seqNo 1 is overtaken by seqNo 2
    late_tx: str | None  # its last Updated arrives after its Ended
    duplicate_result_number: int  # the n-th PSP answer is sent twice
    duplicate_top_up_number: int  # the n-th top-up is booked twice
    malformed_at: datetime
    unknown_tenant_at: datetime


def simulate(options: SimulationOptions) -> SimulationResult:
    return _Simulation(options).run()


class _Simulation:
    def __init__(self, options: SimulationOptions) -> None:
        self.options = options
        self.ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        self.psp = Psp(PspPolicy(seed=options.seed, decline_rate=options.decline_rate,
                                 result_delay_s=options.result_delay_s))
        self.lines: list[str] = []
        # Each line's topic and event time (None: not a message), for the merge at the end.
        self._stamps: list[tuple[str, datetime | None]] = []
        self.counts: Counter[str] = Counter()
        self._queue: list[tuple[datetime, int, Callable[[datetime], None]]] = []
        self._order = itertools.count()
        self._position = 0
        self._notification_id = 0
        self._runs: dict[tuple[str, str], SessionRun] = {}
        self._ids: dict[str, EventIds] = {}
        # Vouchers count their own event ids (kinds of their own, so never the same id):
        # the rest of the day keeps the ids it would have without them.
        self._voucher_ids: dict[str, EventIds] = {}
        self._faults: _Faults | None = None
        self._stashed: dict[str, TransactionEvent] = {}
        self._results_published = 0
        self._top_ups_published = 0
        self._events_max = EVENTS_FIXED_MAX + EVENTS_PER_SESSION_MAX * options.sessions

    # ------------------------------------------------------------------ setup
    def run(self) -> SimulationResult:
        options = self.options
        tenants: list[TenantSpec] = []
        plans: list[DayPlan] = []
        vouchers: list[VoucherPlan] = []
        base, extra = divmod(options.sessions, options.tenants)
        for index in range(options.tenants):
            rng = random.Random(f"evledger-simulate:{options.seed}:{index}")
            count = base + (1 if index < extra else 0)
            tenant = build_tenant(index, count, rng)
            tenants.append(tenant)
            self._ids[tenant.tenant_id] = EventIds(tenant.tenant_id)
            self._voucher_ids[tenant.tenant_id] = EventIds(tenant.tenant_id)
            plan = plan_day(tenant, count, options.day, rng)
            plans.append(plan)
            # A stream of its own: the network and the day are drawn as without vouchers.
            voucher_rng = random.Random(f"evledger-vouchers:{options.seed}:{index}")
            vouchers.append(plan_vouchers(tenant, plan, options.day, voucher_rng))
        configured_at = min(day_start_utc(options.day, t.time_zone) for t in tenants)
        configured_at -= CONFIGURED_BEFORE_DAY
        sponsors = [
            # A stream of its own too: partners and plans change no other draw.
            plan_sponsors(tenant, plan, voucher_plan, options.day, configured_at,
                          random.Random(f"evledger-sponsors:{options.seed}:{index}"))
            for index, (tenant, plan, voucher_plan) in enumerate(
                zip(tenants, plans, vouchers, strict=True))
        ]
        for tenant, voucher_plan, sponsor in zip(tenants, vouchers, sponsors, strict=True):
            owners = {sponsor.employer_site: sponsor.employer_id} if sponsor.employer_site else {}
            for message in configuration_events(
                tenant, configured_at, self._ids[tenant.tenant_id], owners
            ):
                self._publish(message, configured_at)
            partner = partner_configured(
                voucher_plan, configured_at, self._voucher_ids[tenant.tenant_id],
                tenant.country)
            self._publish(partner, configured_at)
            sponsor_ids = EventIds(f"{tenant.tenant_id}-sponsor")
            for message in sponsor_events(sponsor, configured_at, sponsor_ids,
                                          tenant.country):
                self._publish(message, configured_at)
            tick = month_end_tick(sponsor, sponsor_ids)
            self._at(tick.now, self._publisher(tick))
        for tenant, plan, voucher_plan in zip(tenants, plans, vouchers, strict=True):
            self._schedule_vouchers(voucher_plan)
            self._schedule_day(tenant, plan)
            self._at(day_start_utc(options.day, tenant.time_zone) + REFUNDS_AFTER_DAY_START,
                     self._refund_desk(tenant.tenant_id))
        if options.faults:
            self._faults = self._plan_faults(tenants[0], plans[0])
            self._schedule_fault_lines(tenants[0], self._faults)
        self._drain()
        unfinished = [tx for (_, tx), r in self._runs.items() if not r.done]
        assert not unfinished, f"sessions still running after the last tick: {unfinished}"
        return SimulationResult(self._in_merge_order(), tenants, self.counts, vouchers,
                                sponsors)

    def _in_merge_order(self) -> list[str]:
        """The lines as `ledger consume` applies them once every topic is on the broker: the
        event-time merge of the topics (`consumers/event_time_merge.py`). A station reports
        a session's end at its next meter interval, after events of other topics that
        happened later; published as simulated, the file would be an order no consumer
        reproduces. Each topic's own order is kept, and the PSP answers stay after the
        commands they answer (an answer is later in event time than its command's cause)."""
        streams: dict[str, list[tuple[datetime | None, str]]] = {}
        for line, (topic, at) in zip(self.lines, self._stamps, strict=True):
            streams.setdefault(topic, []).append((at, line))
        return [line for _topic, line in merged(streams, merge_rank)]

    def _schedule_vouchers(self, plan: VoucherPlan) -> None:
        ids = self._voucher_ids[plan.tenant_id]
        for batch in plan.batches:
            self.counts[f"voucher_batch:{batch.kind}"] += 1
            message = batch_issued(plan.tenant_id, batch, ids)
            self._at(batch.issued_at, self._publisher(message))
        for redemption in plan.redemptions:
            self.counts[f"voucher_redemption:{redemption.expected}"] += 1
            request = redemption_requested(plan.tenant_id, redemption, ids)
            self._at(redemption.at, self._publisher(request))

    def _schedule_day(self, tenant: TenantSpec, plan: DayPlan) -> None:
        ids = self._ids[tenant.tenant_id]
        for top_up in plan.top_ups:
            message = WalletTopUpRequested(
                event_id=ids("topup"), tenant_id=tenant.tenant_id, occurred_at=top_up.at,
                producer="wallet-service", driver_id=top_up.driver_id,
                amount=top_up.amount, method=top_up.method, reference=top_up.reference,
            )
            self._at(top_up.at, self._publisher(message))
        for auth in plan.terminal_authorizations:
            terminal = TerminalAuthorized(
                event_id=ids("terminal"), tenant_id=tenant.tenant_id, occurred_at=auth.at,
                producer="payment-terminal", terminal_reference=auth.terminal_reference,
                terminal_id=auth.terminal_id, location_id=auth.location_id,
                amount=auth.amount, currency=CURRENCY, psp_reference=auth.psp_reference,
            )
            self._at(auth.at, self._publisher(terminal))
        for session in plan.sessions:
            run = SessionRun(session, ids)
            self._runs[(tenant.tenant_id, session.transaction_id)] = run
            self.counts[f"session:{session.kind}"] += 1
            self._at(session.start_at, self._stepper(run))
        day_runs = [self._runs[(tenant.tenant_id, s.transaction_id)] for s in plan.sessions
                    if s.kind != "blocked_by_debt"]
        start = day_start_utc(self.options.day, tenant.time_zone)
        self._at(start + TICK_INTERVAL, self._ticker(tenant.tenant_id, day_runs))

    def _ticker(self, tenant_id: str, day_runs: list[SessionRun]) -> Callable[[datetime], None]:
        """Hourly ClockTicked until every session of the day ended, and eight days more."""

        def tick(now: datetime) -> None:
            clock = ClockTicked(event_id=self._ids[tenant_id]("tick"), tenant_id=tenant_id,
                                occurred_at=now, producer="clock", now=now)
            self._publish(clock, now)
            following = now + TICK_INTERVAL
            if any(not run.done for run in day_runs):
                self._at(following, tick)
                return
            ends = [run.last_at for run in day_runs if run.last_at is not None]
            if ends and following <= max(ends) + TICKS_AFTER_LAST_SESSION:
                self._at(following, tick)

        return tick

    def _refund_desk(self, tenant_id: str) -> Callable[[datetime], None]:
        """The day after: finance refunds two settled sessions (`refunds.py`)."""

        def ask(now: datetime) -> None:
            settled: list[SettledSession] = []
            repository = self.ledger.repository
            for (tenant, tx), _run in sorted(self._runs.items()):
                session_id = ChargingSession.create_id(tenant, tx)
                if tenant != tenant_id or session_id not in repository:
                    continue
                session: ChargingSession = repository.get(session_id)
                settlement = session.settlement
                if settlement is None:
                    continue
                charge_id = Charge.create_id(tenant, "session", tx)
                settled.append(SettledSession(
                    tx, tuple(str(share["payer"]) for share in settlement["charged_to"]),
                    Decimal(settlement["total_incl_vat"]),
                    charge_id in repository and repository.get(charge_id).status == "succeeded",
                ))
            # Ids of their own kind: the rest of the day keeps the ids it had without them.
            ids = EventIds(f"{tenant_id}-desk")
            for request in refund_requests(tenant_id, CURRENCY, settled, now, ids):
                self.counts["refund:" + ("partial" if request.amount else "full")] += 1
                self._publish(request, now)

        return ask

    # ------------------------------------------------------------------ the event loop
    def _at(self, at: datetime, action: Callable[[datetime], None]) -> None:
        heapq.heappush(self._queue, (at, next(self._order), action))

    def _drain(self) -> None:
        while self._queue:
            at, _order, action = heapq.heappop(self._queue)
            action(at)

    def _publisher(self, message: Envelope) -> Callable[[datetime], None]:
        return lambda now: self._publish(message, now)

    def _stepper(self, run: SessionRun) -> Callable[[datetime], None]:
        def step(now: datetime) -> None:
            events, next_at = run.step(now)
            for event in events:
                self._publish_session_event(run, event, now)
            if next_at is not None:
                self._at(next_at, self._stepper(run))
            else:
                self.counts[f"ended:{run.stopped_reason}"] += 1

        return step

    def _publish(self, message: Envelope, now: datetime) -> None:
        if len(self.lines) >= self._events_max:
            raise RuntimeError(f"simulation passed {self._events_max} events: a feedback loop?")
        line = event_line_for(message)
        self.lines.append(line)
        self._stamps.append((topic_of(message), message.occurred_at))
        self.counts[message.type_name()] += 1
        self._position += 1
        self.ledger.apply_batch([Inbound(
            SOURCE, self._position, message, key=key_for(message).decode("utf-8"), raw=line,
            type_name=message.type_name(),
        )])
        self._answer_commands(now)
        self._maybe_duplicate(message, now)

    def _publish_raw(self, line: str, reason: str) -> None:
        self.lines.append(line)
        # A station's broken line: on the stations' topic, without an event time.
        self._stamps.append((topic_of(TransactionEvent), None))
        self.counts["malformed"] += 1
        self._position += 1
        self.ledger.apply_batch([Inbound(SOURCE, self._position, None, raw=line, error=reason)])

    def _answer_commands(self, now: datetime) -> None:
        """Read the commands the last event caused; the PSP answers, stations stop."""
        newest = self.ledger.recorder.max_notification_id() or 0
        for _, command in self.ledger.recorded_commands(self._notification_id, newest):
            self._on_command(command.type_name, command.payload, now)
        self._notification_id = newest

    def _on_command(self, type_name: str, payload: dict[str, object], now: datetime) -> None:
        self.counts[f"command:{type_name}"] += 1
        if type_name == PaymentCommand.type_name():
            command = PaymentCommand.model_validate(payload)
            self.counts[f"command:{command.action}"] += 1
            result = self.psp.answer(command, not_before=now)
            self._at(result.occurred_at, self._publisher(result))
        elif type_name == StopSessionRequested.type_name():
            stop = StopSessionRequested.model_validate(payload)
            run = self._runs.get((stop.tenant_id, stop.transaction_id))
            if run is not None and not run.done:
                run.stop_requested = True
                self.counts[f"stop:{stop.reason}"] += 1

    # ------------------------------------------------------------------ faults
    def _plan_faults(self, tenant: TenantSpec, plan: DayPlan) -> _Faults:
        rng = random.Random(f"evledger-faults:{self.options.seed}")
        day_sessions = [s for s in plan.sessions if s.kind != "blocked_by_debt"]
        long_ones = [s for s in day_sessions if _updates_expected(s) >= 3]
        quiet = [s for s in long_ones if s.kind in ("driver", "open_access")
                 and s.driver_id is not None and s.parking_s == 0]
        swapped = rng.choice(long_ones) if long_ones else None
        late_candidates = [s for s in quiet if s is not swapped]
        late = rng.choice(late_candidates) if late_candidates else None
        others = [s for s in day_sessions if s is not swapped and s is not late]
        chosen = rng.sample(others, k=min(2, len(others)))
        start = day_start_utc(self.options.day, tenant.time_zone)
        return _Faults(
            # A Started and an Updated, each re-published by a CSMS that retried.
            duplicate_seq={
                plan.transaction_id: seq for plan, seq in zip(chosen, (0, 1), strict=False)
            },
            swapped_tx=swapped.transaction_id if swapped else None,
            late_tx=late.transaction_id if late else None,
            duplicate_result_number=5,
            duplicate_top_up_number=1,
            malformed_at=start + timedelta(hours=11, minutes=17, seconds=3),
            unknown_tenant_at=start + timedelta(hours=14, minutes=2, seconds=41),
        )

    def _schedule_fault_lines(self, tenant: TenantSpec, faults: _Faults) -> None:
        # A CSMS that crashed mid-write: the line stops half-way through its event.
        malformed = (
            '{"event":{"event_id":"' + tenant.tenant_id + '-tx-broken","tenant_id":"'
            + tenant.tenant_id + '","occurred_at":"'
            + faults.malformed_at.isoformat().replace("+00:00", "Z") + '","producer":"csms",'
            '"location_id":"' + tenant.locations[1].location_id + '","transaction":{"eventT'
        )
        self._at(faults.malformed_at,
                 lambda now: self._publish_raw(malformed, "truncated line (not JSON)"))
        at = faults.unknown_tenant_at
        stranger = TransactionEvent(
            event_id=f"{UNKNOWN_TENANT_ID}-tx-000001", tenant_id=UNKNOWN_TENANT_ID,
            occurred_at=at, producer=CSMS_PRODUCER, location_id="XX-NOWHERE-01",
            charge_point_id="XX-NOWHERE-01-CP001",
            transaction=OcppTransactionEvent.model_validate({
                "eventType": "Started", "timestamp": at, "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "5d1b0f7e-unknown-operator",
                                    "chargingState": "Charging"},
                "idToken": {"idToken": "04A1B2C3D4E5F6", "type": "ISO14443"},
                "evse": {"id": 1, "connectorId": 1},
                "meterValue": [{"timestamp": at, "sampledValue": [{
                    "value": Decimal(1_234_000), "context": "Transaction.Begin",
                    "measurand": "Energy.Active.Import.Register",
                    "unitOfMeasure": {"unit": "Wh", "multiplier": 0}}]}],
            }),
        )
        self._at(at, self._publisher(stranger))

    def _publish_session_event(
        self, run: SessionRun, event: TransactionEvent, now: datetime
    ) -> None:
        faults = self._faults
        tx = run.plan.transaction_id
        seq_no = event.transaction.seqNo
        kind = event.transaction.eventType
        if faults is None or tx not in (faults.swapped_tx, faults.late_tx, *faults.duplicate_seq):
            self._publish(event, now)
            return
        if faults.duplicate_seq.get(tx) == seq_no:
            self._publish(event, now)
            self.counts["fault:duplicate"] += 1
            self._at(now + DUPLICATE_AFTER, self._publisher(event))
            return
        if tx == faults.swapped_tx:
            if seq_no == 1 and kind == "Updated":
                self._stashed[tx] = event  # overtaken by the next one
                return
            self._publish(event, now)
            overtaken = self._stashed.pop(tx, None)
            if overtaken is not None:
                self.counts["fault:out_of_order"] += 1
                self._publish(overtaken, now)
            return
        if tx == faults.late_tx:
            held = self._stashed.pop(tx, None)
            if kind == "Updated":
                if held is not None:
                    self._publish(held, now)
                self._stashed[tx] = event  # held back until we know it is the last
                return
            self._publish(event, now)
            if held is not None and kind == "Ended":
                self.counts["fault:late"] += 1
                self._at(now + LATE_BY, self._publisher(held))
            elif held is not None:
                self._publish(held, now)
            return
        self._publish(event, now)

    def _maybe_duplicate(self, message: Envelope, now: datetime) -> None:
        faults = self._faults
        if faults is None:
            return
        if message.type_name() == "PaymentResult":
            self._results_published += 1
            if self._results_published == faults.duplicate_result_number:
                self.counts["fault:duplicate"] += 1
                self._at(now + DUPLICATE_AFTER, self._publisher(message))
        elif isinstance(message, WalletTopUpRequested):
            self._top_ups_published += 1
            if self._top_ups_published == faults.duplicate_top_up_number:
                self.counts["fault:duplicate"] += 1
                self._at(now + DUPLICATE_AFTER, self._publisher(message))


def _updates_expected(plan: SessionPlan) -> int:
    seconds = Decimal(plan.energy_wanted_wh) / 1000 / plan.power_kw * 3600
    return int(seconds / plan.meter_interval_s)

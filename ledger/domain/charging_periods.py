"""Folding a session's OCPP 2.0.1 TransactionEvents into OCPI charging periods.

The application translates each TransactionEventRequest into a `MeterReading` (these are
domain inputs, not the wire models) and records it in a `SessionMeter`, an immutable,
JSON-able value an event-sourced aggregate can hold. `fold_charging_periods` turns the meter
into `ChargingPeriod`s for `price_session`; `running_cost` does both for a live session.

Folding rules:
- Readings apply in seqNo order whatever order they arrived in; a second reading with a
  seqNo already held is ignored (the first one wins: a retry carries the same content).
- Session start: the Started reading's timestamp (else the earliest reading's); end: the
  Ended reading's timestamp, or `until` for a live session. An event timestamp earlier than
  the one before it in seqNo order is taken as that earlier one (time never runs back).
- Charging vs. parking follows `chargingState`, in seqNo order, from the event's timestamp:
  - Charging -> charging time (OCPI TIME).
  - SuspendedEVSE -> charging time: the EV asks for power and the station (the operator's
    load management) withholds it; OCPI's corrected PARKING_TIME is "the vehicle is not
    requesting power", and a driver is not moved to parking fees by the operator's choice.
  - SuspendedEV, EVConnected, Idle -> parking (OCPI PARKING_TIME) once the session has
    charged; before the first Charging they still count as charging time, since the
    session is being set up (authorisation, handshake), not overstayed.
  - A session's state before any chargingState is known counts as charging.
- Energy: from the `Energy.Active.Import.Register` samples, in timestamp order: the
  delivered energy is the sum of positive register deltas (a register going back, e.g. a
  replaced meter, restarts the count from its new value); between two samples energy is
  interpolated linearly in time; before the first sample it is 0, after the last it stays.
- Power and current: each sample holds until the next one; a period reports the MIN_ and
  MAX_ of the samples inside it (or the one in force at its start).
- A new period starts wherever a different price may become active: a charging-state
  change; a power or current sample on the other side of one of the tariff's thresholds;
  a local clock boundary of the tariff (start/end times, midnight for dates, weekdays and
  one-sided time windows, DST changes); a duration threshold; and the instant a kWh
  threshold is reached (interpolated between samples, so that period starts with exactly
  that energy).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import ROUND_CEILING, Decimal, localcontext
from enum import StrEnum
from typing import Any

from ledger.domain.errors import InvalidCdr, InvalidMessage
from ledger.domain.pricing import (
    PRICING_CONTEXT,
    ChargingPeriod,
    Cost,
    PeriodKind,
    clock_cuts,
    from_micros,
    price_session,
    to_micros,
)
from ledger.domain.tariff import Tariff, format_utc, parse_utc_datetime, to_decimal

READINGS_MAX = 20_000  # one event a minute for two weeks; beyond that a station misbehaves
SAMPLES_PER_READING_MAX = 1_000
_WH_PER_KWH = Decimal(1000)
_W_PER_KW = Decimal(1000)
_ZERO = Decimal(0)


class EventType(StrEnum):
    STARTED = "Started"
    UPDATED = "Updated"
    ENDED = "Ended"


class ChargingState(StrEnum):
    CHARGING = "Charging"
    EV_CONNECTED = "EVConnected"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    IDLE = "Idle"


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One OCPP MeterValue, reduced to the measurands pricing reads (None: not sent)."""

    timestamp: datetime  # aware
    energy_register_wh: Decimal | None = None  # Energy.Active.Import.Register, in Wh
    power_w: Decimal | None = None  # Power.Active.Import, in W
    current_a: Decimal | None = None  # Current.Import, in A summed over phases


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One OCPP TransactionEvent, reduced to what pricing reads."""

    seq_no: int
    timestamp: datetime  # aware
    event_type: EventType
    charging_state: ChargingState | None = None
    samples: tuple[MeterSample, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq_no": self.seq_no,
            "timestamp": format_utc(self.timestamp),
            "event_type": self.event_type.value,
            "charging_state": None if self.charging_state is None else self.charging_state.value,
            "samples": [_sample_to_dict(s) for s in self.samples],
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> MeterReading:
        try:
            seq_no = obj["seq_no"]
            if not isinstance(seq_no, int) or isinstance(seq_no, bool) or seq_no < 0:
                raise InvalidMessage(f"reading seq_no must be an integer >= 0, got {seq_no!r}")
            state = obj.get("charging_state")
            samples = obj.get("samples") or []
            if len(samples) > SAMPLES_PER_READING_MAX:
                raise InvalidMessage(f"reading {seq_no}: more than {SAMPLES_PER_READING_MAX}")
            return cls(
                seq_no=seq_no,
                timestamp=_instant(obj["timestamp"]),
                event_type=EventType(obj["event_type"]),
                charging_state=None if state is None else ChargingState(state),
                samples=tuple(_sample_from_dict(s) for s in samples),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMessage(f"not a meter reading: {exc!r}") from exc


def _sample_to_dict(sample: MeterSample) -> dict[str, Any]:
    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "timestamp": format_utc(sample.timestamp),
        "energy_register_wh": text(sample.energy_register_wh),
        "power_w": text(sample.power_w),
        "current_a": text(sample.current_a),
    }


def _sample_from_dict(obj: Mapping[str, Any]) -> MeterSample:
    def number(key: str) -> Decimal | None:
        raw = obj.get(key)
        if raw is None:
            return None
        value = to_decimal(raw)
        if value is None:
            raise InvalidMessage(f"sample {key} is not a number: {raw!r}")
        return value

    return MeterSample(
        timestamp=_instant(obj["timestamp"]),
        energy_register_wh=number("energy_register_wh"),
        power_w=number("power_w"),
        current_a=number("current_a"),
    )


def _instant(text: object) -> datetime:
    value = parse_utc_datetime(text) if isinstance(text, str) else None
    if value is None:
        raise InvalidMessage(f"not an RFC 3339 timestamp: {text!r}")
    return value


# ---------------------------------------------------------------------------- the meter
@dataclass(frozen=True)
class SessionMeter:
    """Every reading of one session, by seqNo. Immutable: `record` returns a new meter.

    The derived timeline (the readings put in time order, energy made cumulative) is built
    once per meter and extended, not rebuilt, when a reading arrives in order.
    """

    readings: tuple[MeterReading, ...] = ()
    _timeline: _Timeline | None = field(default=None, repr=False, compare=False)

    def record(self, reading: MeterReading) -> SessionMeter:
        """This meter with `reading` added; itself if that seqNo is already held."""
        _check_reading(reading)
        readings = self.readings
        if readings and reading.seq_no > readings[-1].seq_no:
            if len(readings) >= READINGS_MAX:
                raise InvalidMessage(f"session has more than {READINGS_MAX} readings")
            timeline = self._timeline.extended(reading) if self._timeline else None
            return SessionMeter((*readings, reading), timeline)
        position = bisect_left([r.seq_no for r in readings], reading.seq_no)
        if position < len(readings) and readings[position].seq_no == reading.seq_no:
            return self  # a duplicate seqNo: the first arrival wins
        if len(readings) >= READINGS_MAX:
            raise InvalidMessage(f"session has more than {READINGS_MAX} readings")
        # Out of order: insert in place; the timeline is rebuilt when next needed.
        return SessionMeter((*readings[:position], reading, *readings[position:]))

    def record_all(self, readings: Sequence[MeterReading]) -> SessionMeter:
        """`record` for each reading in turn (one pass when this meter is empty)."""
        if self.readings:
            meter = self
            for reading in readings:
                meter = meter.record(reading)
            return meter
        by_seq_no: dict[int, MeterReading] = {}
        for reading in readings:
            _check_reading(reading)
            by_seq_no.setdefault(reading.seq_no, reading)  # the first arrival wins
        if len(by_seq_no) > READINGS_MAX:
            raise InvalidMessage(f"session has more than {READINGS_MAX} readings")
        return SessionMeter(tuple(by_seq_no[n] for n in sorted(by_seq_no)))

    @property
    def started_at(self) -> datetime | None:
        for r in self.readings:
            if r.event_type is EventType.STARTED:
                return r.timestamp
        return min((r.timestamp for r in self.readings), default=None)

    @property
    def ended_at(self) -> datetime | None:
        for r in reversed(self.readings):
            if r.event_type is EventType.ENDED:
                return r.timestamp
        return None

    @property
    def is_complete(self) -> bool:
        """Started and Ended held, and every seqNo between them (OCPP 2.0.1)."""
        first = next((r for r in self.readings if r.event_type is EventType.STARTED), None)
        last = next((r for r in reversed(self.readings) if r.event_type is EventType.ENDED), None)
        if first is None or last is None or last.seq_no < first.seq_no:
            return False
        held = {r.seq_no for r in self.readings}
        return all(n in held for n in range(first.seq_no, last.seq_no + 1))

    def timeline(self) -> _Timeline:
        if self._timeline is None:
            object.__setattr__(self, "_timeline", _Timeline.build(self.readings))
        assert self._timeline is not None
        return self._timeline

    def to_dict(self) -> dict[str, Any]:
        return {"readings": [r.to_dict() for r in self.readings]}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> SessionMeter:
        raw = obj.get("readings")
        if not isinstance(raw, list):
            raise InvalidMessage("session meter: readings must be a list")
        return cls().record_all([MeterReading.from_dict(r) for r in raw])


def _check_reading(reading: MeterReading) -> None:
    if reading.seq_no < 0:
        raise InvalidMessage(f"seqNo must be >= 0, got {reading.seq_no}")
    for instant in (reading.timestamp, *(s.timestamp for s in reading.samples)):
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise InvalidMessage(f"reading {reading.seq_no}: timestamps must carry a UTC offset")
    if len(reading.samples) > SAMPLES_PER_READING_MAX:
        raise InvalidMessage(f"reading {reading.seq_no}: more than {SAMPLES_PER_READING_MAX}")


@dataclass(frozen=True, slots=True)
class _Series:
    """Samples of one measurand in time order: parallel tuples, for bisect and slices."""

    times_us: tuple[int, ...] = ()
    values: tuple[Decimal, ...] = ()

    def __add__(self, later: _Series) -> _Series:
        return _Series(self.times_us + later.times_us, self.values + later.values)

    def precedes(self, later: _Series) -> bool:
        """Appending `later` keeps time order (equal times: later seqNo sorts last anyway)."""
        return not self.times_us or not later.times_us or later.times_us[0] >= self.times_us[-1]


_Sample = tuple[int, int, int, Decimal]  # (time, seqNo, position in the reading, value)


def _series(items: list[_Sample]) -> _Series:
    # (time, seqNo, position) orders samples totally, so arrival order never matters.
    items.sort(key=lambda item: item[:3])
    return _Series(tuple(i[0] for i in items), tuple(i[3] for i in items))


@dataclass(frozen=True, slots=True)
class _Timeline:
    """The readings of one session in time order, independent of any tariff."""

    start_us: int  # the Started event (else the earliest event)
    end_us: int | None  # the Ended event
    last_event_us: int  # the latest event time so far, in seqNo order
    kind_times_us: tuple[int, ...]  # where the kind changes; the first entry is the start
    kinds: tuple[PeriodKind, ...]
    has_charged: bool
    energy: _Series  # cumulative Wh since the first register sample
    last_register_wh: Decimal | None
    power_kw: _Series
    current_a: _Series
    # Memo of threshold_cuts per (measurand, thresholds): (samples seen, cuts, last side).
    # Carried (copied) to the extended timeline, so each sample is classified once.
    memo: dict[tuple[str, tuple[Decimal, ...]], tuple[int, tuple[int, ...], int]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(cls, readings: Sequence[MeterReading]) -> _Timeline:
        started = next((r for r in readings if r.event_type is EventType.STARTED), None)
        start = started.timestamp if started else min(r.timestamp for r in readings)
        start_us = to_micros(start)
        events = _Events(start_us)
        registers: list[_Sample] = []
        powers: list[_Sample] = []
        currents: list[_Sample] = []
        for reading in readings:  # events apply in seqNo order, samples in time order
            events.apply(reading)
            _collect_samples(reading, registers, powers, currents)
        energy, last_register = _cumulative(_series(registers), None, _ZERO)
        return cls(
            start_us=start_us,
            end_us=events.end_us,
            last_event_us=events.last_event_us,
            kind_times_us=tuple(events.kind_times_us),
            kinds=tuple(events.kinds),
            has_charged=events.has_charged,
            energy=energy,
            last_register_wh=last_register,
            power_kw=_series(powers),
            current_a=_series(currents),
        )

    def extended(self, reading: MeterReading) -> _Timeline | None:
        """This timeline plus a reading with a higher seqNo; None if it must be rebuilt."""
        if reading.event_type is EventType.STARTED or to_micros(reading.timestamp) < self.start_us:
            return None  # the session's start may move: rebuild from scratch
        registers: list[_Sample] = []
        powers: list[_Sample] = []
        currents: list[_Sample] = []
        _collect_samples(reading, registers, powers, currents)
        new_energy, new_power, new_current = _series(registers), _series(powers), _series(currents)
        in_order = (
            self.energy.precedes(new_energy)
            and self.power_kw.precedes(new_power)
            and self.current_a.precedes(new_current)
        )
        if not in_order:
            return None  # a sample back in time: rebuild from scratch
        events = _Events.resume(self)
        events.apply(reading)
        total_wh = self.energy.values[-1] if self.energy.values else _ZERO
        energy, last_register = _cumulative(new_energy, self.last_register_wh, total_wh)
        return _Timeline(
            start_us=self.start_us,
            end_us=events.end_us,
            last_event_us=events.last_event_us,
            kind_times_us=tuple(events.kind_times_us),
            kinds=tuple(events.kinds),
            has_charged=events.has_charged,
            energy=self.energy + energy,
            last_register_wh=last_register,
            power_kw=self.power_kw + new_power,
            current_a=self.current_a + new_current,
            memo=dict(self.memo),
        )

    def threshold_cuts(self, measurand: str, thresholds: tuple[Decimal, ...]) -> tuple[int, ...]:
        """Sample times where the measurand lands on the other side of a threshold."""
        series = self.power_kw if measurand == "power" else self.current_a
        key = (measurand, thresholds)
        seen, cuts, side = self.memo.get(key, (0, (), -1))
        if seen < len(series.times_us):
            found: list[int] = []
            for t, value in zip(series.times_us[seen:], series.values[seen:], strict=True):
                new_side = bisect_right(thresholds, value)
                if new_side != side:
                    found.append(t)
                    side = new_side
            cuts = cuts + tuple(found)
            self.memo[key] = (len(series.times_us), cuts, side)
        return cuts


class _Events:
    """The event part of the fold, on plain locals: where the kind changes, when it ends."""

    __slots__ = ("end_us", "has_charged", "kind_times_us", "kinds", "last_event_us")

    def __init__(self, start_us: int) -> None:
        self.end_us: int | None = None
        self.last_event_us = start_us
        # Before any chargingState is known the session counts as charging.
        self.kind_times_us: list[int] = [start_us]
        self.kinds: list[PeriodKind] = [PeriodKind.CHARGING]
        self.has_charged = False

    @classmethod
    def resume(cls, timeline: _Timeline) -> _Events:
        events = cls(timeline.start_us)
        events.end_us = timeline.end_us
        events.last_event_us = timeline.last_event_us
        events.kind_times_us = list(timeline.kind_times_us)
        events.kinds = list(timeline.kinds)
        events.has_charged = timeline.has_charged
        return events

    def apply(self, reading: MeterReading) -> None:
        # An event cannot precede the start or the event before it (time never runs back).
        at_us = max(to_micros(reading.timestamp), self.last_event_us)
        self.last_event_us = at_us
        if reading.event_type is EventType.ENDED:
            self.end_us = at_us
        state = reading.charging_state
        if state is None:
            return
        self.has_charged = self.has_charged or state is ChargingState.CHARGING
        kind = _kind_of(state, self.has_charged)
        if self.kind_times_us[-1] == at_us:
            # A second change at the same instant replaces the first: no empty period.
            self.kind_times_us.pop()
            self.kinds.pop()
        if not self.kinds or kind is not self.kinds[-1]:
            self.kind_times_us.append(at_us)
            self.kinds.append(kind)


def _kind_of(state: ChargingState, has_charged: bool) -> PeriodKind:
    if state in (ChargingState.CHARGING, ChargingState.SUSPENDED_EVSE):
        return PeriodKind.CHARGING
    return PeriodKind.PARKING if has_charged else PeriodKind.CHARGING


def _collect_samples(
    reading: MeterReading,
    registers: list[_Sample],
    powers: list[_Sample],
    currents: list[_Sample],
) -> None:
    for position, sample in enumerate(reading.samples):
        key = (to_micros(sample.timestamp), reading.seq_no, position)
        if sample.energy_register_wh is not None:
            registers.append((*key, sample.energy_register_wh))
        if sample.power_w is not None:
            powers.append((*key, sample.power_w / _W_PER_KW))
        if sample.current_a is not None:
            currents.append((*key, sample.current_a))


def _cumulative(
    registers: _Series, previous_register: Decimal | None, previous_total: Decimal
) -> tuple[_Series, Decimal | None]:
    """Register readings to energy delivered so far; a register going back restarts."""
    totals: list[Decimal] = []
    total, last = previous_total, previous_register
    for value in registers.values:
        if last is not None and value > last:
            total += value - last
        last = value
        totals.append(total)
    return _Series(registers.times_us, tuple(totals)), last


# ----------------------------------------------------------------------------- the fold
@dataclass(frozen=True, slots=True)
class FoldedSession:
    session_start: datetime
    session_end: datetime
    ended: bool  # the Ended event is held (else session_end is `until`)
    periods: tuple[ChargingPeriod, ...]


def fold_charging_periods(
    meter: SessionMeter, tariff: Tariff, time_zone: tzinfo, until: datetime | None = None
) -> FoldedSession:
    """The session's charging periods, cut wherever `tariff` may change price.

    `until` ends a live session (no Ended reading yet); it is required then.
    """
    if not meter.readings:
        raise InvalidCdr("no readings: the session has not started")
    timeline = meter.timeline()
    start_us = timeline.start_us
    if timeline.end_us is not None:
        end_us = timeline.end_us
    elif until is None:
        raise InvalidCdr("the session has not ended: pass `until` to price it so far")
    else:
        end_us = max(start_us, to_micros(until))
    with localcontext(PRICING_CONTEXT):
        periods = _Fold(timeline, tariff, time_zone, start_us, end_us).periods()
    return FoldedSession(
        session_start=from_micros(start_us),
        session_end=from_micros(end_us),
        ended=timeline.end_us is not None,
        periods=periods,
    )


class _Fold:
    def __init__(
        self, timeline: _Timeline, tariff: Tariff, time_zone: tzinfo, start_us: int, end_us: int
    ) -> None:
        self.timeline = timeline
        self.index = tariff.index
        self.time_zone = time_zone
        self.start_us = start_us
        self.end_us = end_us

    def periods(self) -> tuple[ChargingPeriod, ...]:
        start_us, end_us = self.start_us, self.end_us
        cuts: dict[int, Decimal | None] = {}  # cut time -> exact cumulative Wh, if fixed
        for t in self.timeline.kind_times_us:
            cuts[t] = None
        for measurand, thresholds in (
            ("power", self.index.power_thresholds_kw),
            ("current", self.index.current_thresholds_a),
        ):
            if thresholds:
                for t in self.timeline.threshold_cuts(measurand, thresholds):
                    cuts.setdefault(t, None)
        if self.index.uses_clock:
            for t in clock_cuts(self.index.clock_seconds, self.time_zone, start_us, end_us):
                cuts[t] = None
        for threshold_us in self.index.duration_cuts_us:
            cuts[start_us + threshold_us] = None
        for threshold_kwh in self.index.kwh_cuts:
            crossing = self._energy_reached(threshold_kwh * _WH_PER_KWH)
            if crossing is not None:
                cuts[crossing] = threshold_kwh * _WH_PER_KWH
        times = sorted(t for t in cuts if start_us < t < end_us)
        boundaries = [start_us, *times, end_us]
        # At the start, only what came before it: samples stamped at the start instant
        # itself are delivered within the session (all of it, if it ends at that instant).
        energy_wh = [self._energy_at(start_us, before=True)]
        for t in boundaries[1:]:
            fixed = cuts.get(t)
            at = self._energy_at(t) if fixed is None else fixed
            energy_wh.append(max(at, energy_wh[-1]))  # monotonic whatever the rounding
        periods: list[ChargingPeriod] = []
        for i in range(len(boundaries) - 1):
            a, b = boundaries[i], boundaries[i + 1]
            power = _extremes(self.timeline.power_kw, a, b)
            current = _extremes(self.timeline.current_a, a, b)
            periods.append(
                ChargingPeriod(
                    start=from_micros(a),
                    kind=self._kind_at(a),
                    energy_kwh=(energy_wh[i + 1] - energy_wh[i]) / _WH_PER_KWH,
                    max_power_kw=power[1],
                    min_power_kw=power[0],
                    max_current_a=current[1],
                    min_current_a=current[0],
                )
            )
        return tuple(periods)

    def _kind_at(self, t_us: int) -> PeriodKind:
        i = bisect_right(self.timeline.kind_times_us, t_us) - 1
        return self.timeline.kinds[max(i, 0)]

    def _energy_at(self, t_us: int, *, before: bool = False) -> Decimal:
        """Energy delivered up to `t_us`, interpolated between samples; with `before`, only
        what came strictly before it (samples stamped at `t_us` itself left out)."""
        times, totals = self.timeline.energy.times_us, self.timeline.energy.values
        i = (bisect_left if before else bisect_right)(times, t_us)
        if i == 0:
            return _ZERO
        if i == len(times):
            return totals[-1]
        t0, t1, e0, e1 = times[i - 1], times[i], totals[i - 1], totals[i]
        return e0 + (e1 - e0) * (t_us - t0) / (t1 - t0)

    def _energy_reached(self, target_wh: Decimal) -> int | None:
        """The first microsecond at which `target_wh` has been delivered, if it ever was."""
        times, totals = self.timeline.energy.times_us, self.timeline.energy.values
        i = bisect_left(totals, target_wh)
        if i == len(totals) or target_wh <= 0:
            return None
        if i == 0:
            return times[0]
        t0, t1, e0, e1 = times[i - 1], times[i], totals[i - 1], totals[i]
        offset = (t1 - t0) * (target_wh - e0) / (e1 - e0)
        return t0 + int(offset.to_integral_value(rounding=ROUND_CEILING))


def _extremes(series: _Series, start_us: int, end_us: int) -> tuple[Decimal | None, Decimal | None]:
    """(min, max) of the samples in [start, end), else the sample in force at start."""
    low = bisect_left(series.times_us, start_us)
    high = bisect_left(series.times_us, end_us)
    if high > low:
        window = series.values[low:high]
        return min(window), max(window)
    if low > 0:
        value = series.values[low - 1]
        return value, value
    return None, None


# ------------------------------------------------------------------------ running cost
def running_cost(
    tariff: Tariff, meter_state: SessionMeter, time_zone: tzinfo, now: datetime
) -> Cost:
    """What the session has cost so far (exact, excl. and incl. VAT), as if it ended `now`.

    Cheap enough for every meter update: the tariff is already parsed, the meter's timeline
    is extended rather than rebuilt, and only the fold and one pricing run remain.
    """
    folded = fold_charging_periods(meter_state, tariff, time_zone, until=now)
    price = price_session(
        tariff, folded.periods, time_zone, folded.session_start, folded.session_end
    )
    return price.total_cost

"""The books as they stood at a business date or time, per tenant (event time).

`projections/as_of.py` cuts the log by *recording* time: what the ledger had recorded by
then. This view cuts it by *business* time: what had happened by then, whenever the ledger
learnt of it. Every event a batch writes carries the business time of the inbound message
that caused it (ledger/domain/business_time.py); the rule, exactly:

1. Each tenant has its own cut-off, read in the tenant's time zone (the `time_zone` of its
   TenantConfigured in force at the cut-off): a DATE is the end of that local day (the
   last instant before the next local midnight, so a day with a clock change is 23 h or
   25 h long); a date and wall time without an offset is that local time; an instant with
   an offset is that instant for every tenant. Events of no tenant (an undecodable
   message's dead letter) are cut in UTC.
2. An event is in the view when its business time is at or before its tenant's cut-off.
   An event stored without a business time (written before business times were stamped,
   or by an operator's command outside a batch) counts at its recording time.
3. An aggregate's creation event is in the view when any of its events is: a session
   whose first message to arrive was its end, but whose start (arriving late) is before
   the cut-off, is open in the view.
4. The events in the view are projected in notification order into a throwaway in-memory
   read model, with the same projection code as the live read models; a partner pool's
   usage is recomputed as the sum of the covered sessions in the view (the stored running
   total counts sessions in the order the ledger learnt of them).

So a session that ended after the cut-off is open in the view (or absent, if it started
after it too); a payment the PSP answered after the cut-off is still open (its receivable
outstanding); a period that ended after the cut-off is not invoiced yet; and a message that
arrived late with a business time before the cut-off IS in the view: that is the point.
The view is read from the log as it is when the replay starts; it writes nothing.

Two passes over the log: the first learns each aggregate's tenant and earliest business
time and each tenant's time zone; the second projects what is in the view.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from ledger.domain.billing_calendar import local_day_end, local_instant
from ledger.domain.business_time import business_time_of
from ledger.domain.configuration import EffectiveDated
from ledger.domain.corporate_pool import CorporatePool
from ledger.domain.driver_account import DriverAccount
from ledger.domain.errors import InvalidInput
from ledger.domain.money import Money
from ledger.limits import PROJECTION_PAGE_EVENTS_MAX
from projections import sql
from projections.changes import event_class
from projections.database import ReadModelDatabase, SqliteReadModel
from projections.report import Report, build_report
from projections.runner import NotifiedEvent, apply_page, ensure_schema, read_page
from projections.values import amount_from_minor

# Longer than any form the cut-off takes ("2026-03-31T23:59:59.999999+14:00" is 32).
CUTOFF_CHARS_MAX = 40
# Years a cut-off may name: before the first event any store holds, or far after the last,
# is as good as the bounds, and every zone's offset stays within datetime's range.
CUTOFF_YEARS = range(1970, 9999)
# The zone of events with no tenant, and of a tenant without a TenantConfigured.
NO_TENANT_ZONE = "UTC"
DEBT_RECEIVABLE_PREFIX = "driver_receivable:"

_CONFIG_CREATED: type[Any] = event_class(EffectiveDated, "Created")
_CONFIG_CHANGED: type[Any] = event_class(EffectiveDated, "Changed")
_POOL_COVERED: type[Any] = event_class(CorporatePool, "SessionCovered")
_ACCOUNT_OPENED: type[Any] = event_class(DriverAccount, "Opened")
_DEBT_OVERDUE: type[Any] = event_class(DriverAccount, "DebtBecameOverdue")
_DEBT_PAID: type[Any] = event_class(DriverAccount, "DebtPaid")


class CutoffError(ValueError):
    """A cut-off text that is not a date, a local date and time, or an instant."""


@dataclass(frozen=True, slots=True)
class BusinessCutoff:
    """What was asked: exactly one of a local day, a local wall time, or an instant."""

    text: str
    day: date | None = None
    wall_time: datetime | None = None
    instant: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> BusinessCutoff:
        cutoff = cls._parse(text)
        year = (cutoff.day or cutoff.wall_time or cutoff.instant or date.min).year
        if year not in CUTOFF_YEARS:
            raise CutoffError(f"{text!r}: the year must be {CUTOFF_YEARS.start} to"
                              f" {CUTOFF_YEARS.stop - 1}")
        return cutoff

    @classmethod
    def _parse(cls, text: str) -> BusinessCutoff:
        if len(text) > CUTOFF_CHARS_MAX:
            raise CutoffError(f"not a date or time: {text[:CUTOFF_CHARS_MAX]!r}...")
        if len(text) == len("2026-03-31"):
            try:
                return cls(text, day=date.fromisoformat(text))
            except ValueError:
                raise CutoffError(f"not a date (YYYY-MM-DD): {text!r}") from None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise CutoffError(
                f"not a date (YYYY-MM-DD), local time (YYYY-MM-DDTHH:MM) or instant"
                f" (...Z, ...+01:00): {text!r}"
            ) from None
        if moment.tzinfo is None:
            return cls(text, wall_time=moment)
        if moment.year not in CUTOFF_YEARS:  # before converting: year 1 minus an offset
            return cls(text, instant=moment)
        return cls(text, instant=moment.astimezone(UTC))

    def until(self, time_zone: str) -> datetime:
        """The last instant in the view, in UTC, for a tenant in `time_zone` (inclusive:
        business times have microseconds, so a day ends a microsecond before the next)."""
        if self.instant is not None:
            return self.instant
        if self.wall_time is not None:
            return local_instant(self.wall_time, time_zone)
        assert self.day is not None
        return local_day_end(self.day, time_zone) - timedelta(microseconds=1)


@dataclass(slots=True)
class _Aggregate:
    tenant_id: str | None
    earliest: datetime  # the earliest business time among its events


@dataclass(slots=True)
class _LogSurvey:
    """What the first pass learns."""

    aggregates: dict[UUID, _Aggregate] = field(default_factory=dict)
    # tenant -> [(effective_at, change event id, time zone, currency)]
    tenant_settings: dict[str, list[tuple[datetime, str, str, str]]] = field(
        default_factory=lambda: defaultdict(list))
    tenant_configs: dict[UUID, str] = field(default_factory=dict)


@dataclass(slots=True)
class OverdueDebts:
    """Overdue debt per driver account in the view (not a read model: only this view
    reports it)."""

    owners: dict[UUID, tuple[str, str]] = field(default_factory=dict)
    overdue: dict[UUID, dict[str, Decimal]] = field(default_factory=dict)

    def follow(self, event: Any) -> None:
        if type(event) is _ACCOUNT_OPENED:
            self.owners[event.originator_id] = (event.tenant_id, event.driver_id)
        elif type(event) is _DEBT_OVERDUE:
            self.overdue.setdefault(event.originator_id, {})[event.charge_reference] = (
                event.amount)
        elif type(event) is _DEBT_PAID:
            self.overdue.get(event.originator_id, {}).pop(event.charge_reference, None)

    def by_driver(self) -> dict[tuple[str, str], Decimal]:
        return {self.owners[account_id]: sum(amounts.values(), Decimal(0))
                for account_id, amounts in self.overdue.items()
                if account_id in self.owners and amounts}


@dataclass(frozen=True, slots=True)
class TenantCutoff:
    time_zone: str
    currency: str | None
    until: datetime


def business_time(event: Any) -> datetime:
    """Rule 2: the stamped business time, else the recording time."""
    found = business_time_of(event)
    return found if found is not None else event.timestamp


def _log(ledger: Application[Any], end: int) -> Iterator[NotifiedEvent]:
    """The log up to notification `end`, page by page, in notification order."""
    start: int | None = None
    for _page in range(end // PROJECTION_PAGE_EVENTS_MAX + 2):
        page = [(nid, event) for nid, event in read_page(ledger, start) if nid <= end]
        yield from page
        if not page or page[-1][0] >= end:
            return
        start = page[-1][0]


def _survey(ledger: Application[Any], end: int) -> _LogSurvey:
    """Pass 1: each aggregate's tenant and earliest business time, each tenant's zones."""
    survey = _LogSurvey()
    for _nid, event in _log(ledger, end):
        at = business_time(event)
        found = survey.aggregates.get(event.originator_id)
        if found is None:
            tenant_id = getattr(event, "tenant_id", None)
            survey.aggregates[event.originator_id] = _Aggregate(
                tenant_id if isinstance(tenant_id, str) else None, at)
        elif at < found.earliest:
            found.earliest = at
        if type(event) is _CONFIG_CREATED and event.kind == "tenant":
            survey.tenant_configs[event.originator_id] = event.tenant_id
        elif type(event) is _CONFIG_CHANGED and event.originator_id in survey.tenant_configs:
            settings = event.settings
            survey.tenant_settings[survey.tenant_configs[event.originator_id]].append((
                event.effective_at, event.source_event_id,
                str(settings.get("time_zone") or NO_TENANT_ZONE),
                str(settings.get("currency") or ""),
            ))
    return survey


def tenant_cutoff(
    cutoff: BusinessCutoff, settings: list[tuple[datetime, str, str, str]]
) -> TenantCutoff:
    """Rule 1: the cut-off in the zone of the tenant settings in force at it."""
    chosen: TenantCutoff | None = None
    for effective_at, _event_id, zone, currency in sorted(settings):
        until = cutoff.until(zone)
        if chosen is None or effective_at <= until:
            chosen = TenantCutoff(zone, currency or None, until)
    return chosen or TenantCutoff(NO_TENANT_ZONE, None, cutoff.until(NO_TENANT_ZONE))


def _with_pool_used(event: Any, pool_used: Decimal) -> Any:
    """A copy of a SessionCovered event with the pool's usage in the view (rule 4). Built
    the way the library's mapper builds events it reads, so nothing else changes."""
    copy = object.__new__(type(event))
    object.__setattr__(copy, "__dict__", {**vars(event), "pool_used": pool_used})
    return copy


@dataclass(frozen=True, slots=True)
class BusinessView:
    report: Report
    cutoffs: dict[str, TenantCutoff]
    events: int  # notifications in the view


def replay_business_view(
    ledger: Application[Any], db: ReadModelDatabase, cutoff: BusinessCutoff,
    tenants: Collection[str] | None = None,
) -> tuple[dict[str, TenantCutoff], OverdueDebts, int]:
    """Rules 1-4 into `db` (an empty read model); `tenants`: only these tenants' events
    (the finance API replays the key's tenant alone)."""
    # Both passes read the log as it is now: events written meanwhile are in neither.
    end = ledger.recorder.max_notification_id() or 0
    survey = _survey(ledger, end)
    cutoffs = {tenant: tenant_cutoff(cutoff, settings)
               for tenant, settings in survey.tenant_settings.items()}
    no_tenant = TenantCutoff(NO_TENANT_ZONE, None, cutoff.until(NO_TENANT_ZONE))
    debts = OverdueDebts()
    pool_used: dict[UUID, Decimal] = defaultdict(Decimal)

    def in_view(item: NotifiedEvent) -> bool:
        event = item[1]
        aggregate = survey.aggregates[event.originator_id]
        if tenants is not None and aggregate.tenant_id not in tenants:
            return False
        until = (cutoffs.get(aggregate.tenant_id, no_tenant) if aggregate.tenant_id
                 else no_tenant).until
        if event.originator_version == 1:
            return aggregate.earliest <= until  # rule 3
        return business_time(event) <= until

    def projected(item: NotifiedEvent) -> NotifiedEvent:
        nid, event = item
        debts.follow(event)
        if type(event) is _POOL_COVERED:
            pool_used[event.originator_id] += event.billed_gross
            return nid, _with_pool_used(event, pool_used[event.originator_id])
        return item

    start: int | None = None
    applied = 0
    kept = (projected(item) for item in _log(ledger, end) if in_view(item))
    while page := list(itertools.islice(kept, PROJECTION_PAGE_EVENTS_MAX)):
        apply_page(db, start, page)
        start = page[-1][0]
        applied += len(page)
    if tenants is not None:
        cutoffs = {t: c for t, c in cutoffs.items() if t in tenants}
    return cutoffs, debts, applied


def debts_in_view(
    db: ReadModelDatabase, debts: OverdueDebts, cutoffs: dict[str, TenantCutoff]
) -> list[dict[str, str]]:
    """Per driver: what they owe (their receivable's balance) and of it what is overdue
    (every retry failed by the cut-off)."""
    owed: dict[tuple[str, str], tuple[str, int]] = {}
    for tenant_id, account, currency, minor in db.query(sql.SELECT_ACCOUNT_BALANCES.text):
        if str(account).startswith(DEBT_RECEIVABLE_PREFIX) and int(minor) != 0:
            driver_id = str(account)[len(DEBT_RECEIVABLE_PREFIX):]
            owed[(str(tenant_id), driver_id)] = (str(currency), int(minor))
    overdue = debts.by_driver()
    found = []
    for key in sorted(owed.keys() | overdue.keys()):
        tenant_id, driver_id = key
        tenant = cutoffs.get(tenant_id)
        currency = owed[key][0] if key in owed else (tenant.currency if tenant else None)
        if currency is None:
            raise InvalidInput(f"tenant {tenant_id!r} has debt but no currency configured")
        found.append({
            "tenant_id": tenant_id, "driver_id": driver_id, "currency": currency,
            "outstanding": amount_from_minor(owed[key][1], currency) if key in owed
            else Money(Decimal(0), currency).to_str(),
            "overdue": Money(overdue.get(key, Decimal(0)), currency).to_str(),
        })
    return found


def business_as_of_report(ledger: Application[Any], cutoff: BusinessCutoff,
                          tenant: str | None = None) -> BusinessView:
    """The report of CONTRACT.md as it stood at `cutoff` in business time, with `debts`
    and, under `as_of`, each tenant's exact cut-off; of `tenant` alone if given."""
    db = SqliteReadModel(":memory:")
    try:
        ensure_schema(db)
        cutoffs, debts, applied = replay_business_view(
            ledger, db, cutoff, None if tenant is None else {tenant})
        report = build_report(db, tenant)
        report["debts"] = debts_in_view(db, debts, cutoffs)
    finally:
        db.close()
    report["as_of"] = {
        "basis": "business_time",
        "asked": cutoff.text,
        "tenants": {
            tenant: {"time_zone": c.time_zone,
                     "until": c.until.isoformat().replace("+00:00", "Z")}
            for tenant, c in sorted(cutoffs.items())
        },
    }
    return BusinessView(report, cutoffs, applied)

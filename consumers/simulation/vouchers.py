"""Vouchers in the simulated day: a spring campaign, a partner's gift codes, redemptions.

Pure: a function of the operator's network, its day plan, the day and a seeded
`random.Random` (its own stream, so the rest of the day is drawn exactly as without
vouchers). Every operator gets:
- a partner, `ptn-<prefix>-cardealer` (a car dealer giving charging credit with new cars),
  configured with the rest of the configuration: a partner-bought batch needs a
  `PartnerConfigured` in force when it is issued;
- a campaign of three `session_credit` batches, issued two days before the day, nothing
  booked until used: `WELCOME` (5.00, anywhere, 30 days), `CITY` (3.00, only at the city
  site) and `FLASH` (4.00, anywhere, expiring at 13:00 local on the day);
- a `balance` batch bought by the partner the day before (25.00 face value per code, sold
  8 % below it: the net price per code is 23.00 / (1 + the country's VAT), so the `V-`
  invoice to the partner is about 8 % below the face value in every country);
- redemptions, each by another registered driver (never one of the drivers whose stories
  the planner tells, when there are others): WELCOME by a post-paid, a pre-authorization
  and a wallet driver; CITY by a driver who charges at the city site and by one who does
  not (the credit stays held); FLASH by a driver charging before 13:00 and by one charging
  only after (expired at that session's start: not used); the partner's codes by two
  wallet drivers. Each holder redeems shortly before the first session of the day;
- three redemptions the ledger refuses with a reason: a WELCOME code a second time, a FLASH
  code after 13:00 (expired), and a mistyped code (unknown).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from consumers.simulation.charge_point import SessionPlan
from consumers.simulation.network import (
    CONFIG_PRODUCER,
    CURRENCY,
    SPECIAL_PROFILES,
    Country,
    DriverSpec,
    EventIds,
    TenantSpec,
    location_ids,
)
from consumers.simulation.parties import buyer_fields
from consumers.simulation.planner import DayPlan, day_start_utc
from ledger.messages import PartnerConfigured, VoucherBatchIssued, VoucherRedemptionRequested

VOUCHER_PRODUCER = "voucher-service"
VoucherKind = Literal["balance", "session_credit"]
Outcome = Literal["redeemed", "already_redeemed", "expired", "unknown_code"]
REFUSED_OUTCOMES: tuple[Outcome, ...] = ("already_redeemed", "expired", "unknown_code")

# Code characters a person can read back over the phone: no 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_SUFFIX_CHARS = 6
CAMPAIGN_ISSUED_BEFORE_DAY = timedelta(days=2)
PARTNER_BATCH_ISSUED_BEFORE_DAY = timedelta(days=1)
CAMPAIGN_VALID_FOR = timedelta(days=30)
PARTNER_CODES_VALID_FOR = timedelta(days=365)
FLASH_EXPIRES_LOCAL = time(13, 0)
# A holder redeems this many minutes before the first session of the day (drawn).
REDEEMED_BEFORE_SESSION_MINUTES = (10, 50)
# ... or, when there is no such session, in the morning (local hours, the last excluded).
MORNING_HOURS = (7, 12)
# (story, kind, face value, codes) of each batch; the partner's is the last.
WELCOME_EUR = Decimal("5.00")
CITY_EUR = Decimal("3.00")
FLASH_EUR = Decimal("4.00")
GIFT_EUR = Decimal("25.00")
GIFT_DISCOUNT_PERCENT = Decimal(8)
WELCOME_CODES, CITY_CODES, FLASH_CODES, GIFT_CODES = 10, 5, 5, 6
CENT = Decimal("0.01")
# The partner buys vouchers only: no drivers enrolled, so its corporate pool is unused.
PARTNER_POOL_LIMIT_EUR = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class VoucherBatchPlan:
    story: str  # welcome, city, flash, gift
    batch_id: str
    kind: VoucherKind
    amount_per_code: Decimal
    codes: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    site_location_ids: tuple[str, ...] = ()
    partner_id: str | None = None
    price_per_code_net: Decimal | None = None
    vat_rate_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RedemptionPlan:
    code: str
    driver_id: str
    at: datetime
    expected: Outcome
    story: str  # what it shows, for tests and the demo


@dataclass(frozen=True, slots=True)
class VoucherPlan:
    tenant_id: str
    partner_id: str
    batches: tuple[VoucherBatchPlan, ...]
    redemptions: tuple[RedemptionPlan, ...]

    def batch(self, story: str) -> VoucherBatchPlan:
        return next(b for b in self.batches if b.story == story)


def plan_vouchers(
    tenant: TenantSpec, day_plan: DayPlan, day: date, rng: random.Random
) -> VoucherPlan:
    return _VoucherPlanner(tenant, day_plan, day, rng).plan()


class _VoucherPlanner:
    def __init__(
        self, tenant: TenantSpec, day_plan: DayPlan, day: date, rng: random.Random
    ) -> None:
        self.tenant = tenant
        self.day = day
        self.rng = rng
        self.zone = ZoneInfo(tenant.time_zone)
        self.day_start = day_start_utc(day, tenant.time_zone)
        self.prefix = tenant.tariffs[0].tariff_id.split("-AC-")[0]
        self.city_ids = tuple(location_ids(tenant, ("city",)))
        self.sessions: dict[str, list[SessionPlan]] = {}
        for session in sorted(day_plan.sessions, key=lambda s: (s.start_at, s.transaction_id)):
            if session.kind == "driver" and session.driver_id is not None:
                self.sessions.setdefault(session.driver_id, []).append(session)
        # The first driver of each profile carries a story of the planner (an auto-top-up,
        # a hold reached, ...): credit would change it, so others are chosen first.
        profiles = {d.profile for d in tenant.drivers}
        self.story_drivers = {tenant.drivers_with(p)[0].driver_id for p in profiles}
        self.taken: set[str] = set()
        self.issued: set[str] = set()

    def local(self, at: time) -> datetime:
        return datetime.combine(self.day, at, self.zone).astimezone(UTC)

    # ------------------------------------------------------------------ batches
    def plan(self) -> VoucherPlan:
        partner_id = f"ptn-{self.prefix.lower()}-cardealer"
        campaign_at = self.day_start - CAMPAIGN_ISSUED_BEFORE_DAY + timedelta(hours=10)
        gift_at = self.day_start - PARTNER_BATCH_ISSUED_BEFORE_DAY + timedelta(hours=11)
        spring = f"{self.prefix}-SPRING"
        welcome = self._batch("welcome", f"{spring}-WELCOME", "session_credit", WELCOME_EUR,
                              WELCOME_CODES, campaign_at, self.day_start + CAMPAIGN_VALID_FOR)
        city = self._batch("city", f"{spring}-CITY", "session_credit", CITY_EUR, CITY_CODES,
                           campaign_at, self.day_start + CAMPAIGN_VALID_FOR,
                           site_location_ids=self.city_ids)
        flash = self._batch("flash", f"{spring}-FLASH", "session_credit", FLASH_EUR,
                            FLASH_CODES, campaign_at, self.local(FLASH_EXPIRES_LOCAL))
        gift = self._batch("gift", f"{self.prefix}-GIFT", "balance", GIFT_EUR, GIFT_CODES,
                           gift_at, gift_at + PARTNER_CODES_VALID_FOR, partner_id=partner_id,
                           price_per_code_net=_net_price(self.tenant.country.vat_percent),
                           vat_rate_percent=self.tenant.country.vat_percent)
        return VoucherPlan(
            tenant_id=self.tenant.tenant_id, partner_id=partner_id,
            batches=(welcome, city, flash, gift),
            redemptions=tuple(sorted(self._redemptions(welcome, city, flash, gift),
                                     key=lambda r: (r.at, r.code))),
        )

    def _batch(
        self, story: str, batch_id: str, kind: VoucherKind, amount: Decimal, count: int,
        issued_at: datetime, expires_at: datetime, *, site_location_ids: tuple[str, ...] = (),
        partner_id: str | None = None, price_per_code_net: Decimal | None = None,
        vat_rate_percent: Decimal | None = None,
    ) -> VoucherBatchPlan:
        codes: list[str] = []
        while len(codes) < count:
            code = f"{batch_id}-{self._suffix()}"
            if code not in self.issued:
                self.issued.add(code)
                codes.append(code)
        return VoucherBatchPlan(
            story=story, batch_id=batch_id, kind=kind, amount_per_code=amount,
            codes=tuple(codes), issued_at=issued_at, expires_at=expires_at,
            site_location_ids=site_location_ids, partner_id=partner_id,
            price_per_code_net=price_per_code_net, vat_rate_percent=vat_rate_percent,
        )

    def _suffix(self) -> str:
        return "".join(self.rng.choice(CODE_ALPHABET) for _ in range(CODE_SUFFIX_CHARS))

    # ------------------------------------------------------------------ redemptions
    def _redemptions(
        self, welcome: VoucherBatchPlan, city: VoucherBatchPlan, flash: VoucherBatchPlan,
        gift: VoucherBatchPlan,
    ) -> list[RedemptionPlan]:
        flash_ends = flash.expires_at
        anywhere = _any_session
        holders: list[tuple[str, tuple[str, ...], Callable[[list[SessionPlan]], bool], str]] = [
            (welcome.codes[0], ("post_paid",), anywhere, "session credit, post-paid driver"),
            (welcome.codes[1], ("pre_authorization",), anywhere,
             "session credit, pre-authorized driver"),
            (welcome.codes[2], ("wallet",), anywhere, "session credit, wallet driver"),
            (city.codes[0], (), lambda s: any(x.location_id in self.city_ids for x in s),
             "site-restricted credit, used at the city site"),
            (city.codes[1], (), lambda s: bool(s) and all(
                x.location_id not in self.city_ids for x in s),
             "site-restricted credit, held: the driver charges elsewhere"),
            (flash.codes[0], (), lambda s: any(x.start_at < flash_ends for x in s),
             "credit expiring at 13:00, used before"),
            (flash.codes[1], (), lambda s: bool(s) and all(
                x.start_at >= flash_ends for x in s),
             "credit expiring at 13:00, not used: the driver charges after"),
            (gift.codes[0], ("wallet",), anywhere, "partner's balance voucher into a wallet"),
            (gift.codes[1], ("wallet",), anywhere, "partner's balance voucher into a wallet"),
        ]
        found: list[RedemptionPlan] = []
        for code, models, wanted, story in holders:
            driver = self._pick(models, wanted)
            valid_until = flash_ends if code in flash.codes else None
            at = self._before_first_session(driver, valid_until)
            found.append(RedemptionPlan(code, driver.driver_id, at, "redeemed", story))
        # Refused: the first WELCOME code again, a FLASH code after 13:00, a mistyped code.
        first = found[0]
        again_at = first.at + timedelta(hours=3, minutes=self.rng.randrange(60))
        found.append(RedemptionPlan(first.code, self._anyone(first.driver_id).driver_id,
                                    again_at, "already_redeemed",
                                    "a code redeemed a second time, by another driver"))
        late_at = self.local(time(14, self.rng.randrange(60), self.rng.randrange(60)))
        found.append(RedemptionPlan(flash.codes[2], self._anyone().driver_id, late_at,
                                    "expired", "a code redeemed after it expired"))
        typo_at = self.local(time(10, self.rng.randrange(60), self.rng.randrange(60)))
        found.append(RedemptionPlan(self._mistyped(welcome.codes[3]), self._anyone().driver_id,
                                    typo_at, "unknown_code", "a mistyped code"))
        return found

    def _pick(
        self, models: Sequence[str], wanted: Callable[[list[SessionPlan]], bool]
    ) -> DriverSpec:
        """A driver not chosen yet, of one of `models` (any when empty) whose sessions are
        `wanted`; relaxing in order: story drivers allowed, any sessions, any model."""
        free = [d for d in self.tenant.drivers
                if d.profile not in SPECIAL_PROFILES and d.driver_id not in self.taken]
        of_model = [d for d in free if not models or d.billing_model in models]

        def fits(d: DriverSpec) -> bool:
            return wanted(self.sessions.get(d.driver_id, []))

        tiers = (
            [d for d in of_model if d.driver_id not in self.story_drivers and fits(d)],
            [d for d in of_model if fits(d)],
            of_model,
            free,
            [d for d in self.tenant.drivers if d.driver_id not in self.taken],
            list(self.tenant.drivers),
        )
        tier = next(t for t in tiers if t)
        driver = self.rng.choice(tier)
        self.taken.add(driver.driver_id)
        return driver

    def _anyone(self, but: str | None = None) -> DriverSpec:
        """Any ordinary driver (not `but`): who tries a code that will be refused."""
        ordinary = [d for d in self.tenant.drivers
                    if d.profile not in SPECIAL_PROFILES and d.driver_id != but]
        return self.rng.choice(ordinary or [d for d in self.tenant.drivers
                                            if d.driver_id != but])

    def _before_first_session(self, driver: DriverSpec, expires_at: datetime | None) -> datetime:
        """Shortly before the driver's first session (that starts before `expires_at`, when
        given); with none, some time in the morning (before a FLASH code expires)."""
        sessions = [s for s in self.sessions.get(driver.driver_id, [])
                    if expires_at is None or s.start_at < expires_at]
        if not sessions:
            morning = time(self.rng.randrange(*MORNING_HOURS), self.rng.randrange(60),
                           self.rng.randrange(60))
            return self.local(morning)
        low, high = REDEEMED_BEFORE_SESSION_MINUTES
        return sessions[0].start_at - timedelta(minutes=self.rng.randrange(low, high),
                                                seconds=self.rng.randrange(60))

    def _mistyped(self, code: str) -> str:
        """`code` with its last character read wrong: a code nobody issued."""
        for char in CODE_ALPHABET:
            typo = code[:-1] + char
            if typo != code and typo not in self.issued:
                return typo
        raise AssertionError("every one-character variant is issued")  # pragma: no cover


def _any_session(sessions: list[SessionPlan]) -> bool:
    return bool(sessions)


def _net_price(vat_percent: Decimal) -> Decimal:
    """The partner's net price per gift code: the face value less the discount, before VAT."""
    gross = GIFT_EUR * (100 - GIFT_DISCOUNT_PERCENT) / 100
    return (gross * 100 / (100 + vat_percent)).quantize(CENT, ROUND_HALF_UP)


# ---------------------------------------------------------------- messages
def partner_configured(
    plan: VoucherPlan, at: datetime, event_id: EventIds, country: Country
) -> PartnerConfigured:
    """The partner (in the operator's `country`), effective (and published) with the rest
    of the configuration."""
    return PartnerConfigured(
        event_id=event_id("partner"), tenant_id=plan.tenant_id, occurred_at=at,
        effective_at=at, producer=CONFIG_PRODUCER, partner_id=plan.partner_id,
        billing_period="monthly", pool_limit=PARTNER_POOL_LIMIT_EUR,
        **buyer_fields(plan.partner_id, country),
    )


def batch_issued(
    tenant_id: str, batch: VoucherBatchPlan, event_id: EventIds
) -> VoucherBatchIssued:
    return VoucherBatchIssued(
        event_id=event_id("voucher-batch"), tenant_id=tenant_id, occurred_at=batch.issued_at,
        producer=VOUCHER_PRODUCER, batch_id=batch.batch_id, kind=batch.kind,
        currency=CURRENCY, amount_per_code=batch.amount_per_code, codes=list(batch.codes),
        expires_at=batch.expires_at, site_location_ids=list(batch.site_location_ids),
        bought_by_partner_id=batch.partner_id, price_per_code_net=batch.price_per_code_net,
        vat_rate_percent=batch.vat_rate_percent,
    )


def redemption_requested(
    tenant_id: str, redemption: RedemptionPlan, event_id: EventIds
) -> VoucherRedemptionRequested:
    return VoucherRedemptionRequested(
        event_id=event_id("voucher-redeem"), tenant_id=tenant_id, occurred_at=redemption.at,
        producer=VOUCHER_PRODUCER, code=redemption.code, driver_id=redemption.driver_id,
    )

"""Who pays for one session, decided at start and carried to the end (typed).

The session stores these terms as a plain record in its `PayerResolved` event (JSON-able
event state); `Payer.from_record` reads every record ever stored, including those written
before sponsors existed, so old sessions settle exactly as they would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.domain.billing_model import OWN_MODELS, BillingModel
from ledger.domain.subscription import PlanTerms


@dataclass(frozen=True, slots=True)
class DriverTerms:
    """The driver's own settings in force at start that a session still needs at the end."""

    payment_method_token: str | None = None
    auto_top_up_threshold: Decimal | None = None
    auto_top_up_amount: Decimal | None = None

    @property
    def tops_up_automatically(self) -> bool:
        return bool(
            self.auto_top_up_threshold is not None
            and self.auto_top_up_amount
            and self.payment_method_token
        )

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None) -> DriverTerms:
        settings = settings or {}
        return cls(
            payment_method_token=settings.get("payment_method_token"),
            auto_top_up_threshold=_decimal(settings.get("auto_top_up_threshold")),
            auto_top_up_amount=_decimal(settings.get("auto_top_up_amount")),
        )

    def to_settings(self) -> dict[str, Any]:
        return {
            "payment_method_token": self.payment_method_token,
            "auto_top_up_threshold": self.auto_top_up_threshold,
            "auto_top_up_amount": self.auto_top_up_amount,
        }


@dataclass(frozen=True, slots=True)
class PartnerTerms:
    """A partner's cover of this session, as configured at start (rule 3)."""

    partner_id: str
    pool_limit: Decimal  # what the partner pays at most per period (billed, gross)
    driver_limit: Decimal | None  # per enrolled driver and period (billed, gross)
    discount_percent: Decimal  # off the net the partner is billed; 0 for none
    period_start: datetime
    period_end: datetime

    def to_record(self) -> dict[str, Any]:
        return {
            "partner_id": self.partner_id, "pool_limit": self.pool_limit,
            "driver_limit": self.driver_limit, "discount_percent": self.discount_percent,
            "period_start": self.period_start, "period_end": self.period_end,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PartnerTerms:
        return cls(
            partner_id=record["partner_id"], pool_limit=Decimal(record["pool_limit"]),
            driver_limit=_decimal(record.get("driver_limit")),
            discount_percent=Decimal(record.get("discount_percent") or 0),
            period_start=record["period_start"], period_end=record["period_end"],
        )


@dataclass(frozen=True, slots=True)
class SubscriptionTerms:
    """The plan covering this session, in the cycle holding its start (rule 4)."""

    subscription_id: str
    cycle_index: int
    plan: PlanTerms

    @property
    def billing_model(self) -> BillingModel:
        return (BillingModel.SUBSCRIPTION_PREPAID if self.plan.payment == "prepaid"
                else BillingModel.SUBSCRIPTION_POSTPAID)

    def to_record(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "cycle_index": self.cycle_index,
                "plan": self.plan.to_settings()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SubscriptionTerms:
        return cls(record["subscription_id"], int(record["cycle_index"]),
                   PlanTerms.from_settings(record["plan"]))


@dataclass(frozen=True, slots=True)
class Payer:
    billing_model: BillingModel | None  # None: nobody can pay, the session must stop
    own_model: BillingModel | None  # the driver's per-session model for what sponsors leave
    driver_id: str | None
    payment_method_token: str | None
    hold_amount: Decimal | None
    refusal_reason: str | None
    tariff_id: str
    tariff_json: str
    time_zone: str
    currency: str
    driver: DriverTerms
    stop_threshold_percent: Decimal
    partner: PartnerTerms | None = None
    subscription: SubscriptionTerms | None = None
    # The location's own country (ISO 3166-1 alpha-3, LocationConfigured v2) for its CDR;
    # None for locations configured without one and records stored before v2.
    location_country: str | None = None

    def __post_init__(self) -> None:
        assert self.own_model is None or self.own_model in OWN_MODELS, self.own_model

    @property
    def stop_threshold(self) -> Decimal:
        return self.stop_threshold_percent / 100

    def to_record(self) -> dict[str, Any]:
        return {
            "billing_model": None if self.billing_model is None else self.billing_model.value,
            "own_model": None if self.own_model is None else self.own_model.value,
            "driver_id": self.driver_id,
            "payment_method_token": self.payment_method_token,
            "hold_amount": self.hold_amount,
            "refusal_reason": self.refusal_reason,
            "tariff_id": self.tariff_id,
            "tariff_json": self.tariff_json,
            "time_zone": self.time_zone,
            "currency": self.currency,
            "driver": self.driver.to_settings(),
            "stop_threshold_percent": self.stop_threshold_percent,
            "partner": None if self.partner is None else self.partner.to_record(),
            "subscription": (
                None if self.subscription is None else self.subscription.to_record()
            ),
            "location_country": self.location_country,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Payer:
        model = record.get("billing_model")
        billing_model = None if model is None else BillingModel(model)
        own = record.get("own_model")
        if own is None and billing_model in OWN_MODELS:
            own = billing_model  # a record from before sponsors: the model was the driver's
        partner = record.get("partner")
        subscription = record.get("subscription")
        return cls(
            billing_model=billing_model,
            own_model=None if own is None else BillingModel(own),
            driver_id=record.get("driver_id"),
            payment_method_token=record.get("payment_method_token"),
            hold_amount=_decimal(record.get("hold_amount")),
            refusal_reason=record.get("refusal_reason"),
            tariff_id=record["tariff_id"],
            tariff_json=record["tariff_json"],
            time_zone=record["time_zone"],
            currency=record["currency"],
            driver=DriverTerms.from_settings(record.get("driver")),
            stop_threshold_percent=Decimal(record["stop_threshold_percent"]),
            partner=None if partner is None else PartnerTerms.from_record(partner),
            subscription=(
                None if subscription is None else SubscriptionTerms.from_record(subscription)
            ),
            location_country=record.get("location_country"),
        )


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)

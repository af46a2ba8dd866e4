"""The messages the ledger accepts and sends: one pydantic model per Avro record.

These models are the contract with the CSMS, the PSP and the configuration source. Each has
an Avro schema of the same name in `schemas/` (a test keeps them in agreement) and a JSON
form (`model_dump(mode="json")`) that is also the line format of event files. Which Kafka
topic carries each one is the transport's business (`consumers/kafka_topics.py`); a command
names only who it is for (`RECIPIENT`).

Conventions on the wire: every decimal (money, energy, power, percentages) is a decimal
string so no float ever carries money; every instant is an ISO 8601 string with an offset.
The OCPP part of a session event keeps OCPP 2.0.1's own camelCase names.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from ledger.domain.errors import InvalidMessage
from ledger.domain.money import CURRENCY_EXPONENTS
from ledger.domain.text import CONTROL_CHARACTERS, control_character_in
from ledger.limits import (
    AMOUNT_MAJOR_MAX,
    AMOUNT_MINOR_UNITS_MAX,
    DECIMAL_INTEGER_DIGITS_MAX,
    DECIMAL_PLACES_MAX,
    TARIFF_JSON_CHARS_MAX,
    TEXT_CHARS_MAX,
    WIRE_INT_MAX,
)

assert AMOUNT_MAJOR_MAX * 10 ** max(CURRENCY_EXPONENTS.values()) <= AMOUNT_MINOR_UNITS_MAX, (
    "the largest amount in major units must stay within the minor-unit bound in every currency"
)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp needs a UTC offset, e.g. 2026-01-01T10:00:00Z")
    return value


# Rounding to DECIMAL_PLACES_MAX changes a decimal that has more places than that.
_PLACES_QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES_MAX)


def _bounded(value: Decimal) -> Decimal:
    """Finite, at most DECIMAL_INTEGER_DIGITS_MAX digits before the point and
    DECIMAL_PLACES_MAX after it (trailing zeros aside): what every later stage can compute."""
    if not value.is_finite():
        raise ValueError("decimal must be finite")
    if value and value.adjusted() >= DECIMAL_INTEGER_DIGITS_MAX:
        raise ValueError(f"decimal has more than {DECIMAL_INTEGER_DIGITS_MAX} integer digits")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    # Quantize cannot fail here: at most 15 + 6 digits, within the context's 28.
    if exponent < -DECIMAL_PLACES_MAX and value != value.quantize(_PLACES_QUANTUM):
        raise ValueError(f"decimal has more than {DECIMAL_PLACES_MAX} decimal places")
    return value


def _decimal_from_wire(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("decimals travel as strings, not floats")
    return value


# `producer` of every command the ledger sends.
COMMAND_PRODUCER = "evledger"


def instant_text(value: datetime) -> str:
    """An instant as messages carry it in JSON (UTC as "Z")."""
    return value.isoformat().replace("+00:00", "Z")


def decimal_text(value: Decimal) -> str:
    """A decimal as messages carry it in JSON: fixed-point text, never exponent form ("1000",
    not "1E+3")."""
    return format(value, "f")


# Field types shared by every message.
Instant = Annotated[
    datetime,
    AfterValidator(_aware),
    PlainSerializer(instant_text, return_type=str),
]
Dec = Annotated[
    Decimal,
    BeforeValidator(_decimal_from_wire),
    AfterValidator(_bounded),
    PlainSerializer(decimal_text, return_type=str),
]
NonNegDec = Annotated[Dec, Field(ge=0)]
# Money in major units: bounded for every currency (see AMOUNT_MAJOR_MAX).
Amount = Annotated[NonNegDec, Field(le=AMOUNT_MAJOR_MAX)]
Id = Annotated[str, Field(min_length=1, max_length=64)]
# A seller's or buyer's data on an e-invoice (EN 16931): printed text, an ISO 3166-1 alpha-2
# country (EN 16931's code list; OCPI's locations use alpha-3), a VAT id with its country
# prefix (the VIES shape), an e-mail address.
PartyText = Annotated[str, Field(min_length=1, max_length=200)]
Postcode = Annotated[str, Field(min_length=1, max_length=20)]
CountryAlpha2 = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
VatId = Annotated[str, Field(pattern=r"^[A-Z]{2}[0-9A-Z+*.]{2,13}$")]
EmailAddress = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]


# Text fields that may be longer than TEXT_CHARS_MAX and span lines.
LONG_TEXT_CHARS_MAX: dict[str, int] = {"ocpi_tariff_json": TARIFF_JSON_CHARS_MAX}


def holdable_problem(value: object, field_name: str = "") -> str | None:
    """Which field of a decoded payload holds a value no later stage can hold, and why, or
    None: text with a control character or beyond its size, an integer beyond 64 bits.
    Every field of every message, ids included, nested records and lists too. One walk of
    the payload before the model, a C-level check per value (a pydantic validator per field
    tripled the cost of parsing)."""
    if isinstance(value, str):
        long_max = LONG_TEXT_CHARS_MAX.get(field_name)
        if long_max is None:
            if len(value) > TEXT_CHARS_MAX:
                return f"{field_name}: text longer than {TEXT_CHARS_MAX} characters"
            if CONTROL_CHARACTERS.search(value) is None:
                return None
        elif len(value) > long_max:
            return f"{field_name}: text longer than {long_max} characters"
        found = control_character_in(value, multiline=long_max is not None)
        if found is None:
            return None
        return f"{field_name}: text contains the control character {found}"
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (str, dict, list, int)):
                problem = holdable_problem(item, key)
                if problem is not None:
                    return problem
        return None
    if isinstance(value, list):
        for item in value:
            problem = holdable_problem(item, field_name)
            if problem is not None:
                return problem
        return None
    if isinstance(value, int) and not -WIRE_INT_MAX - 1 <= value <= WIRE_INT_MAX:
        return f"{field_name}: integer beyond 64 bits (at most {WIRE_INT_MAX})"
    return None


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


SchemaVersion = Annotated[int, Field(ge=1)]


class Envelope(WireModel):
    """Fields every message carries.

    `schema_version` is the version of the type's schema the producer wrote
    (`schemas/history/<Type>/vN.avsc`); `SCHEMA_VERSION` is the latest this code knows, which
    new messages default to. On Kafka the bytes name their writer schema themselves (see
    `consumers/avro_codec.py`); in an event file this field is all there is, so a version newer
    than this code knows is refused rather than read without its new fields.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    # Who an outbound command is for ("psp", "csms"): the domain's name, not a transport's.
    RECIPIENT: ClassVar[str] = ""

    event_id: Id
    tenant_id: Id
    occurred_at: Instant
    producer: Annotated[str, Field(min_length=1, max_length=64)]
    schema_version: SchemaVersion = 1

    @field_validator("schema_version")
    @classmethod
    def _known_schema_version(cls, version: int) -> int:
        if version > cls.SCHEMA_VERSION:
            raise ValueError(
                f"{cls.__name__} v{version} is newer than this ledger knows"
                f" (v{cls.SCHEMA_VERSION}): deploy the ledger that knows it first"
            )
        return version

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    def payload_digest(self) -> str:
        """sha256 of the payload's JSON (fields in schema order, so the same payload always
        gives the same digest): what tells a re-published copy from a conflicting one."""
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()

    def business_time(self) -> datetime:
        """When what this message reports happened (event time), as opposed to when the
        ledger recorded it: what the as-of views in business time cut by."""
        return self.occurred_at


# ---------------------------------------------------------------- CSMS: session events
class UnitOfMeasure(WireModel):
    unit: str = "Wh"
    multiplier: int = 0


class SampledValue(WireModel):
    value: Dec
    context: str | None = None
    measurand: str | None = None
    phase: str | None = None
    unitOfMeasure: UnitOfMeasure | None = None


class MeterValue(WireModel):
    timestamp: Instant
    sampledValue: list[SampledValue] = Field(min_length=1)


class TransactionInfo(WireModel):
    transactionId: Annotated[str, Field(min_length=1, max_length=36)]
    chargingState: (
        Literal["Charging", "EVConnected", "SuspendedEV", "SuspendedEVSE", "Idle"] | None
    ) = None
    stoppedReason: str | None = None
    timeSpentCharging: int | None = None
    remoteStartId: int | None = None


class IdToken(WireModel):
    idToken: Annotated[str, Field(min_length=1, max_length=36)]
    type: Literal[
        "Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress",
        "NoAuthorization",
    ]


class Evse(WireModel):
    id: int
    connectorId: int | None = None


class OcppTransactionEvent(WireModel):
    """OCPP 2.0.1 TransactionEventRequest, as the charging station sent it."""

    eventType: Literal["Started", "Updated", "Ended"]
    timestamp: Instant
    triggerReason: str
    seqNo: int = Field(ge=0)
    transactionInfo: TransactionInfo
    idToken: IdToken | None = None
    evse: Evse | None = None
    meterValue: list[MeterValue] = Field(default_factory=list)
    offline: bool = False


class TransactionEvent(Envelope):
    """A session event from the CSMS, with the ids the CSMS knows around the OCPP payload."""


    location_id: Id
    charge_point_id: Id
    tariff_id: Id | None = None
    # Set when a contactless payment terminal at the charger authorized the session.
    terminal_reference: Id | None = None
    transaction: OcppTransactionEvent

    def business_time(self) -> datetime:
        # The charging station's own time of the start, update or end (also what the
        # handlers price and settle by), even when the CSMS forwards it late.
        return self.transaction.timestamp


# ---------------------------------------------------------------- PSP results
PaymentOutcome = Literal[
    "hold_authorized", "hold_failed", "captured", "capture_failed", "released",
    "release_failed", "charge_succeeded", "charge_failed", "refunded", "refund_failed",
]


class PaymentResult(Envelope):
    """The PSP's answer to one command, addressed by the command's deterministic id."""


    request_id: Id
    outcome: PaymentOutcome
    amount: Amount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    psp_reference: Id | None = None
    reason: str | None = None


class TerminalAuthorized(Envelope):
    """A payment terminal at a charger authorized (held) an amount for one session."""


    terminal_reference: Id
    terminal_id: Id
    location_id: Id
    amount: Amount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    psp_reference: Id


# ---------------------------------------------------------------- vouchers and wallets
class VoucherBatchIssued(Envelope):
    batch_id: Id
    kind: Literal["balance", "session_credit"]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    amount_per_code: Amount
    codes: list[Id] = Field(min_length=1, max_length=10_000)
    expires_at: Instant
    site_location_ids: list[Id] = Field(default_factory=list)
    # A partner who bought the batch is invoiced for it at this price per code.
    bought_by_partner_id: Id | None = None
    price_per_code_net: Amount | None = None
    vat_rate_percent: Annotated[Dec, Field(ge=0, le=100)] | None = None


class VoucherRedemptionRequested(Envelope):
    code: Id
    driver_id: Id


class WalletTopUpRequested(Envelope):
    driver_id: Id
    amount: Annotated[Amount, Field(gt=0)]
    method: Literal["card", "bank_transfer"]
    reference: Id


class DebtPaymentReceived(Envelope):
    """A driver paid their overdue debt outside the retry schedule: in the app (a card
    payment the PSP confirmed), at the counter (cash) or by bank transfer."""


    driver_id: Id
    amount: Annotated[Amount, Field(gt=0)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    method: Literal["card", "cash", "bank_transfer"]
    reference: Id  # the payment's own reference: one payment settles debt once


class RefundRequested(Envelope):
    """Finance asks to give back all or part of what a settled session was paid, with the
    reason (a disputed session, a faulty charger). The ledger splits it over the payers
    (docs/billing-decisions.md, "Refunds"), or refuses it with the reason."""

    session_id: Id  # the OCPP transactionId of the settled session
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    # Incl. VAT; None: everything that remains refundable. Not positive: refused (a reason
    # event), so the desk that sent it sees why.
    amount: Annotated[Dec, Field(ge=-AMOUNT_MAJOR_MAX, le=AMOUNT_MAJOR_MAX)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    requested_by: Id | None = None  # who at the operator asked (for the audit trail)


# ---------------------------------------------------------------- configuration
class Configuration(Envelope):
    """Configuration is effective-dated: it governs sessions started at or after effective_at."""


    effective_at: Instant


class TenantConfigured(Configuration):
    # v2 added time_zone and cost updates, v3 the seller's invoice data
    # (schemas/history/TenantConfigured/).
    SCHEMA_VERSION: ClassVar[int] = 3

    schema_version: SchemaVersion = 3
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    preauth_hold_amount: Amount
    preauth_stop_threshold_percent: Annotated[Dec, Field(gt=0, le=100)] = Decimal(95)
    retry_schedule_hours: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: [1, 6, 24, 72, 168], max_length=20
    )
    block_sessions_on_overdue_debt: bool = True
    # The books' time zone: partner periods and subscription cycles are aligned to it.
    time_zone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"
    # Cost to the CSMS (SessionCostUpdated): the running cost once it moved by this much, or
    # this long after the last update (never more often), and the final cost. 0: off (the
    # default, for a CSMS that does not read cost updates yet).
    cost_update_step: Amount = Decimal(0)
    cost_update_interval_s: Annotated[int, Field(ge=0, le=86_400)] = 300
    # v3: the seller on e-invoices (EN 16931 BG-4); a v1/v2 producer sends none, and an
    # e-invoice then says which one it lacks.
    legal_name: PartyText | None = None
    vat_id: VatId | None = None
    address_street: PartyText | None = None
    address_postcode: Postcode | None = None
    address_city: PartyText | None = None
    address_country: CountryAlpha2 | None = None
    invoice_email: EmailAddress | None = None


class TariffPublished(Configuration):
    tariff_id: Id
    # The OCPI 2.2.1 Tariff object as JSON text (validated by the pricer on arrival).
    ocpi_tariff_json: Annotated[str, Field(min_length=2, max_length=200_000)]
    # Pre-authorization hold for sessions under this tariff (overrides the tenant's).
    preauth_hold_amount: Amount | None = None


class LocationConfigured(Configuration):
    # v2 added country_code (schemas/history/LocationConfigured/v2.avsc).
    SCHEMA_VERSION: ClassVar[int] = 2

    schema_version: SchemaVersion = 2
    location_id: Id
    time_zone: Annotated[str, Field(min_length=1, max_length=64)]
    tariff_id: Id
    open_access: bool = False
    # Free EVSEs at an otherwise paid location, as "<charge_point_id>:<OCPP evse id>".
    open_access_evse_ids: list[Id] = Field(default_factory=list)
    owner_partner_id: Id | None = None
    preauth_hold_amount: Amount | None = None
    # ISO 3166-1 alpha-3, as OCPI's Location.country and CdrLocation.country (v2; a v1
    # producer sends none, and CDRs then take the country from the tariff's CPO).
    country_code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None


class DriverConfigured(Configuration):
    driver_id: Id
    id_tokens: list[Annotated[str, Field(min_length=1, max_length=36)]] = Field(min_length=1)
    billing_model: Literal["wallet", "pre_authorization", "post_paid"]
    payment_method_token: Id | None = None
    auto_top_up_threshold: Amount | None = None
    auto_top_up_amount: Annotated[Amount, Field(gt=0)] | None = None


class PlanPublished(Configuration):
    plan_id: Id
    payment: Literal["prepaid", "postpaid"]
    fee_net: Amount
    fee_vat_rate_percent: Annotated[Dec, Field(ge=0, le=100)]
    cycle_months: Annotated[int, Field(ge=1, le=12)] = 1
    anchor: Literal["anniversary", "calendar"] = "anniversary"
    allowance_kwh: NonNegDec | None = None
    allowance_sessions: Annotated[int, Field(ge=0)] | None = None
    allowance_amount: Amount | None = None
    overage_discount_percent: Annotated[Dec, Field(ge=0, le=100)] | None = None
    overage_tariff_id: Id | None = None
    site_location_ids: list[Id] = Field(default_factory=list)


class SubscriptionChanged(Configuration):
    driver_id: Id
    plan_id: Id
    action: Literal["subscribe", "cancel", "change_plan"]


class PartnerConfigured(Configuration):
    # v2 added payment_terms and payment_method_token, v3 the buyer's invoice data
    # (schemas/history/PartnerConfigured/).
    SCHEMA_VERSION: ClassVar[int] = 3

    schema_version: SchemaVersion = 3
    partner_id: Id
    billing_period: Literal["monthly", "quarterly", "semi_annual", "annual"]
    pool_limit: Amount
    discount_percent: Annotated[Dec, Field(ge=0, le=100)] | None = None
    own_sites_only: bool = False
    # invoice: the settlement invoice is left as a receivable; card: charged to the token.
    payment_terms: Literal["invoice", "card"] = "invoice"
    payment_method_token: Id | None = None
    # v3: the buyer on e-invoices (EN 16931 BG-7) and the reference it asked for (BT-10).
    legal_name: PartyText | None = None
    vat_id: VatId | None = None
    address_street: PartyText | None = None
    address_postcode: Postcode | None = None
    address_city: PartyText | None = None
    address_country: CountryAlpha2 | None = None
    buyer_reference: PartyText | None = None
    invoice_email: EmailAddress | None = None


class EnrolmentChanged(Configuration):
    partner_id: Id
    driver_id: Id
    action: Literal["enrol", "unenrol"]
    driver_limit: Amount | None = None


# ---------------------------------------------------------------- time
class ClockTicked(Envelope):
    """Event time moves forward: due retries, expiries, cycle and period ends run now."""


    now: Instant

    def business_time(self) -> datetime:
        return self.now  # the instant the schedules run at (retries, period ends)


# ---------------------------------------------------------------- outbound commands
class StopSessionRequested(Envelope):
    """To the CSMS: stop this transaction (RequestStopTransaction), with the reason."""

    RECIPIENT: ClassVar[str] = "csms"


    transaction_id: Id
    location_id: Id
    charge_point_id: Id
    reason: str


class SessionCostUpdated(Envelope):
    """To the CSMS: what the driver pays for this transaction so far, or in the end (OCPP
    2.0.1 I02 `CostUpdated` while charging; I03 the final total in the response to the last
    TransactionEvent). Sponsored shares (a partner, a plan's allowance) are left out."""

    RECIPIENT: ClassVar[str] = "csms"

    transaction_id: Id
    location_id: Id
    charge_point_id: Id
    total_cost: NonNegDec  # incl. VAT, what the driver pays (so far)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    final: bool = False
    # With `final`: the session's whole price incl. VAT, whoever pays it.
    full_price: NonNegDec | None = None
    sequence: Annotated[int, Field(ge=0)] = 0  # counts this session's updates, final last


class PaymentCommand(Envelope):
    """To the PSP. `event_id` is the command id the PSP's result refers to (`request_id`)."""

    RECIPIENT: ClassVar[str] = "psp"

    action: Literal["authorize", "capture", "release", "charge", "refund"]
    idempotency_key: Id
    amount: Amount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    payment_method_token: Id | None = None
    # What the money is for: a session id, a top-up reference, an invoice number.
    reference: Id
    # For capture/release: the hold's authorization; for refund: the original charge.
    psp_reference: Id | None = None


# ---------------------------------------------------------------- registries
INBOUND_TYPES: tuple[type[Envelope], ...] = (
    TransactionEvent,
    PaymentResult,
    TerminalAuthorized,
    VoucherBatchIssued,
    VoucherRedemptionRequested,
    WalletTopUpRequested,
    DebtPaymentReceived,
    RefundRequested,
    TenantConfigured,
    TariffPublished,
    LocationConfigured,
    DriverConfigured,
    PlanPublished,
    SubscriptionChanged,
    PartnerConfigured,
    EnrolmentChanged,
    ClockTicked,
)
OUTBOUND_TYPES: tuple[type[Envelope], ...] = (
    StopSessionRequested, SessionCostUpdated, PaymentCommand,
)

MESSAGE_TYPES: dict[str, type[Envelope]] = {
    cls.type_name(): cls for cls in (*INBOUND_TYPES, *OUTBOUND_TYPES)
}
assert all(cls.RECIPIENT for cls in OUTBOUND_TYPES), "every command names who it is for"


def parse_message(type_name: str, payload: dict[str, object]) -> Envelope:
    """Validate a payload into its model; any problem becomes InvalidMessage with the reason."""
    from pydantic import ValidationError

    model = MESSAGE_TYPES.get(type_name)
    if model is None:
        raise InvalidMessage(f"unknown message type {type_name!r}")
    problem = holdable_problem(payload)
    if problem is not None:
        raise InvalidMessage(f"invalid {type_name}: {problem}")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise InvalidMessage(f"invalid {type_name}: {problems}") from exc

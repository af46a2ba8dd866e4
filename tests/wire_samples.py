"""One valid instance of every wire message, twice: with only the required fields, and with
every field set to something other than its default. For tests of anything that handles
messages; `sample()` builds a variant with some fields replaced (validated, like a real one).

The full samples push the edges the wire must carry unchanged: decimals with many places, a
non-UTC offset, non-ASCII text, integers beyond 32 bits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ledger.messages import (
    MESSAGE_TYPES,
    ClockTicked,
    DebtPaymentReceived,
    DriverConfigured,
    EnrolmentChanged,
    Envelope,
    Evse,
    IdToken,
    LocationConfigured,
    MeterValue,
    OcppTransactionEvent,
    PartnerConfigured,
    PaymentCommand,
    PaymentResult,
    PlanPublished,
    RefundRequested,
    SampledValue,
    SessionCostUpdated,
    StopSessionRequested,
    SubscriptionChanged,
    TariffPublished,
    TenantConfigured,
    TerminalAuthorized,
    TransactionEvent,
    TransactionInfo,
    UnitOfMeasure,
    VoucherBatchIssued,
    VoucherRedemptionRequested,
    WalletTopUpRequested,
)

TENANT_ID = "tenant-1"
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
# Past 32 bits: Avro `long` must carry it.
BIG_INT = 2**40 + 7
CET = timezone(timedelta(hours=1))

TARIFF_JSON = (
    '{"country_code":"DE","party_id":"EVL","id":"T1","currency":"EUR",'
    '"elements":[{"price_components":[{"type":"ENERGY","price":0.39,"step_size":1}]}],'
    '"last_updated":"2026-01-01T00:00:00Z"}'
)


def envelope(type_name: str) -> dict[str, Any]:
    return {
        "event_id": f"evt-{type_name}",
        "tenant_id": TENANT_ID,
        "occurred_at": AT,
        "producer": "wire-samples",
    }


def _full_envelope(type_name: str) -> dict[str, Any]:
    return {**envelope(type_name), "occurred_at": AT.astimezone(CET), "schema_version": 1}


def _minimal_ocpp() -> OcppTransactionEvent:
    return OcppTransactionEvent(
        eventType="Started",
        timestamp=AT,
        triggerReason="Authorized",
        seqNo=0,
        transactionInfo=TransactionInfo(transactionId="tx-1"),
    )


def _full_ocpp() -> OcppTransactionEvent:
    return OcppTransactionEvent(
        eventType="Ended",
        timestamp=AT.astimezone(CET),
        triggerReason="EVCommunicationLost",
        seqNo=BIG_INT,
        transactionInfo=TransactionInfo(
            transactionId="tx-1",
            chargingState="SuspendedEV",
            stoppedReason="EVDisconnected",
            timeSpentCharging=BIG_INT,
            remoteStartId=-3,
        ),
        idToken=IdToken(idToken="04A2B3C4D5E6F7", type="ISO14443"),
        evse=Evse(id=1, connectorId=2),
        meterValue=[
            MeterValue(
                timestamp=AT,
                sampledValue=[
                    SampledValue(value=Decimal("12345.678901")),
                    SampledValue(
                        value=Decimal("-0.5"),
                        context="Transaction.End",
                        measurand="Power.Active.Import",
                        phase="L1-N",
                        unitOfMeasure=UnitOfMeasure(unit="kW", multiplier=3),
                    ),
                ],
            ),
            MeterValue(timestamp=AT, sampledValue=[SampledValue(value=Decimal("1E+3"))]),
        ],
        offline=True,
    )


# ---------------------------------------------------------------- minimal: required fields only
def _minimal_builders() -> dict[str, Callable[[], Envelope]]:
    e = envelope
    return {
        "TransactionEvent": lambda: TransactionEvent(
            **e("TransactionEvent"),
            location_id="loc-1",
            charge_point_id="cp-1",
            transaction=_minimal_ocpp(),
        ),
        "PaymentResult": lambda: PaymentResult(
            **e("PaymentResult"),
            request_id="cmd-1",
            outcome="hold_authorized",
            amount=Decimal("50.00"),
            currency="EUR",
        ),
        "TerminalAuthorized": lambda: TerminalAuthorized(
            **e("TerminalAuthorized"),
            terminal_reference="term-ref-1",
            terminal_id="term-1",
            location_id="loc-1",
            amount=Decimal("30.00"),
            currency="EUR",
            psp_reference="psp-1",
        ),
        "VoucherBatchIssued": lambda: VoucherBatchIssued(
            **e("VoucherBatchIssued"),
            batch_id="batch-1",
            kind="balance",
            currency="EUR",
            amount_per_code=Decimal("10.00"),
            codes=["CODE-1"],
            expires_at=AT + timedelta(days=90),
        ),
        "VoucherRedemptionRequested": lambda: VoucherRedemptionRequested(
            **e("VoucherRedemptionRequested"), code="CODE-1", driver_id="drv-1"
        ),
        "WalletTopUpRequested": lambda: WalletTopUpRequested(
            **e("WalletTopUpRequested"),
            driver_id="drv-1",
            amount=Decimal("25.00"),
            method="card",
            reference="topup-1",
        ),
        "DebtPaymentReceived": lambda: DebtPaymentReceived(
            **e("DebtPaymentReceived"),
            driver_id="drv-1",
            amount=Decimal("23.80"),
            currency="EUR",
            method="card",
            reference="app-pay-1",
        ),
        "RefundRequested": lambda: RefundRequested(
            **e("RefundRequested"),
            session_id="tx-1",
            currency="EUR",
            reason="charger fault",
        ),
        "TenantConfigured": lambda: TenantConfigured(
            **e("TenantConfigured"),
            effective_at=AT,
            currency="EUR",
            preauth_hold_amount=Decimal("50.00"),
        ),
        "TariffPublished": lambda: TariffPublished(
            **e("TariffPublished"), effective_at=AT, tariff_id="T1", ocpi_tariff_json=TARIFF_JSON
        ),
        "LocationConfigured": lambda: LocationConfigured(
            **e("LocationConfigured"),
            effective_at=AT,
            location_id="loc-1",
            time_zone="Europe/Berlin",
            tariff_id="T1",
        ),
        "DriverConfigured": lambda: DriverConfigured(
            **e("DriverConfigured"),
            effective_at=AT,
            driver_id="drv-1",
            id_tokens=["04A2B3C4D5E6F7"],
            billing_model="wallet",
        ),
        "PlanPublished": lambda: PlanPublished(
            **e("PlanPublished"),
            effective_at=AT,
            plan_id="plan-1",
            payment="prepaid",
            fee_net=Decimal("9.99"),
            fee_vat_rate_percent=Decimal("19"),
        ),
        "SubscriptionChanged": lambda: SubscriptionChanged(
            **e("SubscriptionChanged"),
            effective_at=AT,
            driver_id="drv-1",
            plan_id="plan-1",
            action="subscribe",
        ),
        "PartnerConfigured": lambda: PartnerConfigured(
            **e("PartnerConfigured"),
            effective_at=AT,
            partner_id="partner-1",
            billing_period="monthly",
            pool_limit=Decimal("1000.00"),
        ),
        "EnrolmentChanged": lambda: EnrolmentChanged(
            **e("EnrolmentChanged"),
            effective_at=AT,
            partner_id="partner-1",
            driver_id="drv-1",
            action="enrol",
        ),
        "ClockTicked": lambda: ClockTicked(**e("ClockTicked"), now=AT + timedelta(hours=1)),
        "StopSessionRequested": lambda: StopSessionRequested(
            **e("StopSessionRequested"),
            transaction_id="tx-1",
            location_id="loc-1",
            charge_point_id="cp-1",
            reason="hold nearly used up",
        ),
        "SessionCostUpdated": lambda: SessionCostUpdated(
            **e("SessionCostUpdated"),
            transaction_id="tx-1",
            location_id="loc-1",
            charge_point_id="cp-1",
            total_cost=Decimal("3.57"),
            currency="EUR",
        ),
        "PaymentCommand": lambda: PaymentCommand(
            **e("PaymentCommand"),
            action="authorize",
            idempotency_key="idem-1",
            amount=Decimal("50.00"),
            currency="EUR",
            reference="session-1",
        ),
    }


# ---------------------------------------------------------------- full: every field set
def _full_builders() -> dict[str, Callable[[], Envelope]]:
    e = _full_envelope
    return {
        "TransactionEvent": lambda: TransactionEvent(
            **e("TransactionEvent"),
            location_id="loc-1",
            charge_point_id="cp-1",
            tariff_id="T1",
            terminal_reference="term-ref-1",
            transaction=_full_ocpp(),
        ),
        "PaymentResult": lambda: PaymentResult(
            **e("PaymentResult"),
            request_id="cmd-1",
            outcome="charge_failed",
            amount=Decimal("123456789.123456"),  # the most places a wire decimal may have
            currency="CHF",
            psp_reference="psp-1",
            reason="Karte abgelehnt: Limit überschritten ✗",
        ),
        "TerminalAuthorized": lambda: TerminalAuthorized(
            **e("TerminalAuthorized"),
            terminal_reference="term-ref-1",
            terminal_id="term-1",
            location_id="loc-1",
            amount=Decimal("0"),
            currency="JPY",
            psp_reference="psp-1",
        ),
        "VoucherBatchIssued": lambda: VoucherBatchIssued(
            **e("VoucherBatchIssued"),
            batch_id="batch-1",
            kind="session_credit",
            currency="EUR",
            amount_per_code=Decimal("10.005"),
            codes=["CODE-1", "CODE-2", "CÖDE-3"],
            expires_at=AT.astimezone(CET) + timedelta(days=90),
            site_location_ids=["loc-1", "loc-2"],
            bought_by_partner_id="partner-1",
            price_per_code_net=Decimal("8.40"),
            vat_rate_percent=Decimal("19.0"),
        ),
        "VoucherRedemptionRequested": lambda: VoucherRedemptionRequested(
            **e("VoucherRedemptionRequested"), code="CÖDE-3", driver_id="drv-1"
        ),
        "WalletTopUpRequested": lambda: WalletTopUpRequested(
            **e("WalletTopUpRequested"),
            driver_id="drv-1",
            amount=Decimal("0.01"),
            method="bank_transfer",
            reference="topup-1",
        ),
        "DebtPaymentReceived": lambda: DebtPaymentReceived(
            **e("DebtPaymentReceived"),
            driver_id="drv-1",
            amount=Decimal("0.01"),
            currency="EUR",
            method="cash",
            reference="counter-1",
        ),
        "RefundRequested": lambda: RefundRequested(
            **e("RefundRequested"),
            session_id="tx-Ö1",
            currency="EUR",
            amount=Decimal("1.005"),
            reason="Ladesäule defekt: Teilerstattung",
            requested_by="finance-desk-7",
        ),
        "TenantConfigured": lambda: TenantConfigured(
            **e("TenantConfigured"),
            effective_at=AT.astimezone(CET),
            currency="EUR",
            preauth_hold_amount=Decimal("50.00"),
            preauth_stop_threshold_percent=Decimal("90.5"),
            retry_schedule_hours=[2, 12, BIG_INT],
            block_sessions_on_overdue_debt=False,
            legal_name="Ladenetz Süd GmbH & Co. KG",
            vat_id="DE123456789",
            address_street="Hauptstraße 1",
            address_postcode="80331",
            address_city="München",
            address_country="DE",
            invoice_email="rechnung@ladenetz.example",
        ),
        "TariffPublished": lambda: TariffPublished(
            **e("TariffPublished"),
            effective_at=AT,
            tariff_id="T1",
            ocpi_tariff_json=TARIFF_JSON,
            preauth_hold_amount=Decimal("60.00"),
        ),
        "LocationConfigured": lambda: LocationConfigured(
            **e("LocationConfigured"),
            effective_at=AT,
            location_id="loc-1",
            time_zone="Europe/Berlin",
            tariff_id="T1",
            open_access=True,
            open_access_evse_ids=["evse-1", "evse-2"],
            owner_partner_id="partner-1",
            preauth_hold_amount=Decimal("75.00"),
            country_code="DEU",
        ),
        "DriverConfigured": lambda: DriverConfigured(
            **e("DriverConfigured"),
            effective_at=AT,
            driver_id="drv-1",
            id_tokens=["04A2B3C4D5E6F7", "DE-EVL-C12345678-X"],
            billing_model="pre_authorization",
            payment_method_token="pm-1",
            auto_top_up_threshold=Decimal("5.00"),
            auto_top_up_amount=Decimal("20.00"),
        ),
        "PlanPublished": lambda: PlanPublished(
            **e("PlanPublished"),
            effective_at=AT,
            plan_id="plan-1",
            payment="postpaid",
            fee_net=Decimal("9.99"),
            fee_vat_rate_percent=Decimal("7.7"),
            cycle_months=3,
            anchor="calendar",
            allowance_kwh=Decimal("100.5"),
            allowance_sessions=BIG_INT,
            allowance_amount=Decimal("30.00"),
            overage_discount_percent=Decimal("12.5"),
            overage_tariff_id="T2",
            site_location_ids=["loc-1"],
        ),
        "SubscriptionChanged": lambda: SubscriptionChanged(
            **e("SubscriptionChanged"),
            effective_at=AT,
            driver_id="drv-1",
            plan_id="plan-2",
            action="change_plan",
        ),
        "PartnerConfigured": lambda: PartnerConfigured(
            **e("PartnerConfigured"),
            effective_at=AT,
            partner_id="partner-1",
            billing_period="semi_annual",
            pool_limit=Decimal("1000.00"),
            discount_percent=Decimal("100"),
            own_sites_only=True,
            legal_name="Flotte <Nord> B.V.",
            vat_id="NL123456789B01",
            address_street="Keizersgracht 1",
            address_postcode="1015 CJ",
            address_city="Amsterdam",
            address_country="NL",
            buyer_reference="PO-2026/0042",
            invoice_email="ap@flotte.example",
        ),
        "EnrolmentChanged": lambda: EnrolmentChanged(
            **e("EnrolmentChanged"),
            effective_at=AT,
            partner_id="partner-1",
            driver_id="drv-1",
            action="unenrol",
            driver_limit=Decimal("250.00"),
        ),
        "ClockTicked": lambda: ClockTicked(**e("ClockTicked"), now=AT.astimezone(CET)),
        "StopSessionRequested": lambda: StopSessionRequested(
            **e("StopSessionRequested"),
            transaction_id="tx-1",
            location_id="loc-1",
            charge_point_id="cp-1",
            reason="",
        ),
        "SessionCostUpdated": lambda: SessionCostUpdated(
            **e("SessionCostUpdated"),
            transaction_id="tx-1",
            location_id="loc-1",
            charge_point_id="cp-1",
            total_cost=Decimal("0"),
            currency="EUR",
            final=True,
            full_price=Decimal("12.34"),
            sequence=7,
        ),
        "PaymentCommand": lambda: PaymentCommand(
            **e("PaymentCommand"),
            action="refund",
            idempotency_key="idem-2",
            amount=Decimal("12.34"),
            currency="EUR",
            payment_method_token="pm-1",
            reference="INV-2026-000001",
            psp_reference="psp-charge-1",
        ),
    }


MINIMAL_BUILDERS = _minimal_builders()
FULL_BUILDERS = _full_builders()
assert set(MINIMAL_BUILDERS) == set(FULL_BUILDERS) == set(MESSAGE_TYPES), "a sample per type"


def minimal_sample(type_name: str) -> Envelope:
    return MINIMAL_BUILDERS[type_name]()


def full_sample(type_name: str) -> Envelope:
    return FULL_BUILDERS[type_name]()


def sample(type_name: str, *, full: bool = False, **overrides: Any) -> Envelope:
    """A sample with some fields replaced, validated like a message from outside."""
    base = full_sample(type_name) if full else minimal_sample(type_name)
    return type(base).model_validate({**base.model_dump(), **overrides})


def all_samples() -> list[Envelope]:
    """Every type, minimal then full: for `pytest.mark.parametrize`."""
    return [build() for build in (*MINIMAL_BUILDERS.values(), *FULL_BUILDERS.values())]


def sample_id(message: Envelope) -> str:
    """A readable parametrize id: the type, and `full` when any optional field is set."""
    required = {n for n, f in type(message).model_fields.items() if f.is_required()}
    variant = "full" if message.model_fields_set - required else "minimal"
    return f"{message.type_name()}-{variant}"

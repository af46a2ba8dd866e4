"""Which Stripe request each payment command becomes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.psp_stripe.calls import (
    STRIPE_AMOUNT_STEP,
    InvalidCommand,
    amount_major,
    amount_minor,
    call_for,
    saved_payment_method,
)
from ledger.domain.money import CURRENCY_EXPONENTS
from ledger.messages import PaymentCommand

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def command(action: str, amount: str = "12.34", currency: str = "EUR",
            token: str | None = "cus_A1/pm_B2", psp_reference: str | None = None,
            event_id: str = "cmd-1") -> PaymentCommand:
    return PaymentCommand(
        event_id=event_id, tenant_id="cpo-de", occurred_at=AT, producer="evledger",
        action=action, idempotency_key=event_id, amount=Decimal(amount), currency=currency,
        payment_method_token=token, reference="session:tx-1", psp_reference=psp_reference,
    )


METADATA = {"evledger_tenant": "cpo-de", "evledger_reference": "session:tx-1",
            "evledger_command": "cmd-1"}


def test_authorize_is_a_manual_capture_payment_intent_confirmed_off_session() -> None:
    call = call_for(command("authorize", "25.00"))
    assert call.kind == "create_payment_intent" and call.idempotency_key == "cmd-1"
    assert call.params == {
        "amount": 2500, "currency": "eur", "payment_method": "pm_B2", "customer": "cus_A1",
        "confirm": True, "off_session": True, "capture_method": "manual",
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        "description": "session:tx-1", "metadata": {**METADATA, "evledger_action": "authorize"},
    }


def test_charge_is_an_off_session_payment_intent_captured_at_once() -> None:
    call = call_for(command("charge", token="pm_only"))
    assert call.kind == "create_payment_intent"
    assert "capture_method" not in call.params and "customer" not in call.params
    assert (call.params["amount"], call.params["payment_method"], call.params["off_session"]) == (
        1234, "pm_only", True)


def test_capture_release_and_refund_act_on_the_psp_reference() -> None:
    capture = call_for(command("capture", "4.76", psp_reference="pi_hold"))
    assert (capture.kind, capture.intent_id, capture.params["amount_to_capture"]) == (
        "capture_payment_intent", "pi_hold", 476)
    release = call_for(command("release", "20.24", psp_reference="pi_hold"))
    assert (release.kind, release.intent_id) == ("cancel_payment_intent", "pi_hold")
    refund = call_for(command("refund", "1.00", psp_reference="pi_charge"))
    assert (refund.kind, refund.params["payment_intent"], refund.params["amount"]) == (
        "create_refund", "pi_charge", 100)
    assert {capture.idempotency_key, release.idempotency_key, refund.idempotency_key} == {"cmd-1"}


@pytest.mark.parametrize(("currency", "amount", "minor"), [
    ("EUR", "12.34", 1234), ("JPY", "1200", 1200), ("KWD", "1.23", 1230), ("EUR", "0", 0),
    # Stripe's special cases: ISK keeps two decimals in its API (whole krónur only).
    ("ISK", "4010", 401000), ("HUF", "12.34", 1234),
])
def test_amounts_go_in_stripes_minor_unit(currency: str, amount: str, minor: int) -> None:
    assert amount_minor(Decimal(amount), currency) == minor
    assert amount_major(minor, currency) == Decimal(amount)


@pytest.mark.parametrize(("currency", "amount", "says"), [
    ("KWD", "1.234", "Stripe takes KWD in steps of 0.010 only"),
    ("BHD", "0.005", "Stripe takes BHD in steps of 0.010 only"),
    ("ISK", "40.5", "not a whole number of minor units"),
])
def test_amounts_stripe_cannot_take_exactly_are_refused_never_rounded(
    currency: str, amount: str, says: str
) -> None:
    with pytest.raises(InvalidCommand, match=None) as refused:
        amount_minor(Decimal(amount), currency)
    assert says in str(refused.value)


@given(units=st.integers(min_value=0, max_value=10**11),
       currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_amounts_stripe_takes_round_trip_exactly(units: int, currency: str) -> None:
    minor = units * STRIPE_AMOUNT_STEP.get(currency, 1)
    assert amount_minor(amount_major(minor, currency), currency) == minor


@pytest.mark.parametrize(("cmd", "message"), [
    (command("charge", "12.345"), "not a whole number of minor units"),
    (command("charge", currency="XXX"), "unknown currency"),
    (command("charge", token=None), "no payment method"),
    (command("charge", token="cus_A/"), "is not cus_"),
    (command("charge", token="/pm_B"), "is not cus_"),
    (command("authorize", "0"), "positive amounts only"),
    (command("capture", psp_reference=None), "needs the psp_reference"),
    (command("refund", psp_reference=None), "needs the psp_reference"),
])
def test_a_command_stripe_cannot_be_asked_is_refused_with_the_reason(
    cmd: PaymentCommand, message: str
) -> None:
    with pytest.raises(InvalidCommand, match=message):
        call_for(cmd)


def test_a_token_is_a_customer_and_payment_method_or_a_bare_payment_method() -> None:
    assert saved_payment_method("cus_1/pm_2") == ("cus_1", "pm_2")
    assert saved_payment_method("pm_2") == (None, "pm_2")

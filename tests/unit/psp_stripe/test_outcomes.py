"""Stripe's answers and errors -> the ledger's verdicts, for every error kind (pure)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from consumers.psp_stripe.outcomes import (
    Approved,
    Fatal,
    Pending,
    Refused,
    Transient,
    Verdict,
    verdict_of_error,
    verdict_of_response,
)


def card_error(code: str, decline_code: str | None = None) -> stripe.CardError:
    body: dict[str, Any] = {"error": {"type": "card_error", "code": code}}
    if decline_code is not None:
        body["error"]["decline_code"] = decline_code
    return stripe.CardError("declined", None, code, http_status=402, json_body=body)


def invalid_request(code: str, extra: dict[str, Any] | None = None) -> stripe.InvalidRequestError:
    body = {"error": {"type": "invalid_request_error", "code": code, **(extra or {})}}
    return stripe.InvalidRequestError("bad", None, code, http_status=400, json_body=body)


@pytest.mark.parametrize(("error", "verdict"), [
    (card_error("card_declined"), Refused("card declined")),
    (card_error("card_declined", "generic_decline"), Refused("card declined")),
    (card_error("card_declined", "insufficient_funds"), Refused("insufficient funds")),
    (card_error("insufficient_funds"), Refused("insufficient funds")),
    (card_error("expired_card"), Refused("expired card")),
    (card_error("authentication_required"), Refused("authentication required")),
    (card_error("card_declined", "authentication_required"), Refused("authentication required")),
    (card_error("card_declined", "try_again_later"), Refused("issuer unavailable")),
    (card_error("incorrect_cvc"), Refused("stripe: incorrect_cvc")),
    (invalid_request("resource_missing"), Refused("stripe: resource_missing")),
    (stripe.IdempotencyError("keys reused"), Refused("stripe: IdempotencyError")),
    (invalid_request("lock_timeout"), Transient("lock_timeout")),
    (stripe.APIConnectionError("network down"), Transient("APIConnectionError: None")),
    (stripe.APIError("boom", http_status=500), Transient("APIError: 500")),
    (stripe.RateLimitError("slow down", http_status=429), Transient("RateLimitError: 429")),
    (stripe.AuthenticationError("bad key", http_status=401),
     Fatal("Stripe refused the tenant's key: AuthenticationError")),
    (stripe.PermissionError("restricted", http_status=403),
     Fatal("Stripe refused the tenant's key: PermissionError")),
    (stripe.StripeError("something new"), Refused("stripe: StripeError")),
])
def test_every_stripe_error_kind_has_its_verdict(error: stripe.StripeError,
                                                 verdict: Verdict) -> None:
    assert verdict_of_error("create_payment_intent", error) == verdict


def test_a_cancel_after_a_partial_capture_released_the_rest_is_a_release() -> None:
    error = invalid_request("payment_intent_unexpected_state",
                            {"payment_intent": {"id": "pi_1", "status": "succeeded"}})
    assert verdict_of_error("cancel_payment_intent", error) == Approved("pi_1")
    still_held = invalid_request("payment_intent_unexpected_state",
                                 {"payment_intent": {"id": "pi_1", "status": "processing"}})
    assert verdict_of_error("cancel_payment_intent", still_held) == Refused(
        "stripe: payment_intent_unexpected_state")


@pytest.mark.parametrize(("action", "status", "verdict"), [
    ("authorize", "requires_capture", Approved("pi_1")),
    ("authorize", "succeeded", Refused("stripe: succeeded")),
    ("charge", "succeeded", Approved("pi_1")),
    ("charge", "processing", Pending("processing")),
    ("authorize", "requires_action", Refused("authentication required")),
    ("charge", "requires_payment_method", Refused("stripe: requires_payment_method")),
])
def test_a_payment_intents_status_decides_a_hold_or_charge(
    action: str, status: str, verdict: Verdict
) -> None:
    body = {"id": "pi_1", "object": "payment_intent", "status": status}
    assert verdict_of_response("create_payment_intent", action, body) == verdict


def test_a_failed_confirmation_carries_its_decline_reason() -> None:
    body = {"id": "pi_1", "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "decline_code": "expired_card"}}
    assert verdict_of_response("create_payment_intent", "charge", body) == Refused(
        "expired card")


def test_captures_cancels_and_refunds_succeed_with_the_request_unless_still_pending() -> None:
    intent = {"id": "pi_1", "status": "requires_payment_method"}  # stripe-mock's fixed status
    assert verdict_of_response("capture_payment_intent", "capture", intent) == Approved("pi_1")
    assert verdict_of_response("cancel_payment_intent", "release", intent) == Approved("pi_1")
    assert verdict_of_response("create_refund", "refund",
                               {"id": "re_1", "status": "succeeded"}) == Approved("re_1")
    assert verdict_of_response("create_refund", "refund",
                               {"id": "re_1", "status": "pending"}) == Pending("pending")
    assert verdict_of_response("create_refund", "refund",
                               {"id": "re_1", "status": "failed"}) == Refused(
        "stripe: refund failed")

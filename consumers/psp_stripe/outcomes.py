"""What a Stripe answer means for the ledger. Pure: answers and errors in, verdicts out.

Errors (the library's exception tree, `stripe.StripeError` and below):

| Stripe error | verdict | reason sent to the ledger |
| --- | --- | --- |
| CardError `card_declined` (any decline_code but those below) | Refused | card declined |
| CardError / decline_code `insufficient_funds` | Refused | insufficient funds |
| CardError `expired_card` | Refused | expired card |
| CardError `authentication_required` (3-D Secure off-session) | Refused | authentication required |
| decline_code `issuer_not_available`, `try_again_later` | Refused | issuer unavailable |
| APIConnectionError, APIError, RateLimitError, `lock_timeout` | Transient | issuer unavailable |
| AuthenticationError, PermissionError (the tenant's key) | Fatal | none: the process stops |
| anything else (InvalidRequestError, IdempotencyError, unknown) | Refused | stripe: CODE |

Transient errors are retried by the adapter (adapter.py, bounded backoff) before the reason
is sent.

A Refused command is answered as its failure with the reason: `hold_failed`,
`charge_failed` (which starts the ledger's retry schedule), `capture_failed` (the ledger
charges the card on file for what the hold was to cover), `release_failed` (recorded; the
authorization lapses at Stripe) and `refund_failed`. Fatal errors are
configuration errors: answering them would decline every driver of the tenant, so the
adapter stops without committing and the commands wait for a corrected key.

PaymentIntent statuses after a successful request:
authorize: `requires_capture` Approved; `processing` Pending (the webhook answers);
charge: `succeeded` Approved; `processing` Pending;
both: `requires_action` Refused (authentication required); any other Refused (stripe: STATUS).
Capture, cancel and refund: a successful request is Approved (Stripe raises otherwise), but
a refund still `pending` is Pending, and a cancel refused because a partial capture already
released the rest (`payment_intent_unexpected_state`, status succeeded or canceled) is
Approved: the rest is released either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from consumers.psp_stripe.calls import CallKind

REASON_DECLINED = "card declined"
REASON_INSUFFICIENT_FUNDS = "insufficient funds"
REASON_EXPIRED_CARD = "expired card"
REASON_AUTHENTICATION_REQUIRED = "authentication required"
REASON_UNAVAILABLE = "issuer unavailable"
UNKNOWN_REASON_PREFIX = "stripe: "

# Stripe's error and decline codes -> the ledger's reasons; decline codes first (a
# `card_declined` carries the precise cause in its decline_code).
REASON_FOR_CODE: dict[str, str] = {
    "insufficient_funds": REASON_INSUFFICIENT_FUNDS,
    "expired_card": REASON_EXPIRED_CARD,
    "authentication_required": REASON_AUTHENTICATION_REQUIRED,
    "issuer_not_available": REASON_UNAVAILABLE,
    "try_again_later": REASON_UNAVAILABLE,
    "card_declined": REASON_DECLINED,
}
# Errors that a later identical request (same idempotency key) may well get past.
TRANSIENT_CODES = frozenset({"lock_timeout", "rate_limit"})


@dataclass(frozen=True, slots=True)
class Approved:
    psp_reference: str


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


@dataclass(frozen=True, slots=True)
class Pending:
    """Stripe has not decided yet; its webhook will answer (status named for the log)."""

    status: str


@dataclass(frozen=True, slots=True)
class Transient:
    reason: str


@dataclass(frozen=True, slots=True)
class Fatal:
    reason: str


Verdict = Approved | Refused | Pending | Transient | Fatal


def verdict_of_response(kind: CallKind, action: str, body: Mapping[str, Any]) -> Verdict:
    """The verdict on a successful request's response body (a PaymentIntent or Refund)."""
    object_id = str(body.get("id") or "")
    status = str(body.get("status") or "")
    if kind == "create_refund":
        if status == "pending":
            return Pending(status)
        if status in ("failed", "canceled"):
            return Refused(UNKNOWN_REASON_PREFIX + f"refund {status}")
        return Approved(object_id)
    if kind in ("capture_payment_intent", "cancel_payment_intent"):
        return Approved(object_id)
    wanted = "requires_capture" if action == "authorize" else "succeeded"
    if status == wanted:
        return Approved(object_id)
    if status == "processing":
        return Pending(status)
    if status == "requires_action":
        return Refused(REASON_AUTHENTICATION_REQUIRED)
    return Refused(reason_of_error_body(body.get("last_payment_error"))
                   or UNKNOWN_REASON_PREFIX + (status or "no status"))


def verdict_of_error(kind: CallKind, error: stripe.StripeError) -> Verdict:
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return Fatal(f"Stripe refused the tenant's key: {type(error).__name__}")
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        return Transient(f"{type(error).__name__}: {error.code or error.http_status}")
    body = error_body(error)
    code = error.code or str(body.get("code") or "")
    if code in TRANSIENT_CODES:
        return Transient(code)
    if kind == "cancel_payment_intent" and code == "payment_intent_unexpected_state":
        intent = body.get("payment_intent")
        if isinstance(intent, Mapping) and intent.get("status") in ("succeeded", "canceled"):
            return Approved(str(intent.get("id") or ""))
    reason = reason_of_error_body(body)
    if reason is not None:
        return Refused(reason)
    return Refused(UNKNOWN_REASON_PREFIX + (code or type(error).__name__))


def error_body(error: stripe.StripeError) -> Mapping[str, Any]:
    json_body = error.json_body
    if isinstance(json_body, Mapping) and isinstance(json_body.get("error"), Mapping):
        return json_body["error"]  # type: ignore[no-any-return]
    return {}


def reason_of_error_body(body: object) -> str | None:
    """The ledger's reason for a Stripe error object (`decline_code` before `code`)."""
    if not isinstance(body, Mapping):
        return None
    for field in ("decline_code", "code"):
        code = body.get(field)
        if isinstance(code, str) and code in REASON_FOR_CODE:
            return REASON_FOR_CODE[code]
    return None

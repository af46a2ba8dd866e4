"""Which Stripe request each payment command becomes. Pure: no network, no clock.

| command | Stripe request |
| --- | --- |
| authorize | POST /v1/payment_intents: capture_method=manual, confirm, off_session, saved PM |
| capture | POST /v1/payment_intents/{psp_reference}/capture: amount_to_capture |
| release | POST /v1/payment_intents/{psp_reference}/cancel |
| charge | POST /v1/payment_intents: confirm, off_session, the saved payment method (PM) |
| refund | POST /v1/refunds: payment_intent={psp_reference}, amount |

Every request carries the command id as its idempotency key, amounts in the currency's minor
unit as Stripe counts it, and metadata naming the tenant, what the money is for and the
command, so a webhook finds its way back to the command.

Stripe's units follow ISO 4217 (ledger/domain/money.py) except where its currency guide's
special cases say otherwise (docs.stripe.com/currencies#special-cases):
- ISK: ISO has no minor unit; Stripe's API keeps two decimals (100 = 1 krona) and takes whole
  krónur only, so the exponent is 2 and the amount a multiple of 100;
- the three-decimal currencies (BHD, JOD, KWD, OMR, TND): Stripe's payment partners take the
  amount with its last digit 0, so a command for 1.234 KWD is refused, never rounded (a
  rounded charge would differ from the ledger's receivable).
The zero-decimal currencies (JPY, KRW, CLP, ...) agree with ISO.

The payment method token is the driver's saved card as Stripe knows it: `cus_.../pm_...`
(customer and payment method: what off-session payments need) or a bare `pm_...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from ledger.domain.errors import InvalidInput, LedgerError
from ledger.domain.money import currency_exponent
from ledger.messages import PaymentCommand

# Metadata keys on every PaymentIntent and Refund (Stripe allows 40-character keys).
METADATA_TENANT = "evledger_tenant"
METADATA_REFERENCE = "evledger_reference"
METADATA_COMMAND = "evledger_command"
METADATA_ACTION = "evledger_action"
TOKEN_SEPARATOR = "/"

CallKind = Literal["create_payment_intent", "capture_payment_intent", "cancel_payment_intent",
                   "create_refund"]


class InvalidCommand(InvalidInput):
    """A command Stripe cannot be asked (no payment method, no reference, a fractional cent)."""


@dataclass(frozen=True, slots=True)
class StripeCall:
    kind: CallKind
    params: dict[str, Any]
    idempotency_key: str
    # The PaymentIntent acted on (capture, cancel); None for the creating calls.
    intent_id: str | None = None


# Where Stripe's API exponent differs from ISO 4217's.
STRIPE_EXPONENT: dict[str, int] = {"ISK": 2}
# Stripe amounts (in its minor units) must be multiples of these.
STRIPE_AMOUNT_STEP: dict[str, int] = {
    "ISK": 100, "BHD": 10, "JOD": 10, "KWD": 10, "OMR": 10, "TND": 10,
}


def stripe_exponent(currency: str) -> int:
    try:
        iso = currency_exponent(currency)
    except LedgerError as exc:
        raise InvalidCommand(str(exc)) from exc
    return STRIPE_EXPONENT.get(currency, iso)


def amount_minor(amount: Decimal, currency: str) -> int:
    """`amount` in Stripe's minor unit of the currency; refused when Stripe cannot take it
    exactly (a fraction of the ISO minor unit, or not a multiple of Stripe's step)."""
    exponent = stripe_exponent(currency)
    iso_minor = amount.scaleb(currency_exponent(currency))
    if iso_minor != iso_minor.to_integral_value():
        raise InvalidCommand(f"{amount} {currency} is not a whole number of minor units")
    minor = int(amount.scaleb(exponent))
    step = STRIPE_AMOUNT_STEP.get(currency, 1)
    if minor % step:
        raise InvalidCommand(
            f"{amount} {currency}: Stripe takes {currency} in steps of"
            f" {Decimal(step).scaleb(-exponent)} only"
        )
    return minor


def amount_major(minor: int, currency: str) -> Decimal:
    """A Stripe amount (webhooks) back in the currency's major unit."""
    return Decimal(minor).scaleb(-stripe_exponent(currency))


def saved_payment_method(token: str | None) -> tuple[str | None, str]:
    """(customer, payment method) of a token `cus_.../pm_...` or `pm_...`."""
    if not token:
        raise InvalidCommand("no payment method token: nothing to charge")
    customer, separator, payment_method = token.rpartition(TOKEN_SEPARATOR)
    if not payment_method or (separator and not customer):
        raise InvalidCommand(f"payment method token {token!r} is not cus_.../pm_... or pm_...")
    return (customer or None), payment_method


def metadata(command: PaymentCommand) -> dict[str, str]:
    return {
        METADATA_TENANT: command.tenant_id,
        METADATA_REFERENCE: command.reference,
        METADATA_COMMAND: command.event_id,
        METADATA_ACTION: command.action,
    }


def call_for(command: PaymentCommand) -> StripeCall:
    """The Stripe request for `command` (InvalidCommand when there can be none)."""
    minor = amount_minor(command.amount, command.currency)
    key = command.event_id
    if command.action in ("authorize", "charge"):
        return StripeCall("create_payment_intent", _intent_params(command, minor), key)
    intent_id = command.psp_reference
    if not intent_id:
        raise InvalidCommand(f"a {command.action} needs the psp_reference of its payment")
    if command.action == "capture":
        return StripeCall("capture_payment_intent",
                          {"amount_to_capture": minor, "metadata": metadata(command)},
                          key, intent_id)
    if command.action == "release":
        # The hold is not needed any more; Stripe's reason for an uncaptured remainder.
        return StripeCall("cancel_payment_intent", {"cancellation_reason": "abandoned"}, key,
                          intent_id)
    assert command.action == "refund"
    return StripeCall("create_refund",
                      {"payment_intent": intent_id, "amount": minor,
                       "metadata": metadata(command)}, key)


def _intent_params(command: PaymentCommand, minor: int) -> dict[str, Any]:
    if minor <= 0:
        raise InvalidCommand(f"a {command.action} of {command.amount} {command.currency}: "
                             "Stripe takes positive amounts only")
    customer, payment_method = saved_payment_method(command.payment_method_token)
    params: dict[str, Any] = {
        "amount": minor,
        "currency": command.currency.lower(),
        "payment_method": payment_method,
        "confirm": True,
        # The driver is not in a checkout page when the ledger holds or charges: a payment
        # that needs the cardholder (3-D Secure) fails as authentication_required.
        "off_session": True,
        # Saved methods that would redirect the cardholder cannot be used off-session.
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        "description": command.reference,
        "metadata": metadata(command),
    }
    if customer is not None:
        params["customer"] = customer
    if command.action == "authorize":
        params["capture_method"] = "manual"
    return params

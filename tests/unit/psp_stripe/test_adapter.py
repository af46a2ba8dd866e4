"""The adapter's bounded retries and the answers it gives without Stripe's approval.

No Stripe here: port 1 on loopback refuses every connection, which the library reports as
an APIConnectionError, the transient kind.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from consumers.psp_answering import CommandRecord
from consumers.psp_stripe.accounts import StripeAccount
from consumers.psp_stripe.adapter import (
    STRIPE_ATTEMPTS_MAX,
    STRIPE_BACKOFF_S_MAX,
    StripeAdapter,
    StripeUnusable,
    backoff_s,
)
from ledger.messages import PaymentResult
from tests.unit.psp_stripe.test_calls import command

REFUSING_API = "http://127.0.0.1:1"
SOURCE = CommandRecord(topic="psp.commands", partition=0, offset=7, key="cpo-de:tx-1",
                       value=b"command bytes")
ACCOUNTS = {"cpo-de": StripeAccount("cpo-de", "sk_test_123", "whsec_abc")}


def adapter(pauses: list[float]) -> StripeAdapter:
    return StripeAdapter(ACCOUNTS, logging.getLogger("test"), api_base=REFUSING_API,
                         sleep=pauses.append)


def test_a_transient_error_is_retried_with_backoff_then_answered_as_failure() -> None:
    pauses: list[float] = []
    [answer] = adapter(pauses)(command("charge"), SOURCE)
    assert isinstance(answer, PaymentResult)
    assert (answer.outcome, answer.reason, answer.request_id) == (
        "charge_failed", "issuer unavailable", "cmd-1")
    assert pauses == [0.5, 1.0, 2.0]
    assert len(pauses) == STRIPE_ATTEMPTS_MAX - 1


def test_backoff_doubles_up_to_its_bound() -> None:
    assert [backoff_s(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert max(backoff_s(n) for n in range(1, 50)) == STRIPE_BACKOFF_S_MAX


@pytest.mark.parametrize(("action", "failed"), [
    ("capture", "capture_failed"), ("release", "release_failed"), ("refund", "refund_failed"),
])
def test_a_capture_release_or_refund_stripe_cannot_do_is_answered_failed(
    action: str, failed: str
) -> None:
    [answer] = adapter([])(command(action, psp_reference=None), SOURCE)
    assert isinstance(answer, PaymentResult)
    assert (answer.outcome, answer.reason) == (
        failed, f"a {action} needs the psp_reference of its payment")


def test_a_bad_command_is_refused_without_calling_stripe() -> None:
    pauses: list[float] = []
    [answer] = adapter(pauses)(command("authorize", "1.001"), SOURCE)
    assert isinstance(answer, PaymentResult) and answer.outcome == "hold_failed"
    assert "minor units" in (answer.reason or "") and pauses == []
    assert answer.amount == Decimal("1.001") and answer.psp_reference is None


def test_a_tenant_without_a_stripe_account_stops_the_adapter() -> None:
    other = command("charge").model_copy(update={"tenant_id": "cpo-fr"})
    with pytest.raises(StripeUnusable, match="no Stripe account configured for tenant 'cpo-fr'"):
        adapter([])(other, SOURCE)


def test_secret_keys_never_show_in_an_accounts_repr() -> None:
    assert "sk_test_123" not in repr(ACCOUNTS) and "whsec_abc" not in repr(ACCOUNTS)

"""Answering one payment command through Stripe: the request, bounded retries, the answer.

For each command (the numbers appear in the code):
  1. find the tenant's Stripe account (none configured: Fatal, see below);
  2. build the request (calls.py); a command Stripe cannot be asked is refused;
  3. send it with the command id as the idempotency key; a transient error (connection,
     5xx, rate limit, lock timeout) is sent again, identically, after a backoff, at most
     STRIPE_ATTEMPTS_MAX times in all; the library's own retries are off, so the bound is ours;
  4. turn the verdict (outcomes.py) into the answer: a PaymentResult; nothing yet when Stripe
     is still deciding (its webhook answers); a dead letter for a capture, release or refund
     Stripe refused (the ledger has no failure outcome for them).
A Fatal verdict (the tenant's key refused, or no account for the tenant) raises
`StripeUnusable`: declining every driver of a tenant for a configuration mistake would be
worse than stopping, and the uncommitted commands are answered after the fix.

The result's event time is the command's: Stripe answers within the request, and the
ledger's clock is event time (a replay must not depend on when Stripe answered).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import stripe

from consumers.kafka_limits import CONSUMER_MAX_POLL_INTERVAL_MS
from consumers.observability import PspMetrics, log_event
from consumers.psp_answering import Answer, CommandRecord
from consumers.psp_results import answer_to
from consumers.psp_stripe.accounts import StripeAccount
from consumers.psp_stripe.calls import InvalidCommand, StripeCall, call_for
from consumers.psp_stripe.outcomes import (
    REASON_UNAVAILABLE,
    Approved,
    Fatal,
    Pending,
    Refused,
    Transient,
    Verdict,
    verdict_of_error,
    verdict_of_response,
)
from ledger.messages import PaymentCommand

PSP_STRIPE_PRODUCER = "psp-stripe"
# One request: Stripe answers in well under 2 s; a card network can take tens of seconds to
# confirm, so the read timeout leaves room for that (the library's default is 80 s).
STRIPE_CONNECT_TIMEOUT_S = 5.0
STRIPE_READ_TIMEOUT_S = 20.0
# Transient errors: the first try and three retries, 0.5 s, 1 s, 2 s apart (doubling, at most
# STRIPE_BACKOFF_S_MAX): long enough for a rate limit window or a failover, short enough to
# answer while the session is still current.
STRIPE_ATTEMPTS_MAX = 4
STRIPE_BACKOFF_S_FIRST = 0.5
STRIPE_BACKOFF_S_MAX = 4.0
# The longest one command can take, and so how many one poll may hold: the group evicts a
# member that does not poll again within CONSUMER_MAX_POLL_INTERVAL_MS.
COMMAND_SECONDS_MAX = STRIPE_ATTEMPTS_MAX * (STRIPE_CONNECT_TIMEOUT_S + STRIPE_READ_TIMEOUT_S) + (
    STRIPE_ATTEMPTS_MAX - 1) * STRIPE_BACKOFF_S_MAX
STRIPE_POLL_RECORDS_MAX = 2

assert STRIPE_BACKOFF_S_FIRST * 2 ** (STRIPE_ATTEMPTS_MAX - 2) <= STRIPE_BACKOFF_S_MAX
assert STRIPE_POLL_RECORDS_MAX * COMMAND_SECONDS_MAX * 1_000 < CONSUMER_MAX_POLL_INTERVAL_MS


class StripeUnusable(Exception):
    """Stripe cannot be used for a tenant at all (no account, key refused): stop, fix, rerun."""


def backoff_s(attempt: int) -> float:
    """The pause after the `attempt`-th failed try (1-based)."""
    return float(min(STRIPE_BACKOFF_S_FIRST * 2 ** (attempt - 1), STRIPE_BACKOFF_S_MAX))


def stripe_client(account: StripeAccount, api_base: str | None) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.secret_key,
        base_addresses={"api": api_base} if api_base else None,
        http_client=stripe.RequestsClient(
            timeout=(STRIPE_CONNECT_TIMEOUT_S, STRIPE_READ_TIMEOUT_S)),
        # Our retries, bounded above; the library's would multiply them.
        max_network_retries=0,
    )


class StripeAdapter:
    """The `Answerer` of `ledger psp-stripe` (consumers/psp_answering.py)."""

    def __init__(
        self, accounts: Mapping[str, StripeAccount], log: logging.Logger, *,
        api_base: str | None = None, metrics: PspMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._accounts = dict(accounts)
        self._api_base = api_base
        self._log = log
        self._metrics = metrics
        self._sleep = sleep
        self._clients: dict[str, stripe.StripeClient] = {}

    def __call__(self, command: PaymentCommand, source: CommandRecord) -> Sequence[Answer]:
        # 1. the tenant's account
        account = self._accounts.get(command.tenant_id)
        if account is None:
            raise StripeUnusable(f"no Stripe account configured for tenant {command.tenant_id!r}")
        # 2. the request
        try:
            call = call_for(command)
        except InvalidCommand as exc:
            return self._refuse(command, source, str(exc))
        # 3. send, retrying transient errors
        verdict = self._send(account, call, command)
        # 4. the answer
        match verdict:
            case Approved(psp_reference=reference):
                return (answer_to(command, approved=True, at=command.occurred_at,
                                  producer=PSP_STRIPE_PRODUCER,
                                  psp_reference=reference or command.psp_reference,
                                  reason=None),)
            case Pending(status=status):
                log_event(self._log, "pending", tenant_id=command.tenant_id,
                          command_id=command.event_id, status=status)
                return ()
            case Refused(reason=reason):
                return self._refuse(command, source, reason)
            case Transient():
                return self._refuse(command, source, REASON_UNAVAILABLE)
            case Fatal(reason=reason):
                raise StripeUnusable(f"tenant {command.tenant_id!r}: {reason}")
        raise AssertionError(f"unhandled verdict {verdict!r}")

    def _refuse(
        self, command: PaymentCommand, source: CommandRecord, reason: str
    ) -> Sequence[Answer]:
        log_event(self._log, "refused", level=logging.WARNING, tenant_id=command.tenant_id,
                  command_id=command.event_id, action=command.action, reason=reason)
        return (answer_to(command, approved=False, at=command.occurred_at,
                          producer=PSP_STRIPE_PRODUCER, psp_reference=None, reason=reason),)

    def _send(self, account: StripeAccount, call: StripeCall, command: PaymentCommand) -> Verdict:
        client = self._clients.get(account.tenant_id)
        if client is None:
            client = self._clients[account.tenant_id] = stripe_client(account, self._api_base)
        verdict: Verdict = Transient("not sent")
        for attempt in range(1, STRIPE_ATTEMPTS_MAX + 1):
            started = time.monotonic()
            fields: dict[str, Any] = {}
            try:
                response = _request(client, call)
            except stripe.StripeError as exc:
                verdict = verdict_of_error(call.kind, exc)
                fields = {"error": type(exc).__name__, "code": exc.code,
                          "stripe_request_id": exc.request_id}
            else:
                verdict = verdict_of_response(call.kind, command.action, response.to_dict())
                last = response.last_response
                fields = {
                    "stripe_request_id": last.request_id if last else None,
                    # As Stripe echoed it: the proof that the command id was the key.
                    "idempotency_key": last.idempotency_key if last else None,
                }
            self._observe(call, command, attempt, verdict, time.monotonic() - started, fields)
            if not isinstance(verdict, Transient) or attempt == STRIPE_ATTEMPTS_MAX:
                return verdict
            self._sleep(backoff_s(attempt))
        return verdict

    def _observe(
        self, call: StripeCall, command: PaymentCommand, attempt: int, verdict: Verdict,
        seconds: float, fields: dict[str, Any],
    ) -> None:
        result = type(verdict).__name__.lower()
        log_event(self._log, "stripe_request", tenant_id=command.tenant_id,
                  command_id=command.event_id, call=call.kind, attempt=attempt,
                  result=result, seconds=round(seconds, 3), **fields)
        if self._metrics is not None:
            self._metrics.stripe_requests.labels(call=call.kind, result=result).inc()
            self._metrics.stripe_request_seconds.labels(call=call.kind).observe(seconds)


def _request(client: stripe.StripeClient, call: StripeCall) -> Any:
    # The params are built and checked in calls.py; the library's TypedDicts would repeat it.
    params = cast(Any, call.params)
    options: stripe.RequestOptions = {"idempotency_key": call.idempotency_key}
    intents = client.v1.payment_intents
    if call.kind == "create_payment_intent":
        return intents.create(params=params, options=options)
    if call.kind == "capture_payment_intent":
        assert call.intent_id is not None
        return intents.capture(call.intent_id, params=params, options=options)
    if call.kind == "cancel_payment_intent":
        assert call.intent_id is not None
        return intents.cancel(call.intent_id, params=params, options=options)
    assert call.kind == "create_refund"
    return client.v1.refunds.create(params=params, options=options)

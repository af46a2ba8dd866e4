"""Stripe's asynchronous answers: webhook events turned into the same `PaymentResult`s.

`POST /stripe/webhooks/{tenant}` (one endpoint per tenant, as each tenant's Stripe account
signs with its own endpoint secret). Per delivery (the numbers appear in the code):
  1. refuse a body over WEBHOOK_BODY_BYTES_MAX, an unknown tenant (404) or a tenant without
     a webhook secret (404);
  2. check the `Stripe-Signature` header with the library (`stripe.Webhook.construct_event`,
     which also refuses a timestamp older than its tolerance): a bad one is a 400;
  3. an event id seen before is acknowledged (200) and nothing else;
  4. map the event (`results_of_event`) and send its results; flush: all acknowledged;
  5. only then remember the event id, and answer 200.
A crash between 4 and 5 makes Stripe deliver again and the results are sent again under
the same event ids, which the ledger deduplicates: the seen-events store saves work, the
ledger's own deduplication is what keeps money from moving twice. A failure in 4 answers
500, and Stripe retries (for up to three days).

Events and their results (the PaymentIntent's metadata names the command, calls.py):
| event | result |
| --- | --- |
| payment_intent.amount_capturable_updated (authorize) | hold_authorized |
| payment_intent.succeeded (charge) | charge_succeeded |
| payment_intent.payment_failed (any command) | its failure: hold_failed, charge_failed, ... |
| charge.refunded (each refund carrying a refund command's metadata) | refunded |
Anything else, or an event whose metadata names no evledger command of this tenant, is
acknowledged and ignored (a Stripe account also takes payments evledger did not ask for).
A result's event id is the one the synchronous answer to the same command has, so the
first of the two to reach the ledger wins and the other is a duplicate.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import stripe

from consumers.observability import PspMetrics, log_event
from consumers.psp_results import FAILURE_OUTCOME, SUCCESS_OUTCOME, payment_result
from consumers.psp_stripe.accounts import StripeAccount
from consumers.psp_stripe.adapter import PSP_STRIPE_PRODUCER
from consumers.psp_stripe.calls import (
    METADATA_ACTION,
    METADATA_COMMAND,
    METADATA_TENANT,
    amount_major,
)
from consumers.psp_stripe.outcomes import REASON_DECLINED, reason_of_error_body
from ledger.messages import PaymentOutcome, PaymentResult

# Stripe's events are a few kB; a charge with many refunds stays far below 1 MB.
WEBHOOK_BODY_BYTES_MAX = 1_000_000
# Event ids remembered: Stripe retries one event for up to 3 days; at 100,000 a CPO with
# 20,000 payments a day (several events each) still remembers more than a day of them, and
# anything older that comes again is deduplicated by the ledger anyway.
WEBHOOK_EVENTS_REMEMBERED_MAX = 100_000
# Signed timestamps older than this are refused (replayed deliveries): Stripe's default.
WEBHOOK_TOLERANCE_S = 300
WEBHOOK_PATH = re.compile(r"^/stripe/webhooks/([A-Za-z0-9._-]{1,64})$")

HANDLED_EVENT_TYPES = frozenset({
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
})


def results_of_event(tenant_id: str, event: Mapping[str, Any]) -> list[PaymentResult]:
    """The PaymentResults one (verified) Stripe event stands for; [] when it is none of ours."""
    event_type = event.get("type")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if event_type not in HANDLED_EVENT_TYPES or not isinstance(obj, Mapping):
        return []
    at = datetime.fromtimestamp(int(event.get("created") or 0), UTC)
    if event_type == "charge.refunded":
        refunds = obj.get("refunds")
        listed = refunds.get("data") if isinstance(refunds, Mapping) else None
        return [r for refund in (listed or ()) if isinstance(refund, Mapping)
                for r in _refund_result(tenant_id, refund, at)]
    command = _command_of(tenant_id, obj)
    if command is None:
        return []
    command_id, action = command
    currency = str(obj.get("currency") or "").upper()
    if event_type == "payment_intent.amount_capturable_updated" and action == "authorize":
        return [_result(tenant_id, command_id, SUCCESS_OUTCOME[action], obj,
                        "amount_capturable", currency, at, None)]
    if event_type == "payment_intent.succeeded" and action == "charge":
        return [_result(tenant_id, command_id, SUCCESS_OUTCOME[action], obj,
                        "amount_received", currency, at, None)]
    if event_type == "payment_intent.payment_failed" and action in FAILURE_OUTCOME:
        reason = reason_of_error_body(obj.get("last_payment_error")) or REASON_DECLINED
        return [_result(tenant_id, command_id, FAILURE_OUTCOME[action], obj, "amount",
                        currency, at, reason)]
    return []


def _command_of(tenant_id: str, obj: Mapping[str, Any]) -> tuple[str, str] | None:
    found = obj.get("metadata")
    if not isinstance(found, Mapping) or found.get(METADATA_TENANT) != tenant_id:
        return None
    command_id, action = found.get(METADATA_COMMAND), found.get(METADATA_ACTION)
    if not isinstance(command_id, str) or not command_id or not isinstance(action, str):
        return None
    return command_id, action


def _refund_result(
    tenant_id: str, refund: Mapping[str, Any], at: datetime
) -> list[PaymentResult]:
    command = _command_of(tenant_id, refund)
    if command is None or command[1] != "refund" or refund.get("status") != "succeeded":
        return []
    currency = str(refund.get("currency") or "").upper()
    return [_result(tenant_id, command[0], SUCCESS_OUTCOME["refund"], refund, "amount",
                    currency, at, None)]


def _result(
    tenant_id: str, command_id: str, outcome: PaymentOutcome, obj: Mapping[str, Any],
    amount_field: str, currency: str, at: datetime, reason: str | None,
) -> PaymentResult:
    return payment_result(
        tenant_id=tenant_id, command_id=command_id, outcome=outcome,
        amount=amount_major(int(obj.get(amount_field) or 0), currency), currency=currency,
        at=at, producer=PSP_STRIPE_PRODUCER,
        psp_reference=None if reason else str(obj.get("id")), reason=reason,
    )


class SeenEvents:
    """Stripe event ids already handled, in a SQLite file: survives a restart, bounded.

    A file beside the process (not the ledger's database: the adapter needs no ledger
    store, and losing the file only costs duplicate results the ledger ignores). One process
    per file: two adapters behind one load balancer each keep their own, which is still
    correct for the same reason.
    """

    def __init__(self, path: Path, remembered_max: int = WEBHOOK_EVENTS_REMEMBERED_MAX) -> None:
        self._remembered_max = remembered_max
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS seen_events ("
                         " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                         " event_id TEXT NOT NULL UNIQUE)")

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM seen_events WHERE event_id = ?",
                                   (event_id,)).fetchone()
        return row is not None

    def add(self, event_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO seen_events (event_id) VALUES (?)",
                             (event_id,))
            # Forget the oldest beyond the bound (seq only grows).
            self._db.execute("DELETE FROM seen_events WHERE seq <= "
                             "(SELECT MAX(seq) FROM seen_events) - ?", (self._remembered_max,))

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM seen_events").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()


Send = Callable[[Sequence[PaymentResult]], None]


class WebhookReceiver:
    """The endpoint's logic, without HTTP: (status, body) for one delivery."""

    def __init__(
        self, accounts: Mapping[str, StripeAccount], seen: SeenEvents, send: Send,
        log: logging.Logger, metrics: PspMetrics | None = None,
    ) -> None:
        self._accounts = dict(accounts)
        self._seen = seen
        self._send = send
        self._log = log
        self._metrics = metrics

    def receive(self, path: str, body: bytes, signature: str | None) -> tuple[int, str]:
        # 1. the tenant and its secret
        match = WEBHOOK_PATH.match(path)
        account = self._accounts.get(match.group(1)) if match else None
        if account is None or not account.webhook_secret:
            return self._done("?", "unknown_endpoint", HTTPStatus.NOT_FOUND, "no such endpoint")
        # 2. Stripe's signature
        try:
            event = stripe.Webhook.construct_event(
                body.decode("utf-8"), signature, account.webhook_secret,
                tolerance=WEBHOOK_TOLERANCE_S,
            )
        except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError) as exc:
            log_event(self._log, "webhook_refused", level=logging.WARNING,
                      tenant_id=account.tenant_id, reason=type(exc).__name__)
            return self._done("?", "bad_signature", HTTPStatus.BAD_REQUEST, "bad signature")
        payload = json.loads(body)
        event_id, event_type = str(event.id), str(payload.get("type"))
        # 3. seen before
        if event_id in self._seen:
            return self._done(event_type, "duplicate", HTTPStatus.OK, "duplicate")
        # 4. map and send (acknowledged)
        results = results_of_event(account.tenant_id, payload)
        try:
            self._send(results)
        except Exception as exc:  # Stripe retries a 500; nothing is remembered
            log_event(self._log, "webhook_failed", level=logging.ERROR,
                      tenant_id=account.tenant_id, event_id=event_id, reason=repr(exc))
            return self._done(event_type, "failed", HTTPStatus.INTERNAL_SERVER_ERROR, "retry")
        # 5. remember, then acknowledge
        self._seen.add(event_id)
        log_event(self._log, "webhook_applied", tenant_id=account.tenant_id, event_id=event_id,
                  type=event_type, results=len(results))
        return self._done(event_type, "sent" if results else "ignored", HTTPStatus.OK, "ok")

    def _done(self, event_type: str, result: str, status: HTTPStatus, body: str
              ) -> tuple[int, str]:
        if self._metrics is not None:
            known = event_type if event_type in HANDLED_EVENT_TYPES else "other"
            self._metrics.webhook_events.labels(type=known, result=result).inc()
        return int(status), body


def webhook_server(receiver: WebhookReceiver, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for the receiver (stdlib: a few requests a second need no framework);
    TLS is the reverse proxy's job in front of it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the stdlib's name for the POST handler
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self._reply(int(HTTPStatus.LENGTH_REQUIRED), "Content-Length needed")
                return
            if not 0 <= length <= WEBHOOK_BODY_BYTES_MAX:
                self._reply(int(HTTPStatus.REQUEST_ENTITY_TOO_LARGE), "too large")
                return
            body = self.rfile.read(length)
            status, text = receiver.receive(self.path, body, self.headers.get("Stripe-Signature"))
            self._reply(status, text)

        def _reply(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # every delivery is logged as JSON by the receiver

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server

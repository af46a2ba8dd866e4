"""Stripe webhooks -> PaymentResults: mapping, signature, deduplication (no HTTP, no Kafka)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import stripe

from consumers.psp_results import result_event_id_for
from consumers.psp_stripe.accounts import StripeAccount
from consumers.psp_stripe.webhooks import SeenEvents, WebhookReceiver, results_of_event
from ledger.messages import PaymentResult

SECRET = "whsec_test_secret"
ACCOUNTS = {"cpo-de": StripeAccount("cpo-de", "sk_test_1", SECRET)}
CREATED = 1_773_144_000  # 2026-03-10T12:00:00Z


def meta(command_id: str, action: str, tenant: str = "cpo-de") -> dict[str, str]:
    return {"evledger_tenant": tenant, "evledger_command": command_id,
            "evledger_action": action, "evledger_reference": "session:tx-1"}


def event(event_type: str, obj: dict[str, Any], event_id: str = "evt_1") -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": event_type, "created": CREATED,
            "data": {"object": obj}}


def intent(command_id: str, action: str, **fields: Any) -> dict[str, Any]:
    return {"id": "pi_1", "object": "payment_intent", "currency": "eur", "amount": 2500,
            "metadata": meta(command_id, action), **fields}


def test_a_capturable_amount_authorizes_the_hold_under_the_synchronous_answers_id() -> None:
    [result] = results_of_event("cpo-de", event(
        "payment_intent.amount_capturable_updated",
        intent("cmd-hold", "authorize", amount_capturable=2500)))
    assert (result.outcome, result.request_id, result.amount, result.currency) == (
        "hold_authorized", "cmd-hold", Decimal("25.00"), "EUR")
    assert result.psp_reference == "pi_1"
    assert result.event_id == result_event_id_for("cpo-de", "cmd-hold")
    assert result.occurred_at.isoformat() == "2026-03-10T12:00:00+00:00"


def test_a_succeeded_charge_and_a_failed_one() -> None:
    [paid] = results_of_event("cpo-de", event("payment_intent.succeeded",
                                              intent("cmd-c", "charge", amount_received=476)))
    assert (paid.outcome, paid.amount) == ("charge_succeeded", Decimal("4.76"))
    [failed] = results_of_event("cpo-de", event(
        "payment_intent.payment_failed",
        intent("cmd-c", "charge", amount=476,
               last_payment_error={"code": "card_declined",
                                   "decline_code": "insufficient_funds"})))
    assert (failed.outcome, failed.reason, failed.psp_reference) == (
        "charge_failed", "insufficient funds", None)
    [hold_failed] = results_of_event("cpo-de", event(
        "payment_intent.payment_failed",
        intent("cmd-h", "authorize", last_payment_error={"code": "authentication_required"})))
    assert (hold_failed.outcome, hold_failed.reason) == ("hold_failed", "authentication required")


def test_a_refunded_charge_answers_each_refund_command() -> None:
    refunds = {"data": [
        {"id": "re_1", "amount": 100, "currency": "eur", "status": "succeeded",
         "metadata": meta("cmd-r1", "refund")},
        {"id": "re_2", "amount": 50, "currency": "eur", "status": "pending",
         "metadata": meta("cmd-r2", "refund")},
        {"id": "re_3", "amount": 70, "currency": "eur", "status": "succeeded", "metadata": {}},
    ]}
    [result] = results_of_event("cpo-de", event(
        "charge.refunded", {"id": "ch_1", "object": "charge", "refunds": refunds}))
    assert (result.outcome, result.request_id, result.amount, result.psp_reference) == (
        "refunded", "cmd-r1", Decimal("1.00"), "re_1")


def test_events_that_are_not_ours_are_ignored() -> None:
    assert results_of_event("cpo-de", event("customer.created", {"id": "cus_1"})) == []
    # Another tenant's metadata, no metadata, a captured hold (answered synchronously).
    foreign = intent("cmd-x", "charge")
    foreign["metadata"]["evledger_tenant"] = "cpo-fr"
    assert results_of_event("cpo-de", event("payment_intent.succeeded", foreign)) == []
    assert results_of_event("cpo-de", event("payment_intent.succeeded",
                                            {"id": "pi_2", "metadata": {}})) == []
    assert results_of_event("cpo-de", event("payment_intent.succeeded",
                                            intent("cmd-h", "authorize"))) == []


def test_seen_events_survive_a_restart_and_stay_bounded(tmp_path: Path) -> None:
    path = tmp_path / "seen.sqlite3"
    seen = SeenEvents(path, remembered_max=3)
    for n in range(5):
        seen.add(f"evt_{n}")
    seen.add("evt_4")  # again: no change
    seen.close()
    again = SeenEvents(path, remembered_max=3)
    try:
        assert len(again) == 3
        assert [f"evt_{n}" in again for n in range(5)] == [False, False, True, True, True]
    finally:
        again.close()


class Sent:
    def __init__(self) -> None:
        self.results: list[PaymentResult] = []

    def __call__(self, results: Sequence[PaymentResult]) -> None:
        self.results.extend(results)


def signed(payload: str, secret: str = SECRET) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, secret,
                                                             timestamp=int(time.time()))


def test_the_receiver_checks_the_signature_then_sends_once_per_event(tmp_path: Path) -> None:
    sent = Sent()
    seen = SeenEvents(tmp_path / "seen.sqlite3")
    receiver = WebhookReceiver(ACCOUNTS, seen, sent, logging.getLogger("test"))
    body = json.dumps(event("payment_intent.succeeded",
                            intent("cmd-c", "charge", amount_received=2500)))
    path = "/stripe/webhooks/cpo-de"
    try:
        assert receiver.receive(path, body.encode(), None)[0] == 400
        assert receiver.receive(path, body.encode(), signed(body, "whsec_other"))[0] == 400
        assert receiver.receive(path, body.encode() + b" ", signed(body))[0] == 400
        assert sent.results == [] and len(seen) == 0
        assert receiver.receive(path, body.encode(), signed(body)) == (200, "ok")
        assert receiver.receive(path, body.encode(), signed(body)) == (200, "duplicate")
        assert [r.request_id for r in sent.results] == ["cmd-c"]
        assert receiver.receive("/stripe/webhooks/cpo-xx", body.encode(), signed(body))[0] == 404
    finally:
        seen.close()


def test_a_delivery_that_could_not_be_sent_is_not_remembered(tmp_path: Path) -> None:
    def broken(_results: Sequence[PaymentResult]) -> None:
        raise RuntimeError("broker down")

    seen = SeenEvents(tmp_path / "seen.sqlite3")
    receiver = WebhookReceiver(ACCOUNTS, seen, broken, logging.getLogger("test"))
    body = json.dumps(event("payment_intent.succeeded", intent("cmd-c", "charge")))
    try:
        assert receiver.receive("/stripe/webhooks/cpo-de", body.encode(), signed(body))[0] == 500
        assert "evt_1" not in seen
    finally:
        seen.close()

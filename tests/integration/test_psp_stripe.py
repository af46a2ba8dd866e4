"""`ledger psp-stripe` as a real process, against stripe-mock (Stripe's official API mock,
which validates every request against Stripe's OpenAPI spec) and the real broker.

What the mock answers is fixed: every PaymentIntent comes back `requires_payment_method`,
so a hold or charge is answered as failed ("stripe: requires_payment_method", the status a
real Stripe gives a confirmation the card refused), while captures, cancels and refunds
succeed. Real approvals are shown in test mode (docs/psp.md), not here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe
from kafka import TopicPartition

from consumers import kafka_clients
from consumers.avro_codec import decode_dead_letter, key_for
from consumers.kafka_topics import DEAD_LETTER_TOPIC
from consumers.psp_results import result_event_id, result_event_id_for
from consumers.settings import Settings
from ledger.messages import PaymentResult
from tests.integration.test_psp_simulator import (  # the same broker helpers
    command,
    producer,
    read_results,
    send,
    settings,
    stop,
)

pytestmark = pytest.mark.integration

__all__ = ["producer", "settings"]  # fixtures, used by name

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec_integration_test"
SERVE_DEADLINE_S = 60
CONNECT_PROBE_S = 0.5
READ_POLL_TIMEOUT_MS = 200
DEAD_LETTERS_DEADLINE_S = 60


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    path = tmp_path / "stripe-accounts.json"
    path.write_text(json.dumps({"t1": {"secret_key": "sk_test_123",
                                       "webhook_secret": WEBHOOK_SECRET}}))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_adapter(settings: Settings, accounts: Path, stripe_mock_url: str, tmp_path: Path,
                  *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "psp-stripe",
         "--bootstrap-servers", ",".join(settings.bootstrap_servers),
         "--topic-prefix", settings.topic_prefix, "--group-id", settings.group_id,
         "--session-timeout-ms", "6000", "--stripe-accounts", str(accounts),
         "--stripe-api-base", stripe_mock_url,
         "--webhook-state", str(tmp_path / "seen.sqlite3"), *extra],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture
def running(settings: Settings, accounts: Path, stripe_mock_url: str, tmp_path: Path
            ) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    webhook_port, metrics_port = free_port(), free_port()
    process = start_adapter(settings, accounts, stripe_mock_url, tmp_path,
                            "--webhook-port", str(webhook_port),
                            "--metrics-port", str(metrics_port))
    try:
        yield process, webhook_port, metrics_port
    finally:
        if process.poll() is None:
            stop(process)


def log_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def dead_letters(settings: Settings, expected: int) -> list[Any]:
    topic = settings.topic(DEAD_LETTER_TOPIC)
    consumer = kafka_clients.raw_consumer(settings)
    found: list[Any] = []
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + DEAD_LETTERS_DEADLINE_S
        while len(found) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=READ_POLL_TIMEOUT_MS).values():
                found.extend(decode_dead_letter(r.value) for r in records)
    finally:
        consumer.close()
    return found


def test_every_command_kind_goes_to_stripe_keyed_by_its_command_id_and_comes_back(
    settings: Settings, producer: Any, running: tuple[subprocess.Popen[str], int, int]
) -> None:
    process, _webhook_port, metrics_port = running
    hold = command("cmd-hold", "authorize", "cus_A1/pm_card_visa", "tx-1", amount="25.00")
    commands = [
        hold,
        command("cmd-charge", "charge", "cus_A1/pm_card_visa", "session:tx-2", amount="4.76"),
        command("cmd-capture", "capture", None, "tx-3", amount="4.76",
                psp_reference="pi_hold3"),
        command("cmd-release", "release", None, "tx-3", amount="20.24",
                psp_reference="pi_hold3"),
        command("cmd-refund", "refund", None, "session:tx-4", amount="1.50",
                psp_reference="pi_charge4"),
        # A capture that names no hold: Stripe cannot be asked, the ledger hears why.
        command("cmd-capture-nothing", "capture", None, "tx-5", amount="1.00"),
    ]
    send(producer, settings, commands)
    send(producer, settings, [hold])  # the relay re-sent it after a crash
    answers = read_results(settings, expected=7, alive=lambda: process.poll() is None)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                     timeout=10).read().decode()
    _stdout, stderr = stop(process)
    assert process.returncode == 0, stderr
    logs = log_lines(stderr)
    assert logs[-1]["event"] == "stopped"

    by_request: dict[str, list[PaymentResult]] = {}
    for key, result in answers:
        assert key == key_for(result)
        assert result.event_id == result_event_id_for("t1", result.request_id)
        by_request.setdefault(result.request_id, []).append(result)
    outcome = {request: [(r.outcome, r.reason) for r in results]
               for request, results in by_request.items()}
    mock_refusal = "stripe: requires_payment_method"  # the mock's fixed status, see above
    assert outcome == {
        "cmd-hold": [("hold_failed", mock_refusal)] * 2,
        "cmd-charge": [("charge_failed", mock_refusal)],
        "cmd-capture": [("captured", None)],
        "cmd-release": [("released", None)],
        "cmd-refund": [("refunded", None)],
        "cmd-capture-nothing": [("capture_failed",
                                 "a capture needs the psp_reference of its payment")],
    }
    assert by_request["cmd-hold"][0] == by_request["cmd-hold"][1]
    assert by_request["cmd-hold"][0].event_id == result_event_id(hold)
    assert by_request["cmd-capture"][0].psp_reference == "pi_hold3"
    assert (by_request["cmd-capture"][0].amount, by_request["cmd-release"][0].amount) == (
        commands[2].amount, commands[3].amount)
    assert (by_request["cmd-refund"][0].psp_reference or "").startswith("re_")

    # Every request Stripe accepted carried the command id as its idempotency key (as the
    # API echoed it back), one request per command id and attempt.
    requests = [line for line in logs if line["event"] == "stripe_request"]
    assert {(r["command_id"], r["call"]) for r in requests} == {
        ("cmd-hold", "create_payment_intent"), ("cmd-charge", "create_payment_intent"),
        ("cmd-capture", "capture_payment_intent"), ("cmd-release", "cancel_payment_intent"),
        ("cmd-refund", "create_refund"),
    }
    assert all(r["idempotency_key"] == r["command_id"] for r in requests), requests
    assert 'evledger_stripe_requests_total{call="create_refund",result="approved"} 1.0' in metrics
    assert 'evledger_psp_answers_total{outcome="hold_failed"} 2.0' in metrics


def wait_until_serving(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + SERVE_DEADLINE_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_PROBE_S):
                return
        except OSError:
            time.sleep(CONNECT_PROBE_S)
    raise AssertionError(f"webhook endpoint not serving on {port} (exit {process.poll()})")


def post(port: int, tenant: str, body: bytes, signature: str | None) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/stripe/webhooks/{tenant}", data=body, method="POST",
        headers={"Content-Type": "application/json",
                 **({"Stripe-Signature": signature} if signature else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, refused.read().decode()


def test_the_webhook_endpoint_refuses_a_bad_signature_and_answers_a_good_one_once(
    settings: Settings, running: tuple[subprocess.Popen[str], int, int]
) -> None:
    process, webhook_port, _metrics_port = running
    event = {
        "id": "evt_integration_1", "object": "event", "type": "payment_intent.succeeded",
        "created": 1_773_144_000,
        "data": {"object": {
            "id": "pi_async", "object": "payment_intent", "currency": "eur",
            "amount": 476, "amount_received": 476, "status": "succeeded",
            "metadata": {"evledger_tenant": "t1", "evledger_command": "cmd-async",
                         "evledger_action": "charge", "evledger_reference": "session:tx-9"},
        }},
    }
    body = json.dumps(event)
    good = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
    forged = stripe.WebhookSignature.generate_signature_header(body, "whsec_someone_else")
    wait_until_serving(webhook_port, process)
    assert post(webhook_port, "t1", body.encode(), None)[0] == 400
    assert post(webhook_port, "t1", body.encode(), forged)[0] == 400
    assert post(webhook_port, "nobody", body.encode(), good)[0] == 404
    assert post(webhook_port, "t1", body.encode(), good) == (200, "ok")
    assert post(webhook_port, "t1", body.encode(), good) == (200, "duplicate")
    answers = read_results(settings, expected=1, alive=lambda: process.poll() is None)
    _stdout, stderr = stop(process)
    assert process.returncode == 0, stderr
    [(key, result)] = answers
    assert (result.request_id, result.outcome, result.psp_reference, str(result.amount)) == (
        "cmd-async", "charge_succeeded", "pi_async", "4.76")
    assert result.event_id == result_event_id_for("t1", "cmd-async") and key == key_for(result)
    refused = [line for line in log_lines(stderr) if line["event"] == "webhook_refused"]
    assert len(refused) == 2 and WEBHOOK_SECRET not in stderr


def test_a_tenant_without_stripe_keys_stops_the_adapter_before_anything_is_committed(
    settings: Settings, producer: Any, accounts: Path, stripe_mock_url: str, tmp_path: Path
) -> None:
    stranger = command("cmd-other", "charge", "pm_card_visa", "session:tx-1")
    send(producer, settings, [stranger.model_copy(update={"tenant_id": "t-unknown"})])
    process = start_adapter(settings, accounts, stripe_mock_url, tmp_path)
    try:
        _stdout, stderr = process.communicate(timeout=SERVE_DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 2
    assert "no Stripe account configured for tenant 't-unknown'" in stderr
    assert "sk_test_123" not in stderr

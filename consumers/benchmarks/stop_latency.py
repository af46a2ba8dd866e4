"""`stop_latency_p50_ms` / `_p99_ms`: from a meter update that takes a pre-authorized
session over its hold's stop threshold being published, to the ledger's
StopSessionRequested for that session being readable on Kafka (`csms.commands`).

Runs against a running stack (consumers/benchmarks/stack.py), one session at a time so each
sample is one stop's latency, not a queue's: the session's Started is published and applied
first (untimed), then the clock starts when its over-the-limit update is acknowledged by the
broker, and stops when a group-less consumer polling `csms.commands` reads the stop. The path
measured: consume poll -> apply -> commit -> relay wake-up (NOTIFY) -> publish -> read.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from consumers import kafka_clients
from consumers.avro_codec import decode, type_from_headers
from consumers.benchmarks.ingest import behind, end_offsets, publish, wait_until
from consumers.consumer_loop import TopicPartition
from consumers.kafka_topics import topic_of
from consumers.settings import Settings
from ledger.application import Ledger
from ledger.messages import (
    DriverConfigured,
    Envelope,
    LocationConfigured,
    OcppTransactionEvent,
    StopSessionRequested,
    TariffPublished,
    TenantConfigured,
    TransactionEvent,
)

# A stop normally arrives within a second; this is a stuck pipeline, not a slow one.
STOP_DEADLINE_S = 60
# The reader polls this often; it bounds the error it adds to each sample.
READ_POLL_TIMEOUT_MS = 20
STOP_EPOCH = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
HOLD_AMOUNT = Decimal("25.00")
# 0.40 EUR/kWh + 19 % VAT: 100 kWh cost 47.60, far over a 25.00 hold's stop threshold.
OVER_THE_LIMIT_WH = 100_000
TARIFF = {
    "country_code": "DE", "party_id": "EVL", "id": "bench-energy", "currency": "EUR",
    "elements": [{"price_components": [
        {"type": "ENERGY", "price": 0.40, "vat": 19.0, "step_size": 1}]}],
    "last_updated": "2026-01-01T00:00:00Z",
}


@dataclass(frozen=True, slots=True)
class StopLatency:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def measure_stop_latency(settings: Settings, ledger: Ledger, sessions: int,
                         cost_update_step: Decimal = Decimal(0)) -> StopLatency:
    """`cost_update_step` above 0: the tenant also sends cost updates, so the update that
    stops a session sends one too, ahead of the stop (same topic, same key)."""
    tenant_id = f"bench-stop-{uuid.uuid4().hex[:8]}"
    producer = kafka_clients.producer(settings)
    reader = kafka_clients.raw_consumer(settings)
    try:
        _publish_applied(settings, ledger, producer,
                         _configuration(tenant_id, cost_update_step))
        topic = settings.topic(topic_of(StopSessionRequested))
        partitions = [TopicPartition(topic, p)
                      for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        reader.seek_to_end(*partitions)
        samples_ms = []
        for n in range(sessions):
            transaction_id = f"stop-{n}"
            _publish_applied(settings, ledger, producer,
                             [_event(tenant_id, transaction_id, "Started", 0, 1_000_000)])
            started_s = time.perf_counter()
            publish(producer, settings, [_event(tenant_id, transaction_id, "Updated", 1,
                                                1_000_000 + OVER_THE_LIMIT_WH)])
            _read_stop(reader, tenant_id, transaction_id)
            samples_ms.append((time.perf_counter() - started_s) * 1_000)
    finally:
        reader.close()
        producer.close()
    ordered = sorted(samples_ms)
    return StopLatency(samples=len(ordered), p50_ms=round(_rank(ordered, 0.50), 1),
                       p99_ms=round(_rank(ordered, 0.99), 1), max_ms=round(ordered[-1], 1))


def _rank(ordered: list[float], quantile: float) -> float:
    """Nearest-rank percentile (with 50 samples, p99 is the largest)."""
    index = max(0, min(len(ordered) - 1, round(quantile * len(ordered) + 0.5) - 1))
    return ordered[index]


def _publish_applied(
    settings: Settings, ledger: Ledger, producer: Any, messages: list[Envelope]
) -> None:
    publish(producer, settings, messages)
    ends = end_offsets(settings, settings.inbound_topics())
    wait_until(lambda: not behind(ledger, ends), STOP_DEADLINE_S, "stop bench set-up applied")


def _read_stop(reader: Any, tenant_id: str, transaction_id: str) -> None:
    deadline = time.monotonic() + STOP_DEADLINE_S
    while time.monotonic() < deadline:
        for records in reader.poll(timeout_ms=READ_POLL_TIMEOUT_MS).values():
            for record in records:
                message = decode(type_from_headers(record.headers), record.value)
                if (isinstance(message, StopSessionRequested)
                        and message.tenant_id == tenant_id
                        and message.transaction_id == transaction_id):
                    return
    raise TimeoutError(f"no StopSessionRequested for {transaction_id} within "
                       f"{STOP_DEADLINE_S} s")


def _envelope(tenant_id: str, at: datetime) -> dict[str, Any]:
    return {"event_id": f"{tenant_id}-{uuid.uuid4().hex}", "tenant_id": tenant_id,
            "occurred_at": at, "producer": "bench"}


def _configuration(tenant_id: str, cost_update_step: Decimal) -> list[Envelope]:
    at = STOP_EPOCH - timedelta(days=30)
    effective = {"effective_at": at}
    return [
        TenantConfigured(**_envelope(tenant_id, at), **effective, currency="EUR",
                         preauth_hold_amount=HOLD_AMOUNT, cost_update_step=cost_update_step),
        TariffPublished(**_envelope(tenant_id, at), **effective, tariff_id="bench-energy",
                        ocpi_tariff_json=json.dumps(TARIFF)),
        LocationConfigured(**_envelope(tenant_id, at), **effective, location_id="L1",
                           time_zone="Europe/Berlin", tariff_id="bench-energy"),
        DriverConfigured(**_envelope(tenant_id, at), **effective, driver_id="pre",
                         id_tokens=["rfid-pre"], billing_model="pre_authorization",
                         payment_method_token="tok-ok"),
    ]


def _event(tenant_id: str, transaction_id: str, kind: str, seq_no: int, register_wh: int
           ) -> TransactionEvent:
    at = STOP_EPOCH + timedelta(minutes=30 * seq_no)
    ocpp: dict[str, Any] = {
        "eventType": kind, "timestamp": at, "seqNo": seq_no,
        "triggerReason": "Authorized" if kind == "Started" else "MeterValuePeriodic",
        "transactionInfo": {"transactionId": transaction_id, "chargingState": "Charging"},
        "meterValue": [{"timestamp": at, "sampledValue": [
            {"value": Decimal(register_wh), "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "Wh", "multiplier": 0}}]}],
    }
    if kind == "Started":
        ocpp["evse"] = {"id": 1, "connectorId": 1}
        ocpp["idToken"] = {"idToken": "rfid-pre", "type": "ISO14443"}
    return TransactionEvent(
        **_envelope(tenant_id, at), location_id="L1", charge_point_id="CP1",
        transaction=OcppTransactionEvent.model_validate(ocpp),
    )

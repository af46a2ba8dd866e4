"""Kafka client factories: every option that matters is set here, explicitly.

kafka-python's defaults are tuned for "at most once, from the latest message": auto-commit
on, `auto_offset_reset="latest"`, `isolation_level="read_uncommitted"`. None of those fits a
ledger, so nothing is left to a default that changes what we read, what we write, or when a
client gives up. Limits and their reasons live in `ledger.limits`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

from consumers.kafka_limits import (
    CONSUMER_HEARTBEAT_INTERVAL_MS_MAX,
    CONSUMER_MAX_POLL_INTERVAL_MS,
    CONSUMER_METADATA_MAX_AGE_MS,
    KAFKA_REQUEST_TIMEOUT_MS,
    POLL_RECORDS_MAX,
    PRODUCER_DELIVERY_TIMEOUT_MS,
    PRODUCER_IN_FLIGHT_REQUESTS_MAX,
    PRODUCER_LINGER_MS,
    PRODUCER_MAX_BLOCK_MS,
)
from consumers.settings import Settings

# kafka-python 3.0.x calls importlib.resources.read_text/open_text while its protocol classes
# are defined, and Python 3.11 warns about those; the warnings are the library's, not ours.
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"(read_text|open_text) is deprecated", category=DeprecationWarning
    )
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
    from kafka.errors import KafkaError

# A client that reaches no broker within this long at start gives up (kafka-python's default;
# a broker that is merely restarting is back well within it).
BOOTSTRAP_TIMEOUT_MS = 30_000
# A fetch returns at most this much per partition (Kafka's default message limit is 1 MiB;
# the codec refuses anything over 4 MiB, so one such message still fits one fetch).
FETCH_PARTITION_BYTES_MAX = 8 * 1024 * 1024
# The broker holds a fetch until this much data is there or fetch_max_wait_ms passed.
FETCH_MIN_BYTES = 1
FETCH_MAX_WAIT_MS = 100
# Records of one produce request to one partition (the relay's page is at most 500 records).
PRODUCER_BATCH_BYTES = 256 * 1024
# The largest record the relay may send: the codec's 4 MiB message limit plus headers.
PRODUCER_REQUEST_BYTES_MAX = 5 * 1024 * 1024
# The library's reason for a refused login, as quoted in our error.
SECURITY_REASON_CHARS_MAX = 300


class KafkaUnavailable(Exception):
    """No broker answered when a client started: the brokers are down or the address wrong."""


def _common(settings: Settings, role: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": list(settings.bootstrap_servers),
        "client_id": f"{settings.client_id}-{role}",
        "request_timeout_ms": KAFKA_REQUEST_TIMEOUT_MS,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        **settings.security.client_options(),
    }


class _SecurityFailures(logging.Handler):
    """kafka-python retries a refused login until its bootstrap timeout, then says only that
    it could not bootstrap; the reason is in its log, collected here for the error."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if any(word in text for word in ("Authentication", "SASL", "SSL", "certificate")):
            self.reasons.append(" ".join(text.split())[:SECURITY_REASON_CHARS_MAX])


def _started(settings: Settings, construct: Callable[..., Any], **config: Any) -> Any:
    failures = _SecurityFailures()
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(failures)
    try:
        return construct(**config)
    except KafkaError as exc:
        # A refused login says why; a later disconnect of the same attempt does not.
        reasons = sorted(failures.reasons, key=lambda text: "Authentication" not in text)
        why = (f"{reasons[0]} (as {settings.security.sasl_username or 'no user'},"
               f" {settings.security.protocol})" if reasons else str(exc))
        raise KafkaUnavailable(
            f"cannot reach Kafka at {','.join(settings.bootstrap_servers)}: {why}"
        ) from exc
    finally:
        kafka_log.removeHandler(failures)


def consumer(settings: Settings) -> Any:
    """A consumer-group member whose offsets are advisory: the database owns positions.

    Not subscribed yet (the consumer loop subscribes with its rebalance listener).
    """
    heartbeat_ms = min(CONSUMER_HEARTBEAT_INTERVAL_MS_MAX, settings.session_timeout_ms // 3)
    return _started(
        settings, KafkaConsumer,
        **_common(settings, "consumer"),
        group_id=settings.group_id,
        # The database owns the position; Kafka's committed offset is only a hint for tools.
        enable_auto_commit=False,
        # A partition with no stored position starts at its first message, never its last.
        auto_offset_reset="earliest",
        # Never read records of an aborted or still-open producer transaction.
        isolation_level="read_committed",
        # One poll is at most one database transaction's worth.
        max_poll_records=POLL_RECORDS_MAX,
        max_poll_interval_ms=CONSUMER_MAX_POLL_INTERVAL_MS,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=heartbeat_ms,
        metadata_max_age_ms=CONSUMER_METADATA_MAX_AGE_MS,
        # Incremental rebalancing: a partition that stays with us is not revoked and re-sought
        # when another member joins or leaves, and aggregates stay warm in the cache.
        partition_assignment_strategy=(CooperativeStickyAssignor,),
        fetch_min_bytes=FETCH_MIN_BYTES,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        max_partition_fetch_bytes=FETCH_PARTITION_BYTES_MAX,
        check_crcs=True,
        # Topics are created by `ledger topics create`, never by a typo in a subscription.
        allow_auto_create_topics=False,
        # We decode bytes ourselves (a bad message must reach the dead letters as bytes).
        key_deserializer=None,
        value_deserializer=None,
    )


def raw_consumer(settings: Settings) -> Any:
    """A consumer outside any group, for benchmarks and tools: assign() and seek() only."""
    return _started(
        settings, KafkaConsumer,
        **_common(settings, "raw-consumer"),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=POLL_RECORDS_MAX,
        fetch_min_bytes=FETCH_MIN_BYTES,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        max_partition_fetch_bytes=FETCH_PARTITION_BYTES_MAX,
        check_crcs=True,
        allow_auto_create_topics=False,
        key_deserializer=None,
        value_deserializer=None,
    )


def producer(settings: Settings) -> Any:
    """An idempotent producer: retries never duplicate or reorder records within a partition."""
    return _started(
        settings, KafkaProducer,
        **_common(settings, "producer"),
        enable_idempotence=True,
        # Acknowledged only once every in-sync replica has the record.
        acks="all",
        # Retry until delivery_timeout_ms; idempotence makes retries safe.
        retries=2**31 - 1,
        delivery_timeout_ms=PRODUCER_DELIVERY_TIMEOUT_MS,
        max_in_flight_requests_per_connection=PRODUCER_IN_FLIGHT_REQUESTS_MAX,
        linger_ms=PRODUCER_LINGER_MS,
        batch_size=PRODUCER_BATCH_BYTES,
        max_request_size=PRODUCER_REQUEST_BYTES_MAX,
        max_block_ms=PRODUCER_MAX_BLOCK_MS,
        # Not a Kafka transaction: Jepsen found Kafka's transaction protocol losing writes
        # (bufstream analysis, KIP-890); the outbox gives at-least-once with stable ids.
        transactional_id=None,
        compression_type=None,
        allow_auto_create_topics=False,
        key_serializer=None,
        value_serializer=None,
    )


def admin(settings: Settings) -> Any:
    return _started(settings, KafkaAdminClient, **_common(settings, "admin"))

"""What the long-running processes tell operators: JSON-lines logs and Prometheus metrics.

Logs: one JSON object per line on stderr, `{"ts", "level", "logger", "event", ...fields}`, so
a log shipper needs no parsing rules. `log_event(logger, "batch_applied", source=..., ...)`
is the one way to write one.

Metrics (each process has its own registry, served on `--metrics-port` when it is not 0):

| metric | type | labels |
| --- | --- | --- |
| `evledger_messages_applied_total` | counter | topic |
| `evledger_messages_dead_lettered_total` | counter | topic |
| `evledger_messages_duplicate_total` | counter | topic |
| `evledger_messages_handler_failed_total` (dead-lettered: a bug, see the log) | counter | topic |
| `evledger_messages_conflicting_total` (dead-lettered: id had another payload) | counter | topic |
| `evledger_messages_refused_total` | counter | topic |
| `evledger_messages_skipped_total` (at or before the stored position) | counter | topic |
| `evledger_messages_parked_total` (waiting for what they need) | counter | topic |
| `evledger_messages_unparked_total` (parked; what they needed came) | counter | topic |
| `evledger_messages_expired_total` (parked; the bounded wait ran out) | counter | topic |
| `evledger_consumer_lag_messages` (high watermark - next position) | gauge | topic, partition |
| `evledger_batch_seconds` (decode + apply + commit of one partition batch) | histogram | |
| `evledger_relay_published_total` | counter | topic |
| `evledger_relay_position` (last ledger notification id published) | gauge | |
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LOGGER_NAME = "evledger"
# Batch latency buckets, seconds: a 500-message batch takes ~0.1-1 s on PostgreSQL.
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Metrics listen on every interface: a scraper runs on another host or container.
METRICS_BIND_ADDRESS = "0.0.0.0"


class JsonLinesFormatter(logging.Formatter):
    """A record as one JSON object; fields passed via `log_event` become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """Route the `evledger` loggers (and warnings of libraries) to JSON lines on `stream`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(LOGGER_NAME).setLevel(level)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, event, extra={"fields": fields})


class Metrics:
    """The metrics of one process, in a registry of its own (tests run several at once)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.applied = Counter(
            "evledger_messages_applied", "Inbound messages applied to the ledger.",
            ["topic"], registry=r,
        )
        self.dead_lettered = Counter(
            "evledger_messages_dead_lettered",
            "Inbound messages recorded as dead letters (undecodable or invalid).",
            ["topic"], registry=r,
        )
        self.duplicates = Counter(
            "evledger_messages_duplicate",
            "Inbound messages whose event id was applied before (ignored).", ["topic"],
            registry=r,
        )
        self.handler_failed = Counter(
            "evledger_messages_handler_failed",
            "Inbound messages dead-lettered because a handler raised something unexpected.",
            ["topic"], registry=r,
        )
        self.conflicting = Counter(
            "evledger_messages_conflicting",
            "Inbound messages dead-lettered because their event id was applied before with"
            " a different payload.", ["topic"], registry=r,
        )
        self.refused = Counter(
            "evledger_messages_refused", "Inbound requests the billing rules refused.",
            ["topic"], registry=r,
        )
        self.skipped = Counter(
            "evledger_messages_skipped",
            "Records at or before the stored position of their partition (redelivered).",
            ["topic"], registry=r,
        )
        # Parked and unparked messages are counted under the topic of the batch they were
        # parked or released in (a DriverConfigured on `config` releases sessions).
        self.parked = Counter(
            "evledger_messages_parked",
            "Inbound messages parked until what they need (configuration, a driver, the"
            " request a result answers) arrives (ledger/parking.py).", ["topic"], registry=r,
        )
        self.unparked = Counter(
            "evledger_messages_unparked",
            "Parked messages applied again because what they needed arrived.", ["topic"],
            registry=r,
        )
        self.expired = Counter(
            "evledger_messages_expired",
            "Parked messages applied without what they needed after the bounded wait in"
            " event time (dead-lettered or refused).", ["topic"], registry=r,
        )
        self.lag = Gauge(
            "evledger_consumer_lag_messages",
            "High watermark minus the next position to apply, per partition.",
            ["topic", "partition"], registry=r,
        )
        self.batch_seconds = Histogram(
            "evledger_batch_seconds", "Decode and apply one partition's batch, in seconds.",
            buckets=BATCH_SECONDS_BUCKETS, registry=r,
        )
        self.relay_published = Counter(
            "evledger_relay_published", "Outbox entries published by the relay.", ["topic"],
            registry=r,
        )
        self.relay_position = Gauge(
            "evledger_relay_position", "Last ledger notification id the relay published.",
            registry=r,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, port: int) -> None:
        """Serve /metrics on `port` in a daemon thread (port 0: do nothing)."""
        assert self._server is None, "serve() once"
        if port == 0:
            return
        self._server, self._thread = start_http_server(
            port, addr=METRICS_BIND_ADDRESS, registry=self.registry
        )

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None


# ---------------------------------------------------------------------------- ledger project
# The projector's metrics, registered beside a `Metrics` (served by its `serve`):
#
# | metric | type | labels |
# | --- | --- | --- |
# | `evledger_projection_events_total` (events applied to the read models) | counter | |
# | `evledger_projection_pages_total` (pages committed, one transaction each) | counter | |
# | `evledger_projection_lag_notifications` (log's max notification id - position) | gauge | |
# | `evledger_projection_position` (last notification id in the read models) | gauge | |
# | `evledger_projection_page_seconds` (read, map and commit one page) | histogram | |
#
# A page of up to PROJECTION_PAGE_EVENTS_MAX (500) events takes ~0.05-1 s: the batch buckets.
PROJECTION_PAGE_SECONDS_BUCKETS = BATCH_SECONDS_BUCKETS


class ProjectionMetrics:
    """The metrics of `ledger project`, in the registry of the process's `Metrics`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "evledger_projection_events", "Events applied to the read models.",
            registry=registry,
        )
        self.pages = Counter(
            "evledger_projection_pages",
            "Pages of events committed to the read models (one transaction each).",
            registry=registry,
        )
        self.lag = Gauge(
            "evledger_projection_lag_notifications",
            "The event log's last notification id minus the read models' position"
            " (updated at start and after each page).",
            registry=registry,
        )
        self.position = Gauge(
            "evledger_projection_position",
            "Last notification id applied to the read models.", registry=registry,
        )
        self.page_seconds = Histogram(
            "evledger_projection_page_seconds",
            "Read, map and commit one page of events, in seconds.",
            buckets=PROJECTION_PAGE_SECONDS_BUCKETS, registry=registry,
        )


# ------------------------------------------------------------ ledger psp-simulator / psp-stripe
# The PSP adapters' metrics, registered beside a `Metrics` (served by its `serve`):
#
# | metric | type | labels |
# | --- | --- | --- |
# | `evledger_psp_answers_total` (results sent to psp.results) | counter | outcome |
# | `evledger_psp_dead_lettered_total` (commands no result can answer) | counter | action |
# | `evledger_psp_skipped_total` (records on psp.commands that are no command) | counter | |
# | `evledger_stripe_requests_total` (Stripe API calls by end) | counter | call, result |
# | `evledger_stripe_request_seconds` (one Stripe API call) | histogram | call |
# | `evledger_stripe_webhook_events_total` (deliveries by fate) | counter | type, result |
#
# Stripe answers in ~0.2-2 s; the buckets reach the adapter's request timeout.
STRIPE_REQUEST_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)


class PspMetrics:
    """The metrics of a PSP adapter, in the registry of the process's `Metrics`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.answers = Counter(
            "evledger_psp_answers", "PaymentResults sent to psp.results.", ["outcome"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "evledger_psp_dead_lettered",
            "Payment commands no result can answer, sent to ledger.dead-letters.", ["action"],
            registry=registry,
        )
        self.skipped = Counter(
            "evledger_psp_skipped", "Records on psp.commands that are not a payment command.",
            registry=registry,
        )
        self.stripe_requests = Counter(
            "evledger_stripe_requests", "Stripe API calls, by how they ended.",
            ["call", "result"], registry=registry,
        )
        self.stripe_request_seconds = Histogram(
            "evledger_stripe_request_seconds", "One Stripe API call, in seconds.", ["call"],
            buckets=STRIPE_REQUEST_SECONDS_BUCKETS, registry=registry,
        )
        self.webhook_events = Counter(
            "evledger_stripe_webhook_events", "Stripe webhook deliveries, by what was done.",
            ["type", "result"], registry=registry,
        )

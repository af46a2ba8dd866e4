"""`ledger psp-stripe`: the ledger's payment commands answered by Stripe (docs/psp.md).

A long-running process like `ledger psp-simulator`: a consumer group on `psp.commands`, one
Stripe request per command (consumers/psp_stripe/), the outcome as a PaymentResult on
`psp.results`, the commit protocol of every PSP adapter (consumers/psp_answering.py),
JSON-lines logs, Prometheus metrics on `--metrics-port`, and on `--webhook-port` the endpoint
for Stripe's webhooks. SIGTERM or SIGINT: the current command is finished, its answer sent
and committed, and the process exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

from consumers import kafka_clients
from consumers.cli import CliError
from consumers.kafka_limits import CONSUMER_CLOSE_TIMEOUT_MS
from consumers.observability import Metrics, PspMetrics, configure_logging, get_logger, log_event
from consumers.psp_answering import FLUSH_TIMEOUT_S, PaymentCommandLoop, Publisher
from consumers.psp_stripe.accounts import StripeAccount, accounts_from_file
from consumers.psp_stripe.adapter import STRIPE_POLL_RECORDS_MAX, StripeAdapter, StripeUnusable
from consumers.psp_stripe.webhooks import SeenEvents, WebhookReceiver, webhook_server
from consumers.settings import Settings, add_arguments, settings_from
from consumers.signals import StopRequested, interruptible, stop_on_signals
from ledger.messages import PaymentResult

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"(read_text|open_text) is deprecated", category=DeprecationWarning
    )
    from kafka.errors import KafkaError

# Its own consumer group: never the ledger's, nor the simulator's.
DEFAULT_PSP_STRIPE_GROUP_ID = "evledger-psp-stripe"
ACCOUNTS_ENV_VAR = "EVLEDGER_STRIPE_ACCOUNTS"
API_BASE_ENV_VAR = "STRIPE_API_BASE"
DEFAULT_WEBHOOK_STATE = "psp-stripe-webhooks.sqlite3"
# Webhooks arrive through the operator's TLS reverse proxy, on this host by default.
DEFAULT_WEBHOOK_HOST = "127.0.0.1"
PORT_MAX = 65_535


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "psp-stripe",
        help="answer the ledger's payment commands through Stripe (long-running)",
        description="Consume psp.commands, send each PaymentCommand to the tenant's Stripe"
        " account (idempotency key = command id) and answer it with a PaymentResult on"
        " psp.results; optionally receive Stripe's webhooks. Stops cleanly on SIGTERM/SIGINT."
        " See docs/psp.md.",
    )
    add_arguments(parser, store=False, group=True, metrics=True)
    parser.add_argument("--stripe-accounts", metavar="PATH",
                        help="JSON file: tenant -> {secret_key, webhook_secret}"
                        f" (default: ${ACCOUNTS_ENV_VAR})")
    parser.add_argument("--stripe-api-base", metavar="URL",
                        help=f"Stripe's API address, e.g. stripe-mock's (default:"
                        f" ${API_BASE_ENV_VAR}, else Stripe's own)")
    parser.add_argument("--webhook-port", type=int, default=0, metavar="PORT",
                        help="serve POST /stripe/webhooks/TENANT on this port (default 0: off)")
    parser.add_argument("--webhook-host", default=DEFAULT_WEBHOOK_HOST, metavar="HOST",
                        help=f"address the webhook endpoint binds (default {DEFAULT_WEBHOOK_HOST})")
    parser.add_argument("--webhook-state", default=DEFAULT_WEBHOOK_STATE, metavar="PATH",
                        help="SQLite file of the Stripe event ids already handled"
                        f" (default ./{DEFAULT_WEBHOOK_STATE})")
    parser.set_defaults(handler=run)


def accounts_from(args: argparse.Namespace) -> dict[str, StripeAccount]:
    path = args.stripe_accounts or os.environ.get(ACCOUNTS_ENV_VAR)
    if not path:
        raise CliError(f"no Stripe accounts: give --stripe-accounts PATH or ${ACCOUNTS_ENV_VAR}")
    return accounts_from_file(Path(path))


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.webhook_port <= PORT_MAX:
        raise CliError(f"--webhook-port {args.webhook_port}: expected 0..{PORT_MAX}")
    accounts = accounts_from(args)
    api_base = args.stripe_api_base or os.environ.get(API_BASE_ENV_VAR) or None
    settings = settings_from(args)
    settings = dataclasses.replace(settings,
                                   group_id=args.group_id or DEFAULT_PSP_STRIPE_GROUP_ID)
    configure_logging()
    log = get_logger("psp-stripe")
    # Signals first, as the relay does: a SIGTERM while Kafka is still being reached is a
    # clean stop too.
    with stop_on_signals() as stop, contextlib.suppress(StopRequested):
        _run(args, accounts, api_base, settings, stop, log)
    log_event(log, "stopped")
    return 0


def _run(args: argparse.Namespace, accounts: dict[str, StripeAccount], api_base: str | None,
         settings: Settings, stop: threading.Event, log: logging.Logger) -> None:
    metrics = Metrics()
    psp_metrics = PspMetrics(metrics.registry)
    with interruptible(stop):
        consumer = kafka_clients.consumer(settings)
    producer = None
    seen: SeenEvents | None = None
    server = None
    try:
        with interruptible(stop):
            producer = kafka_clients.producer(settings)
        publisher = Publisher(producer, settings)
        adapter = StripeAdapter(accounts, log, api_base=api_base, metrics=psp_metrics)
        loop = PaymentCommandLoop(adapter, consumer, publisher, settings, log,
                                  records_max=STRIPE_POLL_RECORDS_MAX, metrics=psp_metrics)
        if args.webhook_port:
            seen = SeenEvents(Path(args.webhook_state))

            def send(results: Sequence[PaymentResult]) -> None:
                for result in results:
                    publisher.send(result)
                publisher.flush()

            receiver = WebhookReceiver(accounts, seen, send, log, psp_metrics)
            try:
                server = webhook_server(receiver, args.webhook_host, args.webhook_port)
            except OSError as exc:
                raise CliError(f"cannot serve webhooks on {args.webhook_host}:"
                               f"{args.webhook_port}: {exc.strerror}") from exc
            threading.Thread(target=server.serve_forever, name="stripe-webhooks",
                             daemon=True).start()
        metrics.serve(settings.metrics_port)
        with interruptible(stop):
            loop.subscribe()
        log_event(log, "started", group_id=settings.group_id,
                  topic_prefix=settings.topic_prefix, tenants=sorted(accounts),
                  test_mode=sorted(t for t, a in accounts.items() if a.is_test_mode),
                  api_base=api_base or "stripe", webhook_port=args.webhook_port,
                  metrics_port=settings.metrics_port)
        loop.run(stop)
    except StripeUnusable as exc:
        # Nothing of the current poll was committed: it is answered after the fix.
        raise CliError(str(exc)) from exc
    except KafkaError as exc:
        raise CliError(f"Kafka failed: {exc}") from exc
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if seen is not None:
            seen.close()
        if producer is not None:
            producer.close(timeout=FLUSH_TIMEOUT_S)
        consumer.close(autocommit=False, timeout_ms=CONSUMER_CLOSE_TIMEOUT_MS)
        metrics.close()

"""Every per-session billing model end to end through the real broker and database.

The four processes run as subprocesses, as an operator runs them: `ledger consume` (Kafka
into the ledger), `ledger relay` (the outbox onto Kafka), `ledger project` (read models)
and `ledger psp-simulator` (the PSP's test mode on the real topics: tokens containing
"decline" are declined). The test plays the CSMS and the configuration source: it publishes
Avro messages and reads the commands the ledger sends back on `psp.commands` and
`csms.commands`. Each test owns a tenant, so they share one stack without seeing each other.

Tariff of every test: 0.40 EUR/kWh excl. VAT, 19 % VAT; 10 kWh = 4.00 net + 0.76 VAT = 4.76.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from consumers import kafka_clients
from consumers.avro_codec import decode, encode, headers_for, key_for, type_from_headers
from consumers.kafka_topics import topic_of
from consumers.settings import Settings
from ledger.application import Ledger
from ledger.domain.inbox import processed_key
from ledger.domain.session import ChargingSession
from ledger.messages import Envelope
from projections.report import current_report
from tests.builders import (
    T0,
    driver,
    location,
    redeem,
    session_events,
    tariff,
    tenant,
    terminal_authorized,
    tick,
    top_up,
    voucher_batch,
    voucher_buying_partner,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0  # for any one thing to happen through the whole stack
POLL_S = 0.2
PROCESSES = ("consume", "relay", "project", "psp-simulator")
_tenants = itertools.count(1)
X = TypeVar("X")


# ---------------------------------------------------------------- the stack
@dataclass
class Stack:
    settings: Settings
    database: str
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        common = ["--bootstrap-servers", ",".join(self.settings.bootstrap_servers),
                  "--topic-prefix", self.settings.topic_prefix]
        extra = {
            "consume": ["--store", self.database, "--group-id", f"{self.settings.group_id}"],
            "relay": ["--store", self.database],
            "psp-simulator": ["--group-id", f"{self.settings.group_id}-psp",
                              "--result-delay-s", "2"],
        }
        for name in PROCESSES:
            args = (["project", "--store", self.database] if name == "project"
                    else [name, *common, *extra[name]])
            with (self.logs / f"{name}.log").open("wb") as log:  # the child keeps its copy
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "consumers.cli", *args], cwd=ROOT, env=env,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"ledger {name} exited {process.returncode}:\n{tail}")

    def stop(self) -> dict[str, int]:
        codes: dict[str, int] = {}
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes


# ---------------------------------------------------------------- helpers
def eventually(stack: Stack, what: str, probe: Callable[[], X | None]) -> X:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        stack.check_alive()
        found = probe()
        if found is not None:
            return found
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


def publish(stack: Stack, producer: Any, ledger: Ledger, *messages: Envelope) -> None:
    """Publish and wait until the ledger has applied every one (Kafka orders nothing across
    topics, so the test keeps causes before effects the way a live system's timing does)."""
    for message in messages:
        producer.send(stack.settings.topic(topic_of(message)), key=key_for(message),
                      value=encode(message), headers=headers_for(message))
    producer.flush()
    for message in messages:
        processed = processed_key(message.tenant_id, message.event_id)
        eventually(stack, f"{message.type_name()} {message.event_id} applied",
                   lambda key=processed: True if ledger.processed_digests([key]) else None)


def settled(stack: Stack, ledger: Ledger, tenant_id: str, tx: str) -> dict[str, Any]:
    session_id = ChargingSession.create_id(tenant_id, tx)

    def probe() -> dict[str, Any] | None:
        if session_id not in ledger.repository:
            return None
        session = ledger.repository.get(session_id)
        return dict(session.settlement) if session.settlement is not None else None

    return eventually(stack, f"session {tx} settled", probe)


def commands(stack: Stack, tenant_id: str) -> list[dict[str, Any]]:
    """Every command the ledger published for `tenant_id`, per topic in offset order."""
    found: list[dict[str, Any]] = []
    with closing(kafka_clients.raw_consumer(stack.settings)) as consumer:
        for name in ("psp.commands", "csms.commands"):
            topic = stack.settings.topic(name)
            partitions = [p for p in consumer.partitions_for_topic(topic) or ()]
            from kafka import TopicPartition

            tps = [TopicPartition(topic, p) for p in partitions]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        message = decode(type_from_headers(record.headers), record.value)
                        if message.tenant_id == tenant_id:
                            found.append(message.model_dump(mode="json")
                                         | {"_type": message.type_name()})
    return found


def wait_for_commands(
    stack: Stack, tenant_id: str, predicate: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        found = commands(stack, tenant_id)
        return found if predicate(found) else None

    return eventually(stack, f"commands of {tenant_id}", probe)


def account_balances(database: str, tenant_id: str) -> dict[str, Decimal]:
    with psycopg.connect(database) as conn:
        try:
            rows = conn.execute(
                "SELECT account, SUM(amount_minor) FROM rm_journal_postings"
                " WHERE tenant_id = %s GROUP BY account", (tenant_id,)).fetchall()
        except psycopg.errors.UndefinedTable:
            return {}  # `ledger project` has not created its tables yet: nothing projected
    return {account: Decimal(total) / 100 for account, total in rows}


def projected(stack: Stack, ledger: Ledger, tenant_id: str, accounts: dict[str, Decimal],
              ) -> dict[str, Decimal]:
    """Account balances once `ledger project` shows exactly `accounts` (others may be 0)."""

    def probe() -> dict[str, Decimal] | None:
        found = {a: v for a, v in account_balances(stack.database, tenant_id).items() if v}
        expected = {a: v for a, v in accounts.items() if v}
        return found if found == expected else None

    return eventually(stack, f"journal of {tenant_id} = {accounts}", probe)


def network(stack: Stack, producer: Any, ledger: Ledger, **tenant_settings: Any) -> str:
    tenant_id = f"e2e-{next(_tenants)}-{uuid.uuid4().hex[:6]}"
    publish(
        stack, producer, ledger,
        tenant(tenant_id, **tenant_settings), tariff(tenant_id=tenant_id),
        location(tenant_id=tenant_id), location("FREE", tenant_id=tenant_id, open_access=True),
        driver("post", "post_paid", tenant_id=tenant_id),
        driver("bad", "post_paid", token="tok-decline", tenant_id=tenant_id),
        driver("pre", "pre_authorization", tenant_id=tenant_id),
        driver("w", "wallet", token=None, tenant_id=tenant_id),
        driver("auto", "wallet", tenant_id=tenant_id, auto_top_up_threshold=Decimal("5"),
               auto_top_up_amount=Decimal("20")),
    )
    return tenant_id


def by_action(found: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for command in found:
        grouped.setdefault(command.get("action") or command["_type"], []).append(command)
    return grouped


# ---------------------------------------------------------------- one test per model
def test_open_access_costs_the_driver_nothing_and_is_booked_as_absorbed_cost(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger)
    publish(stack, producer, ledger, *session_events("tx-free", "post", "10",
                                                      location_id="FREE", tenant_id=t))
    s = settled(stack, ledger, t, "tx-free")
    assert (s["billing_model"], s["total_incl_vat"]) == ("open_access", Decimal("4.76"))
    assert s["charged_to"] == [{"payer": "operator", "id": "FREE", "amount_incl_vat": "4.76"}]
    projected(stack, ledger, t, {"operator_absorbed_cost": Decimal("4.76"),
                                 "revenue": Decimal("-4.00"), "vat_payable:19": Decimal("-0.76")})
    assert commands(stack, t) == []


def test_post_paid_card_is_charged_through_the_psp_and_the_receivable_clears(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger)
    publish(stack, producer, ledger, *session_events("tx-post", "post", "10", tenant_id=t))
    s = settled(stack, ledger, t, "tx-post")
    assert (s["billing_model"], s["total_excl_vat"], s["total_incl_vat"]) == (
        "post_paid", Decimal("4.00"), Decimal("4.76"))
    [charge] = wait_for_commands(stack, t, lambda c: len(c) >= 1)
    assert (charge["action"], charge["amount"], charge["payment_method_token"]) == (
        "charge", "4.76", "tok-ok")
    assert charge["idempotency_key"] == charge["event_id"]
    projected(stack, ledger, t, {"psp_clearing": Decimal("4.76"), "revenue": Decimal("-4.00"),
                                 "vat_payable:19": Decimal("-0.76")})


def test_a_declined_card_is_retried_on_schedule_then_debt_stops_the_next_session(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger, retry_schedule_hours=[1, 6])
    publish(stack, producer, ledger, *session_events("tx-bad", "bad", "10", tenant_id=t))
    end = T0 + timedelta(minutes=60)
    wait_for_commands(stack, t, lambda c: len(c) == 1)
    # The first attempt's decline must be applied before the clock moves past +1 h.
    eventually(stack, "first decline applied",
               lambda: True if _charge_failed_count(ledger, t, "tx-bad") == 1 else None)
    # The PSP simulator answers 2 s (event time) after each command: retries are due from
    # the first failure, so the ticks come a minute after each due time.
    publish(stack, producer, ledger, tick(end + timedelta(hours=1, minutes=1), tenant_id=t))
    wait_for_commands(stack, t, lambda c: len(c) == 2)
    eventually(stack, "second decline applied",
               lambda: True if _charge_failed_count(ledger, t, "tx-bad") == 2 else None)
    publish(stack, producer, ledger, tick(end + timedelta(hours=6, minutes=1), tenant_id=t))
    charges = wait_for_commands(stack, t, lambda c: len(c) == 3)
    assert len({c["idempotency_key"] for c in charges}) == 3, "one key per attempt"
    assert {c["amount"] for c in charges} == {"4.76"}
    eventually(stack, "third decline applied",
               lambda: True if _charge_failed_count(ledger, t, "tx-bad") == 3 else None)
    publish(stack, producer, ledger,
            *session_events("tx-bad-2", "bad", "1", start=end + timedelta(days=1),
                            tenant_id=t)[:1])
    found = wait_for_commands(stack, t, lambda c: len(c) == 4)
    stop = found[-1]
    assert (stop["_type"], stop["transaction_id"], stop["reason"]) == (
        "StopSessionRequested", "tx-bad-2", "driver has overdue debt")
    projected(stack, ledger, t, {"driver_receivable:bad": Decimal("4.76"),
                                 "revenue": Decimal("-4.00"), "vat_payable:19": Decimal("-0.76")})


def _charge_failed_count(ledger: Ledger, tenant_id: str, tx: str) -> int:
    from ledger.domain.payment import Charge

    charge_id = Charge.create_id(tenant_id, "session", tx)
    if charge_id not in ledger.repository:
        return 0
    charge = ledger.repository.get(charge_id)
    attempts = len(charge.attempts)
    # The latest attempt has failed too unless it is still waiting for its answer.
    return attempts if charge.status in ("failed", "overdue") else attempts - 1


def test_pre_authorization_holds_captures_the_cost_and_releases_the_rest(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger)
    events = session_events("tx-pre", "pre", "10", tenant_id=t)
    publish(stack, producer, ledger, events[0])
    [authorize] = wait_for_commands(stack, t, lambda c: len(c) == 1)
    assert (authorize["action"], authorize["amount"]) == ("authorize", "25.00")
    eventually(stack, "hold authorized", lambda: True if _hold(ledger, t, "tx-pre")
               .authorization == "authorized" else None)
    publish(stack, producer, ledger, *events[1:])
    found = by_action(wait_for_commands(stack, t, lambda c: len(c) == 3))
    assert found["capture"][0]["amount"] == "4.76"
    assert found["release"][0]["amount"] == "20.24"
    eventually(stack, "hold resolved",
               lambda: True if _hold(ledger, t, "tx-pre").resolution == "resolved" else None)
    projected(stack, ledger, t, {"psp_clearing": Decimal("4.76"), "revenue": Decimal("-4.00"),
                                 "vat_payable:19": Decimal("-0.76")})


def _hold(ledger: Ledger, tenant_id: str, reference: str) -> Any:
    from ledger.domain.payment import Hold

    return ledger.repository.get(Hold.create_id(tenant_id, reference))


def test_a_wallet_session_stops_near_the_balance_and_overshoots_below_zero(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger)
    publish(stack, producer, ledger, top_up("w", "5.00", tenant_id=t))
    publish(stack, producer, ledger, *session_events("tx-w", "w", "20", updates=3,
                                                      tenant_id=t))
    s = settled(stack, ledger, t, "tx-w")
    assert s["charged_to"] == [{"payer": "wallet", "id": "w", "amount_incl_vat": "9.52"}]
    [stop] = wait_for_commands(stack, t, lambda c: len(c) == 1)
    assert (stop["_type"], stop["reason"]) == ("StopSessionRequested", "wallet balance nearly used")
    report = eventually(stack, "wallet projected", lambda: _wallets(ledger, t) or None)
    assert report == [{"tenant_id": t, "driver_id": "w", "currency": "EUR", "balance": "-4.52"}]


def _wallets(ledger: Ledger, tenant_id: str) -> list[dict[str, Any]]:
    wallets = current_report(ledger)["wallets"]
    return [w for w in wallets if w["tenant_id"] == tenant_id and w["balance"] != "0.00"]


def test_auto_top_up_charges_the_card_while_the_session_runs(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger)
    publish(stack, producer, ledger, top_up("auto", "10.00", tenant_id=t))
    events = session_events("tx-auto", "auto", "20", updates=3, tenant_id=t)
    publish(stack, producer, ledger, *events[:-1])
    [top] = wait_for_commands(stack, t, lambda c: len(c) == 1)
    assert (top["action"], top["amount"]) == ("charge", "20")
    eventually(stack, "top-up credited",
               lambda: _wallets(ledger, t) if _wallets(ledger, t) and
               _wallets(ledger, t)[0]["balance"] == "30.00" else None)
    publish(stack, producer, ledger, events[-1])
    settled(stack, ledger, t, "tx-auto")
    balances = eventually(stack, "wallet after the session",
                          lambda: _wallets(ledger, t) if _wallets(ledger, t)[0]["balance"]
                          == "20.48" else None)
    assert balances == [
        {"tenant_id": t, "driver_id": "auto", "currency": "EUR", "balance": "20.48"}]
    assert all(c["_type"] != "StopSessionRequested" for c in commands(stack, t))


def test_a_terminal_session_is_captured_from_the_terminal_authorization(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger)
    publish(stack, producer, ledger, terminal_authorized("TR-1", "30.00", tenant_id=t))
    publish(stack, producer, ledger, *session_events("tx-term", None, "10",
                                                      terminal_reference="TR-1", tenant_id=t))
    s = settled(stack, ledger, t, "tx-term")
    assert s["charged_to"] == [{"payer": "terminal", "id": "TR-1", "amount_incl_vat": "4.76"}]
    found = by_action(wait_for_commands(stack, t, lambda c: len(c) == 2))
    assert found["capture"][0]["amount"] == "4.76"
    assert found["release"][0]["amount"] == "25.24"
    projected(stack, ledger, t, {"psp_clearing": Decimal("4.76"), "revenue": Decimal("-4.00"),
                                 "vat_payable:19": Decimal("-0.76")})


def test_a_partner_bought_voucher_pays_first_and_the_card_pays_the_rest(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger)
    publish(stack, producer, ledger, voucher_buying_partner("acme", tenant_id=t))
    publish(stack, producer, ledger,
            voucher_batch("B1", ["CODE-1", "CODE-2"], amount="3.00", tenant_id=t,
                          partner_id="acme", price_per_code_net="2.50", vat_rate_percent="19"))
    publish(stack, producer, ledger, redeem("CODE-1", "post", tenant_id=t))
    second = redeem("CODE-1", "pre", tenant_id=t)
    publish(stack, producer, ledger, second)
    publish(stack, producer, ledger, *session_events("tx-v", "post", "10", tenant_id=t))
    s = settled(stack, ledger, t, "tx-v")
    assert s["charged_to"] == [
        {"payer": "voucher", "id": "CODE-1", "amount_incl_vat": "3.00"},
        {"payer": "driver", "id": "post", "amount_incl_vat": "1.76"},
    ]
    [charge] = wait_for_commands(stack, t, lambda c: len(c) == 1)
    assert (charge["action"], charge["amount"]) == ("charge", "1.76")
    def invoiced() -> dict[str, Any] | None:
        found = current_report(ledger)
        mine = [i for i in found["invoices"] if i["tenant_id"] == t]
        return found if any(i["number"] == "V-000001" for i in mine) else None

    report = eventually(stack, "voucher invoice projected", invoiced)
    [invoice] = [i for i in report["invoices"] if i["tenant_id"] == t and i["kind"] ==
                 "voucher_batch"]
    assert (invoice["bill_to"], invoice["total_excl_vat"], invoice["total_incl_vat"]) == (
        "acme", "5.00", "5.95")
    refusals = [r for r in report["refusals"]["items"] if r["tenant_id"] == t]
    assert len(refusals) == 1 and "redeemed" in refusals[0]["reason"]


# ---------------------------------------------------------------- all at once
def test_every_model_interleaved_on_one_tenant_balances_to_the_cent(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger)
    publish(stack, producer, ledger, top_up("w", "50.00", tenant_id=t),
            top_up("auto", "10.00", tenant_id=t), terminal_authorized("TR-9", "30.00",
                                                                      tenant_id=t))
    plans = {
        "tx-i-free": ("post", "12", {"location_id": "FREE"}),
        "tx-i-post": ("post", "10", {}),
        "tx-i-pre": ("pre", "8", {}),
        "tx-i-w": ("w", "6", {}),
        "tx-i-auto": ("auto", "4", {}),
        "tx-i-term": (None, "10", {"terminal_reference": "TR-9"}),
    }
    streams = [session_events(tx, who, kwh, updates=2, tenant_id=t, **extra)
               for tx, (who, kwh, extra) in plans.items()]
    # Interleave: every session's Started, then every first update, ... then every Ended.
    for step in zip(*streams, strict=True):
        publish(stack, producer, ledger, *step)
        if step[0].transaction.eventType == "Started":
            eventually(stack, "hold authorized", lambda: True if _hold(ledger, t, "tx-i-pre")
                       .authorization == "authorized" else None)
    expected = {"tx-i-free": "5.71", "tx-i-post": "4.76", "tx-i-pre": "3.81",
                "tx-i-w": "2.86", "tx-i-auto": "1.90", "tx-i-term": "4.76"}
    for tx, gross in expected.items():
        s = settled(stack, ledger, t, tx)
        assert s["total_incl_vat"] == Decimal(gross), tx
        assert sum(Decimal(c["amount_incl_vat"]) for c in s["charged_to"]) == Decimal(gross)
    # authorize + capture + release (pre), charge (post), capture + release (terminal).
    found = by_action(wait_for_commands(stack, t, lambda c: len(c) == 6))
    assert sorted(found) == ["authorize", "capture", "charge", "release"]
    assert [c["amount"] for c in found["charge"]] == ["4.76"]
    assert sorted(c["amount"] for c in found["capture"]) == ["3.81", "4.76"]
    sales_net = sum((Decimal(g) for g in expected.values()), Decimal(0))
    def day_booked() -> dict[str, Decimal] | None:
        found = account_balances(stack.database, t)
        return found if found.get("psp_clearing") == Decimal("13.33") else None

    balances = eventually(stack, "journal of the day", day_booked)
    assert sum(balances.values()) == 0
    assert -(balances["revenue"] + balances["vat_payable:19"]) == sales_net
    assert balances["wallet:w"] == Decimal("-47.14")
    assert balances["operator_absorbed_cost"] == Decimal("5.71")
    report = current_report(ledger)
    assert report["journal"]["sum_of_postings"] == "0.00"

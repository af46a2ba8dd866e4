"""`ledger simulate`: deterministic, OCPP-shaped, every billing model, PSP answers in the file.

The file is checked the way `ledger ingest` would see it: read with the event-file reader,
parsed with `parse_message`, and replayed through a fresh in-memory ledger.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.utils import get_topic

from consumers.cli import main
from consumers.commands.ingest import ingest_file
from consumers.event_file import EventLine, read_event_file
from ledger.application import BatchResult, Ledger
from ledger.domain.corporate_pool import CorporatePool
from ledger.domain.inbox import DeadLetter, Refusal
from ledger.domain.invoice import InvoiceSeries
from ledger.domain.journal import JournalEntry
from ledger.domain.session import ChargingSession
from ledger.domain.voucher import Voucher
from ledger.domain.wallet import Wallet
from ledger.messages import (
    ClockTicked,
    Configuration,
    DriverConfigured,
    Envelope,
    LocationConfigured,
    PartnerConfigured,
    PaymentResult,
    PlanPublished,
    TenantConfigured,
    TransactionEvent,
    VoucherBatchIssued,
    VoucherRedemptionRequested,
    parse_message,
)

SESSIONS = 60
SEED = 11
MODELS_THAT_EXIST = {"open_access", "ad_hoc_terminal", "corporate", "subscription_prepaid",
                     "subscription_postpaid", "wallet", "pre_authorization", "post_paid"}
POOL_LEFT_MAX = Decimal("0.05")
AC_POWER_W_MAX = 22_000
DC_POWER_W_MAX = 150_000
METER_INTERVAL_MAX = timedelta(minutes=15)


@dataclass
class Replayed:
    lines: list[EventLine]
    messages: list[Envelope]
    ledger: Ledger
    result: BatchResult

    def events(self, cls: type, name: str) -> list[Any]:
        topic = get_topic(vars(cls)[name])
        notifications = self.ledger.recorder.select_notifications(
            start=1, limit=1_000_000, topics=[topic])
        return [self.ledger.mapper.to_domain_event(n) for n in notifications]

    def commands(self, type_name: str) -> list[dict[str, Any]]:
        return [c.payload for _, c in self.ledger.recorded_commands()
                if c.type_name == type_name]

    def of_type(self, cls: type[Envelope]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, cls)]

    def journal(self) -> list[JournalEntry]:
        """Every entry booked, by whichever event booked it."""
        notifications = self.ledger.recorder.select_notifications(start=1, limit=10_000_000)
        return [
            JournalEntry.from_dict(data)
            for n in notifications
            for data in getattr(self.ledger.mapper.to_domain_event(n), "journal_entries", None)
            or []
        ]


def simulate_to(path: Path, *args: str) -> bytes:
    assert main(["simulate", "--out", str(path), *args]) == 0
    return path.read_bytes()


def replay(path: Path) -> Replayed:
    lines = list(read_event_file(path))
    messages = [parse_message(line.type_name, line.payload) for line in lines
                if line.error is None]
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    result = ingest_file(ledger, path, "file:" + path.name)
    return Replayed(lines, messages, ledger, result)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    path = tmp_path_factory.mktemp("sim") / "day.jsonl"
    simulate_to(path, "--sessions", str(SESSIONS), "--seed", str(SEED))
    return replay(path)


@pytest.fixture(scope="module")
def faulty_day(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    path = tmp_path_factory.mktemp("sim") / "faulty.jsonl"
    simulate_to(path, "--sessions", str(SESSIONS), "--seed", str(SEED), "--faults")
    return replay(path)


def by_transaction(messages: list[Envelope]) -> dict[str, list[TransactionEvent]]:
    found: dict[str, list[TransactionEvent]] = defaultdict(list)
    for m in messages:
        if isinstance(m, TransactionEvent):
            found[m.transaction.transactionInfo.transactionId].append(m)
    return found


# ---------------------------------------------------------------- determinism
def test_the_same_arguments_write_the_same_bytes_and_another_seed_others(
    tmp_path: Path,
) -> None:
    args = ("--sessions", "25", "--tenants", "2", "--faults")
    first = simulate_to(tmp_path / "a.jsonl", *args, "--seed", "5")
    second = simulate_to(tmp_path / "b.jsonl", *args, "--seed", "5")
    other = simulate_to(tmp_path / "c.jsonl", *args, "--seed", "6")
    assert first == second
    assert first != other


def test_bad_arguments_are_an_error_not_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "none.jsonl"
    assert main(["simulate", "--sessions", "0", "--seed", "1", "--out", str(out)]) == 2
    assert main(["simulate", "--sessions", "5", "--seed", "1", "--tenants", "9",
                 "--out", str(out)]) == 2
    assert "sessions must be" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- the file
def test_every_line_is_a_valid_message_and_configuration_comes_first(day: Replayed) -> None:
    assert all(line.error is None for line in day.lines)
    assert len(day.messages) == len(day.lines)
    kinds = [isinstance(m, Configuration) for m in day.messages]
    first_other = kinds.index(False)
    assert all(kinds[:first_other]) and not any(kinds[first_other:])
    assert isinstance(day.messages[0], TenantConfigured)
    for line in day.lines:
        assert json.loads(line.raw)["event"]["event_id"]


def test_event_ids_are_unique_without_faults(day: Replayed) -> None:
    ids = [(m.tenant_id, m.event_id) for m in day.messages]
    assert len(set(ids)) == len(ids)


def test_sessions_are_shaped_like_ocpp_transaction_events(day: Replayed) -> None:
    sessions = by_transaction(day.messages)
    assert len(sessions) == SESSIONS
    for tx, events in sessions.items():
        first, last = events[0].transaction, events[-1].transaction
        assert first.eventType == "Started" and first.seqNo == 0, tx
        assert first.transactionInfo.chargingState == "Charging"
        assert first.evse is not None and first.idToken is not None
        begin = first.meterValue[0].sampledValue[0]
        assert (begin.context, begin.measurand) == (
            "Transaction.Begin", "Energy.Active.Import.Register")
        assert last.eventType == "Ended" and last.transactionInfo.stoppedReason
        assert [e.transaction.seqNo for e in events] == list(range(len(events)))
        assert all(e.transaction.eventType == "Updated" for e in events[1:-1])
        registers = [e.transaction.meterValue[0].sampledValue[0].value for e in events]
        assert registers == sorted(registers), tx
        for a, b in itertools.pairwise(events):
            assert timedelta(0) < b.occurred_at - a.occurred_at <= METER_INTERVAL_MAX, tx
        power_max = DC_POWER_W_MAX if _is_dc(events[0]) else AC_POWER_W_MAX
        for event in events[1:-1]:
            samples = event.transaction.meterValue[0].sampledValue
            power = next(s.value for s in samples if s.measurand == "Power.Active.Import")
            assert Decimal(0) <= power <= power_max, (tx, power)


def _is_dc(started: TransactionEvent) -> bool:
    return "MOTORWAY" in started.location_id or "RETAIL" in started.location_id


def test_parking_after_a_full_battery_shows_as_suspended_ev(day: Replayed) -> None:
    states = Counter(e.transaction.transactionInfo.chargingState
                     for e in day.of_type(TransactionEvent))
    assert states["SuspendedEV"] > 0
    reasons = Counter(e.transaction.transactionInfo.stoppedReason
                      for e in day.of_type(TransactionEvent))
    assert reasons["EVDisconnected"] and reasons["Local"] and reasons["Remote"]


def test_the_clock_ticks_hourly_through_eight_days_after_the_day(day: Replayed) -> None:
    # The billing calendar's month-end jump is its own producer (tests below).
    ticks = [m.now for m in day.of_type(ClockTicked) if m.producer == "clock"]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(ticks))
    session_ends = [e.occurred_at for e in day.of_type(TransactionEvent)
                    if e.transaction.eventType == "Ended"]
    day_ends = sorted(session_ends)[-2]  # the last is the attempt a week later
    assert timedelta(days=8) - timedelta(hours=1) < ticks[-1] - day_ends <= timedelta(days=8)


# ---------------------------------------------------------------- replayed
def test_the_replay_settles_every_session_under_every_billing_model(day: Replayed) -> None:
    settled = day.events(ChargingSession, "Settled")
    assert len(settled) == SESSIONS
    models = Counter(e.settlement["billing_model"] for e in settled)
    assert set(models) == MODELS_THAT_EXIST, models
    for event in settled:
        shares = sum(Decimal(s["amount_incl_vat"]) for s in event.settlement["charged_to"])
        assert shares == event.settlement["total_incl_vat"]
    assert day.result.dead_lettered == 0
    assert not day.events(DeadLetter, "Recorded")
    # The only refusals are the voucher redemptions planned to be refused.
    refused = day.events(Refusal, "Refused")
    assert day.result.refused == len(refused) == 3
    assert {r.type_name for r in refused} == {"VoucherRedemptionRequested"}


def test_every_payment_command_is_answered_once_by_its_id(day: Replayed) -> None:
    asked = {c["event_id"] for c in day.commands("PaymentCommand")}
    answers = [r.request_id for r in day.of_type(PaymentResult)]
    assert len(answers) == len(set(answers))
    assert set(answers) == asked
    outcomes = Counter(r.outcome for r in day.of_type(PaymentResult))
    for outcome in ("hold_authorized", "hold_failed", "captured", "released",
                    "charge_succeeded", "charge_failed"):
        assert outcomes[outcome] > 0, outcomes


def test_each_answer_follows_the_event_that_caused_its_command(day: Replayed) -> None:
    commands = {c["event_id"]: c for c in day.commands("PaymentCommand")}
    for result in day.of_type(PaymentResult):
        asked_at = datetime.fromisoformat(commands[result.request_id]["occurred_at"])
        assert result.occurred_at > asked_at


def test_the_stations_honour_every_stop_request(day: Replayed) -> None:
    stops = {c["transaction_id"]: c["reason"] for c in day.commands("StopSessionRequested")}
    remote = {e.transaction.transactionInfo.transactionId
              for e in day.of_type(TransactionEvent)
              if e.transaction.transactionInfo.stoppedReason == "Remote"}
    assert set(stops) == remote
    assert set(stops.values()) >= {
        "pre-authorization declined", "wallet balance nearly used",
        "unknown id token: no driver to bill", "driver has overdue debt",
    }


def test_failed_post_paid_charges_are_retried_on_the_schedule(day: Replayed) -> None:
    charges = [c for c in day.commands("PaymentCommand") if c["action"] == "charge"
               and c["reference"].startswith("session:")]
    attempts = Counter(c["reference"] for c in charges)
    assert max(attempts.values()) == 6  # the declined card: first try, five retries, overdue
    assert 3 in attempts.values()  # the flaky card: two failures, then paid


def test_several_tenants_each_get_their_network_and_share_of_sessions(tmp_path: Path) -> None:
    path = tmp_path / "three.jsonl"
    simulate_to(path, "--sessions", "45", "--seed", "2", "--tenants", "3")
    replayed = replay(path)
    tenants = replayed.of_type(TenantConfigured)
    assert [t.tenant_id for t in tenants] == ["cpo-de", "cpo-nl", "cpo-be"]
    sessions = by_transaction(replayed.messages)
    per_tenant = Counter(events[0].tenant_id for events in sessions.values())
    assert per_tenant == {"cpo-de": 15, "cpo-nl": 15, "cpo-be": 15}
    settled = replayed.events(ChargingSession, "Settled")
    assert len(settled) == 45
    assert replayed.result.dead_lettered == 0


# ---------------------------------------------------------------- faults
def test_faults_add_duplicates_reordering_a_late_event_and_two_dead_letters(
    faulty_day: Replayed, day: Replayed
) -> None:
    bad = [line for line in faulty_day.lines if line.error is not None]
    assert len(bad) == 1 and "not JSON" in (bad[0].error or "")
    ids = Counter((m.tenant_id, m.event_id) for m in faulty_day.messages)
    assert sum(n - 1 for n in ids.values()) >= 3
    assert faulty_day.result.duplicates >= 3
    sessions = by_transaction(faulty_day.messages)
    out_of_order = [tx for tx, events in sessions.items()
                    if [e.transaction.seqNo for e in events]
                    != sorted(e.transaction.seqNo for e in events)]
    assert len(out_of_order) >= 2  # one overtaken update, one late after its Ended
    kinds = {tx: [e.transaction.eventType for e in events] for tx, events in sessions.items()}
    late = [tx for tx, k in kinds.items() if "Ended" in k and "Updated" in k[k.index("Ended"):]]
    assert late
    dead = faulty_day.events(DeadLetter, "Recorded")
    assert len(dead) == 2
    reasons = " | ".join(d.reason for d in dead)
    assert "not JSON" in reasons and "unknown tenant 'cpo-unknown'" in reasons
    settled = faulty_day.events(ChargingSession, "Settled")
    assert len(settled) == SESSIONS


# ---------------------------------------------------------------- vouchers
def started_sessions(day: Replayed) -> dict[str, TransactionEvent]:
    return {tx: events[0] for tx, events in by_transaction(day.messages).items()}


def test_the_day_issues_a_campaign_of_session_credit_and_a_partner_bought_balance_batch(
    day: Replayed,
) -> None:
    batches = day.of_type(VoucherBatchIssued)
    campaign = [b for b in batches if b.bought_by_partner_id is None]
    bought = [b for b in batches if b.bought_by_partner_id is not None]
    assert campaign and {b.kind for b in campaign} == {"session_credit"}
    assert any(b.site_location_ids for b in campaign) and any(
        not b.site_location_ids for b in campaign)
    city = {m.location_id for m in day.of_type(LocationConfigured) if "CITY" in m.location_id}
    assert {loc for b in campaign for loc in b.site_location_ids} == city
    starts = [e.occurred_at for e in started_sessions(day).values()]
    mid_day = [b for b in campaign if min(starts) < b.expires_at < max(starts)]
    assert len(mid_day) == 1, "one batch expires while the day's sessions run"
    [gift] = bought
    assert gift.kind == "balance" and gift.price_per_code_net is not None
    assert gift.vat_rate_percent == Decimal("19")
    # The partner is configured (with the configuration) before its batch is issued.
    [partner] = [p for p in day.of_type(PartnerConfigured)
                 if p.partner_id == gift.bought_by_partner_id]
    assert day.messages.index(partner) < day.messages.index(gift)
    invoices = [e.document for e in day.events(InvoiceSeries, "Issued")
                if e.document["kind"] == "voucher_batch"]
    assert [(i["bill_to"], i["total_excl_vat"]) for i in invoices] == [
        (partner.partner_id, gift.price_per_code_net * len(gift.codes))]


def test_drivers_of_every_model_redeem_and_their_credit_pays_part_of_their_sessions(
    day: Replayed,
) -> None:
    models = {m.driver_id: m.billing_model for m in day.of_type(DriverConfigured)}
    redeemed = day.events(Voucher, "Redeemed")
    assert len(redeemed) == 9
    assert len({e.driver_id for e in redeemed}) == 9, "each holder is another driver"
    assert {models[e.driver_id] for e in redeemed} == {"post_paid", "pre_authorization",
                                                      "wallet"}
    settled = [e.settlement for e in day.events(ChargingSession, "Settled")]
    with_credit = [s for s in settled if any(p["payer"] == "voucher" for p in s["charged_to"])]
    assert {s["billing_model"] for s in with_credit} == {"post_paid", "pre_authorization",
                                                         "wallet"}
    for s in with_credit:
        assert all(Decimal(p["amount_incl_vat"]) > 0 for p in s["charged_to"])
        assert sum(Decimal(p["amount_incl_vat"]) for p in s["charged_to"]) == s[
            "total_incl_vat"]
    # The partner's balance codes went into two wallets.
    gift = next(b for b in day.of_type(VoucherBatchIssued) if b.bought_by_partner_id)
    into_wallets = [e for e in day.events(Wallet, "Credited") if e.reason == "voucher"]
    assert [e.amount for e in into_wallets] == [gift.amount_per_code] * 2


def test_credit_pays_only_at_its_sites_and_before_it_expires(day: Replayed) -> None:
    issued = {e.originator_id: e for e in day.events(Voucher, "Issued")}
    starts = started_sessions(day)
    used = day.events(Voucher, "Used")
    assert used
    for use in used:
        voucher, started = issued[use.originator_id], starts[use.transaction_id]
        assert not voucher.site_location_ids or started.location_id in voucher.site_location_ids
        assert started.occurred_at < voucher.expires_at
    # A site-restricted and an expiring credit were redeemed by drivers who charged, but
    # elsewhere or too late: held, never used.
    used_codes = {issued[u.originator_id].code for u in used}
    charged = {s["driver_id"] for s in (e.settlement for e in day.events(
        ChargingSession, "Settled"))}
    unused = [issued[r.originator_id] for r in day.events(Voucher, "Redeemed")
              if issued[r.originator_id].code not in used_codes and r.driver_id in charged]
    assert any(v.site_location_ids for v in unused)
    assert any(v.expires_at < max(s.occurred_at for s in starts.values()) for v in unused)


def test_three_redemptions_are_refused_with_their_reasons(day: Replayed) -> None:
    requests = day.of_type(VoucherRedemptionRequested)
    assert len(requests) == 12
    reasons = sorted(r.reason for r in day.events(Refusal, "Refused"))
    assert len(reasons) == 3
    assert any(r.endswith("is already redeemed") for r in reasons), reasons
    assert any(" expired at " in r for r in reasons), reasons
    assert any(r.startswith("unknown voucher code") for r in reasons), reasons


def test_the_journal_balances_with_vouchers_booked(day: Replayed) -> None:
    entries = day.journal()
    assert all(sum(p.amount for p in e.postings) == 0 for e in entries)
    assert len({e.entry_id for e in entries}) == len(entries)
    accounts = {p.account.split(":")[0] for e in entries for p in e.postings}
    assert {"discounts", "voucher_credit", "partner_receivable"} <= accounts


# ---------------------------------------------------------------- partners and plans
def test_two_partners_with_other_periods_limits_and_discounts_cover_their_drivers(
    day: Replayed,
) -> None:
    partners = {p.partner_id: p for p in day.of_type(PartnerConfigured)}
    fleet, employer = partners["ptn-de-fleet"], partners["ptn-de-employer"]
    assert (fleet.billing_period, fleet.discount_percent, fleet.payment_terms) == (
        "monthly", Decimal(10), "card")
    assert (employer.billing_period, employer.own_sites_only) == ("quarterly", True)
    owned = [m for m in day.of_type(LocationConfigured) if m.owner_partner_id]
    assert [m.owner_partner_id for m in owned] == ["ptn-de-employer"]
    settled = [e.settlement for e in day.events(ChargingSession, "Settled")]
    corporate = [s for s in settled if s["billing_model"] == "corporate"]
    split = [s for s in corporate if {"partner", "wallet"} <= {p["payer"] for p in
             s["charged_to"]} or {"partner", "driver"} <= {p["payer"] for p in s["charged_to"]}]
    assert split, "a session crossing the fleet's pool or a driver limit is split"
    pools = {e.partner_id: e for e in day.events(CorporatePool, "Opened")}
    covered = day.events(CorporatePool, "SessionCovered")
    fleet_used = max(e.pool_used for e in covered
                     if e.originator_id == pools["ptn-de-fleet"].originator_id)
    # Used up, but for the cents no discounted share fits in (a share's bill moves in steps).
    assert fleet.pool_limit - POOL_LEFT_MAX <= fleet_used <= fleet.pool_limit


def test_subscribers_of_both_plan_kinds_and_anchors_use_and_exhaust_allowances(
    day: Replayed,
) -> None:
    plans = {p.plan_id: p for p in day.of_type(PlanPublished)}
    assert {(p.payment, p.anchor) for p in plans.values()} == {
        ("prepaid", "anniversary"), ("postpaid", "calendar")}
    settled = [e.settlement for e in day.events(ChargingSession, "Settled")]
    prepaid = [s for s in settled if s["billing_model"] == "subscription_prepaid"]
    postpaid = [s for s in settled if s["billing_model"] == "subscription_postpaid"]
    assert prepaid and postpaid
    beyond = [s for s in prepaid + postpaid
              if any(p["payer"] != "subscription" for p in s["charged_to"])]
    assert beyond, "an allowance runs out during the day"
    for s in prepaid + postpaid:
        assert sum(Decimal(p["amount_incl_vat"]) for p in s["charged_to"]) == s[
            "total_incl_vat"]


def test_the_month_end_settles_the_partners_and_invoices_the_cycles(day: Replayed) -> None:
    [month_end] = [m for m in day.of_type(ClockTicked) if m.producer == "billing-clock"]
    documents = [e.document for e in day.events(InvoiceSeries, "Issued")]
    settlements = [d for d in documents if d["kind"] == "corporate_settlement"]
    assert sorted(d["bill_to"] for d in settlements) == ["ptn-de-employer", "ptn-de-fleet"]
    assert all(d["issued_at"] <= month_end.now for d in settlements)
    cycles = [d for d in documents if d["kind"] == "subscription_invoice"]
    # Two pre-paid fees at subscribing and two at the next anniversary; two post-paid
    # months (prorated fee and usage) at the month's end.
    assert len(cycles) == 6
    fleet_charge = [c for c in day.commands("PaymentCommand")
                    if c["reference"].startswith("partner_settlement:")]
    assert len(fleet_charge) == 1, "the fleet pays its settlement by card"


def test_the_desk_refunds_a_wallet_session_in_full_and_a_card_session_in_part(
    day: Replayed,
) -> None:
    from ledger.domain.refund import SessionRefunds
    from ledger.messages import RefundRequested

    asked = day.of_type(RefundRequested)
    assert [r.amount is None for r in asked] == [True, False]
    refunded = day.events(SessionRefunds, "Refunded")
    assert [[s["payer"] for s in e.shares] for e in refunded] == [["wallet"], ["driver"]]
    assert refunded[0].credit_cdr is not None and refunded[1].credit_cdr is None
    notes = [e for e in day.events(InvoiceSeries, "Issued")
             if e.document["kind"] == "credit_note"]
    assert [e.number for e in notes] == ["CN-000001", "CN-000002"]
    [card_refund] = [c for c in day.commands("PaymentCommand") if c["action"] == "refund"]
    assert Decimal(card_refund["amount"]) == asked[1].amount
    assert any(r.outcome == "refunded" and r.request_id == card_refund["event_id"]
               for r in day.of_type(PaymentResult))

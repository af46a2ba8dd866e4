"""Model-based test of partners and plans: random sessions of enrolled and subscribed drivers
over weeks of event time (period and cycle ends included), against the rules' invariants.

A hypothesis `RuleBasedStateMachine` drives the ledger on the in-memory store: two partners
(monthly and quarterly, random pools, driver limits and discounts, one covering only its
own site), a pre-paid and a post-paid plan (random allowances, an overage discount), drivers
of every own model enrolled, subscribed, both or neither; sessions that overlap, meter
updates, ends, PSP answers (success or failure), clock ticks across days and month ends, and
redeliveries. After every step:
- no pool is ever used beyond its cap, no driver beyond their limit, no allowance beyond
  what the plan holds;
- each settled session's shares add up to its price; each pool's covered shares add up to
  the partner rows of its sessions, and a settled pool's invoice equals what it covered;
- every journal entry balances, and the partners' receivables equal what their pools
  covered, a settled pool's being its invoice's total (what it covered and the VAT
  rounding booked at settlement; their terms leave the settlements as receivables);
and at the end a fresh ledger fed the same messages reaches the same state.

Profile as in test_ledger_state_machine.py (`EVLEDGER_STATEFUL_PROFILE`: ci or long).
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger.domain.corporate_pool import CorporatePool
from ledger.domain.invoice import InvoiceSeries
from ledger.domain.session import ChargingSession
from ledger.domain.subscription import PlanTerms, Subscription
from ledger.messages import (
    EnrolmentChanged,
    Envelope,
    PartnerConfigured,
    PlanPublished,
    SubscriptionChanged,
)
from tests.builders import (
    T0,
    RecordingLedgerDriver,
    driver,
    envelope,
    location,
    store_view,
    tariff,
    tenant,
    tick,
    top_up,
    tx_event,
)

PROFILE_ENV = "EVLEDGER_STATEFUL_PROFILE"
PROFILES: dict[str, settings] = {
    "ci": settings(max_examples=40, stateful_step_count=40, deadline=None, derandomize=True,
                   database=None, suppress_health_check=[HealthCheck.too_slow]),
    "long": settings(max_examples=500, stateful_step_count=80, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow]),
}
CONFIGURED_AT = T0 - timedelta(days=20)
DRIVERS = ("post", "wallet", "pre", "both", "plain")
LOCATIONS = ("L1", "OWN")
CENT = Decimal("0.01")
money = st.integers(min_value=1, max_value=60).map(lambda n: Decimal(n) * 5 * CENT * 10)


class SponsorMachine(RuleBasedStateMachine):
    @initialize(
        pool1=money, pool2=money, limit2=st.one_of(st.none(), money),
        discount1=st.sampled_from([Decimal(0), Decimal(10), Decimal("12.5")]),
        own_sites=st.booleans(), allowance_kwh=st.integers(1, 40),
        postpaid_sessions=st.integers(0, 2),
    )
    def configure(self, pool1: Decimal, pool2: Decimal, limit2: Decimal | None,
                  discount1: Decimal, own_sites: bool, allowance_kwh: int,
                  postpaid_sessions: int) -> None:
        self.d = RecordingLedgerDriver()
        self.now = T0
        self.open: dict[str, int] = {}  # transaction id -> next seqNo
        self.register: dict[str, int] = {}
        self.applied: list[Envelope] = []
        self.count = 0
        at = CONFIGURED_AT
        common = {**envelope("t1", at), "effective_at": at}

        def fresh() -> dict[str, Any]:
            return {**common, **envelope("t1", at)}

        self.apply(
            tenant(time_zone="Europe/Berlin", retry_schedule_hours=[1]), tariff(),
            location("L1"), location("OWN", owner_partner_id="P1"),
            driver("post", "post_paid"), driver("wallet", "wallet"),
            driver("pre", "pre_authorization"), driver("both", "post_paid"),
            driver("plain", "post_paid"), top_up("wallet", "30.00"),
            PartnerConfigured(**fresh(), partner_id="P1", billing_period="monthly",
                              pool_limit=pool1, discount_percent=discount1,
                              own_sites_only=own_sites),
            PartnerConfigured(**fresh(), partner_id="P2", billing_period="quarterly",
                              pool_limit=pool2),
            EnrolmentChanged(**fresh(), partner_id="P1", driver_id="post", action="enrol"),
            EnrolmentChanged(**fresh(), partner_id="P1", driver_id="wallet", action="enrol"),
            EnrolmentChanged(**fresh(), partner_id="P2", driver_id="pre", action="enrol",
                             driver_limit=limit2),
            EnrolmentChanged(**fresh(), partner_id="P2", driver_id="both", action="enrol",
                             driver_limit=limit2),
            PlanPublished(**fresh(), plan_id="PRE", payment="prepaid", fee_net=Decimal("5"),
                          fee_vat_rate_percent=Decimal(19),
                          allowance_kwh=Decimal(allowance_kwh)),
            PlanPublished(**fresh(), plan_id="POST", payment="postpaid",
                          fee_net=Decimal("3"), fee_vat_rate_percent=Decimal(19),
                          anchor="calendar", allowance_sessions=postpaid_sessions,
                          overage_discount_percent=Decimal(20)),
            SubscriptionChanged(**fresh(), driver_id="both", plan_id="PRE", action="subscribe"),
            SubscriptionChanged(**fresh(), driver_id="plain", plan_id="POST",
                                action="subscribe"),
        )
        self.answer_all(success=True)

    # ------------------------------------------------------------------ helpers
    def apply(self, *messages: Envelope) -> None:
        self.d.apply(*messages)
        self.applied.extend(messages)

    def answer_all(self, success: bool) -> None:
        for command in self.d.new_commands():
            if command.get("_type") != "PaymentCommand":
                continue
            outcome = {"authorize": "hold_authorized" if success else "hold_failed",
                       "capture": "captured", "release": "released",
                       "charge": "charge_succeeded" if success else "charge_failed",
                       }[command["action"]]
            self.d.answer(command, outcome, at=self.now)

    # ------------------------------------------------------------------ rules
    @precondition(lambda self: len(self.open) < 4)
    @rule(driver_id=st.sampled_from(DRIVERS), where=st.sampled_from(LOCATIONS),
          minutes=st.integers(1, 300))
    def start(self, driver_id: str, where: str, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        self.count += 1
        tx = f"tx{self.count}"
        self.open[tx] = 1
        self.register[tx] = 1_000_000
        self.apply(tx_event(tx, "Started", 0, self.now, self.register[tx], driver_id=driver_id,
                            location_id=where))
        self.answer_all(success=True)

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data(), wh=st.integers(0, 30_000), minutes=st.integers(1, 120))
    def update(self, data: st.DataObject, wh: int, minutes: int) -> None:
        tx = data.draw(st.sampled_from(sorted(self.open)))
        self.now += timedelta(minutes=minutes)
        self.register[tx] += wh
        self.apply(tx_event(tx, "Updated", self.open[tx], self.now, self.register[tx],
                            location_id=self._location(tx)))
        self.open[tx] += 1
        self.answer_all(success=True)

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data(), success=st.booleans())
    def end(self, data: st.DataObject, success: bool) -> None:
        tx = data.draw(st.sampled_from(sorted(self.open)))
        self.now += timedelta(minutes=5)
        self.apply(tx_event(tx, "Ended", self.open.pop(tx), self.now, self.register[tx],
                            state="EVConnected", stopped_reason="EVDisconnected",
                            location_id=self._location(tx)))
        self.answer_all(success=success)

    @rule(hours=st.sampled_from([2, 30, 24 * 9, 24 * 25]), success=st.booleans())
    def time_passes(self, hours: int, success: bool) -> None:
        self.now += timedelta(hours=hours)
        self.apply(tick(self.now))
        self.answer_all(success=success)

    @precondition(lambda self: bool(self.applied))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        self.d.apply(data.draw(st.sampled_from(self.applied)))
        self.answer_all(success=True)

    def _location(self, tx: str) -> str:
        session = self.d.get(ChargingSession, ChargingSession.create_id("t1", tx))
        return str(session.location_id)

    # ------------------------------------------------------------------ invariants
    def _view(self) -> Any:
        return store_view(self.d)

    @invariant()
    def caps_hold_and_shares_add_up(self) -> None:
        view = self._view()
        pools = [s for s in view.states.values() if s["__class__"] == "CorporatePool"]
        sessions = [s for s in view.states.values() if s["__class__"] == "ChargingSession"]
        partner_rows: dict[tuple[str, Any], Decimal] = defaultdict(Decimal)
        for session in sessions:
            settlement = session["settlement"]
            if settlement is None:
                continue
            rows = settlement["charged_to"]
            assert sum(Decimal(r["amount_incl_vat"]) for r in rows) == (
                settlement["total_incl_vat"])
            payer = session["payer"]
            for row in rows:
                if row["payer"] == "partner":
                    assert payer.partner is not None
                    partner_rows[(row["id"], payer.partner.period_start)] += Decimal(
                        row["amount_incl_vat"])
        for pool in pools:
            assert pool["used"] <= pool["pool_limit"], pool
            for driver_id, used in pool["used_by_driver"].items():
                enrolment_limit = self._driver_limit(driver_id)
                assert enrolment_limit is None or used <= enrolment_limit
            covered = sum((c["billed_gross"] for c in pool["covered"]), Decimal(0))
            assert covered == pool["used"]
            assert partner_rows[(pool["partner_id"], pool["period_start"])] == covered
        for subscription in (s for s in view.states.values()
                             if s["__class__"] == "Subscription"):
            plan = PlanTerms.from_settings(subscription["plan"])
            for used in subscription["usage"].values():
                if plan.allowance_kwh is not None:
                    assert used["kwh"] <= plan.allowance_kwh
                if plan.allowance_sessions is not None:
                    assert used["sessions"] <= plan.allowance_sessions

    @invariant()
    def books_balance_and_partners_owe_what_they_were_billed(self) -> None:
        view = self._view()
        entries = view.journals.get("t1", [])
        assert all(sum(p.amount for p in e.postings) == 0 for e in entries)
        assert len({e.entry_id for e in entries}) == len(entries)
        owed: dict[str, Decimal] = defaultdict(Decimal)
        for e in entries:
            for p in e.postings:
                if p.account.startswith("partner_receivable:"):
                    owed[p.account.split(":", 1)[1]] += p.amount
        rounding = {e.entry_id: sum((p.amount for p in e.postings
                                     if p.account.startswith("partner_receivable:")), Decimal(0))
                    for e in entries if e.entry_id.startswith("settlement_vat_rounding:")}
        invoices = {e.number: e.document for e in view.events
                    if isinstance(e, InvoiceSeries.Issued)}
        billed: dict[str, Decimal] = defaultdict(Decimal)
        for s in view.states.values():
            if s["__class__"] != "CorporatePool":
                continue
            billed[s["partner_id"]] += s["used"]
            if s["invoice_number"]:
                # The invoice is what was covered and its VAT rounding, booked at settlement.
                entry_id = (f"settlement_vat_rounding:t1:{s['partner_id']}:"
                            f"{s['period_start'].isoformat()}")
                total = invoices[s["invoice_number"]]["total_incl_vat"]
                assert total == s["used"] + rounding.pop(entry_id, Decimal(0))
                billed[s["partner_id"]] += total - s["used"]
        assert rounding == {}, "a rounding entry without its settlement"
        assert {k: v for k, v in owed.items() if v} == {k: v for k, v in billed.items() if v}

    def _driver_limit(self, driver_id: str) -> Decimal | None:
        for message in self.applied:
            if isinstance(message, EnrolmentChanged) and message.driver_id == driver_id:
                return message.driver_limit
        return None

    def teardown(self) -> None:
        if not hasattr(self, "d"):
            return
        live = store_view(self.d).states
        assert store_view(self.d.replayed()).states == live, "replay differs from live state"


TestSponsorMachine = SponsorMachine.TestCase
TestSponsorMachine.settings = PROFILES[os.environ.get(PROFILE_ENV, "ci")]
# Names used only in docstrings and types above.
__all__ = ["CorporatePool", "Subscription", "TestSponsorMachine"]

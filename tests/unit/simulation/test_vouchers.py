"""The simulated day's vouchers, as planned: every path whatever the network's size."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest

from consumers.simulation.charge_point import SessionPlan
from consumers.simulation.network import EventIds, build_tenant, location_ids
from consumers.simulation.planner import day_start_utc, plan_day
from consumers.simulation.scenario import DEFAULT_DAY
from consumers.simulation.vouchers import (
    REFUSED_OUTCOMES,
    VoucherPlan,
    batch_issued,
    plan_vouchers,
    redemption_requested,
)

Sessions = dict[str, list[SessionPlan]]  # driver id -> their sessions of the day, in order


def planned(sessions: int, seed: int = 3, index: int = 0) -> tuple[VoucherPlan, Sessions]:
    rng = random.Random(seed)
    tenant = build_tenant(index, sessions, rng)
    day = plan_day(tenant, sessions, DEFAULT_DAY, rng)
    plan = plan_vouchers(tenant, day, DEFAULT_DAY, random.Random(f"vouchers:{seed}"))
    by_driver: Sessions = {}
    for s in sorted(day.sessions, key=lambda s: s.start_at):
        if s.kind == "driver" and s.driver_id:
            by_driver.setdefault(s.driver_id, []).append(s)
    return plan, by_driver


@pytest.mark.parametrize("sessions", [1, 14, 60, 200])
def test_every_voucher_path_is_planned_whatever_the_size(sessions: int) -> None:
    plan, _ = planned(sessions)
    assert [b.story for b in plan.batches] == ["welcome", "city", "flash", "gift"]
    outcomes = Counter(r.expected for r in plan.redemptions)
    assert outcomes == {"redeemed": 9, "already_redeemed": 1, "expired": 1, "unknown_code": 1}
    holders = [r.driver_id for r in plan.redemptions if r.expected == "redeemed"]
    assert len(set(holders)) == len(holders)
    issued = {code for b in plan.batches for code in b.codes}
    assert len(issued) == sum(len(b.codes) for b in plan.batches)
    for r in plan.redemptions:
        if r.expected == "unknown_code":
            assert r.code not in issued
        else:
            assert r.code in issued


def test_refusals_come_after_what_makes_them_refusals() -> None:
    plan, _ = planned(60)
    flash = plan.batch("flash")
    by_code = {r.code: r for r in plan.redemptions if r.expected == "redeemed"}
    for r in plan.redemptions:
        if r.expected == "already_redeemed":
            assert r.at > by_code[r.code].at
            assert r.driver_id != by_code[r.code].driver_id
        elif r.expected == "expired":
            assert r.code in flash.codes and r.at >= flash.expires_at
    assert set(REFUSED_OUTCOMES) == {r.expected for r in plan.redemptions} - {"redeemed"}


def test_holders_redeem_before_they_charge_and_flash_codes_before_they_expire() -> None:
    plan, sessions = planned(60)
    flash = plan.batch("flash")
    for r in plan.redemptions:
        if r.expected != "redeemed":
            continue
        assert r.at > max(b.issued_at for b in plan.batches)
        if r.code in flash.codes:
            assert r.at < flash.expires_at
        own = [s for s in sessions.get(r.driver_id, [])
               if r.code not in flash.codes or s.start_at < flash.expires_at]
        if own:
            assert own[0].start_at - timedelta(hours=1) < r.at < own[0].start_at


def test_the_batches_say_what_the_ledger_needs() -> None:
    rng = random.Random(5)
    tenant = build_tenant(1, 30, rng)  # NL: 21 % VAT
    day = plan_day(tenant, 30, DEFAULT_DAY, rng)
    plan = plan_vouchers(tenant, day, DEFAULT_DAY, random.Random(5))
    ids = EventIds(tenant.tenant_id)
    city, flash, gift = plan.batch("city"), plan.batch("flash"), plan.batch("gift")
    assert list(city.site_location_ids) == location_ids(tenant, ("city",))
    start = day_start_utc(DEFAULT_DAY, tenant.time_zone)
    assert start < flash.expires_at < start + timedelta(days=1)
    message = batch_issued(tenant.tenant_id, gift, ids)
    assert message.bought_by_partner_id == plan.partner_id
    assert message.vat_rate_percent == tenant.country.vat_percent
    assert message.kind == "balance" and not message.site_location_ids
    assert all(b.expires_at > b.issued_at for b in plan.batches)
    request = redemption_requested(tenant.tenant_id, plan.redemptions[0], ids)
    assert request.event_id != message.event_id


def test_the_same_seed_plans_the_same_vouchers_and_another_seed_other_codes() -> None:
    first, _ = planned(40, seed=8)
    again, _ = planned(40, seed=8)
    other, _ = planned(40, seed=9)
    assert first == again
    assert first.batch("welcome").codes != other.batch("welcome").codes

from decimal import Decimal
from typing import Any

from ledger.domain.payer_rules import PayerContext, decide_payer

TENANT = {"preauth_hold_amount": Decimal("50"), "block_sessions_on_overdue_debt": True}


def context(**overrides: Any) -> PayerContext:
    base: dict[str, Any] = {
        "location": {"open_access": False, "open_access_evse_ids": []},
        "evse_id": "CP1:1", "terminal_reference": None, "terminal_hold": None,
        "driver_id": "d1",
        "driver": {"billing_model": "post_paid", "payment_method_token": "tok"},
        "driver_has_overdue_debt": False, "tenant": TENANT, "tariff_hold_override": None,
    }
    base.update(overrides)
    return PayerContext(**base)


def test_open_access_wins_over_everything() -> None:
    decision = decide_payer(context(location={"open_access": True}, terminal_reference="T1"))
    assert decision.billing_model == "open_access"


def test_a_free_evse_at_a_paid_location_is_open_access() -> None:
    decision = decide_payer(context(location={"open_access_evse_ids": ["CP1:1"]}))
    assert decision.billing_model == "open_access"


def test_a_terminal_payment_comes_before_the_drivers_own_model() -> None:
    assert decide_payer(context(terminal_reference="T1")).billing_model == "ad_hoc_terminal"


def test_overdue_debt_refuses_the_session_when_the_tenant_says_so() -> None:
    decision = decide_payer(context(driver_has_overdue_debt=True))
    assert decision.billing_model is None
    assert decision.refusal_reason == "driver has overdue debt"


def test_overdue_debt_is_tolerated_when_the_tenant_allows_it() -> None:
    tenant = {**TENANT, "block_sessions_on_overdue_debt": False}
    decision = decide_payer(context(driver_has_overdue_debt=True, tenant=tenant))
    assert decision.billing_model == "post_paid"


def test_hold_amount_comes_from_tariff_then_location_then_tenant() -> None:
    driver = {"billing_model": "pre_authorization", "payment_method_token": "tok"}
    assert decide_payer(context(driver=driver)).hold_amount == Decimal("50")
    located = context(driver=driver, location={"preauth_hold_amount": Decimal("30")})
    assert decide_payer(located).hold_amount == Decimal("30")
    tariffed = context(driver=driver, location={"preauth_hold_amount": Decimal("30")},
                       tariff_hold_override=Decimal("80"))
    assert decide_payer(tariffed).hold_amount == Decimal("80")


def test_unknown_token_means_nobody_pays() -> None:
    decision = decide_payer(context(driver=None, driver_id=None))
    assert decision.billing_model is None

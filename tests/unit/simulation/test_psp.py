"""The simulated PSP's policy: who is declined, idempotent answers, event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from consumers.simulation.psp import Psp, PspPolicy, decide, result_event_id
from ledger.messages import PaymentCommand

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def command(action: str = "charge", token: str | None = "pm_card_ok", *,
            event_id: str = "cmd-1", reference: str = "session:tx-1", amount: str = "12.34",
            psp_reference: str | None = None, at: datetime = AT) -> PaymentCommand:
    fields: dict[str, Any] = {
        "event_id": event_id, "tenant_id": "t1", "occurred_at": at, "producer": "evledger",
        "action": action, "idempotency_key": event_id, "amount": Decimal(amount),
        "currency": "EUR", "payment_method_token": token, "reference": reference,
        "psp_reference": psp_reference,
    }
    return PaymentCommand.model_validate(fields)


def test_an_ordinary_card_is_charged_and_a_hold_authorized() -> None:
    policy = PspPolicy()
    assert decide(policy, command("charge"), 0).outcome == "charge_succeeded"
    assert decide(policy, command("authorize"), 0).outcome == "hold_authorized"


@pytest.mark.parametrize("action,failed", [("charge", "charge_failed"),
                                           ("authorize", "hold_failed")])
def test_a_token_containing_decline_always_fails(action: str, failed: str) -> None:
    for attempt in range(10):
        decision = decide(PspPolicy(), command(action, "pm_card_decline_d1"), attempt)
        assert decision.outcome == failed
        assert decision.reason == "card declined"


def test_a_command_without_a_token_fails() -> None:
    assert decide(PspPolicy(), command("charge", None), 0).outcome == "charge_failed"


def test_a_flaky_card_fails_its_first_attempts_then_pays() -> None:
    policy = PspPolicy(flaky_failures=2)
    outcomes = [decide(policy, command("charge", "pm_flaky_d2"), n).outcome for n in range(4)]
    assert outcomes == ["charge_failed", "charge_failed", "charge_succeeded", "charge_succeeded"]


@pytest.mark.parametrize("action,outcome", [("capture", "captured"), ("release", "released"),
                                            ("refund", "refunded")])
def test_capture_release_and_refund_always_succeed(action: str, outcome: str) -> None:
    decision = decide(PspPolicy(decline_rate=1.0), command(action, "pm_card_decline_x"), 5)
    assert decision.outcome == outcome


def test_random_declines_follow_the_rate_and_the_seed() -> None:
    commands = [command(event_id=f"cmd-{n}") for n in range(2_000)]
    declined = [decide(PspPolicy(seed=1, decline_rate=0.1), c, 0).reason is not None
                for c in commands]
    again = [decide(PspPolicy(seed=1, decline_rate=0.1), c, 0).reason is not None
             for c in commands]
    other_seed = [decide(PspPolicy(seed=2, decline_rate=0.1), c, 0).reason is not None
                  for c in commands]
    assert declined == again
    assert declined != other_seed
    assert 140 <= sum(declined) <= 260  # 10 % of 2,000, give or take
    assert not any(decide(PspPolicy(decline_rate=0.0), c, 0).reason for c in commands)


def test_the_result_answers_the_command_by_its_id_after_the_delay() -> None:
    psp = Psp(PspPolicy(result_delay_s=3))
    result = psp.answer(command("authorize", amount="50.00", event_id="cmd-hold"))
    assert result.request_id == "cmd-hold"
    assert result.outcome == "hold_authorized"
    assert result.amount == Decimal("50.00")
    assert result.currency == "EUR"
    assert result.occurred_at == AT + timedelta(seconds=3)
    assert result.psp_reference
    assert result.event_id == result_event_id(command(event_id="cmd-hold"))


def test_an_answer_never_comes_before_not_before() -> None:
    later = AT + timedelta(hours=1)
    result = Psp(PspPolicy(result_delay_s=2)).answer(command(), not_before=later)
    assert result.occurred_at == later + timedelta(seconds=2)


def test_a_resent_command_gets_the_same_answer() -> None:
    psp = Psp(PspPolicy(flaky_failures=1))
    first = psp.answer(command("charge", "pm_flaky", event_id="attempt-1"))
    again = psp.answer(command("charge", "pm_flaky", event_id="attempt-1"))
    retry = psp.answer(command("charge", "pm_flaky", event_id="attempt-2"))
    assert first == again
    assert first.outcome == "charge_failed" and first.psp_reference is None
    assert retry.outcome == "charge_succeeded"
    assert retry.event_id != first.event_id


def test_capture_and_release_keep_the_holds_psp_reference() -> None:
    result = Psp(PspPolicy()).answer(command("capture", psp_reference="psp_hold_1"))
    assert result.outcome == "captured"
    assert result.psp_reference == "psp_hold_1"


@pytest.mark.parametrize("settings", [{"decline_rate": 1.5}, {"decline_rate": -0.1},
                                      {"flaky_failures": -1}, {"result_delay_s": -1},
                                      {"decline_marker": ""}])
def test_a_policy_out_of_range_is_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PspPolicy(**settings)

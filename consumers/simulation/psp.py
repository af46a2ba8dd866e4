"""A payment service provider's test mode: how it answers each PaymentCommand.

Pure and deterministic. `decide` is a function of the policy, the command and how many
attempts of the same payment the PSP has seen before; `Psp` adds the little memory a PSP
keeps (answers by command id, attempts per payment) so a re-sent command gets the very same
answer, and builds the `PaymentResult` message the ledger expects:
- `request_id` and `event_id` as every PSP adapter sets them (consumers/psp_results.py):
  answering twice publishes the same event twice, which the ledger deduplicates;
- `occurred_at` is the command's event time plus the policy's delay (never the wall clock),
  or later when the caller says the answer cannot come before `not_before`.

Who is declined (authorize and charge only; capture, release and refund always succeed):
1. a command without a payment method token;
2. a token containing `decline_marker` ("decline"), always;
3. a token containing `flaky_marker` ("flaky"), for its first `flaky_failures` attempts at
   the same payment (same tenant, token and reference), then never;
4. any other token with probability `decline_rate`, drawn from a hash of the seed and the
   command id (so the same command is always decided the same way).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal
from uuid import uuid5

from consumers.psp_results import (
    FAILURE_OUTCOME,
    RESULT_NAMESPACE,
    SUCCESS_OUTCOME,
    payment_result,
    result_event_id,
)
from ledger.messages import PaymentCommand, PaymentOutcome, PaymentResult

# result_event_id is re-exported: callers of the simulator find the id scheme here too.
__all__ = ["Psp", "PspDecision", "PspPolicy", "decide", "psp_reference_for", "result_event_id"]

# Namespace of the ids this simulated PSP makes up (PSP references).
PSP_NAMESPACE = RESULT_NAMESPACE
PSP_PRODUCER = "psp-simulator"
# A result later than a day after its command would stall a session for a day: a policy
# asking for that is a mistake, not a slow PSP.
RESULT_DELAY_S_MAX = 86_400
# Answers and attempt counts a PSP remembers; one simulated day needs a few thousand.
ANSWERS_REMEMBERED_MAX = 1_000_000
# Failures a flaky card can be configured to produce; more than every retry is "decline".
FLAKY_FAILURES_MAX = 20

_SUCCESS = SUCCESS_OUTCOME
_FAILURE = FAILURE_OUTCOME
# A card's decline markers decide new payments; this PSP captures, releases and refunds
# what it already holds or took, always.
_DECLINABLE = frozenset({"authorize", "charge"})


@dataclass(frozen=True, slots=True)
class PspPolicy:
    seed: int = 0
    decline_rate: float = 0.0  # a probability, not money
    flaky_failures: int = 2
    result_delay_s: int = 2
    decline_marker: str = "decline"
    flaky_marker: str = "flaky"

    def __post_init__(self) -> None:
        if not 0.0 <= self.decline_rate <= 1.0:
            raise ValueError(f"decline_rate {self.decline_rate} is not a probability")
        if not 0 <= self.flaky_failures <= FLAKY_FAILURES_MAX:
            raise ValueError(f"flaky_failures must be 0..{FLAKY_FAILURES_MAX}")
        if not 0 <= self.result_delay_s <= RESULT_DELAY_S_MAX:
            raise ValueError(f"result_delay_s must be 0..{RESULT_DELAY_S_MAX}")
        if not self.decline_marker or not self.flaky_marker:
            raise ValueError("token markers must not be empty")


@dataclass(frozen=True, slots=True)
class PspDecision:
    outcome: PaymentOutcome
    reason: str | None = None

    @property
    def approved(self) -> bool:
        return self.reason is None


Action = Literal["authorize", "capture", "release", "charge", "refund"]


def decide(policy: PspPolicy, command: PaymentCommand, earlier_attempts: int) -> PspDecision:
    """The PSP's answer to `command`, the `earlier_attempts`+1-th try of the same payment."""
    action: Action = command.action
    if action not in _DECLINABLE:
        return PspDecision(_SUCCESS[action])
    failed = _FAILURE[action]
    token = command.payment_method_token
    if not token:
        return PspDecision(failed, "no payment method")
    if policy.decline_marker in token:
        return PspDecision(failed, "card declined")
    if policy.flaky_marker in token and earlier_attempts < policy.flaky_failures:
        return PspDecision(failed, "issuer unavailable")
    if policy.decline_rate > 0 and _draw(policy.seed, command.event_id) < policy.decline_rate:
        return PspDecision(failed, "insufficient funds")
    return PspDecision(_SUCCESS[action])


def _draw(seed: int, command_id: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the command id."""
    digest = hashlib.sha256(f"{seed}\x1f{command_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def psp_reference_for(command: PaymentCommand) -> str:
    """A hold's or charge's reference at the PSP; capture and release keep the hold's."""
    if command.action in ("capture", "release", "refund") and command.psp_reference:
        return command.psp_reference
    digest = uuid5(PSP_NAMESPACE, f"reference\x1f{command.tenant_id}\x1f{command.event_id}")
    return f"psp_{digest.hex[:24]}"


class Psp:
    """The PSP's memory around `decide`: one answer per command id, attempts per payment."""

    def __init__(self, policy: PspPolicy) -> None:
        self.policy = policy
        self._answers: dict[tuple[str, str], PaymentResult] = {}
        self._attempts: dict[tuple[str, str, str, str], int] = {}

    def answer(self, command: PaymentCommand, not_before: datetime | None = None) -> PaymentResult:
        """The result for `command`; the same command again gets the same result."""
        answered = self._answers.get((command.tenant_id, command.event_id))
        if answered is not None:
            return answered
        if len(self._answers) >= ANSWERS_REMEMBERED_MAX:
            raise RuntimeError(f"the simulated PSP remembers {ANSWERS_REMEMBERED_MAX} answers")
        payment = (
            command.tenant_id, command.action, command.payment_method_token or "",
            command.reference,
        )
        earlier = self._attempts.get(payment, 0)
        decision = decide(self.policy, command, earlier)
        self._attempts[payment] = earlier + 1
        at = command.occurred_at
        if not_before is not None and not_before > at:
            at = not_before
        result = payment_result(
            tenant_id=command.tenant_id, command_id=command.event_id,
            outcome=decision.outcome, amount=Decimal(command.amount),
            currency=command.currency,
            at=at + timedelta(seconds=self.policy.result_delay_s), producer=PSP_PRODUCER,
            psp_reference=psp_reference_for(command) if decision.approved else None,
            reason=decision.reason,
        )
        self._answers[(command.tenant_id, command.event_id)] = result
        return result

    @property
    def answered(self) -> int:
        return len(self._answers)

"""Payments through the PSP: charges with retries, and holds that resolve exactly once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.errors import InvalidInput
from ledger.domain.ids import natural_id


class Charge(Aggregate):
    """One amount to collect from a card on file, tried on the tenant's retry schedule.

    `debit_account` is what the charge settles when it succeeds (a driver receivable, or a
    wallet for a top-up), so the journal moves money from there to PSP clearing.
    """

    @staticmethod
    def create_id(tenant_id: str, purpose: str, reference: str) -> UUID:
        return natural_id("charge", tenant_id, purpose, reference)

    @event("Requested")
    def __init__(
        self,
        tenant_id: str,
        purpose: str,
        reference: str,
        driver_id: str,
        amount: Decimal,
        currency: str,
        payment_method_token: str | None,
        settles_account: str,
        retry_schedule_hours: list[int],
    ) -> None:
        self.tenant_id = tenant_id
        self.purpose = purpose
        self.reference = reference
        self.driver_id = driver_id
        self.amount = amount
        self.currency = currency
        self.payment_method_token = payment_method_token
        self.settles_account = settles_account
        self.retry_schedule_hours = retry_schedule_hours
        self.attempts: list[dict[str, Any]] = []
        self.status = "pending"
        self.overdue = False  # stays true once overdue, until a later attempt succeeds
        self.first_failure_at: datetime | None = None
        self.psp_reference: str | None = None  # the PSP's id of the payment that succeeded

    @event("AttemptIssued")
    def issue_attempt(self, command_id: str, idempotency_key: str, at: datetime) -> None:
        self.attempts.append(
            {"command_id": command_id, "idempotency_key": idempotency_key, "at": at}
        )
        self.status = "pending"

    @event("Succeeded")
    def succeed(
        self, request_id: str, psp_reference: str | None, journal_entries: list[dict[str, Any]]
    ) -> None:
        self.status = "succeeded"
        self.psp_reference = psp_reference  # a refund names it

    @event("AttemptFailed")
    def fail_attempt(self, request_id: str, reason: str, at: datetime) -> None:
        if self.first_failure_at is None:
            self.first_failure_at = at
        self.status = "failed"

    @event("PaidElsewhere")
    def settle_elsewhere(
        self, payment_reference: str, method: str, journal_entries: list[dict[str, Any]]
    ) -> None:
        """Overdue, then paid outside the PSP's retries: no later attempt may collect it."""
        self.status = "paid_elsewhere"

    @event("BecameOverdue")
    def become_overdue(self, at: datetime) -> None:
        self.status = "overdue"
        self.overdue = True

    # ------------------------------------------------------------------ questions
    @property
    def attempt_count(self) -> int:
        return len(self.attempts)

    def is_current_attempt(self, request_id: str) -> bool:
        return bool(self.attempts) and self.attempts[-1]["command_id"] == request_id

    def next_retry_at(self) -> datetime | None:
        """When the next retry is due: first failure + schedule[n-1], or None when done."""
        from datetime import timedelta

        if self.first_failure_at is None:
            return None
        retries_done = self.attempt_count - 1
        if retries_done >= len(self.retry_schedule_hours):
            return None
        return self.first_failure_at + timedelta(hours=self.retry_schedule_hours[retries_done])

    def check_result_amount(self, amount: Decimal) -> None:
        if amount != self.amount:
            raise InvalidInput(
                f"charge result for {amount} does not match the {self.amount} requested"
            )


class Hold(Aggregate):
    """A pre-authorization (or a terminal's authorization): reserved, then captured up to
    the reserved amount and released for the rest; it resolves exactly once."""

    @staticmethod
    def create_id(tenant_id: str, reference: str) -> UUID:
        return natural_id("hold", tenant_id, reference)

    @event("Requested")
    def __init__(
        self,
        tenant_id: str,
        reference: str,
        amount: Decimal,
        currency: str,
        payment_method_token: str | None,
        authorize_command_id: str | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.reference = reference
        self.amount = amount
        self.currency = currency
        self.payment_method_token = payment_method_token
        self.authorize_command_id = authorize_command_id
        # Two independent questions: did the PSP authorize it, and is it resolved?
        self.authorization = "pending"  # pending | authorized | declined
        self.resolution = "open"  # open | decided | resolved
        self.psp_reference: str | None = None
        self.capture_amount: Decimal | None = None
        self.resolution_command_ids: list[str] = []
        self.captured: Decimal = Decimal(0)
        self.released = False
        # The PSP's reason when it refused to capture or to release (None: it did not).
        self.capture_failure: str | None = None
        self.release_failure: str | None = None

    @event("Authorized")
    def authorize(self, psp_reference: str | None, at: datetime) -> None:
        self.authorization = "authorized"
        self.psp_reference = psp_reference

    @event("Declined")
    def decline(self, reason: str, at: datetime) -> None:
        self.authorization = "declined"

    @event("ResolutionDecided")
    def decide_resolution(self, capture_amount: Decimal, command_ids: list[str]) -> None:
        """Capture this much and release the rest: decided once, at session end."""
        self.capture_amount = capture_amount
        self.resolution_command_ids = command_ids
        self.resolution = "decided"

    @event("Captured")
    def record_capture(
        self, request_id: str, amount: Decimal, journal_entries: list[dict[str, Any]]
    ) -> None:
        self.captured = amount

    @event("Released")
    def record_release(self, request_id: str, amount: Decimal) -> None:
        self.released = True

    @event("CaptureFailed")
    def record_capture_failure(self, request_id: str, reason: str) -> None:
        """Nothing came in: what the capture was to cover is charged another way."""
        self.capture_failure = reason

    @event("ReleaseFailed")
    def record_release_failure(self, request_id: str, reason: str) -> None:
        self.release_failure = reason

    @event("Resolved")
    def resolve(self) -> None:
        self.resolution = "resolved"

    @property
    def is_resolution_decided(self) -> bool:
        return self.capture_amount is not None

    def check_capture(self, amount: Decimal) -> None:
        if self.capture_amount is None:
            raise InvalidInput("capture result for a hold with no capture requested")
        if amount > self.amount:
            raise InvalidInput(f"capture of {amount} exceeds the hold of {self.amount}")
        if amount != self.capture_amount:
            raise InvalidInput(f"capture of {amount} differs from the {self.capture_amount} asked")
        if self.captured:
            raise InvalidInput("hold already captured")
        if self.capture_failure is not None:
            raise InvalidInput(f"hold capture already failed: {self.capture_failure}")

"""Refunds read model: one row per refund of a settled session (written once: a refund is a
fact), with the payers it gave money back to and the credit notes it issued."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.refund import SessionRefunds
from projections.changes import RowChange, event_class
from projections.identities import Identities, identity_for
from projections.sql import REFUND_RECORDED
from projections.values import amount_text, canonical_json, instant_text


def refunded(event: Any, identities: Identities) -> list[RowChange]:
    identity = identity_for(identities, event)
    currency = str(event.currency)
    credit_cdr = event.credit_cdr
    return [
        RowChange(
            REFUND_RECORDED,
            {
                "tenant_id": identity.tenant_id,
                "refund_id": str(event.refund_id),
                "session_id": str(identity.natural_key),
                "currency": currency,
                "amount": amount_text(event.amount, currency),
                "reason": str(event.reason),
                "refunded_at": instant_text(event.at),
                "shares_json": canonical_json(list(event.shares)),
                "credit_notes_json": canonical_json(list(event.credit_notes)),
                "credit_cdr_id": None if credit_cdr is None else str(credit_cdr["id"]),
            },
        )
    ]


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(SessionRefunds, "Refunded"): refunded,
}

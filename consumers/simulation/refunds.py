"""The finance desk's refunds in the simulated day: two disputed sessions, the day after.

Chosen from what the ledger settled, deterministically (the first by transaction id): a
wallet session refunded in full (the charger stopped delivering energy), and a post-paid
card session whose charge was collected refunded in part (goodwill for slow charging). So
the demo shows credit notes, money back to a wallet and a PSP refund command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from ledger.messages import RefundRequested

# When the desk asks, after the start of the day: every session of the day has ended.
REFUNDS_AFTER_DAY_START = timedelta(days=1, hours=12)
FULL_REFUND_REASON = "charger fault: the session stopped delivering energy"
PARTIAL_REFUND_REASON = "goodwill: slow charging at a busy site"
PRODUCER = "finance-desk"
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class SettledSession:
    transaction_id: str
    payers: tuple[str, ...]  # `charged_to` payer kinds, in paying order
    total_incl_vat: Decimal
    card_collected: bool  # a post-paid charge of the session that succeeded


def refund_requests(
    tenant_id: str, currency: str, sessions: Iterable[SettledSession], at: datetime,
    event_id: Callable[[str], str],
) -> list[RefundRequested]:
    ordered = sorted(sessions, key=lambda s: s.transaction_id)
    wallet = next((s for s in ordered if s.payers == ("wallet",) and s.total_incl_vat > 0),
                  None)
    card = next((s for s in ordered if s.payers == ("driver",) and s.card_collected
                 and s.total_incl_vat >= 2 * CENT), None)
    requests: list[RefundRequested] = []
    if wallet is not None:
        requests.append(RefundRequested(
            event_id=event_id("refund"), tenant_id=tenant_id, occurred_at=at,
            producer=PRODUCER, session_id=wallet.transaction_id, currency=currency,
            reason=FULL_REFUND_REASON,
        ))
    if card is not None:
        requests.append(RefundRequested(
            event_id=event_id("refund"), tenant_id=tenant_id, occurred_at=at,
            producer=PRODUCER, session_id=card.transaction_id, currency=currency,
            amount=(card.total_incl_vat / 2).quantize(CENT, rounding=ROUND_HALF_UP),
            reason=PARTIAL_REFUND_REASON,
        ))
    return requests

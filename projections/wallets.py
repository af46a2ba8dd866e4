"""Wallets read model: which wallets exist. Their balances are sums of journal postings
(sql.SELECT_WALLET_BALANCES), never a counter kept here, so they cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.wallet import Wallet
from projections.changes import RowChange, event_class
from projections.identities import Identities
from projections.sql import WALLET_OPENED


def wallet_opened(event: Any, identities: Identities) -> list[RowChange]:
    return [
        RowChange(
            WALLET_OPENED,
            {"tenant_id": event.tenant_id, "driver_id": event.driver_id,
             "currency": event.currency},
        )
    ]


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(Wallet, "Opened"): wallet_opened,
}

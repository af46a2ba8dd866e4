"""A batch that keeps losing the race to another writer: applied in smaller transactions,
each with its position, until it gets in between; refused only when one message alone
keeps losing."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.batch import BatchResult, Inbound, StaleRead
from ledger.domain.wallet import Wallet
from ledger.limits import BATCH_CONFLICT_RETRIES_MAX
from tests.builders import LedgerDriver, driver, tenant, top_up

DRIVERS = [f"d{n}" for n in range(7)]


def _losing_while_larger_than(ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
                              size: int) -> list[int]:
    """Make every transaction of more than `size` messages lose to another writer."""
    attempts: list[int] = []
    apply_once = ledger._apply_once

    def racing(items: Sequence[Inbound], *, optimistic: bool) -> BatchResult:
        attempts.append(len(items))
        if len(items) > size:
            raise StaleRead("another writer committed first")
        return apply_once(items, optimistic=optimistic)

    monkeypatch.setattr(ledger, "_apply_once", racing)
    return attempts


def test_a_batch_that_keeps_losing_is_applied_in_halves_each_with_its_position(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = LedgerDriver()
    d.apply(tenant(), *[driver(x, "wallet") for x in DRIVERS])
    attempts = _losing_while_larger_than(d.ledger, monkeypatch, 2)

    result = d.apply(*[top_up(x, "5.00") for x in DRIVERS])

    assert result.applied == len(DRIVERS)
    # 7 lost, then 3 lost, then parts of at most 1 (halved from 3) applied one by one.
    assert attempts[:2] == [7, 3] and set(attempts[2:]) == {1}
    assert d.ledger.batches_retried == 2
    assert d.ledger.position("test") == 1 + len(DRIVERS) * 2  # the last message's
    for x in DRIVERS:
        wallet: Any = d.ledger.repository.get(Wallet.create_id("t1", x))
        assert wallet.balance == Decimal("5.00")
    # Applied again (a resumed run): every part is behind the position now.
    again = d.ledger.apply_batch([Inbound("test", 15, top_up("d0", "5.00"), key=None,
                                          raw="again")])
    assert again.skipped_before_position == 1 and again.applied == 0


def test_one_message_that_keeps_losing_is_an_error_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = LedgerDriver()
    d.apply(tenant(), driver("d0", "wallet"))
    attempts = _losing_while_larger_than(d.ledger, monkeypatch, 0)

    with pytest.raises(RuntimeError, match="kept conflicting with other writers"):
        d.apply(top_up("d0", "5.00"), top_up("d0", "6.00"))

    assert attempts == [2, *[1] * BATCH_CONFLICT_RETRIES_MAX]
    assert d.ledger.position("test") == 2  # the configuration's
    assert Wallet.create_id("t1", "d0") not in d.ledger.repository

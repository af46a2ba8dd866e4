"""An amount flowing down an ordered list of capped sources (STYLE.md, "One shape for who
pays how much").

Each source takes what it may, up to its capacity; what none takes is left over. Pure, in
rounded amounts: the shares and the rest add up to the amount to the minor unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

# Who a share of a session is charged to: the contract's `charged_to[].payer`.
PAYER_KINDS = frozenset(
    {"driver", "wallet", "voucher", "partner", "subscription", "discount", "operator", "terminal"}
)


@dataclass(frozen=True, slots=True)
class Source:
    payer: str  # one of PAYER_KINDS
    payer_id: str
    capacity: Decimal | None  # None: takes all that is left
    account: str = ""  # the journal account the money comes from, where the source books it

    def __post_init__(self) -> None:
        assert self.payer in PAYER_KINDS, self.payer
        assert self.capacity is None or self.capacity >= 0, self.capacity


@dataclass(frozen=True, slots=True)
class Share:
    payer: str
    payer_id: str
    amount: Decimal
    account: str = ""

    def to_dict(self) -> dict[str, str]:
        """The contract's `charged_to` row."""
        return {"payer": self.payer, "id": self.payer_id, "amount_incl_vat": str(self.amount)}


def pour(amount: Decimal, sources: Sequence[Source]) -> tuple[tuple[Share, ...], Decimal]:
    """Shares of `amount` taken by `sources` in order (only non-zero ones), and the rest."""
    assert amount >= 0, amount
    left = amount
    shares: list[Share] = []
    for source in sources:
        if left == 0:
            break
        taken = left if source.capacity is None else min(left, source.capacity)
        if taken > 0:
            shares.append(Share(source.payer, source.payer_id, taken, source.account))
            left -= taken
    return tuple(shares), left

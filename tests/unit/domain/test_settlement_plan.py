"""The payer waterfall's invariants (hypothesis): whatever the price, VAT rates, partner room,
discount, vouchers and model, the shares add up to the price, the partner is never billed
more than its room, the discount is the rest of its share, and every entry balances."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.billing_model import BillingModel
from ledger.domain.payer import DriverTerms, PartnerTerms, Payer
from ledger.domain.payer_waterfall import Source, pour
from ledger.domain.settlement import ChargeLine, ChargeLines
from ledger.domain.settlement_plan import HoldState, SettlementInputs, plan_settlement

CENT = Decimal("0.01")
cents = st.integers(min_value=0, max_value=500_00).map(lambda n: Decimal(n) * CENT)
rates = st.sampled_from([None, Decimal("0"), Decimal("7"), Decimal("19"), Decimal("25.5")])
T = datetime(2026, 3, 1, tzinfo=UTC)


@st.composite
def charge_lines(draw: st.DrawFn) -> ChargeLines:
    chosen = draw(st.lists(rates, min_size=1, max_size=3, unique=True))
    lines = []
    for rate in chosen:
        net = draw(cents)
        vat = Decimal(0) if rate is None else (net * rate / 100).quantize(CENT)
        lines.append(ChargeLine(rate, net, vat))
    return ChargeLines("EUR", tuple(line for line in lines if line.net or line.vat))


def payer(own: BillingModel, discount: Decimal | None) -> Payer:
    partner = None if discount is None else PartnerTerms(
        "P1", Decimal("1000"), None, discount, T, T.replace(month=4))
    return Payer(
        billing_model=BillingModel.CORPORATE if partner else own, own_model=own,
        driver_id="d1", payment_method_token="tok", hold_amount=Decimal("25"),
        refusal_reason=None, tariff_id="T", tariff_json="{}", time_zone="UTC", currency="EUR",
        driver=DriverTerms(), stop_threshold_percent=Decimal("95"), partner=partner,
    )


@given(
    lines=charge_lines(),
    own=st.sampled_from([BillingModel.POST_PAID, BillingModel.WALLET,
                         BillingModel.PRE_AUTHORIZATION]),
    discount=st.one_of(st.none(), st.sampled_from([Decimal(0), Decimal(10), Decimal("12.5"),
                                                   Decimal(100)])),
    room=cents,
    vouchers=st.lists(cents, max_size=3),
    hold=cents,
)
def test_shares_add_up_and_no_cap_is_exceeded(
    lines: ChargeLines, own: BillingModel, discount: Decimal | None, room: Decimal,
    vouchers: list[Decimal], hold: Decimal,
) -> None:
    plan = plan_settlement(SettlementInputs(
        tenant_id="t1", transaction_id="tx", location_id="L1", entry_id="session:t1:tx",
        payer=payer(own, discount), lines=lines,
        partner_capacity=None if discount is None else room,
        vouchers=tuple(Source("voucher", f"V{i}", v, "discounts") for i, v in
                       enumerate(vouchers)),
        hold=HoldState(hold),
    ))

    assert sum((s.amount for s in plan.charged_to), Decimal(0)) == lines.gross
    partner_billed = sum((s.amount for s in plan.charged_to if s.payer == "partner"),
                         Decimal(0))
    assert partner_billed <= room or discount is None
    if plan.partner is not None:
        assert plan.partner.billed.gross == partner_billed
        assert plan.partner.share.gross + plan.receipt_lines.gross == lines.gross
    entries = [*plan.entries, *(entry for _, entry in plan.voucher_uses)]
    if plan.wallet_debit is not None:
        entries.append(plan.wallet_debit.entry)
    for entry in entries:
        assert sum(p.amount for p in entry.postings) == 0
    if plan.hold_capture is not None:
        assert 0 <= plan.hold_capture <= hold


@given(amount=cents, capacities=st.lists(st.one_of(st.none(), cents), max_size=4))
def test_pour_takes_in_order_within_capacity(
    amount: Decimal, capacities: list[Decimal | None]
) -> None:
    sources = [Source("voucher", str(i), c) for i, c in enumerate(capacities)]
    shares, rest = pour(amount, sources)
    assert sum((s.amount for s in shares), Decimal(0)) + rest == amount
    by_id = {s.payer_id: s.amount for s in shares}
    for source in sources:
        taken = by_id.get(source.payer_id, Decimal(0))
        assert source.capacity is None or taken <= source.capacity

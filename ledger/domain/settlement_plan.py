"""Settling a session as one payer waterfall: who pays which share, the journal, the actions.

Pure: the handler reads the aggregates (pool, vouchers, hold), passes what they may still
give, and carries the returned plan out. The order is BILLING_RULES.md's: the partner within
its pool and driver limits (its discount a share nobody pays), then session-credit vouchers on
the driver's own share, then the driver's own model for the rest, each model one small
planner. Every share is a rounded amount; the shares add up to the session's rounded price.

Journal: one sale per session, debiting each payer's account with its share and crediting
revenue and VAT per rate. A discount is booked net to `discounts` (contra-revenue); the VAT on
the discounted part is never charged, so it is not payable (docs/billing-decisions.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ledger.domain.billing_model import BillingModel
from ledger.domain.journal import JournalEntry, Posting, account, sale, transfer
from ledger.domain.money import Money, minor_unit, round_to_minor_unit
from ledger.domain.payer import Payer
from ledger.domain.payer_waterfall import Share, Source, pour
from ledger.domain.settlement import ChargeLine, ChargeLines, split_gross, vat_on
from ledger.domain.subscription import AllowanceLeft


# ---------------------------------------------------------------- shares by VAT rate
def lines_share(lines: ChargeLines, gross: Decimal, *, monotone: bool = False) -> ChargeLines:
    """The part of `lines` worth `gross` (rounded), spread over the VAT rates by gross and
    split into net and VAT in each line's own proportion. `monotone`: spread so that a larger
    `gross` never gives a rate less (`Money.allocate_monotone`), for shares that are
    differences of two of these (refunds after refunds)."""
    assert 0 <= gross <= lines.gross, (gross, lines.gross)
    if gross == lines.gross:
        return lines
    if gross == 0 or not lines.lines:
        return ChargeLines(lines.currency, ())
    weights = [abs(line.gross) for line in lines.lines]
    money = Money(gross, lines.currency)
    spread = money.allocate_monotone(weights) if monotone else money.allocate(weights)
    parts = [m.amount for m in spread]
    shared: list[ChargeLine] = []
    for line, part in zip(lines.lines, parts, strict=True):
        net = part if line.gross == 0 else round_to_minor_unit(
            line.net * part / line.gross, lines.currency
        )
        shared.append(ChargeLine(line.vat_rate, net, part - net))
    return ChargeLines(lines.currency, tuple(s for s in shared if s.net or s.vat))


def lines_minus(lines: ChargeLines, part: ChargeLines) -> ChargeLines:
    """What is left of `lines` once `part` (a share of them) is taken, rate by rate."""
    taken = {line.vat_rate: line for line in part.lines}
    rest: list[ChargeLine] = []
    for line in lines.lines:
        other = taken.get(line.vat_rate)
        net = line.net - (other.net if other else Decimal(0))
        vat = line.vat - (other.vat if other else Decimal(0))
        if net or vat:
            rest.append(ChargeLine(line.vat_rate, net, vat))
    return ChargeLines(lines.currency, tuple(rest))


def discounted(lines: ChargeLines, discount_percent: Decimal) -> ChargeLines:
    """What a customer with a discount off the net is billed: the discounted net, and VAT at
    each line's rate on that net (no VAT rate: no VAT)."""
    if discount_percent == 0:
        return lines
    keep = 1 - discount_percent / 100
    billed: list[ChargeLine] = []
    for line in lines.lines:
        net = round_to_minor_unit(line.net * keep, lines.currency)
        billed.append(ChargeLine(line.vat_rate, net, vat_on(net, line.vat_rate, lines.currency)))
    return ChargeLines(lines.currency, tuple(billed))


@dataclass(frozen=True, slots=True)
class SponsorCover:
    """A sponsor's part of a session: the share of the price it covers, and what it is billed
    for it (the rest of that share is the sponsor's discount)."""

    share: ChargeLines
    billed: ChargeLines

    @property
    def discount_gross(self) -> Decimal:
        return self.share.gross - self.billed.gross

    @property
    def discount_net(self) -> Decimal:
        return self.share.net - self.billed.net

    def vat_relief_by_rate(self) -> dict[Decimal | None, Decimal]:
        """VAT of the share that the discount means nobody is charged."""
        billed = self.billed.vat_by_rate()
        return {
            rate: vat - billed.get(rate, Decimal(0))
            for rate, vat in self.share.vat_by_rate().items()
            if vat != billed.get(rate, Decimal(0))
        }


def partner_cover(
    lines: ChargeLines, capacity: Decimal, discount_percent: Decimal
) -> SponsorCover:
    """The largest share of `lines` whose discounted bill fits in `capacity` (gross)."""
    capacity = max(capacity, Decimal(0))
    whole = SponsorCover(lines, discounted(lines, discount_percent))
    if whole.billed.gross <= capacity:
        return whole
    keep = 1 - discount_percent / 100
    cent = minor_unit(lines.currency)
    gross = min(lines.gross, (capacity / keep).quantize(cent, rounding="ROUND_FLOOR"))
    while True:  # rounding of net and VAT per rate can overshoot by a few minor units
        share = lines_share(lines, gross)
        cover = SponsorCover(share, discounted(share, discount_percent))
        if cover.billed.gross <= capacity or gross <= 0:
            return cover
        gross -= cent


# ---------------------------------------------------------------- the plan
@dataclass(frozen=True, slots=True)
class HoldState:
    """A hold that may pay this session: the pre-authorization, or a terminal's."""

    capturable: Decimal  # 0 when the PSP declined it


@dataclass(frozen=True, slots=True)
class SettlementInputs:
    tenant_id: str
    transaction_id: str
    location_id: str
    entry_id: str  # the session's journal entry id
    payer: Payer
    lines: ChargeLines  # the session's price, rounded, by VAT rate
    partner_capacity: Decimal | None = None  # billed gross the partner may still pay
    vouchers: tuple[Source, ...] = ()  # usable session credit, in paying order
    hold: HoldState | None = None
    terminal_reference: str | None = None
    # The subscription's allowance left in the session's cycle, and the session's energy.
    allowance_left: AllowanceLeft | None = None
    energy_kwh: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class CardCharge:
    purpose: str  # "session", "overshoot"
    amount: Decimal
    receivable: str  # what the charge settles when it succeeds


@dataclass(frozen=True, slots=True)
class WalletDebit:
    amount: Decimal
    entry: JournalEntry


@dataclass(frozen=True, slots=True)
class SettlementPlan:
    billing_model: BillingModel
    charged_to: tuple[Share, ...]
    entries: tuple[JournalEntry, ...]  # booked on the session's Settled event
    partner: SponsorCover | None
    voucher_uses: tuple[tuple[Share, JournalEntry], ...]
    wallet_debit: WalletDebit | None
    hold_capture: Decimal | None  # resolve the hold, capturing this much; None: no hold
    card_charge: CardCharge | None
    receipt_to: str | None
    receipt_lines: ChargeLines
    # What the subscription's allowance covered (its usage) and, for a post-paid plan, what
    # the driver is billed on the cycle's invoice instead of per session.
    allowance: ChargeLines | None = None
    allowance_kwh: Decimal = Decimal(0)
    allowance_fraction: Decimal = Decimal(0)
    postpaid_usage: ChargeLines | None = None


@dataclass(frozen=True, slots=True)
class OwnShare:
    """What the driver's own model is asked to pay: the session less the sponsors' shares."""

    inputs: SettlementInputs
    lines: ChargeLines  # the driver's share of the price, by VAT rate
    voucher_paid: Decimal
    sponsored: bool  # a sponsor took part of the session

    @property
    def due(self) -> Decimal:
        return self.lines.gross - self.voucher_paid

    @property
    def driver_id(self) -> str:
        driver_id = self.inputs.payer.driver_id
        assert driver_id is not None, "a driver's own model has a driver"
        return driver_id


@dataclass(frozen=True, slots=True)
class OwnPart:
    sale_debit: str  # the account the driver's part of the sale is debited to
    shares: tuple[Share, ...]
    sale_on_wallet: bool = False  # the sale itself is the wallet's debit (nothing else paid)
    wallet_debit_amount: Decimal = Decimal(0)
    hold_capture: Decimal | None = None
    card_charge: CardCharge | None = None
    receipt_to: str | None = None
    extra: tuple[JournalEntry, ...] = ()


def _post_paid(own: OwnShare) -> OwnPart:
    receivable = account("driver_receivable", own.driver_id)
    due = own.due
    return OwnPart(
        sale_debit=receivable,
        shares=(Share("driver", own.driver_id, due),),
        card_charge=CardCharge("session", due, receivable) if due > 0 else None,
        receipt_to=own.driver_id,
    )


def _wallet(own: OwnShare) -> OwnPart:
    wallet = account("wallet", own.driver_id)
    shares = (Share("wallet", own.driver_id, own.due),)
    if own.voucher_paid == 0 and not own.sponsored:
        return OwnPart(sale_debit=wallet, shares=shares, sale_on_wallet=True,
                       wallet_debit_amount=own.due, receipt_to=own.driver_id)
    return OwnPart(sale_debit=account("driver_receivable", own.driver_id), shares=shares,
                   wallet_debit_amount=own.due, receipt_to=own.driver_id)


def _pre_authorization(own: OwnShare) -> OwnPart:
    receivable = account("driver_receivable", own.driver_id)
    hold = own.inputs.hold
    assert hold is not None, "a pre-authorized session requested its hold at start"
    covered, overshoot = split_gross(own.due, hold.capturable)
    return OwnPart(
        sale_debit=receivable,
        shares=(Share("driver", own.driver_id, own.due),),
        hold_capture=covered,
        card_charge=CardCharge("overshoot", overshoot, receivable) if overshoot > 0 else None,
        receipt_to=own.driver_id,
    )


def _ad_hoc_terminal(own: OwnShare) -> OwnPart:
    inputs = own.inputs
    reference = str(inputs.terminal_reference)
    receivable = account("driver_receivable", f"terminal:{reference}")
    hold = inputs.hold
    covered, overshoot = split_gross(own.due, hold.capturable if hold is not None else Decimal(0))
    shares: list[Share] = []
    entries: list[JournalEntry] = []
    if covered > 0 or overshoot == 0:
        shares.append(Share("terminal", reference, covered))
    if overshoot > 0:
        # No account stands behind a terminal payment: past the authorization, the
        # operator absorbs the rest (docs/billing-decisions.md).
        entries.append(
            transfer(f"{inputs.entry_id}:absorbed", own.lines.currency,
                     f"terminal overshoot {inputs.transaction_id}",
                     account("operator_absorbed_cost"), receivable, overshoot)
        )
        shares.append(Share("operator", inputs.location_id, overshoot))
    return OwnPart(
        sale_debit=receivable, shares=tuple(shares), extra=tuple(entries),
        hold_capture=covered if hold is not None else None,
        receipt_to=f"terminal:{reference}",
    )


def _subscription_postpaid(own: OwnShare) -> OwnPart:
    """A post-paid plan bills what its allowance leaves on the cycle's invoice (fee and
    usage), charged at the cycle's end: nothing is charged per session, and the cycle's
    invoice is the driver's document."""
    return OwnPart(
        sale_debit=account("driver_receivable", own.driver_id),
        shares=(Share("driver", own.driver_id, own.due),),
    )


def _open_access(own: OwnShare) -> OwnPart:
    inputs = own.inputs
    # Free charging wins over a card tapped at the terminal (payer rule 1): the whole
    # authorization goes back to the card.
    return OwnPart(
        sale_debit=account("operator_absorbed_cost"),
        shares=(Share("operator", inputs.location_id, own.due),),
        hold_capture=Decimal(0) if inputs.hold is not None else None,
    )


OWN_MODEL_PLANNERS: dict[BillingModel, Callable[[OwnShare], OwnPart]] = {
    BillingModel.POST_PAID: _post_paid,
    BillingModel.WALLET: _wallet,
    BillingModel.PRE_AUTHORIZATION: _pre_authorization,
    BillingModel.AD_HOC_TERMINAL: _ad_hoc_terminal,
    BillingModel.OPEN_ACCESS: _open_access,
    BillingModel.SUBSCRIPTION_POSTPAID: _subscription_postpaid,
}
# Vouchers pay a driver's own share under these models only (BILLING_RULES.md, "Vouchers").
VOUCHER_MODELS = frozenset(
    {BillingModel.POST_PAID, BillingModel.PRE_AUTHORIZATION, BillingModel.WALLET}
)


def paying_model(payer: Payer) -> BillingModel:
    """The model that pays the driver's own share. Nobody could pay at start (refused): the
    energy delivered before the stop is billed post-paid to a known card, else absorbed."""
    if payer.own_model is not None:
        return payer.own_model
    if payer.billing_model in (BillingModel.OPEN_ACCESS, BillingModel.AD_HOC_TERMINAL):
        return payer.billing_model
    has_card = bool(payer.driver_id and payer.payment_method_token)
    return BillingModel.POST_PAID if has_card else BillingModel.OPEN_ACCESS


def plan_settlement(inputs: SettlementInputs) -> SettlementPlan:
    payer = inputs.payer
    lines = inputs.lines
    currency = lines.currency
    own_model = paying_model(payer)
    billing_model = payer.billing_model or own_model
    sponsor_shares: list[Share] = []
    sponsor_debits: list[Posting] = []
    partner: SponsorCover | None = None
    vat_relief: dict[Decimal | None, Decimal] = {}

    rest = lines
    if payer.partner is not None and inputs.partner_capacity is not None:
        partner = partner_cover(lines, inputs.partner_capacity, payer.partner.discount_percent)
        partner_id = payer.partner.partner_id
        if partner.billed.gross > 0:
            sponsor_shares.append(Share("partner", partner_id, partner.billed.gross))
            sponsor_debits.append(
                Posting(account("partner_receivable", partner_id), partner.billed.gross)
            )
        if partner.discount_gross > 0:
            sponsor_shares.append(Share("discount", partner_id, partner.discount_gross))
            sponsor_debits.append(Posting(account("discounts"), partner.discount_net))
            _add(vat_relief, partner.vat_relief_by_rate())
        rest = lines_minus(lines, partner.share)
        if partner.share.gross == 0:
            partner = None

    allowance: ChargeLines | None = None
    allowance_kwh = Decimal(0)
    fraction = Decimal(0)
    subscription = payer.subscription
    if subscription is not None and inputs.allowance_left is not None:
        # 4. The plan's allowance covers its share of the rest, pro rata by energy; VAT was
        # charged on the fee, so none is payable on what the fee already paid for.
        fraction = inputs.allowance_left.fraction_of(inputs.energy_kwh, rest.gross)
        allowance = lines_share(rest, round_to_minor_unit(rest.gross * fraction, currency))
        allowance_kwh = inputs.energy_kwh * fraction
        sub_id = subscription.subscription_id
        if allowance.gross > 0:
            sponsor_shares.append(Share("subscription", sub_id, allowance.gross))
            sponsor_debits.append(Posting(account("subscription_allowance"), allowance.net))
            _add(vat_relief, allowance.vat_by_rate())
        rest = lines_minus(rest, allowance)
        overage = SponsorCover(rest, discounted(rest, subscription.plan.overage_discount_percent))
        if overage.discount_gross > 0:
            sponsor_shares.append(Share("discount", sub_id, overage.discount_gross))
            sponsor_debits.append(Posting(account("discounts"), overage.discount_net))
            _add(vat_relief, overage.vat_relief_by_rate())
            rest = overage.billed
        if subscription.plan.payment == "postpaid":
            own_model = BillingModel.SUBSCRIPTION_POSTPAID

    sponsored = rest.gross != lines.gross
    voucher_sources = inputs.vouchers if own_model in VOUCHER_MODELS else ()
    voucher_shares, _left = pour(rest.gross, voucher_sources)
    voucher_paid = sum((s.amount for s in voucher_shares), Decimal(0))
    own = OWN_MODEL_PLANNERS[own_model](OwnShare(inputs, rest, voucher_paid, sponsored))

    sale_entry = _sale(inputs, sponsor_debits, own.sale_debit, vat_relief)
    voucher_uses = tuple(
        (share, transfer(
            f"voucher:{inputs.tenant_id}:{share.payer_id}:session:{inputs.transaction_id}",
            currency, f"voucher {share.payer_id} pays session {inputs.transaction_id}",
            share.account, account("driver_receivable", str(payer.driver_id)), share.amount,
        ))
        for share in voucher_shares
    )
    wallet_debit: WalletDebit | None = None
    entries: list[JournalEntry] = []
    if own.sale_on_wallet:
        if own.wallet_debit_amount:
            wallet_debit = WalletDebit(own.wallet_debit_amount, sale_entry)
    else:
        entries.append(sale_entry)
        if own.wallet_debit_amount:
            driver_id = str(payer.driver_id)
            wallet_debit = WalletDebit(
                own.wallet_debit_amount,
                transfer(f"{inputs.entry_id}:wallet", currency,
                         f"session {inputs.transaction_id} from wallet",
                         account("wallet", driver_id), account("driver_receivable", driver_id),
                         own.wallet_debit_amount),
            )
    entries.extend(own.extra)

    charged_to = (*sponsor_shares, *voucher_shares, *own.shares)
    if lines.gross > 0:  # a share of nothing is no row (a free session keeps its payer's)
        charged_to = tuple(share for share in charged_to if share.amount)
    driver_pays = rest.gross > 0 or lines.gross == 0
    return SettlementPlan(
        billing_model=billing_model,
        charged_to=charged_to,
        entries=tuple(e for e in entries if any(p.amount for p in e.postings)),
        partner=partner,
        voucher_uses=voucher_uses,
        wallet_debit=wallet_debit,
        hold_capture=own.hold_capture,
        card_charge=own.card_charge,
        receipt_to=own.receipt_to if driver_pays else None,
        receipt_lines=rest,
        allowance=allowance,
        allowance_kwh=allowance_kwh,
        allowance_fraction=fraction,
        postpaid_usage=rest if own_model == BillingModel.SUBSCRIPTION_POSTPAID else None,
    )


def _add(
    into: dict[Decimal | None, Decimal], more: dict[Decimal | None, Decimal]
) -> None:
    for rate, amount in more.items():
        into[rate] = into.get(rate, Decimal(0)) + amount


def _sale(
    inputs: SettlementInputs, sponsor_debits: Sequence[Posting], own_debit: str,
    vat_relief: dict[Decimal | None, Decimal],
) -> JournalEntry:
    """One sale: each payer's account debited its share, revenue and VAT per rate credited
    (less the VAT a discount relieves)."""
    lines = inputs.lines
    vat_by_rate = {
        rate: vat - vat_relief.get(rate, Decimal(0)) for rate, vat in lines.vat_by_rate().items()
    }
    return sale(inputs.entry_id, lines.currency, f"session {inputs.transaction_id}", own_debit,
                lines.net_by_rate(), vat_by_rate, co_debits=sponsor_debits)

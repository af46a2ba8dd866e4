"""A reference model of who owes or holds what, written from the rules, not from the ledger.

Sources: /work/shared/BILLING_RULES.md and docs/billing-decisions.md (what the rules leave
open). The model imports nothing from `ledger`: it prices sessions with its own arithmetic
for the two simple tariffs the state machine uses (a flat fee and a price per kWh, each with
its VAT rate), decides who pays with its own reading of the payer rules, and keeps the
balance every account should have as plain decimals per (tenant, account).

What it predicts, for the state machine to compare with the ledger after every step:
- the outcome of every inbound message: applied, refused (a reason event) or dead-lettered;
- every settled session's gross and net (rounded once, half up) and who it is charged to
  (session credit first, then the driver's own model, the terminal, or the operator);
- every account's balance (sum of its postings): receivables, wallets, PSP and bank
  clearing, operator-absorbed cost, discounts, revenue, revenue + VAT;
- which PSP commands are outstanding (issued, not yet answered) and which sessions the
  ledger asked the CSMS to stop;
- which drivers have overdue debt.

PSP outcomes follow TigerBeetle's labels: a command is `unknown` until the machine answers
it, then `success` or `failure`; money moves only on success.

Not modelled (the machine does not generate them): time-of-day or duration tariffs,
currencies other than EUR, site-restricted or partner-bought vouchers, corporate billing
and subscriptions (not in the ledger yet), configuration changes after the start.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

Outcome = Literal["applied", "refused", "dead_lettered"]
BillingModel = Literal["wallet", "pre_authorization", "post_paid"]  # a driver's own model
ReadingKind = Literal["Started", "Updated", "Ended"]
VoucherKind = Literal["balance", "session_credit"]
PspOutcome = Literal["success", "failure"]
# (tenant, action, reference as the model names it, amount): one outstanding command.
CommandKey = tuple[str, str, str, Decimal]

CENT = Decimal("0.01")  # every tenant here bills in EUR
# docs/billing-decisions.md, "Sessions and time": a session missing a seqNo is settled with
# what arrived this long after its end, on the next clock tick.
SETTLE_GRACE = timedelta(minutes=15)
AUTO_TOP_UP = "auto-top-up:"  # the model's key for a driver's auto-top-up charges


def to_cents(amount: Decimal) -> Decimal:
    """BILLING_RULES.md, Money: rounded once, to the minor unit, half up."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------- configuration
@dataclass(frozen=True, slots=True)
class PriceComponent:
    kind: Literal["FLAT", "ENERGY"]
    net_price: Decimal  # per session (FLAT) or per kWh (ENERGY), excl. VAT
    vat_percent: Decimal


@dataclass(frozen=True, slots=True)
class Cost:
    """Exact (unrounded) net and VAT per VAT rate."""

    net_by_rate: dict[Decimal, Decimal]
    vat_by_rate: dict[Decimal, Decimal]

    @property
    def net(self) -> Decimal:
        return sum(self.net_by_rate.values(), Decimal(0))

    @property
    def gross(self) -> Decimal:
        return self.net + sum(self.vat_by_rate.values(), Decimal(0))


@dataclass(frozen=True, slots=True)
class TariffModel:
    components: tuple[PriceComponent, ...]

    def cost(self, energy_wh: Decimal) -> Cost:
        """OCPI: a FLAT price once per session, ENERGY per kWh (step 1 Wh), VAT per component."""
        net_by_rate: dict[Decimal, Decimal] = {}
        vat_by_rate: dict[Decimal, Decimal] = {}
        for c in self.components:
            quantity = Decimal(1) if c.kind == "FLAT" else energy_wh / 1000
            net = c.net_price * quantity
            net_by_rate[c.vat_percent] = net_by_rate.get(c.vat_percent, Decimal(0)) + net
            vat_by_rate[c.vat_percent] = (
                vat_by_rate.get(c.vat_percent, Decimal(0)) + net * c.vat_percent / 100
            )
        return Cost(net_by_rate, vat_by_rate)


@dataclass(frozen=True, slots=True)
class TenantModel:
    preauth_hold_amount: Decimal
    retry_schedule_hours: tuple[int, ...]
    stop_threshold_percent: Decimal = Decimal(95)
    block_sessions_on_overdue_debt: bool = True


@dataclass(frozen=True, slots=True)
class LocationModel:
    tariff_id: str
    open_access: bool = False
    open_access_evse_ids: tuple[str, ...] = ()
    preauth_hold_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class DriverModel:
    billing_model: BillingModel
    id_token: str
    payment_method_token: str | None
    auto_top_up_threshold: Decimal | None = None
    auto_top_up_amount: Decimal | None = None

    @property
    def auto_top_up(self) -> bool:
        return (
            self.auto_top_up_threshold is not None
            and bool(self.auto_top_up_amount)
            and self.payment_method_token is not None
        )


# ---------------------------------------------------------------- state
@dataclass(frozen=True, slots=True)
class Reading:
    seq_no: int
    kind: ReadingKind
    at: datetime
    register_wh: Decimal


@dataclass(slots=True)
class Payer:
    billing_model: str | None  # None: nobody can pay; the session is stopped
    driver_id: str | None
    driver: DriverModel | None
    tariff: TariffModel
    hold_amount: Decimal | None
    stop_threshold: Decimal  # a fraction, 0.95


@dataclass(slots=True)
class Settlement:
    billing_model: str
    gross: Decimal
    net: Decimal
    cost: Cost
    charged_to: list[tuple[str, str, Decimal]]  # (payer kind, payer id, amount incl. VAT)


@dataclass(slots=True)
class SessionModel:
    tenant_id: str
    transaction_id: str
    location_id: str
    evse_id: str
    id_token: str | None
    terminal_reference: str | None
    readings: dict[int, Reading] = field(default_factory=dict)
    payer: Payer | None = None
    stop_requested: bool = False
    settle_due_at: datetime | None = None
    settlement: Settlement | None = None

    def reading_of(self, kind: str) -> Reading | None:
        return next((r for r in self.readings.values() if r.kind == kind), None)

    @property
    def ended(self) -> bool:
        return self.reading_of("Ended") is not None

    @property
    def complete(self) -> bool:
        start, end = self.reading_of("Started"), self.reading_of("Ended")
        if start is None or end is None:
            return False
        return all(n in self.readings for n in range(start.seq_no, end.seq_no + 1))

    def energy_so_far_wh(self) -> Decimal:
        """Register at the latest reading (by seqNo) minus the register at start."""
        start = self.reading_of("Started")
        assert start is not None
        latest = self.readings[max(self.readings)]
        return latest.register_wh - start.register_wh

    def final_energy_wh(self) -> Decimal:
        start, end = self.reading_of("Started"), self.reading_of("Ended")
        assert start is not None and end is not None
        return end.register_wh - start.register_wh


@dataclass(slots=True)
class HoldModel:
    tenant_id: str
    reference: str  # the transaction id (pre-authorization) or "terminal:<reference>"
    amount: Decimal
    receivable: str
    authorization: Literal["pending", "authorized", "declined"]
    capture_amount: Decimal | None = None  # decided once, at settlement
    captured: bool = False
    released: bool = False
    driver_id: str | None = None
    payment_method_token: str | None = None

    def outstanding(self) -> list[CommandKey]:
        t = self.tenant_id
        if self.authorization == "pending":
            if self.reference.startswith("terminal:"):
                return []  # a terminal's authorization arrives already answered
            return [(t, "authorize", self.reference, self.amount)]
        if self.authorization == "declined" or self.capture_amount is None:
            return []
        found: list[CommandKey] = []
        if self.capture_amount > 0 and not self.captured:
            found.append((t, "capture", self.reference, self.capture_amount))
        rest = self.amount - self.capture_amount
        if rest > 0 and not self.released:
            found.append((t, "release", self.reference, rest))
        return found


@dataclass(slots=True)
class ChargeModel:
    tenant_id: str
    purpose: str  # session | overshoot | declined_hold | top_up
    reference: str  # as on the wire: "<purpose>:<reference>", auto-top-ups folded
    driver_id: str
    amount: Decimal
    settles_account: str
    retry_schedule_hours: tuple[int, ...]
    status: Literal["pending", "failed", "succeeded", "overdue"] = "pending"
    attempts: int = 1
    first_failure_at: datetime | None = None
    retry_due_at: datetime | None = None


@dataclass(slots=True)
class WalletModel:
    balance: Decimal = Decimal(0)
    # docs/billing-decisions.md: "only one top-up is under way at a time": the reference of
    # the card top-up last started; it ends when that top-up is answered.
    pending_top_up: str | None = None


@dataclass(slots=True)
class VoucherModel:
    kind: VoucherKind
    amount: Decimal
    expires_at: datetime
    holder: str | None = None  # the driver who redeemed it
    redeemed_at: datetime | None = None
    remaining: Decimal = Decimal(0)  # session credit left


class ReferenceModel:
    def __init__(self) -> None:
        self.tenants: dict[str, TenantModel] = {}
        self.tariffs: dict[tuple[str, str], TariffModel] = {}
        self.locations: dict[tuple[str, str], LocationModel] = {}
        self.drivers: dict[tuple[str, str], DriverModel] = {}
        self.sessions: dict[tuple[str, str], SessionModel] = {}
        self.holds: dict[tuple[str, str], HoldModel] = {}
        self.charges: list[ChargeModel] = []
        self.wallets: dict[tuple[str, str], WalletModel] = {}
        self.overdue: dict[tuple[str, str], set[str]] = {}
        self.clock: dict[str, datetime] = {}
        self.top_up_references: set[tuple[str, str]] = set()
        self.vouchers: dict[tuple[str, str], VoucherModel] = {}
        # Expected sum of postings per (tenant, account); revenue and VAT kept as totals.
        self.balances: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.revenue_net: defaultdict[str, Decimal] = defaultdict(Decimal)
        self.revenue_gross: defaultdict[str, Decimal] = defaultdict(Decimal)

    # ------------------------------------------------------------ configuration
    def configure_tenant(self, tenant_id: str, tenant: TenantModel) -> None:
        self.tenants[tenant_id] = tenant

    def configure_tariff(self, tenant_id: str, tariff_id: str, tariff: TariffModel) -> None:
        self.tariffs[tenant_id, tariff_id] = tariff

    def configure_location(self, tenant_id: str, location_id: str, loc: LocationModel) -> None:
        self.locations[tenant_id, location_id] = loc

    def configure_driver(self, tenant_id: str, driver_id: str, driver: DriverModel) -> None:
        self.drivers[tenant_id, driver_id] = driver

    # ------------------------------------------------------------ questions
    def wallet(self, tenant_id: str, driver_id: str) -> WalletModel:
        return self.wallets.setdefault((tenant_id, driver_id), WalletModel())

    def has_overdue_debt(self, tenant_id: str, driver_id: str) -> bool:
        return bool(self.overdue.get((tenant_id, driver_id)))

    def command_key(self, tenant_id: str, action: str, reference: str, amount: Decimal,
                    payment_method_token: str | None) -> CommandKey:
        """How the model names a PSP command the ledger issued.

        A top-up charge is the driver's own request when its label ends with the request's
        reference, else an auto-top-up: how the ledger labels and numbers those is its
        bookkeeping, not a rule, so the model knows them by the driver whose card pays.
        """
        if action == "charge" and reference.startswith("top_up:"):
            requested = reference.rsplit(":", 1)[-1]
            if (tenant_id, requested) in self.top_up_references:
                return (tenant_id, action, f"top_up:{requested}", amount)
            [driver_id] = [d for (t, d), driver in self.drivers.items() if t == tenant_id
                           and driver.payment_method_token == payment_method_token]
            return (tenant_id, action, AUTO_TOP_UP + driver_id, amount)
        return (tenant_id, action, reference, amount)

    def outstanding_commands(self) -> Counter[CommandKey]:
        found: Counter[CommandKey] = Counter()
        for hold in self.holds.values():
            found.update(hold.outstanding())
        for charge in self.charges:
            if charge.status == "pending":
                found[charge.tenant_id, "charge", charge.reference, charge.amount] += 1
        return found

    def stops(self) -> set[tuple[str, str]]:
        return {key for key, s in self.sessions.items() if s.stop_requested}

    def driver_by_token(self, tenant_id: str, id_token: str | None) -> str | None:
        for (t, driver_id), driver in self.drivers.items():
            if t == tenant_id and driver.id_token == id_token:
                return driver_id
        return None

    # ------------------------------------------------------------ inbound messages
    def terminal_authorized(self, tenant_id: str, reference: str, amount: Decimal) -> Outcome:
        if tenant_id not in self.tenants:
            return "dead_lettered"
        key = (tenant_id, "terminal:" + reference)
        if key in self.holds:
            return "dead_lettered"  # an authorization answers once
        self.holds[key] = HoldModel(
            tenant_id, "terminal:" + reference, amount,
            receivable=f"driver_receivable:terminal:{reference}", authorization="authorized",
        )
        return "applied"

    def reading(
        self, tenant_id: str, transaction_id: str, location_id: str, evse_id: str,
        reading: Reading, id_token: str | None, terminal_reference: str | None,
    ) -> Outcome:
        if tenant_id not in self.tenants or (tenant_id, location_id) not in self.locations:
            return "dead_lettered"
        key = (tenant_id, transaction_id)
        session = self.sessions.get(key)
        if session is None:
            session = SessionModel(tenant_id, transaction_id, location_id, evse_id, id_token,
                                   terminal_reference)
            self.sessions[key] = session
        elif session.location_id != location_id:
            return "dead_lettered"
        if reading.seq_no in session.readings:
            return "applied"  # the same OCPP message again: ignored
        if session.settlement is not None:
            return "dead_lettered"  # an event for a settled session
        session.readings[reading.seq_no] = reading
        if reading.kind == "Started" and session.payer is None:
            self._start(session, reading.at)
        if session.payer is None:
            return "applied"
        if not session.ended:
            self._watch(session)
        elif session.complete:
            self._settle(session)
        elif session.settle_due_at is None:
            end = session.reading_of("Ended")
            assert end is not None
            session.settle_due_at = end.at + SETTLE_GRACE
        return "applied"

    def top_up(
        self, tenant_id: str, driver_id: str, amount: Decimal, method: str, reference: str,
    ) -> Outcome:
        if tenant_id not in self.tenants or (tenant_id, driver_id) not in self.drivers:
            return "dead_lettered"
        driver = self.drivers[tenant_id, driver_id]
        wallet = self.wallet(tenant_id, driver_id)
        self.top_up_references.add((tenant_id, reference))
        if method == "bank_transfer":
            wallet.balance += amount
            self.balances[tenant_id, f"wallet:{driver_id}"] -= amount
            self.balances[tenant_id, "bank_clearing"] += amount
            return "applied"
        if driver.payment_method_token is None:
            return "refused"  # a card top-up needs a card on file
        key = f"top_up:{reference}"
        wallet.pending_top_up = key
        self._open_charge(tenant_id, "top_up", key, driver_id, amount, f"wallet:{driver_id}", ())
        return "applied"

    def issue_vouchers(self, tenant_id: str, kind: VoucherKind,
                       codes: tuple[str, ...], amount: Decimal, expires_at: datetime) -> None:
        """A campaign batch: nothing is booked until a code is used."""
        for code in codes:
            self.vouchers[tenant_id, code] = VoucherModel(kind, amount, expires_at)

    def redeem(self, tenant_id: str, code: str, driver_id: str, at: datetime) -> Outcome:
        """BILLING_RULES.md, Vouchers: one redemption; a second, an expired or unknown code
        (another tenant's is unknown here), or an unknown driver is refused with a reason."""
        voucher = self.vouchers.get((tenant_id, code))
        if (voucher is None or voucher.holder is not None or at >= voucher.expires_at
                or (tenant_id, driver_id) not in self.drivers):
            return "refused"
        voucher.holder, voucher.redeemed_at = driver_id, at
        if voucher.kind == "balance":  # a campaign's value is a discount, booked on use
            self.wallet(tenant_id, driver_id).balance += voucher.amount
            self._move(tenant_id, "discounts", f"wallet:{driver_id}", voucher.amount)
        else:
            voucher.remaining = voucher.amount
        return "applied"

    def answer(self, command: CommandKey, outcome: PspOutcome, at: datetime) -> Outcome:
        """The PSP answers an outstanding command (the machine only answers those)."""
        tenant_id, action, reference, amount = command
        if action == "charge":
            charge = next(c for c in self.charges if c.status == "pending"
                          and (c.tenant_id, c.reference, c.amount)
                          == (tenant_id, reference, amount))
            self._charge_answered(charge, outcome, at)
            return "applied"
        hold = self.holds[tenant_id, reference]
        if action == "authorize":
            self._hold_answered(hold, outcome, at)
        elif action == "capture":
            assert hold.capture_amount is not None
            hold.captured = True
            self._move(tenant_id, "psp_clearing", hold.receivable, hold.capture_amount)
        else:
            hold.released = True
        return "applied"

    def tick(self, tenant_id: str, now: datetime) -> Outcome:
        if tenant_id not in self.tenants:
            return "dead_lettered"
        last = self.clock.get(tenant_id)
        if last is not None and now <= last:
            return "applied"  # time never runs backwards
        self.clock[tenant_id] = now
        due: list[tuple[datetime, str, str, ChargeModel | SessionModel]] = []
        for charge in self.charges:
            if (charge.tenant_id == tenant_id and charge.status == "failed"
                    and charge.retry_due_at is not None and charge.retry_due_at <= now):
                due.append((charge.retry_due_at, "charge_retry", charge.reference, charge))
        for session in self.sessions.values():
            if (session.tenant_id == tenant_id and session.settlement is None
                    and session.settle_due_at is not None and session.settle_due_at <= now):
                due.append((session.settle_due_at, "settle_session", session.transaction_id,
                            session))
        for _due_at, _kind, _subject, item in sorted(due, key=lambda d: d[:3]):
            if isinstance(item, ChargeModel):
                item.status = "pending"
                item.attempts += 1
                item.retry_due_at = None
            elif item.settlement is None:
                self._settle(item)
        return "applied"

    # ------------------------------------------------------------ who pays (at start)
    def _start(self, session: SessionModel, at: datetime) -> None:
        t = session.tenant_id
        tenant = self.tenants[t]
        location = self.locations[t, session.location_id]
        tariff = self.tariffs[t, location.tariff_id]
        threshold = tenant.stop_threshold_percent / 100
        driver_id = self.driver_by_token(t, session.id_token)
        driver = None if driver_id is None else self.drivers[t, driver_id]

        def payer(model: str | None, hold: Decimal | None = None) -> Payer:
            return Payer(model, driver_id, driver, tariff, hold, threshold)

        if location.open_access or session.evse_id in location.open_access_evse_ids:
            session.payer = payer("open_access")
            return
        if session.terminal_reference is not None:
            session.payer = payer("ad_hoc_terminal")
            return
        if driver is None or driver_id is None or self._nobody_pays(t, driver_id, driver):
            session.payer = payer(None)
        elif driver.billing_model == "pre_authorization":
            hold_amount = (location.preauth_hold_amount
                           if location.preauth_hold_amount is not None
                           else tenant.preauth_hold_amount)
            session.payer = payer("pre_authorization", hold_amount)
            self.holds[t, session.transaction_id] = HoldModel(
                t, session.transaction_id, hold_amount, f"driver_receivable:{driver_id}",
                authorization="pending", driver_id=driver_id,
                payment_method_token=driver.payment_method_token,
            )
        else:
            session.payer = payer(driver.billing_model)
        if session.payer.billing_model is None:
            session.stop_requested = True

    def _nobody_pays(self, tenant_id: str, driver_id: str, driver: DriverModel) -> bool:
        """Overdue debt (when the tenant blocks on it), or a card model without a card."""
        if (self.has_overdue_debt(tenant_id, driver_id)
                and self.tenants[tenant_id].block_sessions_on_overdue_debt):
            return True
        return driver.billing_model != "wallet" and driver.payment_method_token is None

    # ------------------------------------------------------------ during the session
    def _running_gross(self, session: SessionModel) -> Decimal:
        assert session.payer is not None
        return session.payer.tariff.cost(session.energy_so_far_wh()).gross

    def _watch(self, session: SessionModel) -> None:
        payer = session.payer
        assert payer is not None
        running = self._running_gross(session)
        if payer.billing_model == "pre_authorization":
            assert payer.hold_amount is not None
            if running >= payer.hold_amount * payer.stop_threshold:
                self._stop(session)
        elif payer.billing_model == "ad_hoc_terminal":
            hold = self.holds.get((session.tenant_id, f"terminal:{session.terminal_reference}"))
            if hold is not None and running >= hold.amount * payer.stop_threshold:
                self._stop(session)
        elif payer.billing_model == "wallet":
            assert payer.driver is not None and payer.driver_id is not None
            wallet = self.wallet(session.tenant_id, payer.driver_id)
            if payer.driver.auto_top_up:
                assert payer.driver.auto_top_up_threshold is not None
                if wallet.balance - running < payer.driver.auto_top_up_threshold:
                    self._auto_top_up(session.tenant_id, payer.driver_id, payer.driver)
            elif running >= wallet.balance * payer.stop_threshold:
                self._stop(session)

    def _stop(self, session: SessionModel) -> None:
        if not session.ended:
            session.stop_requested = True

    def _auto_top_up(self, tenant_id: str, driver_id: str, driver: DriverModel) -> None:
        wallet = self.wallet(tenant_id, driver_id)
        if wallet.pending_top_up is not None:
            return
        assert driver.auto_top_up_amount is not None
        reference = AUTO_TOP_UP + driver_id
        wallet.pending_top_up = reference
        self._open_charge(tenant_id, "top_up", reference, driver_id,
                          driver.auto_top_up_amount, f"wallet:{driver_id}", ())

    # ------------------------------------------------------------ settlement
    def _settle(self, session: SessionModel) -> None:
        payer = session.payer
        assert payer is not None and session.settlement is None
        t = session.tenant_id
        cost = payer.tariff.cost(session.final_energy_wh())
        gross, net = to_cents(cost.gross), to_cents(cost.net)
        self.revenue_gross[t] += gross
        self.revenue_net[t] += net
        model = payer.billing_model
        driver_id = payer.driver_id
        if model is None:
            # docs/billing-decisions.md, "Who pays": energy delivered before the stop is
            # billed post-paid to a known driver with a card on file, else absorbed.
            has_card = payer.driver is not None and payer.driver.payment_method_token
            model = "post_paid" if has_card else "open_access"
        charged_to: list[tuple[str, str, Decimal]] = []
        if model == "open_access":
            self.balances[t, "operator_absorbed_cost"] += gross
            charged_to.append(("operator", session.location_id, gross))
            self._release_unused_terminal_hold(session)
        elif model == "ad_hoc_terminal":
            self._settle_terminal(session, gross, charged_to)
        else:
            assert driver_id is not None
            # Vouchers stack on top: session credit pays the driver's own share first.
            rest = gross - self._use_session_credit(session, driver_id, gross, charged_to)
            if model == "post_paid":
                receivable = f"driver_receivable:{driver_id}"
                self.balances[t, receivable] += gross
                charged_to.append(("driver", driver_id, rest))
                if rest > 0:
                    self._open_charge(t, "session", f"session:{session.transaction_id}",
                                      driver_id, rest, receivable,
                                      self.tenants[t].retry_schedule_hours)
            elif model == "wallet":
                self._settle_wallet(session, driver_id, gross, rest, charged_to)
            else:
                self._settle_pre_authorized(session, gross, rest, charged_to)
        session.settlement = Settlement(model, gross, net, cost, charged_to)

    def _use_session_credit(self, session: SessionModel, driver_id: str, gross: Decimal,
                            charged_to: list[tuple[str, str, Decimal]]) -> Decimal:
        """docs/billing-decisions.md, Vouchers: a credit redeemed by the session's end and
        not expired at its start pays, oldest expiry first (then redemption, then code)."""
        t = session.tenant_id
        start, end = session.reading_of("Started"), session.reading_of("Ended")
        assert start is not None and end is not None
        held = sorted(
            ((v.expires_at, v.redeemed_at, code, v) for (tenant_id, code), v
             in self.vouchers.items() if tenant_id == t and v.holder == driver_id
             and v.kind == "session_credit" and v.remaining > 0
             and v.redeemed_at is not None and v.redeemed_at <= end.at
             and start.at < v.expires_at),
            key=lambda h: h[:3])
        paid = Decimal(0)
        for _expires_at, _redeemed_at, code, voucher in held:
            use = min(voucher.remaining, gross - paid)
            if use <= 0:
                break
            voucher.remaining -= use
            paid += use
            self._move(t, "discounts", f"driver_receivable:{driver_id}", use)
            charged_to.append(("voucher", code, use))
        return paid

    def _settle_wallet(self, session: SessionModel, driver_id: str, gross: Decimal,
                       rest: Decimal, charged_to: list[tuple[str, str, Decimal]]) -> None:
        """The wallet pays what session credit did not."""
        t = session.tenant_id
        payer = session.payer
        assert payer is not None and payer.driver is not None
        wallet = self.wallet(t, driver_id)
        wallet.balance -= rest
        self.balances[t, f"wallet:{driver_id}"] += rest
        self.balances[t, f"driver_receivable:{driver_id}"] += gross - rest
        charged_to.append(("wallet", driver_id, rest))
        driver = payer.driver
        if driver.auto_top_up:
            assert driver.auto_top_up_threshold is not None
            if wallet.balance < driver.auto_top_up_threshold:
                self._auto_top_up(t, driver_id, driver)

    def _release_unused_terminal_hold(self, session: SessionModel) -> None:
        """Open access wins over a terminal (rule 1 before 2): the driver pays 0, so an
        authorization the terminal took for this session is released in full."""
        if session.terminal_reference is None:
            return
        hold = self.holds.get((session.tenant_id, "terminal:" + session.terminal_reference))
        if hold is not None and hold.capture_amount is None:
            hold.capture_amount = Decimal(0)

    def _settle_pre_authorized(self, session: SessionModel, gross: Decimal, rest: Decimal,
                               charged_to: list[tuple[str, str, Decimal]]) -> None:
        """The hold captures what session credit did not pay, up to its amount; the rest of
        the hold is released and an overshoot is charged post-paid."""
        t = session.tenant_id
        hold = self.holds[t, session.transaction_id]
        assert hold.driver_id is not None
        self.balances[t, hold.receivable] += gross
        charged_to.append(("driver", hold.driver_id, rest))
        covered = min(rest, Decimal(0) if hold.authorization == "declined" else hold.amount)
        hold.capture_amount = covered
        overshoot = rest - covered
        if overshoot > 0:
            self._open_charge(t, "overshoot", f"overshoot:{session.transaction_id}",
                              hold.driver_id, overshoot, hold.receivable,
                              self.tenants[t].retry_schedule_hours)

    def _settle_terminal(
        self, session: SessionModel, gross: Decimal, charged_to: list[tuple[str, str, Decimal]]
    ) -> None:
        t = session.tenant_id
        reference = str(session.terminal_reference)
        hold = self.holds.get((t, "terminal:" + reference))
        # A terminal authorization pays for one session: once its capture is decided,
        # nothing of it is left for another session with the same reference.
        available = (Decimal(0) if hold is None or hold.capture_amount is not None
                     else hold.amount)
        covered = min(gross, available)
        if hold is not None and hold.capture_amount is None:
            hold.capture_amount = covered
        overshoot = gross - covered
        self.balances[t, f"driver_receivable:terminal:{reference}"] += covered
        charged_to.append(("terminal", reference, covered))
        if overshoot > 0:
            self.balances[t, "operator_absorbed_cost"] += overshoot
            charged_to.append(("operator", session.location_id, overshoot))

    # ------------------------------------------------------------ payments
    def _open_charge(
        self, tenant_id: str, purpose: str, reference: str, driver_id: str, amount: Decimal,
        settles_account: str, retry_schedule_hours: tuple[int, ...],
    ) -> None:
        self.charges.append(ChargeModel(tenant_id, purpose, reference, driver_id, amount,
                                        settles_account, retry_schedule_hours))

    def _charge_answered(self, charge: ChargeModel, outcome: PspOutcome, at: datetime) -> None:
        t = charge.tenant_id
        wallet = self.wallet(t, charge.driver_id) if charge.purpose == "top_up" else None
        if outcome == "success":
            charge.status = "succeeded"
            self._move(t, "psp_clearing", charge.settles_account, charge.amount)
            if wallet is not None:
                wallet.balance += charge.amount
                if wallet.pending_top_up == charge.reference:
                    wallet.pending_top_up = None
            self.overdue.get((t, charge.driver_id), set()).discard(charge.reference)
            return
        if charge.first_failure_at is None:
            charge.first_failure_at = at
        if wallet is not None:
            charge.status = "failed"  # top-ups are not retried
            if wallet.pending_top_up == charge.reference:
                wallet.pending_top_up = None
            return
        retries_done = charge.attempts - 1
        if retries_done < len(charge.retry_schedule_hours):
            charge.status = "failed"
            charge.retry_due_at = charge.first_failure_at + timedelta(
                hours=charge.retry_schedule_hours[retries_done])
            return
        charge.status = "overdue"
        self.overdue.setdefault((t, charge.driver_id), set()).add(charge.reference)

    def _hold_answered(self, hold: HoldModel, outcome: PspOutcome, at: datetime) -> None:
        t = hold.tenant_id
        if outcome == "success":
            hold.authorization = "authorized"
            return
        hold.authorization = "declined"
        session = self.sessions[t, hold.reference]
        self._stop(session)
        if hold.capture_amount:
            # Settled before the decline arrived: what the hold was to cover is post-paid.
            assert hold.driver_id is not None
            self._open_charge(t, "declined_hold", f"declined_hold:{hold.reference}",
                              hold.driver_id, hold.capture_amount, hold.receivable,
                              self.tenants[t].retry_schedule_hours)

    def _move(self, tenant_id: str, debit: str, credit: str, amount: Decimal) -> None:
        self.balances[tenant_id, debit] += amount
        self.balances[tenant_id, credit] -= amount

"""Vouchers: batches issued (a partner's is invoiced), codes redeemed, session credit used.

Each handler checks everything first and changes only then: a `RuleViolation` (a code
already issued, unknown, redeemed or expired; an unknown driver) leaves a reason event and
nothing else; an `InvalidInput` (bad data: wrong currency, contradictory fields) is
dead-lettered. Journal treatment and the decisions behind it: docs/billing-decisions.md,
"Vouchers".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from ledger.batch import Batch
from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.journal import JournalEntry, Posting, account, transfer
from ledger.domain.money import round_to_minor_unit
from ledger.domain.payer_waterfall import Share, Source
from ledger.domain.session import ChargingSession
from ledger.domain.settlement import ChargeLine, ChargeLines, VatRate
from ledger.domain.voucher import HeldSessionCredit, Voucher, VoucherBatch
from ledger.handlers.documents import issue_document
from ledger.handlers.lookups import config_as_of, require_tenant, wallet_of
from ledger.handlers.prerequisites import wait_for
from ledger.messages import VoucherBatchIssued, VoucherRedemptionRequested

# Codes named in a refusal reason: enough to find them, short enough to read.
REASON_CODES_SHOWN_MAX = 5


# ---------------------------------------------------------------- issuing a batch
def handle_voucher_batch_issued(message: VoucherBatchIssued, batch: Batch) -> None:
    amount = _check_batch(message, batch)
    for code in message.codes:
        batch.add(
            Voucher(
                tenant_id=message.tenant_id, code=code, batch_id=message.batch_id,
                kind=message.kind, amount=amount, currency=message.currency,
                expires_at=message.expires_at,
                site_location_ids=list(message.site_location_ids),
                partner_id=message.bought_by_partner_id,
            )
        )
    invoice_number: str | None = None
    entries: list[JournalEntry] = []
    if message.bought_by_partner_id is not None:
        invoice_number, entry = _invoice_partner(message, amount, batch)
        entries.append(entry)
    batch.add(
        VoucherBatch(
            tenant_id=message.tenant_id, batch_id=message.batch_id, kind=message.kind,
            codes_count=len(message.codes), partner_id=message.bought_by_partner_id,
            invoice_number=invoice_number, journal_entries=[e.to_dict() for e in entries],
        )
    )


def _check_batch(message: VoucherBatchIssued, batch: Batch) -> Decimal:
    """Every check of a batch, before anything changes; returns the face value per code."""
    tenant = require_tenant(batch, message.tenant_id, message.occurred_at)
    name = f"voucher batch {message.batch_id}"
    if message.currency != tenant["currency"]:
        raise InvalidInput(
            f"{name} is in {message.currency}, tenant bills in {tenant['currency']}"
        )
    amount = round_to_minor_unit(message.amount_per_code, message.currency)
    if amount <= 0:
        raise InvalidInput(f"{name}: a voucher needs a positive amount per code")
    if len(set(message.codes)) != len(message.codes):
        raise InvalidInput(f"{name} lists a code more than once")
    if message.expires_at <= message.occurred_at:
        raise InvalidInput(f"{name} expires before it is issued")
    if message.kind == "balance" and message.site_location_ids:
        raise InvalidInput(
            f"{name}: a site restriction needs session_credit; wallet balance pays anywhere"
        )
    _check_partner_fields(message, name, batch)
    if batch.get(VoucherBatch, VoucherBatch.create_id(message.tenant_id, message.batch_id)):
        raise RuleViolation(f"{name} is already issued")
    taken = [
        code for code in message.codes
        if batch.get(Voucher, Voucher.create_id(message.tenant_id, code)) is not None
    ]
    if taken:
        shown = ", ".join(repr(c) for c in taken[:REASON_CODES_SHOWN_MAX])
        more = f" and {len(taken) - REASON_CODES_SHOWN_MAX} more" if (
            len(taken) > REASON_CODES_SHOWN_MAX) else ""
        raise RuleViolation(f"{name}: voucher code {shown}{more} already issued")
    return amount


def _check_partner_fields(message: VoucherBatchIssued, name: str, batch: Batch) -> None:
    partner_id = message.bought_by_partner_id
    if partner_id is None:
        if message.price_per_code_net is not None or message.vat_rate_percent is not None:
            raise InvalidInput(f"{name}: a price or VAT rate without a partner who bought it")
        return
    if message.price_per_code_net is None:
        raise InvalidInput(f"{name} bought by partner {partner_id} has no price per code")
    partner = config_as_of(batch, "partner", message.tenant_id, partner_id, message.occurred_at)
    if partner is None:
        raise InvalidInput(f"{name}: unknown partner {partner_id!r}")


def _invoice_partner(
    message: VoucherBatchIssued, amount: Decimal, batch: Batch
) -> tuple[str, JournalEntry]:
    """Invoice the batch to the partner and book it: the partner owes the invoice's gross,
    we owe the face value of every code, the difference is a discount (or a premium)."""
    partner_id = message.bought_by_partner_id
    assert partner_id is not None and message.price_per_code_net is not None
    currency = message.currency
    count = len(message.codes)
    rate: VatRate = message.vat_rate_percent
    net = round_to_minor_unit(message.price_per_code_net * count, currency)
    vat = Decimal(0) if rate is None else round_to_minor_unit(net * rate / 100, currency)
    lines = ChargeLines(currency, (ChargeLine(rate, net, vat),))
    number = issue_document(
        batch, message.tenant_id, "voucher_batch", reference=f"voucher_batch:{message.batch_id}",
        bill_to=partner_id, currency=currency, issued_at=message.occurred_at, lines=lines,
        description=(
            f"Voucher batch {message.batch_id}: {count} x {message.kind} voucher "
            f"of {amount} {currency}"
        ),
    )
    gross = lines.gross
    face_total = amount * count
    postings = [Posting(account("partner_receivable", partner_id), gross)]
    if face_total != gross:
        postings.append(Posting(account("discounts"), face_total - gross))
    postings.extend(Posting(account("voucher_credit", code), -amount) for code in message.codes)
    entry = JournalEntry(
        f"voucher_batch:{message.tenant_id}:{message.batch_id}", currency,
        f"voucher batch {message.batch_id} sold to partner {partner_id} ({number})",
        tuple(postings),
    )
    return number, entry


# ---------------------------------------------------------------- redeeming a code
def handle_voucher_redemption_requested(
    message: VoucherRedemptionRequested, batch: Batch
) -> None:
    tenant = require_tenant(batch, message.tenant_id, message.occurred_at)
    at = message.occurred_at
    # Ids are tenant-scoped: another tenant's code is unknown here, and says so.
    voucher = batch.get(Voucher, Voucher.create_id(message.tenant_id, message.code))
    if voucher is None:
        wait_for("voucher", message.tenant_id, message.code,
                f"unknown voucher code {message.code!r}", RuleViolation)
    voucher.check_redeemable(at)
    if config_as_of(batch, "driver", message.tenant_id, message.driver_id, at) is None:
        wait_for("driver", message.tenant_id, message.driver_id,
                f"unknown driver {message.driver_id!r}", RuleViolation)
    held: HeldSessionCredit | None = None
    if voucher.kind == "session_credit":
        held = batch.get(
            HeldSessionCredit, HeldSessionCredit.create_id(message.tenant_id, message.driver_id)
        )
        if held is not None:
            held.check_room()
    # Checked: from here on, change.
    voucher.redeem(message.driver_id, at)
    if voucher.kind == "session_credit":
        if held is None:
            held = HeldSessionCredit(tenant_id=message.tenant_id, driver_id=message.driver_id)
            batch.add(held)
        held.add(voucher.code)
        return
    wallet = wallet_of(message.tenant_id, message.driver_id, tenant["currency"], batch)
    entry = transfer(
        f"voucher:{message.tenant_id}:{voucher.code}:redeemed", voucher.currency,
        f"voucher {voucher.code} redeemed into the wallet", voucher.value_account,
        account("wallet", message.driver_id), voucher.amount,
    )
    wallet.credit(voucher.amount, "voucher", f"voucher:{voucher.code}", [entry.to_dict()])


# ---------------------------------------------------------------- paying sessions
def session_credit_sources(
    session: ChargingSession, driver_id: str, currency: str, until: datetime, batch: Batch
) -> tuple[Source, ...]:
    """The session credit the driver holds that can pay this session (ended, or running until
    `until`): valid during the session, at its site, oldest expiry first; each a waterfall
    source paying from its value account."""
    held = batch.get(HeldSessionCredit, HeldSessionCredit.create_id(session.tenant_id, driver_id))
    if held is None:
        return ()
    return tuple(
        Source("voucher", voucher.code, voucher.remaining_amount, voucher.value_account)
        for voucher in _usable_credit(session, held, currency, until, batch)
    )


def use_session_credit(
    session: ChargingSession, driver_id: str,
    uses: Sequence[tuple[Share, JournalEntry]], batch: Batch,
) -> None:
    """Carry out the vouchers' shares of a settlement plan, each with its own entry."""
    if not uses:
        return
    held = batch.get(HeldSessionCredit, HeldSessionCredit.create_id(session.tenant_id, driver_id))
    assert held is not None, "a voucher share comes from held session credit"
    for share, entry in uses:
        voucher = batch.get(Voucher, Voucher.create_id(session.tenant_id, share.payer_id))
        assert voucher is not None
        voucher.use(session.transaction_id, share.amount, [entry.to_dict()])
        if voucher.remaining_amount == 0:
            held.remove(voucher.code)


def _usable_credit(
    session: ChargingSession, held: HeldSessionCredit, currency: str, until: datetime,
    batch: Batch,
) -> list[Voucher]:
    """The held vouchers that can pay this session (ended, or running until `until`), in
    the order they pay: oldest expiry first."""
    assert session.started_at is not None
    started_at = session.started_at
    usable: list[Voucher] = []
    for code in held.codes:  # at most HELD_SESSION_CREDITS_MAX
        voucher = batch.get(Voucher, Voucher.create_id(session.tenant_id, code))
        assert voucher is not None, f"held code {code} was issued"
        if voucher.currency == currency and voucher.can_pay_session(
            session.location_id, started_at, until
        ):
            usable.append(voucher)
    usable.sort(key=lambda v: (v.expires_at, v.redeemed_at or started_at, v.code))
    return usable


def session_credit_available(
    session: ChargingSession, driver_id: str, currency: str, now: datetime, batch: Batch
) -> Decimal:
    """What the driver's session credit could pay of this running session (read only), so
    limits watched during a session count it (a driver with credit is not stopped early)."""
    sources = session_credit_sources(session, driver_id, currency, now, batch)
    return sum((source.capacity or Decimal(0) for source in sources), Decimal(0))

"""Which handler applies which inbound message. Each handler checks, then changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.handlers.clock import handle_clock_ticked
from ledger.handlers.config import CONFIG_KINDS, handle_configuration
from ledger.handlers.payments import (
    handle_debt_payment,
    handle_payment_result,
    handle_terminal_authorized,
)
from ledger.handlers.refunds import handle_refund_requested
from ledger.handlers.sessions import handle_transaction_event
from ledger.handlers.vouchers import (
    handle_voucher_batch_issued,
    handle_voucher_redemption_requested,
)
from ledger.handlers.wallets import handle_top_up_requested
from ledger.messages import (
    ClockTicked,
    DebtPaymentReceived,
    Envelope,
    PaymentResult,
    RefundRequested,
    TerminalAuthorized,
    TransactionEvent,
    VoucherBatchIssued,
    VoucherRedemptionRequested,
    WalletTopUpRequested,
)

HANDLERS: dict[type[Envelope], Callable[[Any, Any], None]] = {
    TransactionEvent: handle_transaction_event,
    PaymentResult: handle_payment_result,
    TerminalAuthorized: handle_terminal_authorized,
    WalletTopUpRequested: handle_top_up_requested,
    DebtPaymentReceived: handle_debt_payment,
    RefundRequested: handle_refund_requested,
    VoucherBatchIssued: handle_voucher_batch_issued,
    VoucherRedemptionRequested: handle_voucher_redemption_requested,
    ClockTicked: handle_clock_ticked,
    **{kind: handle_configuration for kind in CONFIG_KINDS},
}

"""A refund end to end through the real broker and database (issue 8, item 1).

A post-paid session is charged through the PSP simulator; finance publishes a partial and
then a full `RefundRequested` on the `wallets` topic. The ledger sends two PSP `refund`
commands on `psp.commands` naming the charge's PSP reference, the simulator answers
`refunded`, and `ledger report --json` shows two credit notes referencing the receipt, the
refunds with who got what back, and a journal where the sale and the payment are undone.

Tariff: 0.40 EUR/kWh excl. VAT, 19 % VAT; 10 kWh = 4.00 net + 0.76 VAT = 4.76.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from consumers.simulation.psp import psp_reference_for
from ledger.application import Ledger
from ledger.messages import PaymentCommand, RefundRequested
from tests.builders import T0, envelope, session_events
from tests.e2e.test_billing_models import (
    Stack,
    by_action,
    network,
    projected,
    publish,
    settled,
    wait_for_commands,
)
from tests.finance_desk import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ASKED_AT = T0 + timedelta(days=1)


def refund(tenant_id: str, tx: str, amount: str | None) -> RefundRequested:
    return RefundRequested(
        **envelope(tenant_id, ASKED_AT), session_id=tx, currency="EUR",
        amount=None if amount is None else Decimal(amount), reason="charger fault",
    )


def test_a_card_session_is_refunded_through_the_psp_with_credit_notes_in_the_report(
    stack: Stack, producer: Any, ledger: Ledger
) -> None:
    t = network(stack, producer, ledger)
    publish(stack, producer, ledger, *session_events("tx-r", "post", "10", tenant_id=t))
    settled(stack, ledger, t, "tx-r")
    [charge] = wait_for_commands(stack, t, lambda c: len(c) >= 1)
    # The refund goes back through the payment, so the charge must have been collected.
    projected(stack, ledger, t, {"psp_clearing": Decimal("4.76"), "revenue": Decimal("-4.00"),
                                 "vat_payable:19": Decimal("-0.76")})

    publish(stack, producer, ledger, refund(t, "tx-r", "1.50"), refund(t, "tx-r", None),
            refund(t, "tx-unknown", None))
    found = by_action(wait_for_commands(stack, t, lambda c: len(by_action(c).get("refund",
                                                                                 [])) == 2))
    refunds = found["refund"]
    assert [r["amount"] for r in refunds] == ["1.50", "3.26"]
    assert {r["reference"] for r in refunds} == {"tx-r"}
    # The charge's reference at the PSP, as the simulator named it when it answered.
    charged = psp_reference_for(PaymentCommand.model_validate(
        {k: v for k, v in charge.items() if k != "_type"}))
    assert {r["psp_reference"] for r in refunds} == {charged}
    assert len({r["idempotency_key"] for r in refunds}) == 2

    # The simulator answers `refunded`: the sale and the payment are both undone.
    projected(stack, ledger, t, {})

    report = json.loads(run_cli("report", "--json", "--store", stack.database))
    notes = [i for i in report["invoices"] if i["tenant_id"] == t and i["kind"] == "credit_note"]
    assert [(n["number"], n["reference"], n["bill_to"], n["total_incl_vat"]) for n in notes] == [
        ("CN-000001", "R-000001", "post", "1.50"), ("CN-000002", "R-000001", "post", "3.26")]
    mine = [r for r in report["refunds"] if r["tenant_id"] == t]
    assert [(r["amount"], r["credit_notes"], r["credit_cdr_id"]) for r in mine] == [
        ("1.50", ["CN-000001"], None), ("3.26", ["CN-000002"], "tx-r-C")]
    refused = [r for r in report["refusals"]["items"] if r["tenant_id"] == t]
    assert [(r["type"], r["reason"]) for r in refused] == [
        ("RefundRequested", "unknown session 'tx-unknown': nothing to refund")]
    assert report["journal"]["sum_of_postings"] == "0.00"

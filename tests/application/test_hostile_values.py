"""No poison pill: a hostile value is refused at the edge or dead-lettered, and the batch,
the partition and every other tenant go on (issue 10, item 1 and 2)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.application import Inbound
from ledger.domain.errors import InvalidMessage
from ledger.domain.wallet import Wallet
from ledger.messages import parse_message
from tests.builders import LedgerDriver, driver, envelope, location, tariff, tenant, top_up

TOP_UP = "WalletTopUpRequested"


def configured() -> LedgerDriver:
    d = LedgerDriver()
    d.apply(tenant(), tariff(), location(), driver("w1", "wallet"))
    return d


def top_up_payload(**changes: Any) -> dict[str, Any]:
    return json.loads(top_up("w1", "5.00").model_dump_json()) | changes


def inbound(position: int, type_name: str, payload: dict[str, Any], key: str | None = None,
            source: str = "kafka:wallets:0") -> Inbound:
    """As the consumer and `ledger ingest` build it: parsed, or the reason it is not."""
    raw = json.dumps(payload)
    try:
        message = parse_message(type_name, payload)
    except InvalidMessage as exc:
        return Inbound(source, position, None, key=key, raw=raw, error=str(exc),
                       type_name=type_name)
    return Inbound(source, position, message, key=key, raw=raw, type_name=type_name)


@pytest.mark.parametrize("amount", ["1e30", "1e20", "100000000000", "0.0000001"])
def test_a_top_up_beyond_what_the_ledger_can_hold_is_dead_lettered_and_the_batch_goes_on(
    amount: str,
) -> None:
    d = configured()
    result = d.ledger.apply_batch([
        inbound(1, TOP_UP, top_up_payload(amount=amount)),
        inbound(2, TOP_UP, top_up_payload(event_id="ok-1", amount="5.00")),
    ])
    assert (result.dead_lettered, result.applied) == (1, 1)
    [letter] = d.dead_letters()
    assert "amount" in letter.reason
    assert d.get(Wallet, Wallet.create_id("t1", "w1")).balance == Decimal("5.00")


@pytest.mark.parametrize("field", ["reference", "tenant_id", "driver_id", "event_id"])
def test_a_nul_in_any_text_is_refused_at_the_edge(field: str) -> None:
    d = configured()
    result = d.ledger.apply_batch([inbound(1, TOP_UP, top_up_payload(**{field: "x\x00y"}))])
    assert result.dead_lettered == 1
    assert "control character \\u0000" in d.dead_letters()[0].reason
    assert d.journal() == []


@given(text=st.text(min_size=1, max_size=20).filter(
    lambda t: any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in t)))
def test_any_text_with_a_control_character_is_refused(text: str) -> None:
    with pytest.raises(InvalidMessage, match="reference"):
        parse_message(TOP_UP, top_up_payload(reference=text))


def test_text_longer_than_its_limit_and_an_integer_beyond_64_bits_are_refused() -> None:
    with pytest.raises(InvalidMessage, match="longer than"):
        parse_message("PaymentResult", json.loads(json.dumps({
            **envelope(), "occurred_at": "2026-01-01T00:00:00Z", "request_id": "r",
            "outcome": "captured", "amount": "1.00", "currency": "EUR", "reason": "x" * 1001,
        })))
    payload = json.loads(tenant().model_dump_json()) | {"retry_schedule_hours": [2**64]}
    with pytest.raises(InvalidMessage, match="64 bits"):
        parse_message("TenantConfigured", payload)


def test_an_exception_a_handler_did_not_expect_dead_letters_that_message_only() -> None:
    # A value that got past the edge (built without validation): quantize raises
    # decimal.InvalidOperation, which is no LedgerError.
    d = configured()
    poisoned = top_up("w1", "1.00").model_copy(update={"amount": Decimal("1e30")})
    healthy = top_up("w1", "5.00")
    result = d.ledger.apply_batch([
        Inbound("kafka:wallets:0", 1, poisoned, key="w1", raw="{}"),
        Inbound("kafka:wallets:0", 2, healthy, key="w1", raw="{}"),
    ])
    assert (result.dead_lettered, result.handler_failures, result.applied) == (1, 1, 1)
    [letter] = d.dead_letters()
    assert letter.reason.startswith("handler failed: InvalidOperation")
    assert d.get(Wallet, Wallet.create_id("t1", "w1")).balance == Decimal("5.00")
    assert d.ledger.position("kafka:wallets:0") == 2
    assert sum(p.amount for e in d.journal() for p in e.postings) == 0


def test_a_dead_lettered_records_key_type_header_and_reason_are_kept_printable() -> None:
    d = configured()
    d.ledger.apply_batch([
        Inbound("kafka:wallets:0", 1, None, key="k\x00ey", raw="\x00raw\ud800",
                error="bad \x00 header", type_name="Wallet\x00TopUp" + "x" * 2000),
    ])
    [letter] = d.dead_letters()
    assert (letter.key, letter.reason) == ("k\\u0000ey", "bad \\u0000 header")
    assert letter.type_name.startswith("Wallet\\u0000TopUp")
    assert letter.type_name.endswith("[truncated]") and len(letter.type_name) == 1000
    assert letter.payload == "\\u0000raw\\ud800"


def test_a_duplicate_event_id_with_another_payload_is_a_conflict_with_both_digests() -> None:
    d = configured()
    first = top_up("w1", "5.00")
    second = first.model_copy(update={"amount": Decimal("500.00")})
    same = first.model_copy()
    result = d.apply(first, second, same)
    assert (result.applied, result.dead_lettered, result.conflicts, result.duplicates) == (
        1, 1, 1, 1)
    [letter] = d.dead_letters()
    assert first.payload_digest() in letter.reason
    assert second.payload_digest() in letter.reason
    assert letter.reason.startswith(f"conflict: event id {first.event_id}")
    assert d.get(Wallet, Wallet.create_id("t1", "w1")).balance == Decimal("5.00")

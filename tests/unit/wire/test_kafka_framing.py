"""How a message rides on Kafka: its type in a header, its aggregate in the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.avro_codec import (
    DEAD_LETTER_REASON_CHARS_MAX,
    DeadLetter,
    dead_letter_for,
    decode,
    decode_dead_letter,
    encode,
    encode_dead_letter,
    headers_for,
    key_for,
    type_from_headers,
)
from consumers.kafka_topics import DEAD_LETTER_TOPIC
from ledger.domain.errors import InvalidMessage
from ledger.messages import Envelope
from tests.wire_samples import TENANT_ID, all_samples, minimal_sample, sample, sample_id

SAMPLES = all_samples()
RECEIVED_AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


# ---------------------------------------------------------------- the type header
@pytest.mark.parametrize("message", SAMPLES, ids=sample_id)
def test_type_header_names_the_type_that_decodes_the_bytes(message: Envelope) -> None:
    type_name = type_from_headers(headers_for(message))

    assert decode(type_name, encode(message)) == message


def test_other_headers_and_a_repeated_equal_type_header_are_fine() -> None:
    headers = [("traceparent", b"00-abc"), ("type", b"ClockTicked"), ("type", b"ClockTicked")]

    assert type_from_headers(headers) == "ClockTicked"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (None, "no 'type' header"),
        ([], "no 'type' header"),
        ([("Type", b"ClockTicked")], "no 'type' header"),
        ([("type", None)], "empty 'type' header"),
        ([("type", b"")], "empty 'type' header"),
        ([("type", b"ClockTicked"), ("type", b"PaymentResult")], "conflicting 'type' headers"),
        ([("type", b"\xff\xfe")], "not UTF-8"),
    ],
    ids=["none", "empty-list", "wrong-case", "null-value", "empty-value", "conflict", "binary"],
)
def test_missing_or_unreadable_type_header_raises_invalid_message(
    headers: list[tuple[str, bytes | None]] | None, reason: str
) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        type_from_headers(headers)


# ---------------------------------------------------------------- the key
@pytest.mark.parametrize("message", SAMPLES, ids=sample_id)
def test_every_message_has_a_key_scoped_to_its_tenant(message: Envelope) -> None:
    key = key_for(message)

    assert key.startswith(f"{TENANT_ID}:".encode())
    assert len(key) > len(TENANT_ID) + 1


@pytest.mark.parametrize(
    ("type_name", "natural_key"),
    [
        ("TransactionEvent", "tx-1"),
        ("PaymentResult", "cmd-1"),
        ("TerminalAuthorized", "term-ref-1"),
        ("VoucherBatchIssued", TENANT_ID),
        ("VoucherRedemptionRequested", TENANT_ID),
        ("WalletTopUpRequested", "drv-1"),
        ("DriverConfigured", TENANT_ID),
        ("SubscriptionChanged", TENANT_ID),
        ("EnrolmentChanged", TENANT_ID),
        ("LocationConfigured", TENANT_ID),
        ("TariffPublished", TENANT_ID),
        ("PlanPublished", TENANT_ID),
        ("PartnerConfigured", TENANT_ID),
        ("TenantConfigured", TENANT_ID),
        ("ClockTicked", TENANT_ID),
        ("StopSessionRequested", "tx-1"),
        ("PaymentCommand", "session-1"),
    ],
)
def test_key_is_the_tenant_and_the_aggregates_natural_key(type_name: str, natural_key: str) -> None:
    assert key_for(minimal_sample(type_name)) == f"{TENANT_ID}:{natural_key}".encode()


def test_every_event_of_one_session_shares_a_key_and_other_sessions_do_not() -> None:
    started = minimal_sample("TransactionEvent")
    ended = sample("TransactionEvent", full=True)
    other_dump = started.model_dump()
    other_dump["transaction"]["transactionInfo"]["transactionId"] = "tx-2"
    other = type(started).model_validate(other_dump)

    assert key_for(started) == key_for(ended) != key_for(other)


def test_a_holds_authorize_capture_and_release_share_a_key() -> None:
    commands = [
        sample("PaymentCommand", event_id=f"cmd-{action}", action=action)
        for action in ("authorize", "capture", "release")
    ]

    assert len({key_for(command) for command in commands}) == 1


def test_same_natural_key_in_two_tenants_gives_two_keys() -> None:
    assert key_for(sample("ClockTicked", tenant_id="a")) != key_for(
        sample("ClockTicked", tenant_id="b")
    )


# ---------------------------------------------------------------- dead letters
def _dead_letter(**overrides: object) -> DeadLetter:
    arguments: dict[str, object] = {
        "source_topic": "psp.results",
        "source_partition": 3,
        "source_offset": 2**40,
        "key": f"{TENANT_ID}:cmd-1",
        "reason": "invalid PaymentResult: currency: String should match pattern",
        "payload": b"\x00\xff raw bytes",
        "received_at": RECEIVED_AT,
        "producer": "ledger-consumer-1",
    }
    arguments.update(overrides)
    return dead_letter_for(**arguments)  # type: ignore[arg-type]


def test_dead_letter_survives_the_round_trip() -> None:
    dead_letter = _dead_letter()

    assert decode_dead_letter(encode_dead_letter(dead_letter)) == dead_letter


def test_dead_letter_from_an_event_file_has_no_partition_and_no_key() -> None:
    dead_letter = _dead_letter(
        source_topic="file:day.jsonl", source_partition=None, source_offset=17, key=None
    )

    assert decode_dead_letter(encode_dead_letter(dead_letter)) == dead_letter


def test_same_bad_message_at_the_same_position_gets_the_same_dead_letter_id() -> None:
    first = _dead_letter()
    again = _dead_letter(received_at=RECEIVED_AT + timedelta(hours=1), reason="new wording")

    assert first.event_id == again.event_id


def test_another_position_or_other_bytes_get_another_dead_letter_id() -> None:
    ids = {
        _dead_letter().event_id,
        _dead_letter(source_offset=2**40 + 1).event_id,
        _dead_letter(source_partition=4).event_id,
        _dead_letter(payload=b"other").event_id,
    }

    assert len(ids) == 4


def test_dead_letter_reason_is_cut_to_its_limit() -> None:
    dead_letter = _dead_letter(reason="x" * (DEAD_LETTER_REASON_CHARS_MAX + 10))

    assert len(dead_letter.reason) == DEAD_LETTER_REASON_CHARS_MAX


def test_dead_letter_received_at_is_an_instant_with_an_offset() -> None:
    assert _dead_letter().received_at == "2026-03-01T10:00:00Z"
    with pytest.raises(ValueError, match="UTC offset"):
        _dead_letter(received_at=datetime(2026, 3, 1, 10, 0))


def test_dead_letter_travels_with_its_own_type_header() -> None:
    assert type_from_headers(headers_for(_dead_letter())) == "DeadLetter"
    assert DEAD_LETTER_TOPIC == "ledger.dead-letters"


def test_bytes_that_are_not_a_dead_letter_raise_invalid_message() -> None:
    with pytest.raises(InvalidMessage, match="not a DeadLetter record"):
        decode_dead_letter(b"\x02")

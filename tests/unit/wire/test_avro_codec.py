"""Messages survive Avro unchanged, and anything wrong with one becomes InvalidMessage."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers import avro_codec
from consumers.avro_codec import (
    MESSAGE_BYTES_MAX,
    SchemaLoadError,
    decode,
    default_schemas,
    encode,
    load_schemas,
    schemas_dir,
)
from ledger.domain.errors import InvalidMessage
from ledger.limits import AMOUNT_MAJOR_MAX, DECIMAL_PLACES_MAX
from ledger.messages import MESSAGE_TYPES, Envelope, PaymentResult, TransactionEvent
from tests.wire_samples import all_samples, full_sample, minimal_sample, sample, sample_id

SAMPLES = all_samples()


def _write_raw(type_name: str, record: dict[str, Any]) -> bytes:
    """Bytes the schema accepts, written without the model's checks."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, default_schemas().parsed[type_name], record)
    return buffer.getvalue()


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("message", SAMPLES, ids=sample_id)
def test_every_message_decodes_to_an_equal_message(message: Envelope) -> None:
    decoded = decode(message.type_name(), encode(message))

    assert decoded == message
    # == on datetimes ignores the offset; the JSON form shows it was kept too.
    assert decoded.model_dump(mode="json") == message.model_dump(mode="json")


@pytest.mark.parametrize("message", SAMPLES, ids=sample_id)
def test_avro_record_is_the_json_form_of_the_message(message: Envelope) -> None:
    # CONTRACT.md: an event line's `event` is the JSON form of the Avro record.
    schema = default_schemas().parsed[message.type_name()]
    body = io.BytesIO(encode(message)[avro_codec.SINGLE_OBJECT_HEADER_BYTES :])
    record = fastavro.schemaless_reader(body, schema, None)

    assert record == message.model_dump(mode="json")


@given(
    amount=st.decimals(min_value=0, max_value=AMOUNT_MAJOR_MAX, allow_nan=False,
                       allow_infinity=False, places=DECIMAL_PLACES_MAX),
    reason=st.none() | st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=200),
)
def test_any_amount_and_any_text_the_edge_accepts_survive_the_round_trip(
    amount: Decimal, reason: str | None
) -> None:
    message = sample("PaymentResult", amount=amount, reason=reason)

    decoded = decode("PaymentResult", encode(message))

    assert isinstance(decoded, PaymentResult)
    assert str(decoded.amount) == str(amount)
    assert decoded.reason == reason


@given(seq_no=st.integers(min_value=0, max_value=2**63 - 1))
def test_any_64_bit_sequence_number_survives_the_round_trip(seq_no: int) -> None:
    base = minimal_sample("TransactionEvent").model_dump()
    base["transaction"]["seqNo"] = seq_no
    message = MESSAGE_TYPES["TransactionEvent"].model_validate(base)

    assert decode("TransactionEvent", encode(message)) == message


# ---------------------------------------------------------------- refused on the way out
def test_integer_beyond_64_bits_is_refused_on_encode() -> None:
    # The model refuses it too (test_hostile_values); encode must not rely on that.
    valid = minimal_sample("TransactionEvent")
    assert isinstance(valid, TransactionEvent)
    message = valid.model_copy(
        update={"transaction": valid.transaction.model_copy(update={"seqNo": 2**63})})

    with pytest.raises(InvalidMessage, match="cannot encode TransactionEvent"):
        encode(message)


def test_text_that_is_not_unicode_is_refused_on_encode() -> None:
    # The model refuses it too (test_hostile_values); encode must not rely on that.
    message = sample("PaymentResult").model_copy(update={"reason": "half a surrogate \ud800"})

    with pytest.raises(InvalidMessage, match="cannot encode PaymentResult"):
        encode(message)


def test_subclass_of_a_message_type_is_refused_on_encode() -> None:
    class Tweaked(PaymentResult):
        pass

    message = Tweaked.model_validate(minimal_sample("PaymentResult").model_dump())

    with pytest.raises(InvalidMessage, match="not a wire message type"):
        encode(message)


# ---------------------------------------------------------------- refused on the way in
@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\xff" * 64, b"not avro at all"],
    ids=["empty", "one-byte", "all-ones", "text"],
)
def test_bytes_that_are_not_a_record_raise_invalid_message(data: bytes) -> None:
    with pytest.raises(InvalidMessage, match="bytes are not a TransactionEvent record"):
        decode("TransactionEvent", data)


def test_truncated_message_raises_invalid_message() -> None:
    data = encode(full_sample("TransactionEvent"))

    with pytest.raises(InvalidMessage, match="not a TransactionEvent record"):
        decode("TransactionEvent", data[:-5])


def test_trailing_bytes_after_the_record_raise_invalid_message() -> None:
    data = encode(minimal_sample("ClockTicked"))

    with pytest.raises(InvalidMessage, match="1 bytes left over"):
        decode("ClockTicked", data + b"\x00")


def test_message_over_the_size_limit_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidMessage, match="over"):
        decode("ClockTicked", b"\x00" * (MESSAGE_BYTES_MAX + 1))


@given(
    type_name=st.sampled_from(sorted(MESSAGE_TYPES)),
    data=st.binary(max_size=300),
)
def test_arbitrary_bytes_either_decode_or_raise_invalid_message(
    type_name: str, data: bytes
) -> None:
    try:
        message = decode(type_name, data)
    except InvalidMessage:
        return
    assert message.type_name() == type_name


def test_unknown_type_name_raises_invalid_message() -> None:
    with pytest.raises(InvalidMessage, match="unknown message type 'Bogus'"):
        decode("Bogus", encode(minimal_sample("ClockTicked")))


def test_nested_record_name_is_not_a_message_type() -> None:
    with pytest.raises(InvalidMessage, match="unknown message type 'MeterValue'"):
        decode("MeterValue", b"")


def test_bytes_under_the_wrong_type_header_raise_invalid_message() -> None:
    data = encode(full_sample("TransactionEvent"))

    with pytest.raises(InvalidMessage):
        decode("PaymentResult", data)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("currency", "eur", "currency"),
        ("amount", "-1.00", "amount"),
        ("amount", "twelve", "amount"),
        ("amount", "NaN", "amount"),
        ("outcome", "maybe", "outcome"),
        ("occurred_at", "2026-03-01T09:30:00", "occurred_at"),
        ("request_id", "", "request_id"),
    ],
)
def test_schema_valid_but_model_invalid_data_raises_invalid_message(
    field: str, value: str, reason: str
) -> None:
    record = {**minimal_sample("PaymentResult").model_dump(mode="json"), field: value}

    with pytest.raises(InvalidMessage, match=f"invalid PaymentResult: {reason}"):
        decode("PaymentResult", _write_raw("PaymentResult", record))


# ---------------------------------------------------------------- the schema folder
def test_schema_folder_is_the_repository_one_unless_the_environment_names_another(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(avro_codec.SCHEMAS_DIR_ENV, raising=False)
    assert schemas_dir() == Path(avro_codec.__file__).resolve().parents[1] / "schemas"

    monkeypatch.setenv(avro_codec.SCHEMAS_DIR_ENV, str(tmp_path))
    assert schemas_dir() == tmp_path


def test_schemas_are_parsed_once_per_process() -> None:
    assert default_schemas() is default_schemas()


def test_a_missing_schema_folder_is_a_schema_load_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match="does not exist"):
        load_schemas(tmp_path / "nowhere")


def _copy_schemas(target: Path) -> Path:
    """A copy of the live folders and the history."""
    for path in schemas_dir().glob("**/*.avsc"):
        copied = target / path.relative_to(schemas_dir())
        copied.parent.mkdir(parents=True, exist_ok=True)
        copied.write_text(path.read_text())
    return target


def test_a_missing_message_schema_is_a_schema_load_error(tmp_path: Path) -> None:
    (_copy_schemas(tmp_path) / "inbound" / "ClockTicked.avsc").unlink()

    with pytest.raises(SchemaLoadError, match="no schema for ClockTicked"):
        load_schemas(tmp_path)


def test_a_reference_to_a_missing_record_is_a_schema_load_error(tmp_path: Path) -> None:
    (_copy_schemas(tmp_path) / "ocpp" / "UnitOfMeasure.avsc").unlink()

    with pytest.raises(SchemaLoadError, match="'UnitOfMeasure', which has no schema file"):
        load_schemas(tmp_path)


def test_a_file_named_unlike_its_record_is_a_schema_load_error(tmp_path: Path) -> None:
    folder = _copy_schemas(tmp_path)
    (folder / "ocpp" / "Evse.avsc").rename(folder / "ocpp" / "EVSE.avsc")

    with pytest.raises(SchemaLoadError, match="must hold one record named 'EVSE'"):
        load_schemas(tmp_path)


def test_a_copied_schema_folder_loads_the_same_records(tmp_path: Path) -> None:
    loaded = load_schemas(_copy_schemas(tmp_path))

    assert loaded.raw == default_schemas().raw

"""Every message names the schema that wrote it, and the reader resolves it to the live one.

The framing is Avro single-object encoding (marker, CRC-64-AVRO fingerprint, body); values
without the marker were written before it, with v1. LocationConfigured v2 (country_code) is
the real second version that proves it.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.avro_codec import (
    DEAD_LETTER_TYPE,
    SINGLE_OBJECT_HEADER_BYTES,
    SINGLE_OBJECT_MARKER,
    SchemaLoadError,
    decode,
    decode_dead_letter,
    default_schemas,
    encode,
    encode_dead_letter,
    load_schemas,
    record_live_version,
    schemas_dir,
)
from consumers.event_file import parse_event_line
from consumers.schema_history import fingerprint_of
from ledger.domain.errors import InvalidMessage
from ledger.messages import MESSAGE_TYPES, Envelope, LocationConfigured, parse_message
from tests.wire_samples import all_samples, full_sample, minimal_sample, sample_id

SAMPLES = all_samples()


def _history(type_name: str, version: int) -> dict[str, Any]:
    path = schemas_dir() / "history" / type_name / f"v{version}.avsc"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def _body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """A record's Avro body written with a standalone schema, as another producer would."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema, {}), record, strict=True)
    return buffer.getvalue()


def _framed(fingerprint: bytes, body: bytes) -> bytes:
    return SINGLE_OBJECT_MARKER + fingerprint + body


def _location_v1_record(**fields: Any) -> dict[str, Any]:
    """What a v1 producer of LocationConfigured sends: no country, schema_version 1."""
    record = minimal_sample("LocationConfigured").model_dump(mode="json")
    del record["country_code"]
    return {**record, "schema_version": 1, **fields}


# ---------------------------------------------------------------- the fingerprint
@pytest.mark.parametrize(
    ("schema", "fingerprint"),
    # The Avro specification's test vectors (share/test/data/schema-tests.txt), as signed
    # 64-bit integers: the fingerprint goes on the wire little-endian.
    [("null", 7195948357588979594), ("int", 8247732601305521295),
     ("string", -8142146995180207161), ({"type": "fixed", "name": "foo", "size": 15},
                                         1756455273707447556)],
)
def test_fingerprints_are_the_avro_specifications_crc_64_little_endian(
    schema: Any, fingerprint: int
) -> None:
    assert fingerprint_of(schema) == fingerprint.to_bytes(8, "little", signed=True)


def test_docs_and_defaults_do_not_change_a_fingerprint_but_a_new_field_does() -> None:
    v1 = _history("LocationConfigured", 1)
    v2 = _history("LocationConfigured", 2)
    undocumented = {**v1, "doc": "other words"}

    assert fingerprint_of(undocumented) == fingerprint_of(v1)
    assert fingerprint_of(v2) != fingerprint_of(v1)


# ---------------------------------------------------------------- writing
@pytest.mark.parametrize("message", SAMPLES, ids=sample_id)
def test_every_message_is_framed_with_its_live_schemas_fingerprint(message: Envelope) -> None:
    data = encode(message)
    live = default_schemas().live_writer(message.type_name())

    assert data[:SINGLE_OBJECT_HEADER_BYTES] == SINGLE_OBJECT_MARKER + live.fingerprint
    assert live.fingerprint == fingerprint_of(default_schemas().expanded(message.type_name()))


def test_new_location_messages_say_they_are_version_2() -> None:
    message = minimal_sample("LocationConfigured")

    assert message.schema_version == LocationConfigured.SCHEMA_VERSION == 2
    assert default_schemas().live_writer("LocationConfigured").version == 2


# ---------------------------------------------------------------- reading older versions
def test_a_v1_location_from_before_the_framing_decodes_with_the_v2_reader() -> None:
    # What is already in Kafka: schemaless, the type in the header only.
    data = _body(_history("LocationConfigured", 1), _location_v1_record())

    decoded = decode("LocationConfigured", data)

    assert isinstance(decoded, LocationConfigured)
    assert decoded.country_code is None and decoded.schema_version == 1
    assert decoded.location_id == minimal_sample("LocationConfigured").location_id


def test_a_framed_v1_location_decodes_with_the_v2_reader() -> None:
    v1 = _history("LocationConfigured", 1)
    record = _location_v1_record(owner_partner_id="partner-1", preauth_hold_amount="75.00")

    decoded = decode("LocationConfigured", _framed(fingerprint_of(v1), _body(v1, record)))

    assert isinstance(decoded, LocationConfigured)
    assert decoded.country_code is None
    assert decoded.owner_partner_id == "partner-1"
    assert str(decoded.preauth_hold_amount) == "75.00"


def test_a_v2_location_round_trips_with_its_country() -> None:
    message = full_sample("LocationConfigured")

    decoded = decode("LocationConfigured", encode(message))

    assert decoded == message
    assert isinstance(decoded, LocationConfigured) and decoded.country_code == "DEU"


@given(
    location_id=st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=64),
    open_access=st.booleans(),
    evse_ids=st.lists(st.from_regex(r"\A[a-z0-9:-]{1,20}\Z"), max_size=5),
)
def test_any_v1_location_reads_as_the_same_location_without_a_country(
    location_id: str, open_access: bool, evse_ids: list[str]
) -> None:
    v1 = _history("LocationConfigured", 1)
    record = _location_v1_record(location_id=location_id, open_access=open_access,
                                 open_access_evse_ids=evse_ids)

    framed = decode("LocationConfigured", _framed(fingerprint_of(v1), _body(v1, record)))
    unframed = decode("LocationConfigured", _body(v1, record))

    assert framed == unframed == parse_message("LocationConfigured", record)
    assert framed.model_dump(mode="json") == {**record, "country_code": None}


@pytest.mark.parametrize("message", SAMPLES, ids=sample_id)
def test_every_type_still_reads_what_its_v1_producers_wrote_unframed(message: Envelope) -> None:
    # Every record starts with a string (event_id; DeadLetter's source_topic): the marker as
    # its length would be negative, so unframed v1 bytes are never taken for framed ones.
    type_name = message.type_name()
    v1 = _history(type_name, 1)
    assert v1["fields"][0]["type"] == "string"
    record = {
        name: value
        for name, value in message.model_dump(mode="json").items()
        if name in {f["name"] for f in v1["fields"]}
    }

    decoded = decode(type_name, _body(v1, {**record, "schema_version": 1}))

    # Fields added after v1 read as the live schema's defaults.
    added = {
        f["name"]: f["default"]
        for f in default_schemas().expanded(type_name)["fields"]
        if f["name"] not in record
    }
    assert decoded.model_dump(mode="json") == {**record, **added, "schema_version": 1}


# ---------------------------------------------------------------- v3: invoice parties
PARTY_FIELDS: dict[str, tuple[str, ...]] = {
    "TenantConfigured": ("legal_name", "vat_id", "address_street", "address_postcode",
                         "address_city", "address_country", "invoice_email"),
    "PartnerConfigured": ("legal_name", "vat_id", "address_street", "address_postcode",
                          "address_city", "address_country", "buyer_reference",
                          "invoice_email"),
}


@pytest.mark.parametrize("type_name", sorted(PARTY_FIELDS))
def test_a_framed_v2_configuration_decodes_with_the_v3_reader_without_party_data(
    type_name: str,
) -> None:
    # What a producer that knows nothing of e-invoices keeps sending.
    v2 = _history(type_name, 2)
    record = {
        name: value
        for name, value in full_sample(type_name).model_dump(mode="json").items()
        if name not in PARTY_FIELDS[type_name]
    } | {"schema_version": 2}

    decoded = decode(type_name, _framed(fingerprint_of(v2), _body(v2, record)))

    assert decoded.schema_version == 2
    assert all(getattr(decoded, name) is None for name in PARTY_FIELDS[type_name])
    assert decoded.model_dump(mode="json") == record | dict.fromkeys(PARTY_FIELDS[type_name])


@pytest.mark.parametrize("type_name", sorted(PARTY_FIELDS))
def test_a_v3_configuration_round_trips_with_its_party_data(type_name: str) -> None:
    message = full_sample(type_name)

    decoded = decode(type_name, encode(message))

    assert decoded == message
    assert MESSAGE_TYPES[type_name].SCHEMA_VERSION == 3
    assert default_schemas().live_writer(type_name).version == 3
    assert all(getattr(decoded, name) for name in PARTY_FIELDS[type_name])


@pytest.mark.parametrize(
    ("field", "value"),
    [("address_country", "DEU"), ("vat_id", "123"), ("invoice_email", "no-at-sign")],
)
def test_party_data_of_the_wrong_shape_is_an_invalid_message(field: str, value: str) -> None:
    record = minimal_sample("TenantConfigured").model_dump(mode="json") | {field: value}

    with pytest.raises(InvalidMessage, match=field):
        parse_message("TenantConfigured", record)


# ---------------------------------------------------------------- refused
def test_an_unknown_fingerprint_is_an_invalid_message_that_says_so() -> None:
    body = encode(minimal_sample("ClockTicked"))[SINGLE_OBJECT_HEADER_BYTES:]

    with pytest.raises(InvalidMessage, match="unknown schema \\(fingerprint 0102030405060708\\)"):
        decode("ClockTicked", _framed(bytes(range(1, 9)), body))


def test_a_fingerprint_of_another_type_than_the_header_is_an_invalid_message() -> None:
    data = encode(minimal_sample("ClockTicked"))

    with pytest.raises(InvalidMessage, match=r"header says PaymentResult but .* ClockTicked v1"):
        decode("PaymentResult", data)


@pytest.mark.parametrize("length", range(len(SINGLE_OBJECT_MARKER), SINGLE_OBJECT_HEADER_BYTES))
def test_a_truncated_single_object_header_is_an_invalid_message(length: int) -> None:
    data = encode(minimal_sample("ClockTicked"))[:length]

    with pytest.raises(InvalidMessage, match="shorter than the 10-byte single-object header"):
        decode("ClockTicked", data)


def test_a_version_newer_than_the_model_knows_is_refused_in_an_event_file_too() -> None:
    record = {**minimal_sample("LocationConfigured").model_dump(mode="json"), "schema_version": 3}

    with pytest.raises(InvalidMessage, match="LocationConfigured v3 is newer than this ledger"):
        parse_message("LocationConfigured", record)


def test_an_event_file_line_of_a_v1_location_still_parses() -> None:
    record = _location_v1_record()
    line = json.dumps({"topic": "config", "key": "k", "type": "LocationConfigured",
                       "event": record})

    parsed = parse_event_line(1, line.encode())

    assert parsed.error is None and parsed.payload is not None
    message = parse_message(parsed.type_name, parsed.payload)
    assert isinstance(message, LocationConfigured)
    assert (message.schema_version, message.country_code) == (1, None)


# ---------------------------------------------------------------- dead letters
def test_dead_letters_are_framed_and_unframed_ones_still_decode() -> None:
    from consumers.avro_codec import dead_letter_for
    from tests.wire_samples import AT

    letter = dead_letter_for(source_topic="t", source_partition=0, source_offset=1, key=None,
                             reason="r", payload=b"\x00", received_at=AT, producer="p")
    data = encode_dead_letter(letter)
    live = default_schemas().live_writer(DEAD_LETTER_TYPE)

    assert data.startswith(SINGLE_OBJECT_MARKER + live.fingerprint)
    assert decode_dead_letter(data) == letter
    assert decode_dead_letter(data[SINGLE_OBJECT_HEADER_BYTES:]) == letter


# ---------------------------------------------------------------- the history folder
def _copy(target: Path) -> Path:
    shutil.copytree(schemas_dir(), target / "schemas")
    return target / "schemas"


def test_a_live_schema_not_recorded_in_history_fails_to_load(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "history" / "LocationConfigured" / "v2.avsc").unlink()

    with pytest.raises(SchemaLoadError, match=r"LocationConfigured: .* record it as v2"):
        load_schemas(folder)


def test_a_gap_in_the_history_fails_to_load(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    versions = folder / "history" / "LocationConfigured"
    (versions / "v2.avsc").rename(versions / "v3.avsc")

    with pytest.raises(SchemaLoadError, match=r"versions \[1, 3\] are not 1..N"):
        load_schemas(folder)


def test_recording_the_live_schema_adds_the_next_version_once(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "history" / "LocationConfigured" / "v2.avsc").unlink()

    written = record_live_version(folder, "LocationConfigured")

    assert written == folder / "history" / "LocationConfigured" / "v2.avsc"
    assert written.read_text() == (schemas_dir() / written.relative_to(folder)).read_text()
    assert load_schemas(folder).live_writer("LocationConfigured").version == 2
    with pytest.raises(SchemaLoadError, match="already v2"):
        record_live_version(folder, "LocationConfigured")


def test_every_model_knows_the_latest_version_of_its_schema() -> None:
    for type_name, model in MESSAGE_TYPES.items():
        latest = default_schemas().live_writer(type_name).version
        assert latest == model.SCHEMA_VERSION, type_name
        assert model.model_fields["schema_version"].default == latest, type_name

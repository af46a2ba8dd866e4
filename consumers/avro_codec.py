"""Avro on the wire: the schemas in `schemas/`, the codec, and the Kafka framing of a message.

A Kafka message carries one Avro record in the Avro single-object encoding: the marker
0xC3 0x01, the 8-byte CRC-64-AVRO fingerprint (little-endian) of the writer schema's Parsing
Canonical Form, then the record's binary body. Its type name travels in the header `type`,
and its key is the aggregate's natural key, so every message about one aggregate lands on one
partition and is read in order.

Schema evolution: the reader looks the fingerprint up among every published version
(`schemas/history/<Type>/vN.avsc`, `consumers/schema_history.py`) and reads the body with Avro
schema resolution from that writer schema into the live one, so a v1 producer keeps working
after the ledger moves to v2. An unknown fingerprint, or one of another type than the header
says, is a bad message. A value without the marker was written before this framing existed
(schemaless, always with v1) and is read as v1 of its header's type; it cannot be mistaken
for a framed one, because every record starts with a string whose length would be the
negative zigzag varint 0xC3 0x01. Why not a schema registry: docs/kafka.md.

Errors: anything wrong with a message (bytes, header, schema or model) is raised as
`ledger.domain.errors.InvalidMessage` with the reason, `from` the library's exception, so the
consumer can dead-letter it. A broken `schemas/` folder is `SchemaLoadError`: a deployment
fault, never a bad message.

Schemas are parsed once, on first use (`default_schemas()`), from `schemas/` next to this
package, or from the folder in the environment variable `EVLEDGER_SCHEMAS_DIR`. The live
schemas are `inbound/`, `outbound/` and `ocpp/`; `history/` holds every version already
published, the latest equal to the live one.

What the type header cannot tell alone: a mislabelled message written with this framing is
caught by its fingerprint; an unframed (v1) one is caught by the model for most types, not
all: two types of the same layout read as each other.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import fastavro
import fastavro.schema
from fastavro.types import Schema

from consumers.schema_history import (
    FINGERPRINT_BYTES,
    HISTORY_FOLDER,
    SchemaLoadError,
    WriterSchema,
    load_history,
)
from ledger.domain.errors import InvalidMessage
from ledger.messages import (
    MESSAGE_TYPES,
    ClockTicked,
    Configuration,
    DebtPaymentReceived,
    Envelope,
    PaymentCommand,
    PaymentResult,
    RefundRequested,
    SessionCostUpdated,
    StopSessionRequested,
    TerminalAuthorized,
    TransactionEvent,
    VoucherBatchIssued,
    VoucherRedemptionRequested,
    WalletTopUpRequested,
    parse_message,
)

SCHEMAS_DIR_ENV = "EVLEDGER_SCHEMAS_DIR"
SCHEMA_NAMESPACE = "evledger.v1"
# The folders whose schemas are live; `history/` (every published version) is read apart.
SCHEMA_FOLDERS: tuple[str, ...] = ("inbound", "outbound", "ocpp")
TYPE_HEADER = "type"
DEAD_LETTER_TYPE = "DeadLetter"
# Avro single-object encoding: this marker, then the writer schema's fingerprint, then the body.
SINGLE_OBJECT_MARKER = b"\xc3\x01"
SINGLE_OBJECT_HEADER_BYTES = len(SINGLE_OBJECT_MARKER) + FINGERPRINT_BYTES

# The largest messages the models bound (10,000 voucher codes, a 200,000-character tariff)
# stay under 1 MiB, Kafka's default; 4 MiB leaves room for the lists the models leave
# unbounded (id tokens, site ids, meter values) and caps them. Checked on both paths.
MESSAGE_BYTES_MAX = 4 * 1024 * 1024
# More schema files than this means the folder is wrong (a checkout of something else).
SCHEMA_FILES_MAX = 500
# References nest TransactionEvent -> OcppTransactionEvent -> MeterValue -> SampledValue ->
# UnitOfMeasure; anything deeper is a cycle or a mistake.
SCHEMA_DEPTH_MAX = 16
# A dead letter's reason is for a human; a pydantic report of a huge message could be longer.
DEAD_LETTER_REASON_CHARS_MAX = 4_000

assert len(MESSAGE_TYPES) + 1 < SCHEMA_FILES_MAX, "every message type and DeadLetter need a file"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# Fixed so a dead letter's id never changes between releases (see `dead_letter_for`).
_DEAD_LETTER_ID_NAMESPACE = UUID("6f1c7a52-3b1e-5d4e-9a3c-2f8e1d0b7c64")


@dataclasses.dataclass(frozen=True)
class SchemaSet:
    """Every live schema, as written (`raw`) and parsed for fastavro (`parsed`), by record name,
    and every published version of each message type (`history`, oldest first; `writers` by
    fingerprint)."""

    directory: Path
    raw: Mapping[str, dict[str, Any]]
    parsed: Mapping[str, Schema]
    history: Mapping[str, tuple[WriterSchema, ...]]
    writers: Mapping[bytes, WriterSchema]

    def expanded(self, name: str) -> dict[str, Any]:
        """The schema with every referenced record inlined where first used: self-contained,
        as stored in `schemas/history/` and as a schema registry would want it."""
        if name not in self.raw:
            raise KeyError(f"no schema named {name!r} in {self.directory}")
        expanded = _expand(self.raw[name], self.raw, seen=set(), depth=0)
        assert isinstance(expanded, dict), "every schema file holds one record"
        return expanded

    def parsed_schema(self, name: str) -> Schema:
        try:
            return self.parsed[name]
        except KeyError:
            raise InvalidMessage(f"unknown message type {name!r}") from None

    def live_writer(self, name: str) -> WriterSchema:
        """The version producers write now: the latest published one."""
        return self.history[name][-1]

    def writer_of(self, name: str, data: bytes) -> tuple[WriterSchema, int]:
        """The schema that wrote `data`, a message of type `name`, and where its body starts."""
        if not data.startswith(SINGLE_OBJECT_MARKER):
            # Written before the single-object framing: schemaless, and schemas were all v1.
            return self.history[name][0], 0
        if len(data) < SINGLE_OBJECT_HEADER_BYTES:
            raise InvalidMessage(
                f"bytes are not a {name} record: {len(data)} bytes, shorter than the"
                f" {SINGLE_OBJECT_HEADER_BYTES}-byte single-object header"
            )
        fingerprint = data[len(SINGLE_OBJECT_MARKER) : SINGLE_OBJECT_HEADER_BYTES]
        writer = self.writers.get(fingerprint)
        if writer is None:
            raise InvalidMessage(
                f"{name} written with an unknown schema (fingerprint {fingerprint.hex()}):"
                " not a version in schemas/history; deploy the ledger that knows it"
            )
        if writer.type_name != name:
            raise InvalidMessage(
                f"header says {name} but the bytes were written with"
                f" {writer.type_name} v{writer.version}"
            )
        return writer, SINGLE_OBJECT_HEADER_BYTES


def schemas_dir() -> Path:
    override = os.environ.get(SCHEMAS_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "schemas"


def load_schemas(directory: Path) -> SchemaSet:
    """Read and parse every live schema in `directory`; SchemaLoadError if anything is off."""
    raw = _read_raw_schemas(directory)
    missing = sorted((set(MESSAGE_TYPES) | {DEAD_LETTER_TYPE}) - set(raw))
    if missing:
        raise SchemaLoadError(f"{directory}: no schema for {', '.join(missing)}")
    named: dict[str, Any] = {}
    parsed: dict[str, Schema] = {}
    for name in _dependency_order(raw):
        try:
            parsed[name] = fastavro.parse_schema(raw[name], named)
        except (fastavro.schema.SchemaParseException, ValueError, TypeError, KeyError) as exc:
            raise SchemaLoadError(f"{directory}: schema {name} does not parse: {exc}") from exc
    versioned = sorted(set(MESSAGE_TYPES) | {DEAD_LETTER_TYPE})
    live = {name: _expand(raw[name], raw, seen=set(), depth=0) for name in versioned}
    history = load_history(directory, live, versioned)
    # Equal fingerprints mean equal canonical forms: equal bytes, so either version reads them.
    writers = {w.fingerprint: w for versions in history.values() for w in versions}
    return SchemaSet(
        directory=directory, raw=raw, parsed=parsed, history=history, writers=writers
    )


@functools.cache
def default_schemas() -> SchemaSet:
    """The schemas of this deployment, parsed once per process."""
    return load_schemas(schemas_dir())


def record_live_version(directory: Path, name: str) -> Path:
    """Write the live schema of message type `name`, expanded, as its next history version
    (step 2 of schemas/README.md, 'Adding a version'); the path written. Reads only the live
    folders, since the history check is what fails until this has run."""
    if name not in set(MESSAGE_TYPES) | {DEAD_LETTER_TYPE}:
        raise SchemaLoadError(f"{name!r} is not a message type: only those are versioned")
    raw = _read_raw_schemas(directory)
    live = _expand(raw[name], raw, seen=set(), depth=0)
    folder = directory / HISTORY_FOLDER / name
    count = len(list(folder.glob("v*.avsc")))
    if count and json.loads((folder / f"v{count}.avsc").read_text(encoding="utf-8")) == live:
        raise SchemaLoadError(f"{name}: the live schema is already v{count}")
    target = folder / f"v{count + 1}.avsc"
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(live, indent=2) + "\n", encoding="utf-8")
    return target


# ---------------------------------------------------------------- codec
def encode(message: Envelope, schemas: SchemaSet | None = None) -> bytes:
    """The message as one Avro record in single-object encoding, written with the live schema."""
    type_name = type(message).type_name()
    if MESSAGE_TYPES.get(type_name) is not type(message):
        raise InvalidMessage(f"{type(message).__qualname__} is not a wire message type")
    return _write(type_name, schemas or default_schemas(), message.model_dump(mode="json"))


def decode(type_name: str, data: bytes, schemas: SchemaSet | None = None) -> Envelope:
    """The message of type `type_name` in `data`, whichever published version wrote it, read
    into the live schema and validated by its pydantic model."""
    if type_name not in MESSAGE_TYPES:
        raise InvalidMessage(f"unknown message type {type_name!r}")
    return parse_message(type_name, _read(type_name, schemas or default_schemas(), data))


# ---------------------------------------------------------------- Kafka framing
def headers_for(message: Envelope | DeadLetter) -> list[tuple[str, bytes]]:
    type_name = DEAD_LETTER_TYPE if isinstance(message, DeadLetter) else message.type_name()
    return [(TYPE_HEADER, type_name.encode("utf-8"))]


def type_from_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> str:
    """The message type from Kafka headers (kafka-python gives a list of (str, bytes))."""
    values = {value for key, value in (headers or ()) if key == TYPE_HEADER}
    if not values:
        raise InvalidMessage(f"no {TYPE_HEADER!r} header: cannot tell the message type")
    if len(values) > 1:
        raise InvalidMessage(f"conflicting {TYPE_HEADER!r} headers: {sorted(map(repr, values))}")
    (value,) = values
    if not value:
        raise InvalidMessage(f"empty {TYPE_HEADER!r} header")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"{TYPE_HEADER!r} header is not UTF-8: {value!r}") from exc


def key_for(message: Envelope) -> bytes:
    """`tenant_id:natural key`, so every message of one aggregate shares a partition.

    The key is opaque, for partitioning only: two ids that happen to collide (an id may
    contain ':') only share a partition, which is always safe. Choices beyond the obvious:
    a transaction by its OCPP transactionId (sessions of two charge points that reuse an id
    share a partition, harmlessly); configuration and vouchers by the tenant alone, so they
    apply in publication order; ClockTicked by the tenant;
    a stop command by the transaction it stops; a payment command by what the money is for
    (`reference`), so a hold's authorize, capture and release stay in order.
    """
    return f"{message.tenant_id}:{_natural_key(message)}".encode()


def _natural_key(message: Envelope) -> str:
    match message:
        case TransactionEvent():
            return message.transaction.transactionInfo.transactionId
        case PaymentResult():
            return message.request_id
        case TerminalAuthorized():
            return message.terminal_reference
        case VoucherBatchIssued() | VoucherRedemptionRequested() | Configuration():
            # Low volume, and order across keys matters (a redemption after its batch, a
            # location after its tariff): one partition per tenant keeps publication order.
            return message.tenant_id
        case WalletTopUpRequested() | DebtPaymentReceived():
            return message.driver_id
        case RefundRequested():
            return message.session_id
        case ClockTicked():
            return message.tenant_id
        case StopSessionRequested() | SessionCostUpdated():
            return message.transaction_id
        case PaymentCommand():
            return message.reference
    raise AssertionError(f"no partition key rule for {message.type_name()}: add one to key_for")


# ---------------------------------------------------------------- dead letters
@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of `ledger.dead-letters` (schemas/outbound/DeadLetter.avsc)."""

    source_topic: str
    source_partition: int | None
    source_offset: int | None
    key: str | None
    reason: str
    payload: bytes
    received_at: str
    producer: str
    event_id: str


def dead_letter_for(
    *,
    source_topic: str,
    source_partition: int | None,
    source_offset: int | None,
    key: str | None,
    reason: str,
    payload: bytes,
    received_at: datetime,
    producer: str,
) -> DeadLetter:
    """A dead letter whose id depends only on where the message came from and its bytes, so
    redelivering the same bad message yields the same dead letter (deduplicated downstream)."""
    if received_at.utcoffset() is None:
        raise ValueError("received_at needs a UTC offset")
    position = f"{source_topic}\x1f{source_partition}\x1f{source_offset}"
    digest = hashlib.sha256(payload).hexdigest()
    return DeadLetter(
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        key=key,
        reason=reason[:DEAD_LETTER_REASON_CHARS_MAX],
        payload=payload,
        received_at=received_at.isoformat().replace("+00:00", "Z"),
        producer=producer,
        event_id=str(uuid5(_DEAD_LETTER_ID_NAMESPACE, f"{position}\x1f{digest}")),
    )


def encode_dead_letter(dead_letter: DeadLetter, schemas: SchemaSet | None = None) -> bytes:
    record = dataclasses.asdict(dead_letter)
    return _write(DEAD_LETTER_TYPE, schemas or default_schemas(), record)


def decode_dead_letter(data: bytes, schemas: SchemaSet | None = None) -> DeadLetter:
    record = _read(DEAD_LETTER_TYPE, schemas or default_schemas(), data)
    try:
        return DeadLetter(**record)
    except TypeError as exc:
        raise InvalidMessage(f"invalid {DEAD_LETTER_TYPE}: {exc}") from exc


# ---------------------------------------------------------------- internals
def _write(type_name: str, schemas: SchemaSet, record: dict[str, Any]) -> bytes:
    schema = schemas.parsed_schema(type_name)
    buffer = io.BytesIO()
    buffer.write(SINGLE_OBJECT_MARKER + schemas.live_writer(type_name).fingerprint)
    try:
        # strict: a field the schema lacks is an error, never silently dropped.
        fastavro.schemaless_writer(buffer, schema, record, strict=True)
    except (ValueError, TypeError, OverflowError, KeyError) as exc:
        raise InvalidMessage(f"cannot encode {type_name}: {exc}") from exc
    data = buffer.getvalue()
    if len(data) > MESSAGE_BYTES_MAX:
        raise InvalidMessage(f"{type_name} is {len(data)} bytes, over {MESSAGE_BYTES_MAX}")
    return data


def _read(type_name: str, schemas: SchemaSet, data: bytes) -> dict[str, Any]:
    if len(data) > MESSAGE_BYTES_MAX:
        raise InvalidMessage(f"{type_name} is {len(data)} bytes, over {MESSAGE_BYTES_MAX}")
    live = schemas.parsed_schema(type_name)
    writer, body_start = schemas.writer_of(type_name, data)
    buffer = io.BytesIO(data)
    buffer.seek(body_start)
    try:
        if writer is schemas.live_writer(type_name):
            record = fastavro.schemaless_reader(buffer, live, None)
        else:
            # Avro schema resolution: fields the writer lacked take the live default, fields
            # the live schema dropped are skipped, promotions (int -> long) apply.
            record = fastavro.schemaless_reader(buffer, writer.parsed, live)
    except Exception as exc:
        # Untrusted bytes make fastavro raise EOFError, IndexError, UnicodeDecodeError,
        # ValueError and more; each means the same thing here: not this record.
        raise InvalidMessage(
            f"bytes are not a {type_name} record: {type(exc).__name__}: {exc}"
        ) from exc
    if buffer.tell() != len(data):
        raise InvalidMessage(
            f"bytes are not a {type_name} record: {len(data) - buffer.tell()} bytes left over"
        )
    assert isinstance(record, dict), "every message schema is a record"
    return record


def _read_raw_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    if not directory.is_dir():
        raise SchemaLoadError(f"schema folder {directory} does not exist")
    paths = sorted(p for folder in SCHEMA_FOLDERS for p in (directory / folder).glob("*.avsc"))
    if len(paths) > SCHEMA_FILES_MAX:
        raise SchemaLoadError(f"{directory}: {len(paths)} schema files, over {SCHEMA_FILES_MAX}")
    raw: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaLoadError(f"{path}: cannot read: {exc}") from exc
        if not isinstance(schema, dict) or schema.get("name") != path.stem:
            raise SchemaLoadError(f"{path}: must hold one record named {path.stem!r}")
        if schema.get("namespace") != SCHEMA_NAMESPACE:
            raise SchemaLoadError(f"{path}: namespace must be {SCHEMA_NAMESPACE!r}")
        if path.stem in raw:
            raise SchemaLoadError(f"{path}: a second schema named {path.stem!r}")
        raw[path.stem] = schema
    return raw


def _dependency_order(raw: Mapping[str, dict[str, Any]]) -> list[str]:
    """Names in an order where every record comes after the records it references: fastavro
    needs a name defined before it is used (a failed parse would leave a half entry)."""
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in path or len(path) > SCHEMA_DEPTH_MAX:
            raise SchemaLoadError(f"schema references loop or nest too deep: {' -> '.join(path)}")
        if name not in raw:
            raise SchemaLoadError(f"{path[-1]} references {name!r}, which has no schema file")
        for reference in _references(raw[name]):
            visit(reference, (*path, name))
        done.add(name)
        order.append(name)

    for name in sorted(raw):
        visit(name, ())
    return order


def _references(node: object) -> Iterator[str]:
    """Short names of the records `node` uses by name. Every schema file shares one namespace
    (checked on load), so a reference is the file name of its definition."""
    if isinstance(node, str):
        if node not in _PRIMITIVES:
            yield node.removeprefix(f"{SCHEMA_NAMESPACE}.")
    elif isinstance(node, list):
        for branch in node:
            yield from _references(branch)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "error"):
            for field in node.get("fields", []):
                yield from _references(field.get("type"))
        elif node.get("type") == "array":
            yield from _references(node.get("items"))
        elif node.get("type") == "map":
            yield from _references(node.get("values"))
        elif node.get("type") not in ("enum", "fixed"):
            yield from _references(node.get("type"))


def _expand(node: Any, raw: Mapping[str, dict[str, Any]], *, seen: set[str], depth: int) -> Any:
    # Avro allows a name to be defined once per schema: inline it where first met, then refer.
    if depth > SCHEMA_DEPTH_MAX:
        raise SchemaLoadError("schema nests too deep to expand")
    if isinstance(node, str):
        name = node.removeprefix(f"{SCHEMA_NAMESPACE}.")
        if node in _PRIMITIVES or name in seen:
            return node
        seen.add(name)
        return _expand(raw[name], raw, seen=seen, depth=depth + 1)
    if isinstance(node, list):
        return [_expand(branch, raw, seen=seen, depth=depth + 1) for branch in node]
    if isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error"):
            seen.add(str(node["name"]))
            fields = [
                {**f, "type": _expand(f["type"], raw, seen=seen, depth=depth + 1)}
                for f in node["fields"]
            ]
            return {**node, "fields": fields}
        if kind == "array":
            return {**node, "items": _expand(node["items"], raw, seen=seen, depth=depth + 1)}
        if kind == "map":
            return {**node, "values": _expand(node["values"], raw, seen=seen, depth=depth + 1)}
        if kind in ("enum", "fixed"):
            seen.add(str(node["name"]))
            return node
        return {**node, "type": _expand(kind, raw, seen=seen, depth=depth + 1)}
    return node

"""Avro on the wire: the schemas in `schemas/`, the codec, and the Kafka framing of a message.

A Kafka message carries one schemaless Avro record (no registry id, no container header). Its
type name travels in the header `type`, and its key is the aggregate's natural key, so every
message about one aggregate lands on one partition and is read in order.

Errors: anything wrong with a message (bytes, header, schema or model) is raised as
`ledger.domain.errors.InvalidMessage` with the reason, `from` the library's exception, so the
consumer can dead-letter it. A broken `schemas/` folder is `SchemaLoadError`: a deployment
fault, never a bad message.

Schemas are parsed once, on first use (`default_schemas()`), from `schemas/` next to this
package, or from the folder in the environment variable `EVLEDGER_SCHEMAS_DIR`. Only
`inbound/`, `outbound/` and `ocpp/` are live; `history/` holds the versions already published,
for the compatibility tests.

What schemaless records cannot tell: their type and the schema version they were written
with. `decode` trusts the header for the type (the model then refuses most mislabelled
messages, not all: two types of the same layout read as each other) and assumes the writer
used the live schema, which holds while every schema is at v1.
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

from ledger.domain.errors import InvalidMessage
from ledger.messages import (
    MESSAGE_TYPES,
    ClockTicked,
    Configuration,
    DebtPaymentReceived,
    Envelope,
    PaymentCommand,
    PaymentResult,
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
# The folders whose schemas are live; `history/` is left out on purpose.
SCHEMA_FOLDERS: tuple[str, ...] = ("inbound", "outbound", "ocpp")
TYPE_HEADER = "type"
DEAD_LETTER_TYPE = "DeadLetter"

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


class SchemaLoadError(Exception):
    """The schema folder is missing, unreadable or inconsistent: fix the deployment."""


@dataclasses.dataclass(frozen=True)
class SchemaSet:
    """Every live schema, as written (`raw`) and parsed for fastavro (`parsed`), by record name."""

    directory: Path
    raw: Mapping[str, dict[str, Any]]
    parsed: Mapping[str, Schema]

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
    return SchemaSet(directory=directory, raw=raw, parsed=parsed)


@functools.cache
def default_schemas() -> SchemaSet:
    """The schemas of this deployment, parsed once per process."""
    return load_schemas(schemas_dir())


# ---------------------------------------------------------------- codec
def encode(message: Envelope, schemas: SchemaSet | None = None) -> bytes:
    """The message as one schemaless Avro record."""
    type_name = type(message).type_name()
    if MESSAGE_TYPES.get(type_name) is not type(message):
        raise InvalidMessage(f"{type(message).__qualname__} is not a wire message type")
    schema = (schemas or default_schemas()).parsed_schema(type_name)
    return _write(type_name, schema, message.model_dump(mode="json"))


def decode(type_name: str, data: bytes, schemas: SchemaSet | None = None) -> Envelope:
    """The message of type `type_name` in `data`, validated by its pydantic model."""
    if type_name not in MESSAGE_TYPES:
        raise InvalidMessage(f"unknown message type {type_name!r}")
    schema = (schemas or default_schemas()).parsed_schema(type_name)
    return parse_message(type_name, _read(type_name, schema, data))


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
    schema = (schemas or default_schemas()).parsed_schema(DEAD_LETTER_TYPE)
    record = dataclasses.asdict(dead_letter)
    return _write(DEAD_LETTER_TYPE, schema, record)


def decode_dead_letter(data: bytes, schemas: SchemaSet | None = None) -> DeadLetter:
    schema = (schemas or default_schemas()).parsed_schema(DEAD_LETTER_TYPE)
    record = _read(DEAD_LETTER_TYPE, schema, data)
    try:
        return DeadLetter(**record)
    except TypeError as exc:
        raise InvalidMessage(f"invalid {DEAD_LETTER_TYPE}: {exc}") from exc


# ---------------------------------------------------------------- internals
def _write(type_name: str, schema: Schema, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    try:
        # strict: a field the schema lacks is an error, never silently dropped.
        fastavro.schemaless_writer(buffer, schema, record, strict=True)
    except (ValueError, TypeError, OverflowError, KeyError) as exc:
        raise InvalidMessage(f"cannot encode {type_name}: {exc}") from exc
    data = buffer.getvalue()
    if len(data) > MESSAGE_BYTES_MAX:
        raise InvalidMessage(f"{type_name} is {len(data)} bytes, over {MESSAGE_BYTES_MAX}")
    return data


def _read(type_name: str, schema: Schema, data: bytes) -> dict[str, Any]:
    if len(data) > MESSAGE_BYTES_MAX:
        raise InvalidMessage(f"{type_name} is {len(data)} bytes, over {MESSAGE_BYTES_MAX}")
    buffer = io.BytesIO(data)
    try:
        record = fastavro.schemaless_reader(buffer, schema, None)
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

"""Every published version of every wire schema, by its Avro fingerprint.

`schemas/history/<Type>/vN.avsc` holds version N of a message type's schema exactly as
producers wrote it, self-contained (references inlined). A message on Kafka names its writer
schema by the 8-byte CRC-64-AVRO fingerprint of that schema's Parsing Canonical Form (Avro
single-object encoding, see `consumers/avro_codec.py`); this module turns the history folder
into the table from fingerprint to writer schema that the reader resolves against the live
schema.

Checked on load, because a reader that cannot find the version a producer wrote would
dead-letter every message of that producer: versions numbered 1..N without gaps, every file a
record of its type, and version N equal to the live schema (a live schema nobody recorded
would be written under a fingerprint no other reader knows). Anything off is
`SchemaLoadError`: a deployment fault, never a bad message.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
from fastavro.types import Schema

HISTORY_FOLDER = "history"
VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")
# The Avro specification's fingerprint for single-object encoding: 64-bit Rabin (CRC-64-AVRO)
# of the Parsing Canonical Form, 8 bytes little-endian on the wire.
FINGERPRINT_ALGORITHM = "CRC-64-AVRO"
FINGERPRINT_BYTES = 8
# More versions than this of one type means the folder is wrong (or every reader would carry
# a hundred writer schemas): retire old ones only after no topic can still hold them.
SCHEMA_VERSIONS_MAX = 100


class SchemaLoadError(Exception):
    """The schema folder is missing, unreadable or inconsistent: fix the deployment."""


@dataclasses.dataclass(frozen=True)
class WriterSchema:
    """One published version of a type's schema: what a message written with it needs."""

    type_name: str
    version: int
    fingerprint: bytes
    parsed: Schema  # parsed on its own: an old version must not share names with live ones


def fingerprint_of(schema: Any) -> bytes:
    """The single-object encoding fingerprint of a self-contained schema (docs, defaults and
    other attributes outside the Parsing Canonical Form do not change it)."""
    canonical = fastavro.schema.to_parsing_canonical_form(copy.deepcopy(schema))
    # fastavro spells the 64-bit fingerprint as little-endian hex: the Avro wire byte order
    # (checked against the specification's test vectors in tests/unit/wire).
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, FINGERPRINT_ALGORITHM))
    assert len(fingerprint) == FINGERPRINT_BYTES, "CRC-64-AVRO is 8 bytes"
    return fingerprint


def load_history(
    directory: Path, live: Mapping[str, Mapping[str, Any]], type_names: Iterable[str]
) -> dict[str, tuple[WriterSchema, ...]]:
    """Every version of each type in `type_names`, oldest first; `live` holds the expanded live
    schema of each, which must be the latest version."""
    history: dict[str, tuple[WriterSchema, ...]] = {}
    for type_name in sorted(type_names):
        versions = tuple(_load_versions(directory / HISTORY_FOLDER / type_name, type_name))
        latest = versions[-1]
        if latest.fingerprint != fingerprint_of(live[type_name]):
            raise SchemaLoadError(
                f"{type_name}: the live schema is not history v{latest.version}: record it as"
                f" v{latest.version + 1} (schemas/README.md, 'Adding a version')"
            )
        history[type_name] = versions
    return history


def _load_versions(folder: Path, type_name: str) -> list[WriterSchema]:
    paths = sorted(folder.glob("*.avsc")) if folder.is_dir() else []
    if not paths:
        raise SchemaLoadError(f"{folder}: no published version of {type_name} (need v1.avsc)")
    if len(paths) > SCHEMA_VERSIONS_MAX:
        raise SchemaLoadError(f"{folder}: {len(paths)} versions, over {SCHEMA_VERSIONS_MAX}")
    numbered: dict[int, Path] = {}
    for path in paths:
        match = VERSION_FILE.match(path.name)
        if match is None:
            raise SchemaLoadError(f"{path}: history files are named vN.avsc")
        numbered[int(match.group(1))] = path
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise SchemaLoadError(f"{folder}: versions {sorted(numbered)} are not 1..N without gaps")
    return [_load_version(numbered[n], type_name, n) for n in sorted(numbered)]


def _load_version(path: Path, type_name: str, version: int) -> WriterSchema:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaLoadError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("name") != type_name:
        raise SchemaLoadError(f"{path}: must hold one record named {type_name!r}")
    try:
        parsed = fastavro.parse_schema(copy.deepcopy(raw), {})
        fingerprint = fingerprint_of(raw)
    except (fastavro.schema.SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SchemaLoadError(f"{path}: does not parse: {exc}") from exc
    return WriterSchema(type_name=type_name, version=version, fingerprint=fingerprint,
                        parsed=parsed)

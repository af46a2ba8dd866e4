"""Every live schema reads data written with every version published before it.

`schemas/history/<Type>/vN.avsc` holds each published version, self-contained. The latest
must equal the live schema (docs aside), so changing a schema without recording the new
version fails here, and then every older version is read through the live one.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.read import SchemaResolutionError

from consumers.avro_codec import DEAD_LETTER_TYPE, default_schemas, schemas_dir
from ledger.messages import MESSAGE_TYPES

HISTORY = schemas_dir() / "history"
VERSIONED_TYPES = sorted({*MESSAGE_TYPES, DEAD_LETTER_TYPE})
VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


def _version_number(path: Path) -> int:
    match = VERSION_FILE.match(path.name)
    assert match, f"{path}: history files are named vN.avsc"
    return int(match.group(1))


def _versions(type_name: str) -> list[Path]:
    return sorted((HISTORY / type_name).glob("*.avsc"), key=_version_number)


def _without_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_docs(v) for k, v in node.items() if k != "doc"}
    if isinstance(node, list):
        return [_without_docs(v) for v in node]
    return node


def _parse_standalone(schema: Mapping[str, Any]) -> Any:
    # Its own named-schema dict: an old version must not see (or clash with) live records.
    return fastavro.parse_schema(copy.deepcopy(dict(schema)), {})


def _record_for(schema: Any, *, filled: bool, named: dict[str, Any]) -> Any:
    """A value the schema accepts: every optional field null/empty, or every field set."""
    if isinstance(schema, str):
        if schema in named:
            return _record_for(named[schema], filled=filled, named=named)
        return {
            "null": None,
            "boolean": True,
            "int": 7,
            "long": 2**40,
            "float": 1.5,
            "double": 2.5,
            "bytes": b"\x00\x01",
            "string": "text",
        }[schema]
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"] if filled else schema
        return _record_for(branches[0], filled=filled, named=named)
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        named[schema["name"].rsplit(".", 1)[-1]] = schema
        return {
            f["name"]: _record_for(f["type"], filled=filled, named=named) for f in schema["fields"]
        }
    if kind == "array":
        return [_record_for(schema["items"], filled=True, named=named)] if filled else []
    if kind == "map":
        return {"k": _record_for(schema["values"], filled=True, named=named)} if filled else {}
    if kind == "enum":
        named[schema["name"]] = schema
        return schema["symbols"][0]
    if kind == "fixed":
        named[schema["name"]] = schema
        return b"\x00" * schema["size"]
    return _record_for(kind, filled=filled, named=named)


def _write_then_read(writer: Mapping[str, Any], reader: Mapping[str, Any]) -> list[Any]:
    """Write two records with `writer`, read them back through `reader` (Avro resolution)."""
    parsed_writer = _parse_standalone(writer)
    parsed_reader = _parse_standalone(reader)
    read_back = []
    for filled in (False, True):
        record = _record_for(copy.deepcopy(dict(writer)), filled=filled, named={})
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed_writer, record)
        buffer.seek(0)
        read_back.append(fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader))
    return read_back


@pytest.mark.parametrize("type_name", VERSIONED_TYPES)
def test_history_versions_are_numbered_from_one_without_gaps(type_name: str) -> None:
    names = [p.name for p in _versions(type_name)]

    assert names == [f"v{n}.avsc" for n in range(1, len(names) + 1)]
    assert names, f"{type_name} has no published version in {HISTORY}"


@pytest.mark.parametrize("type_name", VERSIONED_TYPES)
def test_latest_history_version_is_the_live_schema(type_name: str) -> None:
    latest = json.loads(_versions(type_name)[-1].read_text(encoding="utf-8"))
    live = default_schemas().expanded(type_name)

    assert _without_docs(latest) == _without_docs(live), (
        f"{type_name} changed: record it as a new version (see schemas/README.md)"
    )


@pytest.mark.parametrize("type_name", VERSIONED_TYPES)
def test_live_schema_reads_data_written_with_every_published_version(type_name: str) -> None:
    live = default_schemas().expanded(type_name)
    for path in _versions(type_name):
        older = json.loads(path.read_text(encoding="utf-8"))

        minimal, filled = _write_then_read(older, live)

        assert set(minimal) == set(filled) == {f["name"] for f in live["fields"]}, path.name


# ---------------------------------------------------------------- the check itself
def _with_field(schema: Mapping[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(dict(schema))
    changed["fields"].append(field)
    return changed


def test_new_field_without_a_default_is_caught_as_incompatible() -> None:
    v1 = default_schemas().expanded("PaymentResult")
    v2 = _with_field(v1, {"name": "fee", "type": "string"})

    with pytest.raises(SchemaResolutionError, match="fee"):
        _write_then_read(v1, v2)


def test_new_optional_field_reads_old_data_as_its_default() -> None:
    v1 = default_schemas().expanded("PaymentResult")
    v2 = _with_field(v1, {"name": "fee", "type": ["null", "string"], "default": None})

    minimal, filled = _write_then_read(v1, v2)

    assert minimal["fee"] is None and filled["fee"] is None


def test_narrowing_a_long_to_an_int_is_caught_as_incompatible() -> None:
    v1 = default_schemas().expanded("PaymentResult")
    v2 = copy.deepcopy(v1)
    (version_field,) = (f for f in v2["fields"] if f["name"] == "schema_version")
    version_field["type"] = "int"

    with pytest.raises(SchemaResolutionError):
        _write_then_read(v1, v2)

"""The Avro schemas in `schemas/` and the pydantic models in `ledger.messages` say the same."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from consumers.avro_codec import (
    DEAD_LETTER_TYPE,
    SCHEMA_NAMESPACE,
    DeadLetter,
    SchemaSet,
    default_schemas,
    schemas_dir,
)
from ledger.messages import INBOUND_TYPES, MESSAGE_TYPES, OUTBOUND_TYPES

NESTED_FOLDER = "ocpp"


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _expected_avro_type(annotation: Any) -> Any:
    """The schema rules of schemas/README.md, applied to one pydantic annotation."""
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        branches = [a for a in typing.get_args(annotation) if a is not type(None)]
        assert len(branches) == 1, f"only `T | None` unions map to Avro: {annotation}"
        return ["null", _expected_avro_type(branches[0])]
    if origin is list:
        return {"type": "array", "items": _expected_avro_type(typing.get_args(annotation)[0])}
    if origin is typing.Literal or annotation in (str, Decimal, datetime):
        return "string"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "long"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    raise AssertionError(f"no Avro mapping for {annotation!r}")


def _scalar(annotation: Any) -> Any:
    """The annotation with Optional and list stripped: what the field's doc describes."""
    annotation = _unwrap(annotation)
    while typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        annotation = _unwrap(next(a for a in typing.get_args(annotation) if a is not type(None)))
    return annotation


def _nested_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for field in model.model_fields.values():
        for candidate in _flatten(field.annotation):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                yield candidate
                yield from _nested_models(candidate)


def _flatten(annotation: Any) -> Iterator[Any]:
    annotation = _unwrap(annotation)
    yield annotation
    for arg in typing.get_args(annotation):
        yield from _flatten(arg)


def _all_models() -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = dict(MESSAGE_TYPES)
    for message_type in MESSAGE_TYPES.values():
        models.update({m.__name__: m for m in _nested_models(message_type)})
    return models


def _annotated(field: FieldInfo) -> Any:
    """The field's type with its metadata (constraints, serializer) put back around it."""
    if not field.metadata:
        return field.annotation
    return typing.Annotated[(field.annotation, *field.metadata)]


def _default_json(field: FieldInfo) -> Any:
    """The JSON form of a field's default, through the field's own serializer."""
    default = field.get_default(call_default_factory=True)
    return TypeAdapter(_annotated(field)).dump_python(default, mode="json")


ALL_MODELS = _all_models()


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return default_schemas()


def test_every_message_type_has_a_schema_in_its_direction_folder() -> None:
    folder = schemas_dir()
    inbound = {p.stem for p in (folder / "inbound").glob("*.avsc")}
    outbound = {p.stem for p in (folder / "outbound").glob("*.avsc")}
    assert inbound == {t.type_name() for t in INBOUND_TYPES}
    assert outbound == {t.type_name() for t in OUTBOUND_TYPES} | {DEAD_LETTER_TYPE}


def test_every_nested_record_is_defined_once_in_its_own_file(schemas: SchemaSet) -> None:
    nested = set(ALL_MODELS) - set(MESSAGE_TYPES)
    assert {p.stem for p in (schemas_dir() / NESTED_FOLDER).glob("*.avsc")} == nested

    def inline_records(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("type") == "record":
                yield str(node["name"])
            for value in node.values():
                yield from inline_records(value)
        elif isinstance(node, list):
            for value in node:
                yield from inline_records(value)

    for name, raw in schemas.raw.items():
        inner = list(inline_records(raw["fields"]))
        assert inner == [], f"{name} defines {inner} inline: reference the {NESTED_FOLDER}/ file"


def test_every_record_has_a_doc_and_the_shared_namespace(schemas: SchemaSet) -> None:
    for name, raw in schemas.raw.items():
        assert raw.get("doc", "").strip(), f"{name} needs a doc"
        assert raw["namespace"] == SCHEMA_NAMESPACE


@pytest.mark.parametrize("type_name", sorted(ALL_MODELS))
def test_schema_fields_match_model_fields_in_name_order_and_type(
    schemas: SchemaSet, type_name: str
) -> None:
    model = ALL_MODELS[type_name]
    avro_fields = schemas.raw[type_name]["fields"]
    assert [f["name"] for f in avro_fields] == list(model.model_fields)
    for avro_field, (name, field) in zip(avro_fields, model.model_fields.items(), strict=True):
        expected = _expected_avro_type(_annotated(field))
        assert avro_field["type"] == expected, f"{type_name}.{name}"


@pytest.mark.parametrize("type_name", sorted(ALL_MODELS))
def test_schema_default_exactly_where_model_has_one_and_equal_to_it(
    schemas: SchemaSet, type_name: str
) -> None:
    model = ALL_MODELS[type_name]
    for avro_field, (name, field) in zip(
        schemas.raw[type_name]["fields"], model.model_fields.items(), strict=True
    ):
        if field.is_required():
            assert "default" not in avro_field, f"{type_name}.{name} is required in the model"
        else:
            assert "default" in avro_field, f"{type_name}.{name} needs the model's default"
            assert avro_field["default"] == _default_json(field), f"{type_name}.{name}"


@pytest.mark.parametrize("type_name", sorted(ALL_MODELS))
def test_field_docs_name_the_allowed_values_and_string_encodings(
    schemas: SchemaSet, type_name: str
) -> None:
    model = ALL_MODELS[type_name]
    for avro_field, (name, field) in zip(
        schemas.raw[type_name]["fields"], model.model_fields.items(), strict=True
    ):
        doc = avro_field.get("doc", "")
        scalar = _scalar(field.annotation)
        if typing.get_origin(scalar) is typing.Literal:
            allowed = ", ".join(typing.get_args(scalar))
            assert f"One of: {allowed}." in doc, f"{type_name}.{name}: doc must list {allowed}"
        elif scalar is Decimal:
            assert "Decimal string" in doc, f"{type_name}.{name}: say it is a decimal string"
        elif scalar is datetime:
            assert "ISO 8601" in doc, f"{type_name}.{name}: say it is an ISO 8601 instant"


def test_dead_letter_schema_matches_the_dead_letter_record(schemas: SchemaSet) -> None:
    avro_fields = schemas.raw[DEAD_LETTER_TYPE]["fields"]
    assert [f["name"] for f in avro_fields] == [f.name for f in dataclasses.fields(DeadLetter)]
    hints = typing.get_type_hints(DeadLetter)
    allowed: dict[Any, list[Any]] = {
        str: ["string"],
        bytes: ["bytes"],
        str | None: [["null", "string"]],
        int | None: [["null", "int"], ["null", "long"]],
    }
    for avro_field in avro_fields:
        name = avro_field["name"]
        assert avro_field["type"] in allowed[hints[name]], name
        optional = avro_field["type"][0] == "null"
        assert ("default" in avro_field) == optional, name


def test_schema_files_have_no_duplicated_keys() -> None:
    # JSON keeps the last of two equal keys silently; a hand edit can leave one behind.
    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        assert len(names) == len(set(names)), f"duplicated key in {names}"
        return dict(pairs)

    for path in sorted(schemas_dir().glob("**/*.avsc")):
        json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=refuse_duplicates)

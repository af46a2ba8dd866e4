"""Event files: Kafka topic content as JSON lines (../shared/CONTRACT.md, "Event lines").

One JSON object per line, `{"topic", "key", "type", "event"}`, where `event` is the JSON form
of the message's Avro record, i.e. `model_dump(mode="json")`. `ledger simulate` writes them,
`ledger ingest` reads them.

Reading never stops at a bad line: a line that is not valid JSON, lacks a field, names an
unknown type or the wrong topic comes back as an `EventLine` with `error` set, so the caller
can dead-letter it and go on. Whether `event` is a valid message is for `parse_message` to
say (it raises InvalidMessage); the reader checks only the line's frame.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, NoReturn

from consumers.avro_codec import MESSAGE_BYTES_MAX, key_for
from consumers.kafka_topics import topic_of
from ledger.messages import MESSAGE_TYPES, Envelope

LINE_FIELDS: frozenset[str] = frozenset({"topic", "key", "type", "event"})

# JSON spells out what Avro packs (field names, escaped text): a message at the Avro limit
# can take several times its size as a line. Anything longer is refused unread, so one
# runaway line cannot take the reader's memory.
EVENT_LINE_BYTES_MAX = 4 * MESSAGE_BYTES_MAX
# How much of a refused over-long line is kept in `raw`, for a human to recognise it.
OVERLONG_LINE_PREVIEW_CHARS_MAX = 1_000
# Reading the rest of an over-long line to skip it, this much at a time.
SKIP_CHUNK_BYTES = 64 * 1024

assert OVERLONG_LINE_PREVIEW_CHARS_MAX < EVENT_LINE_BYTES_MAX


@dataclass(frozen=True, slots=True)
class EventLine:
    """One line of an event file. When `error` is set the line cannot be used, and the other
    fields hold what could be read of it ("" or {} for what could not)."""

    line_number: int  # 1-based; the position a resumed ingest continues from
    topic: str
    key: str
    type_name: str
    payload: dict[str, Any] = field(default_factory=dict)
    raw: str = ""  # the line as read, without its newline (bad UTF-8 replaced by U+FFFD)
    error: str | None = None


def read_event_file(path: str | os.PathLike[str]) -> Iterator[EventLine]:
    """Every non-blank line of the file, in order; OSError only if the file cannot be read."""
    with open(path, "rb") as file:
        line_number = 0
        while chunk := file.readline(EVENT_LINE_BYTES_MAX + 1):
            line_number += 1
            if len(chunk) > EVENT_LINE_BYTES_MAX and not chunk.endswith(b"\n"):
                _skip_rest_of_line(file)
                yield EventLine(
                    line_number,
                    topic="",
                    key="",
                    type_name="",
                    raw=chunk[:OVERLONG_LINE_PREVIEW_CHARS_MAX].decode("utf-8", "replace"),
                    error=f"line longer than {EVENT_LINE_BYTES_MAX} bytes",
                )
                continue
            if chunk.strip():
                yield parse_event_line(line_number, chunk)


def parse_event_line(line_number: int, data: bytes) -> EventLine:
    """One line (with or without its newline) as an EventLine; never raises on bad input."""
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad(line_number, data.decode("utf-8", "replace"), f"line is not UTF-8: {exc}")
    try:
        document = json.loads(
            raw, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError) as exc:
        # RecursionError: a line of ten thousand '[' is not worth a stack.
        return _bad(line_number, raw, f"line is not JSON: {exc}")
    if not isinstance(document, dict):
        return _bad(line_number, raw, f"line is a JSON {type(document).__name__}, not an object")
    return _framed(line_number, raw, document)


def event_line_for(message: Envelope) -> str:
    """The message as one canonical event line (sorted keys, no spaces, no newline)."""
    line = {
        "topic": topic_of(message),
        "key": key_for(message).decode("utf-8"),
        "type": message.type_name(),
        "event": message.model_dump(mode="json"),
    }
    return json.dumps(line, sort_keys=True, separators=(",", ":"))


def write_event_file(path: str | os.PathLike[str], lines: Iterable[Envelope | str]) -> int:
    """Write messages (or ready-made lines, e.g. deliberately bad ones) as an event file.

    All or nothing: the lines go to a temporary file beside `path`, which replaces `path`
    only once complete, so a crash never leaves half a file for `ingest` to read.
    Returns the number of lines written.
    """
    target = Path(path)
    count = 0
    with tempfile.NamedTemporaryFile(
        "w",
        encoding="utf-8",
        newline="\n",
        dir=target.parent,
        prefix=f".{target.name}.",
        suffix=".tmp",
        delete=False,
    ) as file:
        temporary = Path(file.name)
        try:
            for line in lines:
                text = line if isinstance(line, str) else event_line_for(line)
                if "\n" in text or "\r" in text:
                    raise ValueError(f"line {count + 1} holds a line break: one line each")
                file.write(text + "\n")
                count += 1
            file.flush()
            os.fsync(file.fileno())
        except BaseException:
            file.close()
            temporary.unlink(missing_ok=True)
            raise
    os.replace(temporary, target)
    return count


# ---------------------------------------------------------------- internals
def _framed(line_number: int, raw: str, document: dict[str, Any]) -> EventLine:
    topic, key, type_name, payload = (
        document.get("topic"),
        document.get("key"),
        document.get("type"),
        document.get("event"),
    )
    partial = EventLine(
        line_number,
        topic=topic if isinstance(topic, str) else "",
        key=key if isinstance(key, str) else "",
        type_name=type_name if isinstance(type_name, str) else "",
        payload=payload if isinstance(payload, dict) else {},
        raw=raw,
    )
    error = _frame_error(document, topic, key, type_name, payload)
    return replace(partial, error=error) if error else partial


def _frame_error(
    document: dict[str, Any], topic: object, key: object, type_name: object, payload: object
) -> str | None:
    missing = sorted(LINE_FIELDS - document.keys())
    if missing:
        return f"line lacks {', '.join(missing)}"
    unexpected = sorted(document.keys() - LINE_FIELDS)
    if unexpected:
        return f"line has unexpected {', '.join(unexpected)}"
    for name, value in (("topic", topic), ("key", key), ("type", type_name)):
        if not isinstance(value, str) or not value:
            return f"{name} must be a non-empty string, not {json.dumps(value)}"
    if not isinstance(payload, dict):
        return f"event must be a JSON object, not a {type(payload).__name__}"
    assert isinstance(type_name, str)
    model = MESSAGE_TYPES.get(type_name)
    if model is None:
        return f"unknown message type {type_name!r}"
    if topic != topic_of(model):
        return f"{type_name} belongs on topic {topic_of(model)!r}, not {topic!r}"
    return None


def _bad(line_number: int, raw: str, error: str) -> EventLine:
    return EventLine(line_number, topic="", key="", type_name="", raw=raw, error=error)


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON would keep the last of two equal keys; with money at stake, refuse the ambiguity.
    document = dict(pairs)
    if len(document) != len(pairs):
        counts = Counter(name for name, _ in pairs)
        twice = sorted(name for name, count in counts.items() if count > 1)
        raise ValueError(f"duplicated key {', '.join(twice)}")
    return document


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _skip_rest_of_line(file: IO[bytes]) -> None:
    # Bounded by the file: every pass consumes up to SKIP_CHUNK_BYTES or ends the file.
    while chunk := file.readline(SKIP_CHUNK_BYTES):
        if chunk.endswith(b"\n"):
            return

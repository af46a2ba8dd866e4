"""Event files: messages written as canonical JSON lines; every bad line reported, not raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers import event_file
from consumers.avro_codec import key_for
from consumers.event_file import (
    EventLine,
    event_line_for,
    parse_event_line,
    read_event_file,
    write_event_file,
)
from consumers.kafka_topics import topic_of
from ledger.domain.errors import InvalidMessage
from ledger.messages import Envelope, parse_message
from tests.wire_samples import all_samples, full_sample, minimal_sample, sample_id

SAMPLES = all_samples()
GOOD_LINE = event_line_for(minimal_sample("ClockTicked"))


def _file_with(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(content)
    return path


def _only_line(tmp_path: Path, content: bytes) -> EventLine:
    (line,) = read_event_file(_file_with(tmp_path, content))
    return line


# ---------------------------------------------------------------- writing
@pytest.mark.parametrize("message", SAMPLES, ids=sample_id)
def test_line_carries_topic_key_type_and_the_json_form_of_the_message(message: Envelope) -> None:
    line = json.loads(event_line_for(message))

    assert line == {
        "topic": topic_of(message),
        "key": key_for(message).decode(),
        "type": message.type_name(),
        "event": message.model_dump(mode="json"),
    }


def test_line_is_canonical_sorted_keys_no_spaces() -> None:
    message = full_sample("PaymentResult")
    line = event_line_for(message)

    assert line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":"))
    assert "\n" not in line
    assert line.startswith('{"event":{"amount":"123456789.123456",')


def test_written_file_reads_back_as_the_same_messages_in_order(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"

    written = write_event_file(path, SAMPLES)
    lines = list(read_event_file(path))

    assert written == len(SAMPLES) == len(lines)
    assert [line.error for line in lines] == [None] * len(SAMPLES)
    assert [line.line_number for line in lines] == list(range(1, len(SAMPLES) + 1))
    assert [parse_message(line.type_name, line.payload) for line in lines] == SAMPLES


def test_same_messages_give_a_byte_identical_file(tmp_path: Path) -> None:
    write_event_file(tmp_path / "a.jsonl", SAMPLES)
    write_event_file(tmp_path / "b.jsonl", all_samples())

    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_ready_made_lines_are_written_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"

    write_event_file(path, [GOOD_LINE, "not json", minimal_sample("ClockTicked")])

    assert path.read_text().splitlines() == [GOOD_LINE, "not json", GOOD_LINE]


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    write_event_file(path, [GOOD_LINE])

    with pytest.raises(ValueError, match="line break"):
        write_event_file(path, [GOOD_LINE, "two\nlines"])

    assert path.read_text() == GOOD_LINE + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["day.jsonl"]


# ---------------------------------------------------------------- reading bad lines
@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"{not json", "line is not JSON"),
        (b'{"topic":"clock","key":"k","type":"ClockTicked","event":{"a":NaN}}', "NaN"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'"just a string"', "JSON str, not an object"),
        (b'{"topic":"clock","type":"ClockTicked","event":{}}', "line lacks key"),
        (b'{"key":"k","event":{}}', "line lacks topic, type"),
        (
            b'{"topic":"clock","key":"k","type":"ClockTicked","event":{},"extra":1}',
            "unexpected extra",
        ),
        (b'{"topic":"clock","key":"k","type":"ClockTicked","event":[]}', "event must be a JSON"),
        (b'{"topic":"clock","key":null,"type":"ClockTicked","event":{}}', "key must be a non"),
        (b'{"topic":"clock","key":"k","type":"","event":{}}', "type must be a non-empty"),
        (b'{"topic":"clock","key":"k","type":"Bogus","event":{}}', "unknown message type"),
        (b'{"topic":"vouchers","key":"k","type":"ClockTicked","event":{}}', "belongs on topic"),
        (
            b'{"topic":"clock","key":"a","key":"b","type":"ClockTicked","event":{}}',
            "duplicated key key",
        ),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000, "line is not JSON"),
    ],
    ids=[
        "bad-json",
        "nan",
        "array",
        "string",
        "no-key",
        "no-topic-no-type",
        "extra-field",
        "event-not-object",
        "null-key",
        "empty-type",
        "unknown-type",
        "wrong-topic",
        "duplicated-key",
        "not-utf8",
        "nested-too-deep",
    ],
)
def test_bad_line_is_yielded_with_its_error_not_raised(
    tmp_path: Path, content: bytes, error: str
) -> None:
    line = _only_line(tmp_path, content + b"\n")

    assert line.error is not None and error in line.error
    assert line.line_number == 1


def test_bad_line_keeps_what_could_be_read_for_the_dead_letter(tmp_path: Path) -> None:
    content = b'{"topic":"vouchers","key":"t:k","type":"ClockTicked","event":{"now":"x"}}'

    line = _only_line(tmp_path, content + b"\r\n")

    assert (line.topic, line.key, line.type_name) == ("vouchers", "t:k", "ClockTicked")
    assert line.payload == {"now": "x"}
    assert line.raw == content.decode()


def test_reading_goes_on_after_bad_lines_and_skips_blank_ones(tmp_path: Path) -> None:
    content = f"{GOOD_LINE}\n{{oops\n\n   \n{GOOD_LINE}\nnull\n{GOOD_LINE}".encode()

    lines = list(read_event_file(_file_with(tmp_path, content)))

    assert [(line.line_number, line.error is None) for line in lines] == [
        (1, True),
        (2, False),
        (5, True),
        (6, False),
        (7, True),
    ]


def test_over_long_line_is_refused_unread_and_the_next_line_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_file, "EVENT_LINE_BYTES_MAX", len(GOOD_LINE) + 1)
    monkeypatch.setattr(event_file, "SKIP_CHUNK_BYTES", 7)
    over_long = '{"x":"' + "y" * 5 * len(GOOD_LINE) + '"}'
    content = f"{GOOD_LINE}\n{over_long}\n{GOOD_LINE}\n".encode()

    lines = list(read_event_file(_file_with(tmp_path, content)))

    assert lines[0].error is None
    assert lines[1].error is not None and "line longer than" in lines[1].error
    assert len(lines[1].raw) <= event_file.OVERLONG_LINE_PREVIEW_CHARS_MAX
    assert (lines[2].line_number, lines[2].error) == (3, None)


def test_event_that_frames_well_but_is_no_valid_message_is_left_to_parse_message(
    tmp_path: Path,
) -> None:
    content = b'{"topic":"clock","key":"t:t","type":"ClockTicked","event":{"now":"soon"}}'

    line = _only_line(tmp_path, content)

    assert line.error is None
    with pytest.raises(InvalidMessage, match="invalid ClockTicked"):
        parse_message(line.type_name, line.payload)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400))
def test_any_bytes_parse_to_an_event_line_without_raising(data: bytes) -> None:
    line = parse_event_line(1, data)

    assert isinstance(line, EventLine)
    assert line.error is not None or line.type_name in {s.type_name() for s in SAMPLES}

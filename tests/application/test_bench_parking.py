"""`ledger bench parking`: the lot filled, unrelated traffic timed, every lane released."""

from __future__ import annotations

import json

import pytest

from consumers.benchmarks.parking import measure_parking
from consumers.cli import main


def test_every_parked_message_is_released_by_the_end() -> None:
    figures = measure_parking(parked=150, unrelated=5)
    assert figures.parked == 150 and figures.left_parked == 0
    assert figures.release_ms_per_message > 0


def test_the_command_prints_json_and_refuses_an_empty_lot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "parking", "--parked", "20", "--unrelated", "2", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["parked"] == 20 and figures["left_parked"] == 0
    assert main(["bench", "parking", "--parked", "0"]) == 2
    assert "--parked must be 1..100000, got 0" in capsys.readouterr().err

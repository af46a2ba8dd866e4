"""`ledger bench cost-updates`: the same day with and without updates, on embedded stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumers.benchmarks.cost_updates import (
    INSTRUCTION_MODES,
    collected_instructions,
    ingest_for_instructions,
    measure_cost_updates,
)
from consumers.benchmarks.day import without_cost_updates
from consumers.cli import CliError, main
from consumers.simulation.scenario import SimulationOptions, simulate

SESSIONS = 6


def test_switching_updates_off_changes_only_the_tenants_step() -> None:
    lines = simulate(SimulationOptions(sessions=SESSIONS, seed=7)).lines
    off = without_cost_updates(lines)
    changed = [(a, b) for a, b in zip(lines, off, strict=True) if a != b]
    assert changed, "the simulated tenants send cost updates"
    for before, after in changed:
        old, new = json.loads(before), json.loads(after)
        assert old["type"] == "TenantConfigured"
        assert new["event"].pop("cost_update_step") == "0"
        old["event"].pop("cost_update_step")
        assert old == new


def test_both_sides_ingest_the_same_day_and_only_one_sends_updates(tmp_path: Path) -> None:
    lines = simulate(SimulationOptions(sessions=SESSIONS, seed=7)).lines
    run = measure_cost_updates(lines, tmp_path, rounds=1)
    assert run.messages == len(lines)
    assert run.updates_sent > 0  # the side without them is checked to send none
    assert run.cost_updates_ratio > 0 and run.cost_updates_cpu_ratio > 0


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "cost-updates", "--sessions", "3", "--rounds", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) == {"messages", "updates_sent", "seconds_with", "seconds_without",
                            "cost_updates_ratio", "cpu_seconds_with", "cpu_seconds_without",
                            "cost_updates_cpu_ratio"}


@pytest.mark.parametrize(
    "argv", [["--sessions", "0"], ["--rounds", "0"], ["--stop-samples", "-1"],
             ["--instruction-sessions", "0"]]
)
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "cost-updates", *argv]) == 2
    assert "must be" in capsys.readouterr().err


def test_callgrinds_count_is_read_from_its_report() -> None:
    report = "==1== Events    : Ir\n==1== Collected : 6944443403\n==1==\n==1== I   refs: 6,9"
    assert collected_instructions(0, report) == 6944443403
    with pytest.raises(CliError, match="callgrind run failed"):
        collected_instructions(1, report)
    with pytest.raises(CliError, match="callgrind run failed"):
        collected_instructions(0, "valgrind: no such tool")


def test_each_counted_side_runs_on_its_own(tmp_path: Path) -> None:
    for mode in INSTRUCTION_MODES:
        ingest_for_instructions(mode, 2)


def test_instructions_without_valgrind_say_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("consumers.benchmarks.cost_updates.shutil.which", lambda name: None)
    assert main(["bench", "cost-updates", "--sessions", "2", "--rounds", "1",
                 "--instructions"]) == 2
    assert "needs valgrind" in capsys.readouterr().err

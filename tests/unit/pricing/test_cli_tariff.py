"""`ledger tariff explain` and `ledger tariff lint` as a user runs them: output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumers.cli import main
from tests.unit.pricing.ocpi_data import peer_dir

WEEKEND_TYPO = {
    "id": "T1",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": 0.1, "vat": 19, "step_size": 1}],
            "restrictions": {"dayOfWeek": ["SATURDAY"]},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.4, "vat": 19, "step_size": 1}]},
    ],
}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_prints_the_tariff_in_the_language_and_zone_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(peer_dir() / "complex" / "tariff.json")
    code, out, err = _run(
        capsys, "tariff", "explain", "--tariff", path, "--language", "nl", "--time-zone",
        "Europe/Amsterdam",
    )
    assert (code, err) == (0, "")
    assert out.startswith("Tarief 14 (prijzen in EUR, lokale tijd Europe/Amsterdam)\n")
    assert "  - geldt op maandag t/m vrijdag; van 09:00 tot 18:00\n" in out


def test_lint_prints_each_finding_and_exits_1_on_a_fatal_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps(WEEKEND_TYPO), encoding="utf-8")
    code, out, err = _run(capsys, "tariff", "lint", "--tariff", str(path))
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        "fatal: elements[0].restrictions.dayOfWeek: unknown key 'dayOfWeek': did you mean"
        " 'day_of_week'? (it is ignored as written) [unknown_key]",
        "fatal: elements[1]: its ENERGY component never applies: elements[0] prices ENERGY"
        " whenever this element's restrictions hold [shadowed_element]",
        "2 fatal, 0 warnings",
    ]


def test_lint_of_a_sound_tariff_exits_0_with_its_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(peer_dir() / "free_of_charge" / "tariff.json")
    code, out, _ = _run(capsys, "tariff", "lint", "--tariff", path)
    assert code == 0
    assert out.splitlines()[-1] == "0 fatal, 2 warnings"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("explain", "--tariff", "{missing}"), "cannot read"),
        (("lint", "--tariff", "{missing}"), "cannot read"),
        (("explain", "--tariff", "{tariff}", "--time-zone", "Mars/Base"), "unknown time zone"),
        (("explain", "--tariff", "{bad}"), "not valid JSON"),
    ],
    ids=["explain-missing", "lint-missing", "bad-zone", "bad-json"],
)
def test_bad_arguments_are_one_error_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    tariff = tmp_path / "t.json"
    tariff.write_text(json.dumps(WEEKEND_TYPO), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    paths = {"missing": str(tmp_path / "nope.json"), "tariff": str(tariff), "bad": str(bad)}
    code, out, err = _run(capsys, "tariff", *(a.format(**paths) for a in args))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err


def test_an_unknown_language_is_refused_by_the_argument_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tariff", "explain", "--tariff", "t.json", "--language", "fr"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fr'" in capsys.readouterr().err

"""explain_tariff: every tariff of the shared OCPI data in plain words, and the wording rules."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from ledger.domain.tariff import parse_tariff
from ledger.domain.tariff_explanation import LANGUAGES, explain_tariff
from tests.unit.pricing.builders import BERLIN, component, element, tariff
from tests.unit.pricing.golden_files import assert_golden, data_tariffs

TARIFFS = data_tariffs()


@pytest.mark.parametrize(("name", "text"), TARIFFS, ids=[name for name, _ in TARIFFS])
def test_every_data_tariff_is_explained_as_pinned_in_each_language(name: str, text: str) -> None:
    t = parse_tariff(json.loads(text))
    sections = []
    for language in sorted(LANGUAGES):
        sections.append(f"[{language}]\n" + "\n".join(explain_tariff(t, language, BERLIN)))
    assert_golden(f"explain/{name}.txt", "\n\n".join(sections) + "\n")


def test_every_element_is_explained() -> None:
    for _, text in TARIFFS:
        t = parse_tariff(json.loads(text))
        lines = explain_tariff(t, "en", BERLIN)
        assert sum(line.startswith("Element ") for line in lines) == len(t.elements)


def test_one_sided_windows_run_to_and_from_midnight() -> None:
    t = tariff(
        element(component("ENERGY", "0.30", 1, "19"), start_time="22:00"),
        element(component("ENERGY", "0.20", 1, "19"), end_time="06:00"),
        element(component("ENERGY", "0.40", 1, "19")),
    )
    lines = explain_tariff(t, "en", BERLIN)
    assert "  - applies from 22:00 until midnight" in lines
    assert "  - applies from midnight until 06:00" in lines
    assert "  - applies at all times" in lines
    assert "  - 0.3 EUR per kWh, plus 19 % VAT (0.357 EUR incl. VAT), the session's energy is" \
        " rounded up to steps of 1 Wh" in lines


def test_validity_is_shown_in_the_given_time_zone() -> None:
    t = tariff(
        element(component("FLAT", "1", 0, "21")),
        start_date_time="2024-06-30T22:00:00Z",
        end_date_time="2024-12-31T23:00:00Z",
    )
    lines = explain_tariff(t, "en", ZoneInfo("Europe/Amsterdam"))
    assert lines[0] == "Tariff T1 (prices in EUR, local times Europe/Amsterdam)"
    assert "Valid for sessions starting from 2024-07-01 00:00 CEST" in lines
    assert "Valid for sessions starting before 2025-01-01 00:00 CET" in lines
    assert "  - 1 EUR once per session, plus 21 % VAT (1.21 EUR incl. VAT)" in lines


def test_german_and_dutch_write_decimal_commas_and_their_own_words() -> None:
    t = tariff(
        element(component("TIME", "2.50", 900, "19"), day_of_week=["SATURDAY", "SUNDAY"]),
        max_price={"excl_vat": "12.5", "incl_vat": "14.875"},
    )
    de = explain_tariff(t, "de", BERLIN)
    nl = explain_tariff(t, "nl", BERLIN)
    assert "  - gilt am Samstag, Sonntag" in de
    assert "Höchstpreis je Ladevorgang: 12,5 EUR / 14,875 EUR inkl. MwSt." in de
    assert "  - geldt op zaterdag, zondag" in nl
    assert any("2,5 EUR per uur laden" in line and "15 min" in line for line in nl)

"""A TariffPublished with fatal lint findings is refused; the tariff in force keeps pricing."""

import json
from datetime import timedelta

from ledger.domain.configuration import EffectiveDated, config_id
from ledger.messages import TariffPublished
from tests.builders import ENERGY_TARIFF, T0, LedgerDriver, envelope, tariff, tenant


def _republish(body: dict[str, object]) -> TariffPublished:
    return TariffPublished(
        **envelope("t1", T0 - timedelta(days=1)), effective_at=T0 - timedelta(days=1),
        tariff_id="energy", ocpi_tariff_json=json.dumps(body),
    )


def test_a_misspelled_restriction_refuses_the_tariff_and_the_old_one_stays() -> None:
    d = LedgerDriver()
    d.apply(tenant(), tariff())
    weekend = {**ENERGY_TARIFF, "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.10, "vat": 19, "step_size": 1}],
         "restrictions": {"dayOfWeek": ["SATURDAY", "SUNDAY"]}},
        *ENERGY_TARIFF["elements"],  # type: ignore[misc]
    ]}
    result = d.apply(_republish(weekend))
    assert result.dead_lettered == 1
    reason = d.dead_letters()[0].reason
    assert "tariff energy refused" in reason
    assert "did you mean 'day_of_week'" in reason
    in_force = d.get(EffectiveDated, config_id("tariff", "t1", "energy")).as_of(T0)
    assert json.loads(in_force["ocpi_tariff_json"]) == ENERGY_TARIFF


def test_warnings_alone_do_not_refuse_a_tariff() -> None:
    d = LedgerDriver()
    d.apply(tenant(), tariff())
    no_vat = {**ENERGY_TARIFF, "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}]}
    assert d.apply(_republish(no_vat)).dead_lettered == 0
    in_force = d.get(EffectiveDated, config_id("tariff", "t1", "energy")).as_of(T0)
    assert json.loads(in_force["ocpi_tariff_json"]) == no_vat


def test_an_accepted_tariff_is_recorded_in_plain_words_with_its_warnings() -> None:
    from ledger.domain.tariff_publication import TariffPublication

    d = LedgerDriver()
    d.apply(tenant(time_zone="Europe/Berlin"), tariff())
    [published] = d._all(TariffPublication.Published)
    assert published.tariff_id == "energy" and published.language == "en"
    assert any("0.40 EUR per kWh" in line or "0.4 EUR per kWh" in line
               for line in published.explanation), published.explanation
    assert published.warnings == []

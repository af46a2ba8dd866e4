"""Where `ledger audit whatif` puts the proposal into the history, and from when it is in
force (consumers/rebilling.py, step 1)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from consumers.event_file import write_event_file
from consumers.rebilling import periods_of, proposed_lines
from ledger.messages import TariffPublished, TenantConfigured
from tests.builders import ENERGY_TARIFF, driver, envelope, session_events, tariff

CONFIGURED_AT = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # inside the period


def test_the_proposal_comes_before_the_periods_first_session_and_after_the_same_tariff(
    tmp_path: Path,
) -> None:
    history = tmp_path / "day.jsonl"
    later_driver = driver("w", "wallet", at=datetime(2026, 3, 20, tzinfo=UTC))
    write_event_file(history, [
        TenantConfigured(**envelope("t1", CONFIGURED_AT), effective_at=CONFIGURED_AT,
                         currency="EUR", preauth_hold_amount="25.00",
                         time_zone="Europe/Berlin"),
        TariffPublished(**envelope("t1", CONFIGURED_AT), effective_at=CONFIGURED_AT,
                        tariff_id="energy", ocpi_tariff_json=json.dumps(ENERGY_TARIFF)),
        later_driver,
        *session_events("tx1", "w", "10", start=datetime(2026, 3, 21, tzinfo=UTC)),
    ])
    periods = periods_of(history, date(2026, 3, 1), date(2026, 3, 31))
    assert periods["t1"].start == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    proposal = tariff()  # the same tariff id, published again
    lines = [json.loads(line) for line in proposed_lines(history, [proposal], periods)]
    types = [line["type"] for line in lines]
    assert types[:4] == ["TenantConfigured", "TariffPublished", "DriverConfigured",
                         "TariffPublished"], "after the history's configuration"
    assert types[4] == "TransactionEvent"
    inserted = lines[3]["event"]
    assert inserted["event_id"] == proposal.event_id
    # Just after the history's version of the same tariff (the period starts before it);
    # the driver configured for later does not hold the proposal back.
    effective = CONFIGURED_AT + timedelta(microseconds=1)
    assert inserted["effective_at"] == effective.isoformat().replace("+00:00", "Z")
    assert inserted["occurred_at"] == inserted["effective_at"]

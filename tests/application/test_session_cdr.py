"""A settled session yields its OCPI CDR; a correction yields the credit CDR that cancels it."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consumers.cli import main
from consumers.store import open_ledger
from ledger.domain.errors import InvalidCdr
from ledger.domain.payer import Payer
from ledger.domain.session import ChargingSession
from ledger.domain.session_cdr import session_cdr, session_credit_cdr
from tests.builders import LedgerDriver, driver, location, session_events, tariff, tenant


def settled_session(d: LedgerDriver, **location_settings: Any) -> ChargingSession:
    d.apply(tenant(), tariff(), location(**location_settings), driver("post", "post_paid"))
    d.apply_each(session_events("tx1", "post", "10"))
    session: ChargingSession = d.get(ChargingSession, ChargingSession.create_id("t1", "tx1"))
    return session


def test_the_cdr_carries_the_charged_totals_and_the_session_facts() -> None:
    session = settled_session(LedgerDriver())
    cdr = session_cdr(session)
    assert cdr["id"] == cdr["session_id"] == "tx1"
    assert cdr["total_cost"] == {"excl_vat": "4.00", "incl_vat": "4.76"}
    assert Decimal(cdr["total_energy"]) == Decimal("10")
    assert cdr["cdr_token"]["uid"] == "rfid-post"
    assert cdr["cdr_location"]["country"] == "DEU"
    assert cdr["tariffs"][0]["id"] == "energy"
    assert session.settlement is not None
    assert Decimal(cdr["total_cost"]["incl_vat"]) == session.settlement["total_incl_vat"]


def test_the_cdr_location_country_is_the_locations_own_when_configured() -> None:
    # The tariff is the German CPO's; this location (LocationConfigured v2) is in Austria.
    session = settled_session(LedgerDriver(), country_code="AUT")

    cdr = session_cdr(session)

    assert cdr["cdr_location"]["country"] == "AUT"
    assert cdr["country_code"] == "DE"


def test_a_session_started_before_locations_had_a_country_takes_the_tariffs() -> None:
    # Sessions stored before v2 froze a payer without the key at all.
    session = settled_session(LedgerDriver())
    assert session.payer is not None
    record = session.payer.to_record()
    del record["location_country"]
    session.payer = Payer.from_record(record)

    assert session_cdr(session)["cdr_location"]["country"] == "DEU"


def test_the_credit_cdr_references_and_negates_the_original() -> None:
    session = settled_session(LedgerDriver())
    credit = session_credit_cdr(session, datetime(2026, 3, 5, tzinfo=UTC))
    assert (credit["id"], credit["credit"], credit["credit_reference_id"]) == (
        "tx1-C", True, "tx1")
    assert credit["total_cost"] == {"excl_vat": "-4.00", "incl_vat": "-4.76"}


def test_an_unsettled_session_has_no_cdr_yet() -> None:
    d = LedgerDriver()
    d.apply(tenant(), tariff(), location(), driver("post", "post_paid"))
    d.apply_each(session_events("tx1", "post", "10")[:2])
    with pytest.raises(InvalidCdr):
        session_cdr(d.get(ChargingSession, ChargingSession.create_id("t1", "tx1")))


def test_ledger_cdr_prints_the_cdr_and_refuses_an_unknown_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(store)
    try:
        settled_session(LedgerDriver(ledger))
    finally:
        ledger.close()
    assert main(["cdr", "--store", store, "--tenant", "t1", "--session", "tx1"]) == 0
    assert '"incl_vat": "4.76"' in capsys.readouterr().out
    assert main(["cdr", "--store", store, "--tenant", "t1", "--session", "nope"]) == 2
    assert "no session 'nope'" in capsys.readouterr().err

"""The OCPI 2.2.1 CDR of a settled session, and the credit CDR that cancels it.

Built from the session's own facts (readings, the tariff and time zone frozen at start), so
the CDR a roaming partner receives prices exactly as the ledger charged. The CPO's OCPI
identity (country code and party id) is the tariff's; the location's country is the one its
configuration gave (LocationConfigured v2), else the tariff's country as alpha-3.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ledger.domain.cdr import CdrLocation, CdrToken, build_cdr, credit_cdr
from ledger.domain.errors import InvalidCdr
from ledger.domain.session import ChargingSession
from ledger.domain.session_cost import final_price, tariff_from_json

# OCPI CdrLocation.country is ISO 3166-1 alpha-3; tariffs carry the CPO's alpha-2 country.
ALPHA3_OF_ALPHA2: dict[str, str] = {
    "AT": "AUT", "BE": "BEL", "BG": "BGR", "CH": "CHE", "CY": "CYP", "CZ": "CZE",
    "DE": "DEU", "DK": "DNK", "EE": "EST", "ES": "ESP", "FI": "FIN", "FR": "FRA",
    "GB": "GBR", "GR": "GRC", "HR": "HRV", "HU": "HUN", "IE": "IRL", "IS": "ISL",
    "IT": "ITA", "LI": "LIE", "LT": "LTU", "LU": "LUX", "LV": "LVA", "MT": "MLT",
    "NL": "NLD", "NO": "NOR", "PL": "POL", "PT": "PRT", "RO": "ROU", "SE": "SWE",
    "SI": "SVN", "SK": "SVK", "US": "USA", "CA": "CAN", "AU": "AUS", "NZ": "NZL",
}


def session_cdr(session: ChargingSession) -> dict[str, Any]:
    """The CDR of a settled session (InvalidCdr if it is not settled)."""
    if session.settlement is None or session.payer is None:
        raise InvalidCdr(f"session {session.transaction_id} is not settled: no CDR yet")
    tariff_json = session.payer.tariff_json
    tariff = tariff_from_json(tariff_json)
    country_code = tariff.country_code or json.loads(tariff_json).get("country_code") or "ZZ"
    party_id = tariff.party_id or "ZZZ"
    model = session.settlement["billing_model"]
    token_uid = session.id_token or session.terminal_reference or "UNKNOWN"
    token_type = "AD_HOC_USER" if model == "ad_hoc_terminal" else (
        "RFID" if session.id_token else "OTHER")
    evse = session.evse_id or "1"
    # Frozen at start from the location's configuration; None for sessions started before
    # locations carried a country (or configured without one).
    location_country = session.payer.location_country
    return build_cdr(
        cdr_id=session.transaction_id,
        country_code=country_code,
        party_id=party_id,
        session_id=session.transaction_id,
        cdr_token=CdrToken(
            country_code=country_code, party_id=party_id, uid=token_uid, type=token_type,
            contract_id=token_uid,
        ),
        cdr_location=CdrLocation(
            id=session.location_id,
            country=location_country or ALPHA3_OF_ALPHA2.get(country_code, country_code),
            evse_uid=f"{session.charge_point_id}:{evse}",
            evse_id=f"{session.charge_point_id}*{evse}",
            connector_id="1",
        ),
        auth_method="AUTH_REQUEST" if model == "ad_hoc_terminal" else "WHITELIST",
        tariff=tariff,
        price=final_price(session),
        last_updated=_ended_at(session),
    )


def session_credit_cdr(session: ChargingSession, at: datetime) -> dict[str, Any]:
    """The credit CDR cancelling the session's CDR, as roaming partners expect."""
    return credit_cdr(session_cdr(session), last_updated=at)


def _ended_at(session: ChargingSession) -> datetime:
    assert session.ended_at is not None or session.readings
    return session.ended_at or session.ordered_readings()[-1]["timestamp"]

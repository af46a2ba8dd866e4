"""A cost update's payload, written out by hand on the write path, is exactly what the
`SessionCostUpdated` model dumps: the relay validates it and encodes the same record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.billing_model import BillingModel
from ledger.domain.payer import DriverTerms, Payer
from ledger.domain.session import ChargingSession
from ledger.handlers.cost_updates import cost_update_payload
from ledger.messages import SessionCostUpdated

ids = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=64)
totals = st.decimals(min_value=0, max_value=Decimal("99999999"), places=2)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)),
                                                   timezone(timedelta(hours=-5, minutes=-30))]))


def session_paid_in(currency: str, tenant: str, tx: str, location: str, cp: str
                    ) -> ChargingSession:
    session = ChargingSession(tenant_id=tenant, transaction_id=tx, location_id=location,
                              charge_point_id=cp)
    session.payer = Payer(
        billing_model=BillingModel.POST_PAID, own_model=None, driver_id="d1",
        payment_method_token="tok", hold_amount=None, refusal_reason=None, tariff_id="T",
        tariff_json="{}", time_zone="UTC", currency=currency, driver=DriverTerms(),
        stop_threshold_percent=Decimal("95"),
    )
    return session


@given(tenant=ids, tx=ids, location=ids, cp=ids, cid=ids,
       currency=st.sampled_from(["EUR", "SEK", "JPY", "KWD"]), total=totals, at=instants,
       sequence=st.integers(0, 10_000), final=st.booleans(),
       full_price=st.one_of(st.none(), totals, st.just(Decimal("1E+3"))))
def test_the_payload_is_the_models_json_dump(
    tenant: str, tx: str, location: str, cp: str, cid: str, currency: str, total: Decimal,
    at: datetime, sequence: int, final: bool, full_price: Decimal | None,
) -> None:
    session = session_paid_in(currency, tenant, tx, location, cp)
    payload = cost_update_payload(session, cid, total, at, sequence, final, full_price)
    model = SessionCostUpdated(
        event_id=cid, tenant_id=tenant, occurred_at=at, producer="evledger",
        transaction_id=tx, location_id=location, charge_point_id=cp, total_cost=total,
        currency=currency, final=final, full_price=full_price, sequence=sequence,
    )
    assert payload == model.model_dump(mode="json")
    assert SessionCostUpdated.model_validate(payload) == model

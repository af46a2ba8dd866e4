"""What a proposed configuration changes in a period's bills: two reports compared (pure).

`ledger audit whatif` re-bills a period in a scratch store and hands both reports here.
The period is per tenant, [start, until] in UTC (its local days). A session is in the
period when it ended in it (its settlement is what bills it). Three views of the same
sessions:
- per billing model: the sessions' total incl. VAT, by the model each run gave them (a new
  plan moves sessions from `wallet` to `subscription_prepaid`: both rows change);
- per driver: what the driver pays through their own model (`driver` and `wallet` shares);
- per partner: the partner's shares (what its period's settlement invoice bills).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.domain.money import Money

DRIVER_OWN_PAYERS = frozenset({"driver", "wallet"})
PARTNER_PAYER = "partner"


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # the first instant, UTC
    until: datetime  # the last instant, UTC (inclusive)

    def holds(self, instant_text: str | None) -> bool:
        if not instant_text:
            return False
        moment = datetime.fromisoformat(instant_text.replace("Z", "+00:00"))
        return self.start <= moment <= self.until


Key = tuple[str, str, str]  # (tenant, name, currency)


def _sessions_in(report: Mapping[str, Any], periods: Mapping[str, Period]
                 ) -> list[dict[str, Any]]:
    return [s for s in report["sessions"]
            if s["tenant_id"] in periods and periods[s["tenant_id"]].holds(s["ended_at"])]


def _totals(
    sessions: Iterable[dict[str, Any]],
    shares: Callable[[dict[str, Any]], Iterable[tuple[str, str]]],
) -> dict[Key, tuple[int, Decimal]]:
    """(tenant, name, currency) -> (sessions, amount) for each (name, amount) `shares` gives."""
    found: dict[Key, tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal(0)))
    for session in sessions:
        for name, amount in shares(session):
            key = (session["tenant_id"], name, session["currency"])
            count, total = found[key]
            found[key] = (count + 1, total + Decimal(amount))
    return found


def _by_model(session: dict[str, Any]) -> Iterable[tuple[str, str]]:
    yield session["billing_model"], session["total_incl_vat"]


def _by_driver(session: dict[str, Any]) -> Iterable[tuple[str, str]]:
    own = [Decimal(share["amount_incl_vat"]) for share in session["charged_to"]
           if share["payer"] in DRIVER_OWN_PAYERS]
    if session.get("driver_id"):
        yield session["driver_id"], str(sum(own, Decimal(0)))


def _by_partner(session: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for share in session["charged_to"]:
        if share["payer"] == PARTNER_PAYER:
            yield share["id"], share["amount_incl_vat"]


def _rows(name: str, before: dict[Key, tuple[int, Decimal]],
          after: dict[Key, tuple[int, Decimal]]) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(before.keys() | after.keys()):
        tenant_id, value, currency = key
        count_before, amount_before = before.get(key, (0, Decimal(0)))
        count_after, amount_after = after.get(key, (0, Decimal(0)))
        rows.append({
            "tenant_id": tenant_id, name: value, "currency": currency,
            "sessions_before": count_before, "sessions_after": count_after,
            "before": Money(amount_before, currency).to_str(),
            "after": Money(amount_after, currency).to_str(),
            "difference": Money(amount_after - amount_before, currency).to_str(),
        })
    return rows


def bill_differences(
    before: Mapping[str, Any], after: Mapping[str, Any], periods: Mapping[str, Period]
) -> dict[str, Any]:
    """The period's sessions of `before` and `after` (two reports), compared three ways."""
    old, new = _sessions_in(before, periods), _sessions_in(after, periods)
    new_by_id = {(s["tenant_id"], s["session_id"]): s for s in new}
    changed = sorted(
        f"{s['tenant_id']}/{s['session_id']}" for s in old
        if (found := new_by_id.get((s["tenant_id"], s["session_id"]))) is None
        or (found["billing_model"], found["total_incl_vat"], found["charged_to"])
        != (s["billing_model"], s["total_incl_vat"], s["charged_to"])
    )
    moved = {(s["tenant_id"], s["session_id"]) for s in old} ^ set(new_by_id)
    return {
        "sessions": {"before": len(old), "after": len(new), "changed": len(changed),
                     "in_one_run_only": len(moved)},
        "changed_sessions": changed,
        "by_billing_model": _rows("billing_model", _totals(old, _by_model),
                                  _totals(new, _by_model)),
        "by_driver": _rows("driver_id", _totals(old, _by_driver), _totals(new, _by_driver)),
        "by_partner": _rows("partner_id", _totals(old, _by_partner),
                            _totals(new, _by_partner)),
    }

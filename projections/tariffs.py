"""Tariffs read model: each accepted publication in plain words, with its lint warnings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.tariff_publication import TariffPublication
from projections.changes import RowChange, event_class
from projections.identities import Identities
from projections.sql import TARIFF_PUBLISHED
from projections.values import canonical_json, instant_text


def tariff_published(event: Any, identities: Identities) -> list[RowChange]:
    return [
        RowChange(
            TARIFF_PUBLISHED,
            {
                "tenant_id": event.tenant_id, "tariff_id": event.tariff_id,
                "effective_at": instant_text(event.effective_at), "language": event.language,
                "explanation_json": canonical_json(list(event.explanation)),
                "warnings_json": canonical_json(list(event.warnings)),
            },
        )
    ]


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(TariffPublication, "Published"): tariff_published,
}

"""Configuration events: stored effective-dated, validated on arrival, never retroactive."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.batch import Batch
from ledger.domain.configuration import EffectiveDated, config_id
from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.tariff import parse_tariff
from ledger.domain.tariff_explanation import explain_tariff
from ledger.domain.tariff_lint import fatal, lint_tariff_text
from ledger.domain.tariff_publication import TariffPublication
from ledger.handlers.lookups import config_as_of, require_tenant
from ledger.handlers.prerequisites import wait_for
from ledger.handlers.subscriptions import change_subscription, check_plan
from ledger.messages import (
    Configuration,
    DriverConfigured,
    EnrolmentChanged,
    LocationConfigured,
    PartnerConfigured,
    PlanPublished,
    SubscriptionChanged,
    TariffPublished,
    TenantConfigured,
)

# What each configuration message configures, and the natural key within the tenant.
CONFIG_KINDS: dict[type[Configuration], tuple[str, str]] = {
    TenantConfigured: ("tenant", "tenant_id"),
    TariffPublished: ("tariff", "tariff_id"),
    LocationConfigured: ("location", "location_id"),
    DriverConfigured: ("driver", "driver_id"),
    PlanPublished: ("plan", "plan_id"),
    SubscriptionChanged: ("subscription", "driver_id"),
    PartnerConfigured: ("partner", "partner_id"),
    EnrolmentChanged: ("enrolment", "driver_id"),
}
# The report's explanation of each published tariff (`ledger tariff explain` has the others).
PUBLICATION_LANGUAGE = "en"
SETTINGS_EXCLUDED = {"event_id", "tenant_id", "occurred_at", "producer", "schema_version"}


def settings_of(message: Configuration) -> dict[str, Any]:
    return {
        name: value
        for name, value in message.model_dump().items()
        if name not in SETTINGS_EXCLUDED
    }


def _check_time_zone(name: str, what: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"{what}: unknown time zone {name!r}") from exc


def _validate(message: Configuration, batch: Batch) -> None:
    if isinstance(message, TenantConfigured):
        _check_time_zone(message.time_zone, f"tenant {message.tenant_id}")
        return
    tenant = require_tenant(batch, message.tenant_id, message.effective_at)
    if isinstance(message, TariffPublished):
        try:
            tariff = parse_tariff(json.loads(message.ocpi_tariff_json))
        except ValueError as exc:
            raise InvalidInput(f"tariff {message.tariff_id}: not JSON: {exc}") from exc
        if tariff.currency != tenant["currency"]:
            raise InvalidInput(
                f"tariff {message.tariff_id} is in {tariff.currency}, "
                f"tenant bills in {tenant['currency']}"
            )
        # Fatal lint findings refuse the tariff; the one in force keeps pricing sessions.
        problems = fatal(lint_tariff_text(message.ocpi_tariff_json))
        if problems:
            reasons = "; ".join(str(p) for p in problems)
            raise InvalidInput(f"tariff {message.tariff_id} refused: {reasons}")
    elif isinstance(message, LocationConfigured):
        _check_time_zone(message.time_zone, f"location {message.location_id}")
    elif isinstance(message, PartnerConfigured):
        if message.payment_terms == "card" and not message.payment_method_token:
            raise InvalidInput(
                f"partner {message.partner_id} pays by card but has no payment method token"
            )
    elif isinstance(message, EnrolmentChanged):
        partner = config_as_of(
            batch, "partner", message.tenant_id, message.partner_id, message.effective_at
        )
        if partner is None:
            wait_for("partner", message.tenant_id, message.partner_id, (
                f"enrolment of driver {message.driver_id} with unknown partner "
                f"{message.partner_id!r} (no PartnerConfigured in force at "
                f"{message.effective_at.isoformat()})"
            ), RuleViolation)
    elif isinstance(message, PlanPublished):
        check_plan(message, batch)


def handle_configuration(message: Configuration, batch: Batch) -> None:
    kind, key_field = CONFIG_KINDS[type(message)]
    key = str(getattr(message, key_field))
    _validate(message, batch)
    aggregate_id = config_id(kind, message.tenant_id, key)
    aggregate = batch.get(EffectiveDated, aggregate_id)
    if aggregate is None:
        aggregate = EffectiveDated(kind=kind, tenant_id=message.tenant_id, key=key)
        batch.add(aggregate)
    if aggregate.has_change(message.event_id):
        return
    aggregate.change(message.effective_at, message.event_id, settings_of(message))
    if isinstance(message, TariffPublished):
        _record_publication(message, batch)
    elif isinstance(message, DriverConfigured):
        _index_tokens(message, batch)
    elif isinstance(message, SubscriptionChanged):
        tenant = require_tenant(batch, message.tenant_id, message.effective_at)
        change_subscription(message, tenant, batch)


def _record_publication(message: TariffPublished, batch: Batch) -> None:
    """The accepted tariff in plain words (in the tenant's zone) and its lint warnings."""
    publication_id = TariffPublication.create_id(
        message.tenant_id, message.tariff_id, message.event_id
    )
    if batch.get(TariffPublication, publication_id) is not None:
        return
    tenant = require_tenant(batch, message.tenant_id, message.effective_at)
    tariff = parse_tariff(json.loads(message.ocpi_tariff_json))
    zone = ZoneInfo(str(tenant.get("time_zone") or "UTC"))
    batch.add(TariffPublication(
        tenant_id=message.tenant_id, tariff_id=message.tariff_id,
        source_event_id=message.event_id, effective_at=message.effective_at,
        language=PUBLICATION_LANGUAGE,
        explanation=list(explain_tariff(tariff, PUBLICATION_LANGUAGE, zone)),
        warnings=[str(f) for f in lint_tariff_text(message.ocpi_tariff_json)],
    ))


def _index_tokens(message: DriverConfigured, batch: Batch) -> None:
    """id token -> driver, effective-dated like the rest, so the charger's token finds its payer."""
    for token in message.id_tokens:
        aggregate_id = config_id("id_token", message.tenant_id, token)
        index = batch.get(EffectiveDated, aggregate_id)
        if index is None:
            index = EffectiveDated(kind="id_token", tenant_id=message.tenant_id, key=token)
            batch.add(index)
        if not index.has_change(message.event_id):
            index.change(message.effective_at, message.event_id, {"driver_id": message.driver_id})

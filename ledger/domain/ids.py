"""Deterministic ids from natural keys (uuid5), so a redelivered message lands on the same
aggregate and a re-issued command keeps its id. Every id is scoped by tenant: nothing can
collide across tenants.
"""

from __future__ import annotations

from uuid import UUID, uuid5

# A fixed namespace for this product; changing it would orphan every stored aggregate.
EVLEDGER_NAMESPACE = UUID("6a0c1f0e-2a44-5c1b-9d3e-7f3f5e2b8a11")


def natural_id(kind: str, tenant_id: str, *parts: str) -> UUID:
    """The id of the `kind` thing named by `parts` within `tenant_id`."""
    return uuid5(EVLEDGER_NAMESPACE, "\x1f".join((kind, tenant_id, *parts)))


def command_id(tenant_id: str, purpose: str, *parts: str) -> str:
    """The id of an outbound command: the same cause always yields the same id.

    The PSP answers with this id as `request_id`, and uses it (with the attempt) as the
    idempotency key, so a relay that re-sends after a crash never makes a second payment.
    """
    return str(natural_id("command:" + purpose, tenant_id, *parts))

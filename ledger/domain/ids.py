"""Deterministic ids from natural keys (uuid5), so a redelivered message lands on the same
aggregate and a re-issued command keeps its id. Every id is scoped by tenant: nothing can
collide across tenants.
"""

from __future__ import annotations

from hashlib import sha1
from uuid import UUID

# A fixed namespace for this product; changing it would orphan every stored aggregate.
EVLEDGER_NAMESPACE = UUID("6a0c1f0e-2a44-5c1b-9d3e-7f3f5e2b8a11")
_NAMESPACE_BYTES = EVLEDGER_NAMESPACE.bytes
# RFC 4122 version 5: the variant bits (10) and the version nibble (5) over the SHA-1.
_VARIANT_AND_VERSION_CLEARED = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_VARIANT_AND_VERSION_5 = (0x8000 << 48) | (5 << 76)


def natural_id(kind: str, tenant_id: str, *parts: str) -> UUID:
    """The id of the `kind` thing named by `parts` within `tenant_id`: `uuid.uuid5` of the
    namespace and the parts joined by US, computed as uuid5 does but built from its integer
    (UUID(bytes=..., version=5) checks and converts twice; a message derives several ids,
    and this was 9 % of an ingest's profile). tests/unit/domain/test_ids.py pins equality."""
    name = "\x1f".join((kind, tenant_id, *parts)).encode("utf-8")
    digest = int.from_bytes(sha1(_NAMESPACE_BYTES + name).digest()[:16], "big")
    return UUID(int=digest & _VARIANT_AND_VERSION_CLEARED | _VARIANT_AND_VERSION_5)


def command_id(tenant_id: str, purpose: str, *parts: str) -> str:
    """The id of an outbound command: the same cause always yields the same id.

    The PSP answers with this id as `request_id`, and uses it (with the attempt) as the
    idempotency key, so a relay that re-sends after a crash never makes a second payment.
    """
    return str(natural_id("command:" + purpose, tenant_id, *parts))

"""Finance API keys: issued per tenant, shown once, stored as their SHA-256 only.

A key reads `evk_<key id>_<secret>`: the key id (public, 8 bytes of hex) finds the row, and
the SHA-256 of the whole key is compared in constant time, so neither a lookup by hash nor
a short-circuiting compare tells an attacker how close a guess was. The secret is 32 random
bytes (`secrets`), too many to guess.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from projections.database import ReadModelDatabase
from projections.finance_sql import (
    CREATE_API_KEYS,
    INSERT_API_KEY,
    REVOKE_API_KEY,
    SELECT_API_KEY,
    SELECT_API_KEYS,
)
from projections.tenant_isolation import Query
from projections.values import instant_text

KEY_PREFIX = "evk"
KEY_ID_BYTES = 8
KEY_SECRET_BYTES = 32  # 256 bits: brute force is out of reach
# A longer header is not one of our keys; refusing it early bounds the work per request.
KEY_CHARS_MAX = 120
LABEL_CHARS_MAX = 200


class ApiKeyError(Exception):
    """A key could not be issued or revoked (unknown id, bad tenant or label)."""


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    tenant_id: str
    key: str  # shown once, never stored


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def ensure_key_table(db: ReadModelDatabase) -> None:
    with db.transaction() as tx:
        tx.execute(CREATE_API_KEYS)


def issue_key(db: ReadModelDatabase, tenant_id: str, label: str, now: datetime) -> IssuedKey:
    if not tenant_id.strip():
        raise ApiKeyError("a key needs a tenant id")
    if len(label) > LABEL_CHARS_MAX:
        raise ApiKeyError(f"label longer than {LABEL_CHARS_MAX} characters")
    key_id = secrets.token_hex(KEY_ID_BYTES)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(KEY_SECRET_BYTES)}"
    with db.transaction() as tx:
        tx.execute(CREATE_API_KEYS)
        tx.execute(INSERT_API_KEY.text, {
            "key_id": key_id, "tenant_id": tenant_id, "key_sha256": key_digest(key),
            "label": label, "created_at": instant_text(now),
        })
    return IssuedKey(key_id, tenant_id, key)


def list_keys(db: ReadModelDatabase) -> list[dict[str, str | None]]:
    names = ("key_id", "tenant_id", "label", "created_at", "revoked_at")
    rows = [dict(zip(names, row, strict=True)) for row in db.query(SELECT_API_KEYS.text)]
    return sorted(rows, key=lambda r: (str(r["tenant_id"]), str(r["created_at"]),
                                       str(r["key_id"])))


def revoke_key(db: ReadModelDatabase, key_id: str, now: datetime) -> None:
    with db.transaction() as tx:
        if tx.execute(REVOKE_API_KEY.text, {"key_id": key_id,
                                            "revoked_at": instant_text(now)}) != 1:
            raise ApiKeyError(f"no active key {key_id!r}")


def tenant_of_key(query: Query, key: str) -> str | None:
    """The tenant a presented key belongs to, or None (unknown, revoked or malformed)."""
    if len(key) > KEY_CHARS_MAX:
        return None
    parts = key.split("_", 2)  # the secret itself may contain "_"
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    rows = query(SELECT_API_KEY.text, {"key_id": parts[1]})
    if not rows:
        return None
    tenant_id, stored_digest, revoked_at = rows[0]
    if not hmac.compare_digest(str(stored_digest), key_digest(key)) or revoked_at is not None:
        return None
    return str(tenant_id)

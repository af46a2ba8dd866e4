"""Per-tenant Stripe accounts: each CPO (tenant) has its own Stripe account and keys.

Read once at start from a JSON file named by `--stripe-accounts` or $EVLEDGER_STRIPE_ACCOUNTS:
    {"cpo-de": {"secret_key": "sk_test_...", "webhook_secret": "whsec_..."}, ...}
The keys are secrets: `repr` hides them (so no log line or traceback shows them), and
nothing the adapter publishes carries them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ledger.domain.errors import InvalidInput

# A configuration file beyond this is not a list of tenants' keys but a mistake.
ACCOUNTS_FILE_BYTES_MAX = 1_000_000
# Stripe's secret and restricted keys start so; anything else would only fail later, at the
# first command of that tenant, as a failed payment.
SECRET_KEY_PREFIXES = ("sk_", "rk_")
WEBHOOK_SECRET_PREFIX = "whsec_"


class InvalidAccounts(InvalidInput):
    """The Stripe accounts configuration cannot be used (the message names no secret)."""


@dataclass(frozen=True, slots=True)
class StripeAccount:
    tenant_id: str
    secret_key: str = field(repr=False)
    webhook_secret: str | None = field(default=None, repr=False)

    @property
    def is_test_mode(self) -> bool:
        return "_test_" in self.secret_key


def accounts_from_json(text: str) -> dict[str, StripeAccount]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidAccounts(f"Stripe accounts: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(raw, dict) or not raw:
        raise InvalidAccounts("Stripe accounts: expected an object of tenant -> keys")
    return {tenant: _account(tenant, entry) for tenant, entry in raw.items()}


def accounts_from_file(path: Path) -> dict[str, StripeAccount]:
    try:
        size = path.stat().st_size
        if size > ACCOUNTS_FILE_BYTES_MAX:
            raise InvalidAccounts(f"Stripe accounts file {path} has {size} bytes, "
                                  f"more than {ACCOUNTS_FILE_BYTES_MAX}")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidAccounts(f"Stripe accounts file {path}: {exc.strerror}") from None
    return accounts_from_json(text)


def _account(tenant: str, entry: object) -> StripeAccount:
    if not isinstance(entry, Mapping):
        raise InvalidAccounts(f"Stripe accounts: {tenant!r} needs an object with secret_key")
    unknown = sorted(set(entry) - {"secret_key", "webhook_secret"})
    if unknown:
        raise InvalidAccounts(f"Stripe accounts: {tenant!r} has unknown fields {unknown}")
    secret_key = entry.get("secret_key")
    if not isinstance(secret_key, str) or not secret_key.startswith(SECRET_KEY_PREFIXES):
        # Never echo the value: it may be a live key pasted in the wrong field.
        raise InvalidAccounts(f"Stripe accounts: {tenant!r} secret_key must be a string "
                              f"starting with one of {SECRET_KEY_PREFIXES}")
    webhook_secret = entry.get("webhook_secret")
    if webhook_secret is not None and (
        not isinstance(webhook_secret, str) or not webhook_secret.startswith(WEBHOOK_SECRET_PREFIX)
    ):
        raise InvalidAccounts(f"Stripe accounts: {tenant!r} webhook_secret must start with "
                              f"{WEBHOOK_SECRET_PREFIX!r}")
    return StripeAccount(tenant_id=tenant, secret_key=secret_key, webhook_secret=webhook_secret)

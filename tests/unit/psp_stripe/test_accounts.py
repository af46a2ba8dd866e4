"""Per-tenant Stripe keys from configuration: parsed once, refused clearly, never echoed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumers.psp_stripe.accounts import InvalidAccounts, accounts_from_file, accounts_from_json


def test_accounts_are_read_per_tenant(tmp_path: Path) -> None:
    path = tmp_path / "stripe.json"
    path.write_text(json.dumps({
        "cpo-de": {"secret_key": "sk_test_de", "webhook_secret": "whsec_de"},
        "cpo-fr": {"secret_key": "rk_live_fr"},
    }))
    accounts = accounts_from_file(path)
    assert accounts["cpo-de"].secret_key == "sk_test_de" and accounts["cpo-de"].is_test_mode
    assert accounts["cpo-fr"].webhook_secret is None and not accounts["cpo-fr"].is_test_mode


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "not JSON"),
    ("[]", "expected an object"),
    ('{"t": "sk_test_1"}', "needs an object"),
    ('{"t": {"secret_key": "pk_test_SECRET"}}', "secret_key must be"),
    ('{"t": {"secret_key": "sk_test_1", "webhook_secret": "SECRET"}}', "webhook_secret"),
    ('{"t": {"secret_key": "sk_test_1", "extra": 1}}', "unknown fields"),
])
def test_a_bad_configuration_is_refused_without_echoing_a_secret(text: str, message: str) -> None:
    with pytest.raises(InvalidAccounts, match=message) as raised:
        accounts_from_json(text)
    assert "SECRET" not in str(raised.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidAccounts, match="No such file"):
        accounts_from_file(tmp_path / "missing.json")

"""A record may speak only for the tenant its transport vouches for (key, topic prefix)."""

from __future__ import annotations

import argparse

import pytest

from consumers.consumer_loop import tenant_mismatch
from consumers.settings import Settings, settings_from

ANY = settings_from(argparse.Namespace(bootstrap_servers="127.0.0.1:9092"), {})


def _serving(*tenants: str) -> Settings:
    return settings_from(argparse.Namespace(bootstrap_servers="127.0.0.1:9092",
                                            tenants=",".join(tenants), group_id=None), {})


def test_the_key_of_the_same_tenant_vouches() -> None:
    assert tenant_mismatch("cpo-de", "cpo-de:tx-1", ANY) is None


@pytest.mark.parametrize("key", [None, "", "cpo-nl:tx-1", "cpo-de", "cpo-dex:tx-1"])
def test_any_other_key_does_not(key: str | None) -> None:
    assert "does not match the record key" in str(tenant_mismatch("cpo-de", key, ANY))


def test_a_consumer_told_its_tenants_refuses_the_others() -> None:
    settings = _serving("cpo-de", "cpo-at")
    assert tenant_mismatch("cpo-de", "cpo-de:x", settings) is None
    refusal = tenant_mismatch("cpo-nl", "cpo-nl:x", settings)
    assert refusal == "tenant 'cpo-nl' is not served by these topics (accepted: cpo-at, cpo-de)"


def test_tenants_come_from_the_environment_too() -> None:
    settings = settings_from(argparse.Namespace(bootstrap_servers="127.0.0.1:9092"),
                             {"LEDGER_TENANTS": " cpo-de , ,cpo-at"})
    assert settings.tenants == frozenset({"cpo-de", "cpo-at"})
    assert ANY.tenants is None

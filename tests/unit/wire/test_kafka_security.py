"""Kafka client security from the environment: each bad combination is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.cli import CliError
from consumers.kafka_security import KafkaSecurity, security_from


def test_nothing_set_is_plaintext_with_no_extra_options() -> None:
    assert security_from({}).client_options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_with_scram_gives_every_option_the_client_needs(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    security = security_from({
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_USERNAME": "ledger",
        "KAFKA_SASL_PASSWORD": "s3cret", "KAFKA_SSL_CAFILE": str(ca),
    })
    assert security.client_options() == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ledger", "sasl_plain_password": "s3cret",
        "ssl_cafile": str(ca), "ssl_certfile": None, "ssl_keyfile": None,
        "ssl_check_hostname": True,
    }
    assert "s3cret" not in repr(security)


@pytest.mark.parametrize(("env", "says"), [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "expected one of PLAINTEXT, SSL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_USERNAME"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
      "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "sends the password in clear"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI",
      "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_MECHANISM='GSSAPI'"),
    ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "uses no SASL"),
    ({"KAFKA_SSL_CAFILE": "/etc/hostname"}, "uses no TLS"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/no/such/ca.pem"},
     "is not a readable file"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CHECK_HOSTNAME": "maybe"},
     "expected true or false"),
])
def test_a_bad_combination_names_what_is_wrong(env: dict[str, str], says: str) -> None:
    with pytest.raises(CliError, match=None) as refused:
        security_from(env)
    assert says in str(refused.value)


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(CliError, match="go together"):
        security_from({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": str(cert)})


def test_the_default_is_plaintext() -> None:
    assert KafkaSecurity().uses_tls is False
    assert KafkaSecurity().uses_sasl is False

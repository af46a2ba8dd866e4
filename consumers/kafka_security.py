"""How the Kafka clients authenticate and encrypt: TLS and SASL (SCRAM) from the environment.

A deployment where producers are not all trusted runs its brokers with TLS listeners and
SASL/SCRAM users, and per-principal ACLs on the topics; the ledger's processes then connect
as their own user. Secrets come from the environment only (never a command-line option, which
`ps` shows to every user of the machine):

| environment | meaning | default |
| --- | --- | --- |
| `KAFKA_SECURITY_PROTOCOL` | PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL | PLAINTEXT |
| `KAFKA_SASL_MECHANISM` | SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (SASL_* only) | SCRAM-SHA-512 |
| `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD` | the SASL user (SASL_* only) | (required) |
| `KAFKA_SSL_CAFILE` | PEM of the CA that signed the brokers' certificates | the system's |
| `KAFKA_SSL_CERTFILE`, `KAFKA_SSL_KEYFILE` | a client certificate (brokers asking one) | none |
| `KAFKA_SSL_CHECK_HOSTNAME` | `false`: skip matching the broker's name (tests only) | true |

PLAIN sends the password itself, so it is refused without TLS; SCRAM never sends it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumers.cli import CliError

PROTOCOL_ENV_VAR = "KAFKA_SECURITY_PROTOCOL"
MECHANISM_ENV_VAR = "KAFKA_SASL_MECHANISM"
USERNAME_ENV_VAR = "KAFKA_SASL_USERNAME"
PASSWORD_ENV_VAR = "KAFKA_SASL_PASSWORD"
CAFILE_ENV_VAR = "KAFKA_SSL_CAFILE"
CERTFILE_ENV_VAR = "KAFKA_SSL_CERTFILE"
KEYFILE_ENV_VAR = "KAFKA_SSL_KEYFILE"
CHECK_HOSTNAME_ENV_VAR = "KAFKA_SSL_CHECK_HOSTNAME"

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")
DEFAULT_MECHANISM = "SCRAM-SHA-512"
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def client_options(self) -> dict[str, Any]:
        """kafka-python's options for this security (the same for every client role)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.uses_tls:
            options.update(
                ssl_cafile=self.ssl_cafile, ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile, ssl_check_hostname=self.ssl_check_hostname,
            )
        return options

    def __repr__(self) -> str:  # the password never reaches a log line
        shown = "***" if self.sasl_password else None
        return (f"KafkaSecurity(protocol={self.protocol!r}, sasl_mechanism="
                f"{self.sasl_mechanism!r}, sasl_username={self.sasl_username!r},"
                f" sasl_password={shown!r}, ssl_cafile={self.ssl_cafile!r})")


def security_from(env: Mapping[str, str]) -> KafkaSecurity:
    """The clients' security from the environment; CliError names the first bad setting."""
    protocol = (env.get(PROTOCOL_ENV_VAR) or "PLAINTEXT").strip().upper()
    if protocol not in PROTOCOLS:
        raise CliError(f"{PROTOCOL_ENV_VAR}={protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    tls = protocol in ("SSL", "SASL_SSL")
    sasl = protocol in ("SASL_PLAINTEXT", "SASL_SSL")
    security = KafkaSecurity(protocol=protocol)
    if sasl:
        mechanism = (env.get(MECHANISM_ENV_VAR) or DEFAULT_MECHANISM).strip().upper()
        if mechanism not in MECHANISMS:
            raise CliError(f"{MECHANISM_ENV_VAR}={mechanism!r}: expected one of"
                           f" {', '.join(MECHANISMS)}")
        if mechanism == "PLAIN" and not tls:
            raise CliError(f"{MECHANISM_ENV_VAR}=PLAIN sends the password in clear: use it with"
                           f" {PROTOCOL_ENV_VAR}=SASL_SSL, or a SCRAM mechanism")
        username, password = env.get(USERNAME_ENV_VAR), env.get(PASSWORD_ENV_VAR)
        if not username or not password:
            raise CliError(f"{PROTOCOL_ENV_VAR}={protocol} needs {USERNAME_ENV_VAR} and"
                           f" {PASSWORD_ENV_VAR}")
        security = KafkaSecurity(protocol=protocol, sasl_mechanism=mechanism,
                                 sasl_username=username, sasl_password=password)
    elif env.get(USERNAME_ENV_VAR) or env.get(PASSWORD_ENV_VAR):
        # A user given to a connection that would not use it: surely a missing protocol.
        raise CliError(f"{USERNAME_ENV_VAR}/{PASSWORD_ENV_VAR} are set but"
                       f" {PROTOCOL_ENV_VAR}={protocol} uses no SASL")
    if not tls:
        for var in (CAFILE_ENV_VAR, CERTFILE_ENV_VAR, KEYFILE_ENV_VAR):
            if env.get(var):
                raise CliError(f"{var} is set but {PROTOCOL_ENV_VAR}={protocol} uses no TLS")
        return security
    cafile, certfile, keyfile = (_readable(env, var)
                                 for var in (CAFILE_ENV_VAR, CERTFILE_ENV_VAR, KEYFILE_ENV_VAR))
    if (certfile is None) != (keyfile is None):
        raise CliError(f"{CERTFILE_ENV_VAR} and {KEYFILE_ENV_VAR} go together")
    check = (env.get(CHECK_HOSTNAME_ENV_VAR) or "true").strip().lower()
    if check not in _TRUE + _FALSE:
        raise CliError(f"{CHECK_HOSTNAME_ENV_VAR}={check!r}: expected true or false")
    return KafkaSecurity(
        protocol=protocol, sasl_mechanism=security.sasl_mechanism,
        sasl_username=security.sasl_username, sasl_password=security.sasl_password,
        ssl_cafile=cafile, ssl_certfile=certfile, ssl_keyfile=keyfile,
        ssl_check_hostname=check in _TRUE,
    )


def _readable(env: Mapping[str, str], var: str) -> str | None:
    value = env.get(var)
    if not value:
        return None
    if not Path(value).is_file() or not os.access(value, os.R_OK):
        raise CliError(f"{var}={value!r} is not a readable file")
    return value

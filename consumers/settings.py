"""Configuration of the long-running Kafka processes, parsed once at the edge and passed in.

Each setting comes from its command-line option, else its environment variable, else a
default; nothing below this module reads the environment.

| setting | option | environment | default |
| --- | --- | --- | --- |
| bootstrap servers | `--bootstrap-servers` | `KAFKA_BOOTSTRAP_SERVERS` | (required) |
| consumer group | `--group-id` | `LEDGER_GROUP_ID` | `evledger-ledger` |
| topic prefix | `--topic-prefix` | `LEDGER_TOPIC_PREFIX` | none |
| store | `--store` | `LEDGER_STORE` | `sqlite:///./evledger.db` |
| metrics port | `--metrics-port` | `LEDGER_METRICS_PORT` | 0 (off) |
| session timeout | `--session-timeout-ms` | `LEDGER_KAFKA_SESSION_TIMEOUT_MS` | 45000 |
| tenants accepted | `--tenants` | `LEDGER_TENANTS` | any |
| merge idle wait | `--merge-idle-ms` | `LEDGER_MERGE_IDLE_MS` | 0 (never wait for producers) |

Security (TLS, SASL/SCRAM) comes from the environment only: `consumers/kafka_security.py`.

The topic prefix is prepended to every topic name (`ledger.messages`), so several
deployments, or test runs, can share one cluster without seeing each other's messages.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from consumers.cli import CliError
from consumers.kafka_limits import (
    CONSUMER_SESSION_TIMEOUT_MS,
    CONSUMER_SESSION_TIMEOUT_MS_MIN,
    MERGE_IDLE_MS_MAX,
)
from consumers.kafka_security import KafkaSecurity, security_from
from consumers.kafka_topics import DEAD_LETTER_TOPIC, INBOUND_TOPICS, OUTBOUND_TOPICS
from consumers.store import STORE_ENV_VAR, redacted_url, store_url_from

BOOTSTRAP_ENV_VAR = "KAFKA_BOOTSTRAP_SERVERS"
GROUP_ID_ENV_VAR = "LEDGER_GROUP_ID"
TOPIC_PREFIX_ENV_VAR = "LEDGER_TOPIC_PREFIX"
METRICS_PORT_ENV_VAR = "LEDGER_METRICS_PORT"
SESSION_TIMEOUT_ENV_VAR = "LEDGER_KAFKA_SESSION_TIMEOUT_MS"
TENANTS_ENV_VAR = "LEDGER_TENANTS"
MERGE_IDLE_ENV_VAR = "LEDGER_MERGE_IDLE_MS"

DEFAULT_GROUP_ID = "evledger-ledger"
PORT_MAX = 65_535
# Kafka topic names: at most 249 characters of [A-Za-z0-9._-]; the longest name we append is
# under 30 characters, so a prefix of up to 200 always leaves a valid name.
TOPIC_PREFIX_CHARS_MAX = 200
# The consumer group broker-side limit is generous; ours only guards against a pasted blob.
GROUP_ID_CHARS_MAX = 255
# A session timeout above the broker's default ceiling (group.max.session.timeout.ms, 30 min)
# would be refused by the broker at join time; refuse it here with a clear message instead.
SESSION_TIMEOUT_MS_MAX = 30 * 60 * 1_000

_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap_servers: tuple[str, ...]
    group_id: str
    topic_prefix: str
    store_url: str
    metrics_port: int
    session_timeout_ms: int
    client_id: str
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    # The tenants whose messages these topics may carry; None: any.
    tenants: frozenset[str] | None = None
    # How long the event-time merge waits for a caught-up partition's producer (ms).
    merge_idle_ms: int = 0

    def store_redacted(self) -> str:
        """The store URL without its password, for messages and logs."""
        return redacted_url(self.store_url)

    def topic(self, name: str) -> str:
        """The Kafka topic carrying `name` (a name from ledger.messages) here."""
        return f"{self.topic_prefix}{name}"

    def unprefixed(self, topic: str) -> str | None:
        """The ledger.messages name of a Kafka topic, or None when it is not one of ours."""
        if not topic.startswith(self.topic_prefix):
            return None
        return topic[len(self.topic_prefix):]

    def inbound_topics(self) -> list[str]:
        return [self.topic(name) for name in INBOUND_TOPICS]

    def all_topics(self) -> list[str]:
        names = (*INBOUND_TOPICS, *OUTBOUND_TOPICS, DEAD_LETTER_TOPIC)
        return [self.topic(name) for name in sorted(set(names))]


def add_arguments(
    parser: argparse.ArgumentParser, *, store: bool = True, group: bool = True,
    metrics: bool = True, tenants: bool = False,
) -> None:
    """Add the options of the settings a command uses; defaults resolve in `settings_from`."""
    parser.add_argument(
        "--bootstrap-servers", metavar="HOST:PORT[,HOST:PORT...]",
        help=f"Kafka brokers (default: ${BOOTSTRAP_ENV_VAR})",
    )
    parser.add_argument(
        "--topic-prefix", metavar="PREFIX",
        help=f"prepended to every topic name (default: ${TOPIC_PREFIX_ENV_VAR}, else none)",
    )
    if store:
        parser.add_argument(
            "--store", metavar="URL",
            help=f"ledger store (default: ${STORE_ENV_VAR}, else sqlite:///./evledger.db)",
        )
    if group:
        parser.add_argument(
            "--group-id", metavar="GROUP",
            help=f"consumer group (default: ${GROUP_ID_ENV_VAR}, else {DEFAULT_GROUP_ID})",
        )
        parser.add_argument(
            "--session-timeout-ms", metavar="MS", type=int,
            help=(
                "how long the group waits for a silent consumer before moving its partitions"
                f" (default: ${SESSION_TIMEOUT_ENV_VAR}, else {CONSUMER_SESSION_TIMEOUT_MS})"
            ),
        )
    if tenants:
        parser.add_argument(
            "--tenants", metavar="TENANT[,TENANT...]",
            help="accept only these tenants' messages; others are dead-lettered (default:"
            f" ${TENANTS_ENV_VAR}, else any): for topic prefixes per tenant under ACLs",
        )
        parser.add_argument(
            "--merge-idle-ms", metavar="MS", type=int,
            help="how long the event-time merge of the partitions waits for records not yet"
            " produced on a caught-up partition before applying the others' (default:"
            f" ${MERGE_IDLE_ENV_VAR}, else 0: never; at most {MERGE_IDLE_MS_MAX})",
        )
    if metrics:
        parser.add_argument(
            "--metrics-port", metavar="PORT", type=int,
            help=f"serve Prometheus metrics on this port, 0 = off (default: "
            f"${METRICS_PORT_ENV_VAR}, else 0)",
        )


def settings_from(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every setting once; CliError names the first one that is unusable."""
    env = os.environ if environ is None else environ
    bootstrap = _option(args, "bootstrap_servers") or env.get(BOOTSTRAP_ENV_VAR, "")
    servers = tuple(s.strip() for s in bootstrap.split(",") if s.strip())
    if not servers:
        raise CliError(f"no Kafka brokers: pass --bootstrap-servers or set {BOOTSTRAP_ENV_VAR}")
    for server in servers:
        _check_server(server)

    prefix = _option(args, "topic_prefix")
    if prefix is None:
        prefix = env.get(TOPIC_PREFIX_ENV_VAR, "")
    if len(prefix) > TOPIC_PREFIX_CHARS_MAX or not _TOPIC_CHARS.fullmatch(prefix):
        raise CliError(
            f"bad topic prefix {prefix!r}: at most {TOPIC_PREFIX_CHARS_MAX} of A-Z a-z 0-9 . _ -"
        )

    group_id = _option(args, "group_id") or env.get(GROUP_ID_ENV_VAR) or DEFAULT_GROUP_ID
    if len(group_id) > GROUP_ID_CHARS_MAX:
        raise CliError(f"group id is longer than {GROUP_ID_CHARS_MAX} characters")

    metrics_port = _int_setting(args, "metrics_port", env, METRICS_PORT_ENV_VAR, 0)
    if not 0 <= metrics_port <= PORT_MAX:
        raise CliError(f"bad metrics port {metrics_port}: 0 (off) or 1..{PORT_MAX}")

    session_timeout_ms = _int_setting(
        args, "session_timeout_ms", env, SESSION_TIMEOUT_ENV_VAR, CONSUMER_SESSION_TIMEOUT_MS
    )
    if not CONSUMER_SESSION_TIMEOUT_MS_MIN <= session_timeout_ms <= SESSION_TIMEOUT_MS_MAX:
        raise CliError(
            f"bad session timeout {session_timeout_ms} ms: "
            f"{CONSUMER_SESSION_TIMEOUT_MS_MIN}..{SESSION_TIMEOUT_MS_MAX}"
        )

    tenants_text = _option(args, "tenants") or env.get(TENANTS_ENV_VAR) or ""
    tenants = frozenset(t.strip() for t in tenants_text.split(",") if t.strip()) or None

    merge_idle_ms = _int_setting(args, "merge_idle_ms", env, MERGE_IDLE_ENV_VAR, 0)
    if not 0 <= merge_idle_ms <= MERGE_IDLE_MS_MAX:
        raise CliError(f"bad merge idle wait {merge_idle_ms} ms: 0..{MERGE_IDLE_MS_MAX}")

    store_option = _option(args, "store")
    store_url = store_url_from(store_option) if _has(args, "store") else ""
    return Settings(
        bootstrap_servers=servers,
        group_id=group_id,
        topic_prefix=prefix,
        store_url=store_url,
        metrics_port=metrics_port,
        session_timeout_ms=session_timeout_ms,
        # Shows up in broker logs and group descriptions: which host and process this is.
        client_id=f"evledger-{socket.gethostname()}-{os.getpid()}",
        security=security_from(env),
        tenants=tenants,
        merge_idle_ms=merge_idle_ms,
    )


def _has(args: argparse.Namespace, name: str) -> bool:
    return hasattr(args, name)


def _option(args: argparse.Namespace, name: str) -> str | None:
    value = getattr(args, name, None)
    assert value is None or isinstance(value, str), f"--{name} parses to a string"
    return value


def _int_setting(
    args: argparse.Namespace, name: str, env: Mapping[str, str], env_var: str, default: int
) -> int:
    value = getattr(args, name, None)
    if value is not None:
        assert isinstance(value, int), f"--{name} parses to an int"
        return value
    text = env.get(env_var)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise CliError(f"{env_var}={text!r} is not an integer") from None


def _check_server(server: str) -> None:
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) <= PORT_MAX:
        raise CliError(f"bad Kafka broker address {server!r}: expected HOST:PORT")

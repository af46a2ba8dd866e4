"""`ledger topics create`: create every inbound, outbound and dead-letter topic, idempotently.

A topic that exists already is left as it is (partitions can only be added, never removed,
and adding them moves keys between partitions: that is an operator's decision, not ours);
its partition count is printed so a difference is visible.
"""

from __future__ import annotations

import argparse
from typing import Any

from consumers import kafka_clients
from consumers.cli import CliError
from consumers.kafka_limits import (
    KAFKA_REQUEST_TIMEOUT_MS,
    TOPIC_PARTITIONS_DEFAULT,
    TOPIC_PARTITIONS_MAX,
)
from consumers.settings import add_arguments, settings_from

# Kafka's error code for "topic already exists" (CreateTopics), the one error we accept.
TOPIC_ALREADY_EXISTS_ERROR_CODE = 36
# A replication factor above this is a typo (clusters with more racks than this are rare).
REPLICATION_FACTOR_MAX = 7


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "topics", help="manage the ledger's Kafka topics (`ledger topics create`)",
        description="Manage the ledger's Kafka topics.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create every inbound, outbound and dead-letter topic (idempotent)",
        description="Create every topic the ledger reads or writes; existing ones are kept.",
    )
    add_arguments(create, store=False, group=False, metrics=False)
    create.add_argument(
        "--partitions", type=int, default=TOPIC_PARTITIONS_DEFAULT, metavar="N",
        help=f"partitions per new topic (default {TOPIC_PARTITIONS_DEFAULT})",
    )
    create.add_argument(
        "--replication-factor", type=int, default=1, metavar="N",
        help="replicas per partition (default 1: a single-broker development cluster; "
        "use 3 in production)",
    )
    create.set_defaults(handler=run_create)


def run_create(args: argparse.Namespace) -> int:
    partitions: int = args.partitions
    replication: int = args.replication_factor
    if not 1 <= partitions <= TOPIC_PARTITIONS_MAX:
        raise CliError(f"--partitions must be 1..{TOPIC_PARTITIONS_MAX}, got {partitions}")
    if not 1 <= replication <= REPLICATION_FACTOR_MAX:
        raise CliError(
            f"--replication-factor must be 1..{REPLICATION_FACTOR_MAX}, got {replication}"
        )
    settings = settings_from(args)
    try:
        client = kafka_clients.admin(settings)
    except kafka_clients.KafkaUnavailable as exc:
        raise CliError(str(exc)) from exc
    try:
        for line in create_topics(client, settings.all_topics(), partitions, replication):
            print(line)
    finally:
        client.close()
    return 0


def create_topics(
    client: Any, topics: list[str], partitions: int, replication_factor: int
) -> list[str]:
    """Create the missing `topics`; one line per topic saying what was done."""
    response = client.create_topics(
        {name: {"num_partitions": partitions, "replication_factor": replication_factor}
         for name in topics},
        timeout_ms=KAFKA_REQUEST_TIMEOUT_MS, raise_errors=False,
    )
    created: set[str] = set()
    for result in response["topics"]:
        code = result["error_code"]
        if code == 0:
            created.add(result["name"])
        elif code != TOPIC_ALREADY_EXISTS_ERROR_CODE:
            raise CliError(
                f"cannot create topic {result['name']}: error {code} "
                f"{result.get('error_message') or ''}".rstrip()
            )
    client.wait_for_topics(topics, timeout_ms=KAFKA_REQUEST_TIMEOUT_MS)
    described = {t["name"]: len(t["partitions"]) for t in client.describe_topics(topics)}
    return [
        f"{'created' if name in created else 'exists '} {name} "
        f"({described.get(name, '?')} partitions)"
        for name in topics
    ]

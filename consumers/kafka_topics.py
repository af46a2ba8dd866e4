"""Which Kafka topic carries each message type: transport knowledge, kept out of the core.

Topic names here are the logical ones; `Settings.topic()` adds the deployment's prefix.
Messages about one aggregate share a topic and a key (`avro_codec.key_for`), so they land on
one partition in order; the topics themselves are grouped by who produces them.
"""

from __future__ import annotations

from ledger.messages import (
    INBOUND_TYPES,
    MESSAGE_TYPES,
    OUTBOUND_TYPES,
    ClockTicked,
    Configuration,
    DebtPaymentReceived,
    Envelope,
    PaymentCommand,
    PaymentResult,
    RefundRequested,
    SessionCostUpdated,
    StopSessionRequested,
    TerminalAuthorized,
    TransactionEvent,
    VoucherBatchIssued,
    VoucherRedemptionRequested,
    WalletTopUpRequested,
)

_TOPIC_OF_TYPE: dict[type[Envelope], str] = {
    TransactionEvent: "csms.transaction-events",
    PaymentResult: "psp.results",
    TerminalAuthorized: "psp.results",
    VoucherBatchIssued: "vouchers",
    VoucherRedemptionRequested: "vouchers",
    WalletTopUpRequested: "wallets",
    DebtPaymentReceived: "wallets",
    # Money back to a customer, from the operator's back office like a debt payment: the
    # topic of customer money requests (not session events, not PSP answers), keyed by the
    # session so the refunds of one session apply in the order they were asked.
    RefundRequested: "wallets",
    Configuration: "config",  # every configuration message
    ClockTicked: "clock",
    StopSessionRequested: "csms.commands",
    SessionCostUpdated: "csms.commands",
    PaymentCommand: "psp.commands",
}
DEAD_LETTER_TOPIC = "ledger.dead-letters"


def topic_of(message: Envelope | type[Envelope]) -> str:
    """The (unprefixed) topic of a message or message type."""
    cls = message if isinstance(message, type) else type(message)
    for klass in cls.__mro__:
        topic = _TOPIC_OF_TYPE.get(klass)
        if topic is not None:
            return topic
    raise AssertionError(f"no topic for {cls.__name__}: add it to consumers/kafka_topics.py")


INBOUND_TOPICS: tuple[str, ...] = tuple(sorted({topic_of(cls) for cls in INBOUND_TYPES}))
OUTBOUND_TOPICS: tuple[str, ...] = tuple(sorted({topic_of(cls) for cls in OUTBOUND_TYPES}))

assert all(topic_of(cls) for cls in MESSAGE_TYPES.values()), "every message type needs a topic"
assert not set(INBOUND_TOPICS) & set(OUTBOUND_TOPICS), "the ledger never reads what it sends"

# Ties in event time across inbound topics, in the event-time merge (`ledger consume`) and in
# the order `ledger simulate` writes a day: what configures first, then what funds, then the
# sessions, the PSP's answers to them, and the clock last (a tick at T runs what is due at
# T, after everything that happened at T).
MERGE_TOPIC_RANK: tuple[str, ...] = (
    "config", "vouchers", "wallets", "csms.transaction-events", "psp.results", "clock",
)
assert sorted(MERGE_TOPIC_RANK) == sorted(INBOUND_TOPICS), "rank every inbound topic"


def merge_rank(topic: str) -> int:
    """Where an (unprefixed) inbound topic goes among records of equal event time."""
    return MERGE_TOPIC_RANK.index(topic)

"""Every limit the ledger runs under, with why. Relations between them are checked at import."""

# A batch that conflicts with a concurrent writer is re-read and re-applied; more conflicts
# than this means two consumers own the same aggregates, which is a deployment error.
BATCH_CONFLICT_RETRIES_MAX = 5

# Messages applied in one database transaction: large enough to amortise the commit and the
# event table's exclusive lock (measured ~20x faster than one per message), small enough to
# keep a transaction well under the idle-in-transaction timeout.
BATCH_MESSAGES_MAX = 500

# Kafka: what one poll may return; never more than one batch, so a poll is one transaction.
POLL_RECORDS_MAX = BATCH_MESSAGES_MAX
POLL_TIMEOUT_MS = 1_000

# Notifications a projection applies in one transaction (one tracking row per page).
PROJECTION_PAGE_EVENTS_MAX = 500
# Poll the event log at least this often even if no NOTIFY arrives (a lost NOTIFY must not
# stall a projection: eventsourcing issue #305).
PROJECTION_POLL_INTERVAL_MS = 1_000

# Outbox relay: commands published per flush of the idempotent producer.
RELAY_BATCH_COMMANDS_MAX = 500

assert POLL_RECORDS_MAX <= BATCH_MESSAGES_MAX, "one poll must fit one transaction"
assert BATCH_CONFLICT_RETRIES_MAX >= 1

# A session whose Ended arrived but a seqNo in between did not is settled with what arrived
# this long after its end (OCPP retries normally deliver within minutes).
SESSION_SETTLE_GRACE_MINUTES = 15

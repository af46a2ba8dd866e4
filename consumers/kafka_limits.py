"""The limits of the Kafka side (clients, polls, the outbox relay, topics), with why.

The domain core (`ledger/limits.py`) knows no transport; these bound what only the adapters
do. Relations between them, and with the ledger's batch size, are checked at import.
"""

from ledger.limits import BATCH_CONFLICT_RETRIES_MAX, BATCH_MESSAGES_MAX

# Kafka: what one poll may return; never more than one batch, so a poll is one transaction.
POLL_RECORDS_MAX = BATCH_MESSAGES_MAX
POLL_TIMEOUT_MS = 1_000

# Outbox relay: commands published per flush of the idempotent producer.
RELAY_BATCH_COMMANDS_MAX = 500

# One request to a broker (metadata, fetch, produce, offset commit). A local broker answers in
# milliseconds; this bounds a hung connection, not the normal path.
KAFKA_REQUEST_TIMEOUT_MS = 30_000
# A consumer that sends no heartbeat for this long is declared dead and its partitions move.
# kafka-python 3's default (KIP-735); deployments that restart consumers quickly may lower it
# down to the broker's floor (group.min.session.timeout.ms, 6 s by default).
CONSUMER_SESSION_TIMEOUT_MS = 45_000
CONSUMER_SESSION_TIMEOUT_MS_MIN = 6_000
# Heartbeat every third of the session timeout (two may be lost before eviction), at most
# this far apart (kafka-python's default).
CONSUMER_HEARTBEAT_INTERVAL_MS_MAX = 3_000
# The longest gap between two polls before the group evicts us: one poll's batches (each at
# most BATCH_MESSAGES_MAX messages, retried BATCH_CONFLICT_RETRIES_MAX times on conflicts,
# each attempt bounded by the store's 30 s lock timeout) must fit with room to spare.
CONSUMER_MAX_POLL_INTERVAL_MS = 300_000
# How old a member's topic metadata may get. A group leader that assigned partitions while a
# topic's metadata was missing (just created, a busy broker) rejoins once fresh metadata shows
# them: this bounds that wait (kafka-python's default is 5 minutes); a metadata request per
# member every 15 s costs the broker nothing.
CONSUMER_METADATA_MAX_AGE_MS = 15_000
# close() leaves the group and may commit; bounded so SIGTERM always ends the process.
CONSUMER_CLOSE_TIMEOUT_MS = 10_000
# An advisory offset commit (the database owns positions): never worth waiting long for.
CONSUMER_COMMIT_TIMEOUT_MS = 5_000

# `ledger consume` whose broker went away (a restart, a failover): kafka-python's poll may
# raise a retriable error (a refused connection while it looks for the group coordinator);
# the poll is tried again after a wait doubling from MIN to MAX, so a broker back in seconds
# is ridden through and a longer outage is not hammered, and the process gives up (exit
# non-zero, for the supervisor) after this many failed polls in a row: about ten minutes at
# the cap, as for the database.
KAFKA_UNAVAILABLE_DELAY_MS_MIN = 200
KAFKA_UNAVAILABLE_DELAY_MS_MAX = 5_000
KAFKA_UNAVAILABLE_POLLS_MAX = 120

# The event-time merge of `ledger consume` (consumers/event_time_merge.py). An empty partition
# that lags, or whose end offset the client does not know yet (no fetch answered since its
# seek), holds the others back this long at most: a fetch answers within the broker's fetch
# wait (500 ms) when it is up, so the bound only matters when a partition's records do not
# come (its leader does not answer); then the others go on, and that partition's records
# apply in arrival order when they come. Logged (`merge_waiting`) once a wait passes 5 s.
MERGE_FETCH_WAIT_MS = 30_000
MERGE_WAIT_LOGGED_AFTER_MS = 5_000
# --merge-idle-ms: how long a caught-up, empty partition may hold the others back waiting
# for a late producer (default 0, Kafka Streams' max.task.idle.ms default). At most ten
# minutes: the merge keeps polling meanwhile, so the group never sees the member as stuck.
MERGE_IDLE_MS_MAX = 600_000
# Records the merge holds per partition (one poll's worth): a partition ahead in event time
# waits with this many while the others catch up; more is read again later.
MERGE_BUFFER_RECORDS_MAX = 500

# Idempotent producer: a record is retried until acknowledged by all in-sync replicas or this
# long has passed since send(); Kafka requires it >= linger + request timeout.
PRODUCER_DELIVERY_TIMEOUT_MS = 120_000
# Records wait this long to share a produce request: the relay sends pages, not single records.
PRODUCER_LINGER_MS = 5
# Idempotence keeps per-partition order across retries only with at most 5 requests in flight.
PRODUCER_IN_FLIGHT_REQUESTS_MAX = 5
# send() blocks at most this long for metadata or buffer space before failing.
PRODUCER_MAX_BLOCK_MS = 60_000

# Outbox relay: flush() of one page waits for every record's delivery (or its failure), so it
# outlasts the delivery timeout. When idle the relay waits for PostgreSQL's NOTIFY of new
# events, and polls at least this often anyway (a lost NOTIFY must not stall a stop; on
# SQLite, which has no NOTIFY, this poll is the only signal, so it bounds stop latency there).
RELAY_FLUSH_TIMEOUT_MS = PRODUCER_DELIVERY_TIMEOUT_MS + 10_000
RELAY_IDLE_POLL_MS = 500

# `ledger topics create`: partitions per topic by default (the unit of consumer parallelism),
# and at most this many (more is a typo, and partitions can never be removed).
TOPIC_PARTITIONS_DEFAULT = 3
TOPIC_PARTITIONS_MAX = 1_000

assert POLL_RECORDS_MAX <= BATCH_MESSAGES_MAX, "one poll must fit one transaction"
assert CONSUMER_HEARTBEAT_INTERVAL_MS_MAX * 3 <= CONSUMER_SESSION_TIMEOUT_MS
assert CONSUMER_SESSION_TIMEOUT_MS_MIN <= CONSUMER_SESSION_TIMEOUT_MS
assert POLL_TIMEOUT_MS < CONSUMER_SESSION_TIMEOUT_MS_MIN, "a poll must heartbeat in time"
assert POLL_TIMEOUT_MS < CONSUMER_MAX_POLL_INTERVAL_MS
assert PRODUCER_DELIVERY_TIMEOUT_MS >= PRODUCER_LINGER_MS + KAFKA_REQUEST_TIMEOUT_MS
assert RELAY_FLUSH_TIMEOUT_MS > PRODUCER_DELIVERY_TIMEOUT_MS
assert PRODUCER_IN_FLIGHT_REQUESTS_MAX <= 5, "idempotent ordering needs <= 5 in flight"
assert 1 <= TOPIC_PARTITIONS_DEFAULT <= TOPIC_PARTITIONS_MAX
# The longest poll gap covers a poll's batches with their conflict retries (see above).
assert BATCH_CONFLICT_RETRIES_MAX >= 1

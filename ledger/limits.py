"""Every limit the ledger runs under, with why. Relations between them are checked at import."""

# A batch that conflicts with a concurrent writer is re-read and re-applied; more conflicts
# than this means two consumers own the same aggregates, which is a deployment error.
BATCH_CONFLICT_RETRIES_MAX = 5

# Messages applied in one database transaction: large enough to amortise the commit and the
# event table's exclusive lock (measured ~20x faster than one per message), small enough to
# keep a transaction well under the idle-in-transaction timeout.
BATCH_MESSAGES_MAX = 500

# Notifications a projection applies in one transaction (one tracking row per page).
PROJECTION_PAGE_EVENTS_MAX = 500
# Poll the event log at least this often even if no NOTIFY arrives (a lost NOTIFY must not
# stall a projection: eventsourcing issue #305).
PROJECTION_POLL_INTERVAL_MS = 1_000

# `ledger project` after a lost database connection (a restart, a terminated backend): wait
# this long before the first reconnect, doubling up to the cap, so a restart of a few
# seconds is ridden through quickly and a longer outage is not hammered...
PROJECTION_RECONNECT_DELAY_MS_MIN = 200
PROJECTION_RECONNECT_DELAY_MS_MAX = 5_000
# ...and give up (exit non-zero, for the supervisor) after this many failed attempts in a
# row: about ten minutes at the cap, longer than any planned restart or failover.
PROJECTION_RECONNECT_ATTEMPTS_MAX = 120

assert 0 < PROJECTION_RECONNECT_DELAY_MS_MIN <= PROJECTION_RECONNECT_DELAY_MS_MAX
assert PROJECTION_RECONNECT_ATTEMPTS_MAX >= 1
assert BATCH_CONFLICT_RETRIES_MAX >= 1

# A session whose Ended arrived but a seqNo in between did not is settled with what arrived
# this long after its end (OCPP retries normally deliver within minutes).
SESSION_SETTLE_GRACE_MINUTES = 15

# A message whose prerequisite (its tenant, driver, location, tariff, the request a PSP result
# answers...) has not arrived is parked, and applied without it (dead-lettered or refused,
# as before parking) once its tenant's event time is this far past its own time, on both the
# clock (ClockTicked) and the tenant's other messages (ledger/parking.py says why both).
# Kafka's skew between topics is seconds to minutes in normal running; a quarter of an hour
# leaves room for a slow partition, and matches the settle grace: a session is not kept
# unbilled for longer than a missing seqNo would keep it.
PARKED_WAIT_MINUTES = 15

# A long-running process that loses its database (restart, too many connections) probes it
# again after a wait that doubles from MIN (a restart is back within a second or two) up to
# MAX (at most one log line and one connection attempt per MAX while it stays down, and a
# recovered database is noticed within MAX). It never gives up: an orchestrator sees the log.
DATABASE_RECONNECT_BACKOFF_MS_MIN = 100
DATABASE_RECONNECT_BACKOFF_MS_MAX = 5_000
# One probe connection: a local server refusing connections answers in milliseconds; this
# bounds a black-holed network, and keeps SIGTERM prompt where a connect cannot be interrupted.
DATABASE_PROBE_CONNECT_TIMEOUT_S = 2
# The store of a process that rides through an unavailable database (`ledger relay`,
# `ledger project`) gives up a connection request after this long (eventsourcing retries each
# read up to ten times): short, so an unavailable database is seen and logged within seconds
# rather than after the 10 s x 7 that the default costs (measured: 72 s of silence).
LONG_RUNNING_STORE_CONNECT_TIMEOUT_S = 1

assert 0 < DATABASE_RECONNECT_BACKOFF_MS_MIN <= DATABASE_RECONNECT_BACKOFF_MS_MAX
assert DATABASE_PROBE_CONNECT_TIMEOUT_S * 1_000 <= DATABASE_RECONNECT_BACKOFF_MS_MAX

# Dead letters one `ledger dead-letters` call lists or redrives: they are exceptions, and
# more than this means something upstream is broken and wants fixing, not redriving.
DEAD_LETTERS_LISTED_MAX = 10_000

# `ledger tick --every`: ticks more often than this only load the ledger (retries are hours
# apart, the settle grace is minutes).
TICK_INTERVAL_S_MIN = 1.0

# A partner's period is invoiced this long after it ends, so sessions that started in it and
# were still running (or whose last meter values came late) are on its invoice. A session
# settling later still falls back to the driver's own model (docs/billing-decisions.md).
PARTNER_SETTLEMENT_GRACE_HOURS = 48
assert PARTNER_SETTLEMENT_GRACE_HOURS * 60 > SESSION_SETTLE_GRACE_MINUTES

# ---------------------------------------------------------------- values at the edge (messages)
# What any one inbound value may be, so nothing enters the store that a later stage (the
# Decimal context, a read model's BIGINT column, PostgreSQL text) cannot hold.
# Every decimal on the wire: at most this many digits before the point (a lifetime energy
# register in Wh stays below 10^15) and after it (no price or meter reading needs more)...
DECIMAL_INTEGER_DIGITS_MAX = 15
DECIMAL_PLACES_MAX = 6
# ...so every wire decimal fits the Decimal context's 28 digits with room for quantize and
# one multiplication by a rate (Python's default context: InvalidOperation beyond it).
DECIMAL_CONTEXT_DIGITS = 28
# Any amount of money in a message, in major units, in every currency: far above any charge,
# hold, top-up or voucher an EV operator sees (EUR 10^9 = a billion). At the largest minor
# unit exponent we bill in (3: BHD, KWD) it is 10^12 minor units, so even a million such
# amounts summed in one read-model BIGINT (max 9.2 * 10^18) cannot overflow.
AMOUNT_MAJOR_MAX = 10**9
AMOUNT_MINOR_UNITS_MAX = 10**12
BIGINT_MAX = 2**63 - 1
AMOUNTS_SUMMED_MAX = 10**6
# Any integer on the wire is an Avro long (64-bit signed, as a BIGINT column); a JSON event
# line, which has no such bound of its own, must not carry more.
WIRE_INT_MAX = 2**63 - 1
# Free text in a message (reasons, OCPP trigger and stop reasons, measurands) and the one
# large text, an OCPI tariff as JSON (a full tariff with many elements is tens of kB).
TEXT_CHARS_MAX = 1_000
TARIFF_JSON_CHARS_MAX = 200_000

assert DECIMAL_INTEGER_DIGITS_MAX + DECIMAL_PLACES_MAX + 3 <= DECIMAL_CONTEXT_DIGITS
assert AMOUNT_MINOR_UNITS_MAX * AMOUNTS_SUMMED_MAX <= BIGINT_MAX
assert AMOUNT_MAJOR_MAX < 10**DECIMAL_INTEGER_DIGITS_MAX

# ---------------------------------------------------------------- what reaches a dead letter
# A dead letter keeps what came in as the transport gave it (its payload whole: the broker's
# record size bounds it, and redrive needs it); its key, type header and reason are kept up
# to this many characters (a key or a reason longer than this is garbage, kept recognisable).
DEAD_LETTER_FIELD_CHARS_MAX = 1_000

# Aggregates (and known-absent ids) one ledger process keeps between batches: the live
# sessions, wallets, pools and configuration of a busy operator fit many times over; each
# costs a few kB, so the bound keeps a long-running consumer's memory flat.
HELD_AGGREGATES_MAX = 10_000

"""Every read-model SQL statement: the tables, the row changes, the queries. Nothing else.

One dialect for both databases: types both understand (TEXT, BIGINT, INTEGER), named
parameters written `:name` (database.py rewrites them for psycopg), `INSERT ... ON CONFLICT`
(SQLite >= 3.24, PostgreSQL >= 9.5), `||` for concatenation, and no `%` or `?` anywhere.
Queries do not rely on ORDER BY for what the report prints: PostgreSQL sorts text by the
database's locale and SQLite by code point, so the report sorts in Python.

Tables are prefixed `rm_` (read model) so they never collide with the event store's own
tables in the same database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Statement:
    """A named SQL statement; row changes refer to one by identity."""

    name: str
    text: str


# ---------------------------------------------------------------------------- tables
# Creation order; drop order is the reverse. Every table is derived from events: dropping
# them all and catching up from notification 0 rebuilds them exactly (`ledger project
# --rebuild`).
TABLES: tuple[tuple[str, str], ...] = (
    (
        "rm_tracking",
        """CREATE TABLE IF NOT EXISTS rm_tracking (
            projection_name TEXT PRIMARY KEY,
            notification_id BIGINT NOT NULL
        )""",
    ),
    (
        # Which tenant an aggregate belongs to, from its creation event: later events of a
        # session, wallet or invoice series do not repeat the tenant.
        "rm_aggregates",
        """CREATE TABLE IF NOT EXISTS rm_aggregates (
            aggregate_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            natural_key TEXT
        )""",
    ),
    (
        "rm_sessions",
        """CREATE TABLE IF NOT EXISTS rm_sessions (
            tenant_id TEXT NOT NULL,
            session_id TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            location_id TEXT NOT NULL,
            charge_point_id TEXT NOT NULL,
            status TEXT NOT NULL,
            billing_model TEXT,
            driver_id TEXT,
            stop_reason TEXT,
            currency TEXT,
            total_excl_vat TEXT,
            total_vat TEXT,
            total_incl_vat TEXT,
            receipt_number TEXT,
            ended_at TEXT,
            cost_json TEXT,
            PRIMARY KEY (tenant_id, session_id)
        )""",
    ),
    (
        "rm_session_payers",
        """CREATE TABLE IF NOT EXISTS rm_session_payers (
            tenant_id TEXT NOT NULL,
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            payer TEXT NOT NULL,
            payer_id TEXT NOT NULL,
            amount_incl_vat TEXT NOT NULL,
            PRIMARY KEY (tenant_id, session_id, seq)
        )""",
    ),
    (
        "rm_invoices",
        """CREATE TABLE IF NOT EXISTS rm_invoices (
            tenant_id TEXT NOT NULL,
            number TEXT NOT NULL,
            kind TEXT NOT NULL,
            reference TEXT NOT NULL,
            bill_to TEXT NOT NULL,
            currency TEXT NOT NULL,
            total_excl_vat TEXT NOT NULL,
            total_vat TEXT NOT NULL,
            total_incl_vat TEXT NOT NULL,
            issued_at TEXT,
            lines_json TEXT NOT NULL,
            PRIMARY KEY (tenant_id, number)
        )""",
    ),
    (
        "rm_journal_entries",
        """CREATE TABLE IF NOT EXISTS rm_journal_entries (
            tenant_id TEXT NOT NULL,
            entry_id TEXT NOT NULL,
            currency TEXT NOT NULL,
            description TEXT NOT NULL,
            booked_by TEXT NOT NULL,
            PRIMARY KEY (tenant_id, entry_id)
        )""",
    ),
    (
        # `amount` is the decimal text of the entry; `amount_minor` the same in integer
        # minor units, which SQL sums exactly on both databases (balances).
        "rm_journal_postings",
        """CREATE TABLE IF NOT EXISTS rm_journal_postings (
            tenant_id TEXT NOT NULL,
            entry_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            account TEXT NOT NULL,
            currency TEXT NOT NULL,
            amount TEXT NOT NULL,
            amount_minor BIGINT NOT NULL,
            PRIMARY KEY (tenant_id, entry_id, seq)
        )""",
    ),
    (
        # Wallets that exist; their balances are never stored, only summed from postings.
        "rm_wallets",
        """CREATE TABLE IF NOT EXISTS rm_wallets (
            tenant_id TEXT NOT NULL,
            driver_id TEXT NOT NULL,
            currency TEXT NOT NULL,
            PRIMARY KEY (tenant_id, driver_id)
        )""",
    ),
    (
        "rm_dead_letters",
        """CREATE TABLE IF NOT EXISTS rm_dead_letters (
            source TEXT NOT NULL,
            source_position TEXT NOT NULL,
            tenant_id TEXT,
            event_id TEXT,
            type_name TEXT,
            message_key TEXT,
            reason TEXT NOT NULL,
            payload TEXT NOT NULL,
            received_at TEXT,
            PRIMARY KEY (source, source_position)
        )""",
    ),
    (
        "rm_refusals",
        """CREATE TABLE IF NOT EXISTS rm_refusals (
            tenant_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            type_name TEXT NOT NULL,
            subject TEXT NOT NULL,
            reason TEXT NOT NULL,
            refused_at TEXT,
            PRIMARY KEY (tenant_id, event_id)
        )""",
    ),
    (
        # Messages waiting for what they need (ledger/parking.py): a row while parked.
        "rm_parked",
        """CREATE TABLE IF NOT EXISTS rm_parked (
            source TEXT NOT NULL,
            source_position TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            type_name TEXT NOT NULL,
            message_key TEXT,
            awaits TEXT NOT NULL,
            reason TEXT NOT NULL,
            occurred_at TEXT NOT NULL,
            PRIMARY KEY (source, source_position)
        )""",
    ),
    (
        "rm_outbound_commands",
        """CREATE TABLE IF NOT EXISTS rm_outbound_commands (
            tenant_id TEXT NOT NULL,
            command_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            message_key TEXT NOT NULL,
            type_name TEXT NOT NULL,
            payload_json TEXT NOT NULL,
            subject_json TEXT NOT NULL,
            PRIMARY KEY (tenant_id, command_id)
        )""",
    ),
    (
        # Corporate billing is not built yet: the table holds the report's columns so the
        # report and its readers do not change when it is.
        "rm_corporate_accounts",
        """CREATE TABLE IF NOT EXISTS rm_corporate_accounts (
            tenant_id TEXT NOT NULL,
            partner_id TEXT NOT NULL,
            period_start TEXT NOT NULL,
            period_end TEXT NOT NULL,
            currency TEXT NOT NULL,
            pool_cap TEXT NOT NULL,
            pool_used TEXT NOT NULL,
            PRIMARY KEY (tenant_id, partner_id, period_start)
        )""",
    ),
    (
        # Each accepted tariff publication in plain words, with its lint warnings.
        "rm_tariffs",
        """CREATE TABLE IF NOT EXISTS rm_tariffs (
            tenant_id TEXT NOT NULL,
            tariff_id TEXT NOT NULL,
            effective_at TEXT NOT NULL,
            language TEXT NOT NULL,
            explanation_json TEXT NOT NULL,
            warnings_json TEXT NOT NULL,
            PRIMARY KEY (tenant_id, tariff_id, effective_at)
        )""",
    ),
    (
        # The seller (a tenant) and buyers (its partners) on e-invoices: every configured
        # version, effective-dated, so an invoice shows the parties as they were when it was
        # issued (projections/invoice_parties.py).
        "rm_invoice_parties",
        """CREATE TABLE IF NOT EXISTS rm_invoice_parties (
            tenant_id TEXT NOT NULL,
            party_kind TEXT NOT NULL,
            party_id TEXT NOT NULL,
            effective_at TEXT NOT NULL,
            event_id TEXT NOT NULL,
            legal_name TEXT,
            vat_id TEXT,
            address_street TEXT,
            address_postcode TEXT,
            address_city TEXT,
            address_country TEXT,
            invoice_email TEXT,
            buyer_reference TEXT,
            time_zone TEXT,
            payment_terms TEXT,
            PRIMARY KEY (tenant_id, party_kind, party_id, effective_at, event_id)
        )""",
    ),
    (
        # Each refund of a settled session: who got what back, and its credit notes.
        "rm_refunds",
        """CREATE TABLE IF NOT EXISTS rm_refunds (
            tenant_id TEXT NOT NULL,
            refund_id TEXT NOT NULL,
            session_id TEXT NOT NULL,
            currency TEXT NOT NULL,
            amount TEXT NOT NULL,
            reason TEXT NOT NULL,
            refunded_at TEXT,
            shares_json TEXT NOT NULL,
            credit_notes_json TEXT NOT NULL,
            credit_cdr_id TEXT,
            PRIMARY KEY (tenant_id, refund_id)
        )""",
    ),
)
INDEXES: tuple[str, ...] = (
    # Balances are sums by account: without this every wallet balance scans the journal.
    "CREATE INDEX IF NOT EXISTS rm_journal_postings_by_account"
    " ON rm_journal_postings (tenant_id, account)",
)
TABLE_NAMES: tuple[str, ...] = tuple(name for name, _ in TABLES)


def drop_table(name: str) -> str:
    assert name in TABLE_NAMES, name  # never a name from outside
    return f"DROP TABLE IF EXISTS {name}"


# ---------------------------------------------------------------------------- tracking
SELECT_POSITION = Statement(
    "select_position",
    "SELECT notification_id FROM rm_tracking WHERE projection_name = :projection_name",
)
# Compare-and-set: a page moves the position from exactly where it was read to the page's
# last notification id; a runner that lost a race changes no row (or violates the key).
INSERT_POSITION = Statement(
    "insert_position",
    "INSERT INTO rm_tracking (projection_name, notification_id)"
    " VALUES (:projection_name, :notification_id)",
)
MOVE_POSITION = Statement(
    "move_position",
    "UPDATE rm_tracking SET notification_id = :notification_id"
    " WHERE projection_name = :projection_name AND notification_id = :expected_id"
    " AND notification_id < :notification_id",
)

# ---------------------------------------------------------------------------- row changes
UPSERT_AGGREGATE = Statement(
    "upsert_aggregate",
    "INSERT INTO rm_aggregates (aggregate_id, kind, tenant_id, natural_key)"
    " VALUES (:aggregate_id, :kind, :tenant_id, :natural_key)"
    " ON CONFLICT (aggregate_id) DO UPDATE SET kind = excluded.kind,"
    " tenant_id = excluded.tenant_id, natural_key = excluded.natural_key",
)
SELECT_AGGREGATES_PREFIX = (
    "SELECT aggregate_id, kind, tenant_id, natural_key FROM rm_aggregates WHERE aggregate_id IN"
)

SESSION_OPENED = Statement(
    "session_opened",
    "INSERT INTO rm_sessions (tenant_id, session_id, aggregate_id, location_id,"
    " charge_point_id, status)"
    " VALUES (:tenant_id, :session_id, :aggregate_id, :location_id, :charge_point_id, 'open')"
    " ON CONFLICT (tenant_id, session_id) DO NOTHING",
)
SESSION_PAYER_RESOLVED = Statement(
    "session_payer_resolved",
    "UPDATE rm_sessions SET billing_model = :billing_model, driver_id = :driver_id"
    " WHERE tenant_id = :tenant_id AND session_id = :session_id",
)
SESSION_STOP_REQUESTED = Statement(
    "session_stop_requested",
    "UPDATE rm_sessions SET stop_reason = :stop_reason"
    " WHERE tenant_id = :tenant_id AND session_id = :session_id",
)
SESSION_SETTLED = Statement(
    "session_settled",
    "UPDATE rm_sessions SET status = 'settled', billing_model = :billing_model,"
    " driver_id = :driver_id, currency = :currency, total_excl_vat = :total_excl_vat,"
    " total_vat = :total_vat, total_incl_vat = :total_incl_vat,"
    " receipt_number = :receipt_number, ended_at = :ended_at, cost_json = :cost_json"
    " WHERE tenant_id = :tenant_id AND session_id = :session_id",
)
SESSION_PAYER = Statement(
    "session_payer",
    "INSERT INTO rm_session_payers (tenant_id, session_id, seq, payer, payer_id,"
    " amount_incl_vat)"
    " VALUES (:tenant_id, :session_id, :seq, :payer, :payer_id, :amount_incl_vat)"
    " ON CONFLICT (tenant_id, session_id, seq) DO UPDATE SET payer = excluded.payer,"
    " payer_id = excluded.payer_id, amount_incl_vat = excluded.amount_incl_vat",
)
INVOICE_ISSUED = Statement(
    "invoice_issued",
    "INSERT INTO rm_invoices (tenant_id, number, kind, reference, bill_to, currency,"
    " total_excl_vat, total_vat, total_incl_vat, issued_at, lines_json)"
    " VALUES (:tenant_id, :number, :kind, :reference, :bill_to, :currency,"
    " :total_excl_vat, :total_vat, :total_incl_vat, :issued_at, :lines_json)",
)
# Journal rows are plain INSERTs: an entry id booked twice is a double booking upstream,
# and the projection stops on it rather than hide it.
JOURNAL_ENTRY = Statement(
    "journal_entry",
    "INSERT INTO rm_journal_entries (tenant_id, entry_id, currency, description, booked_by)"
    " VALUES (:tenant_id, :entry_id, :currency, :description, :booked_by)",
)
JOURNAL_POSTING = Statement(
    "journal_posting",
    "INSERT INTO rm_journal_postings (tenant_id, entry_id, seq, account, currency, amount,"
    " amount_minor)"
    " VALUES (:tenant_id, :entry_id, :seq, :account, :currency, :amount, :amount_minor)",
)
TARIFF_PUBLISHED = Statement(
    "tariff_published",
    "INSERT INTO rm_tariffs (tenant_id, tariff_id, effective_at, language, explanation_json,"
    " warnings_json) VALUES (:tenant_id, :tariff_id, :effective_at, :language,"
    " :explanation_json, :warnings_json)"
    " ON CONFLICT (tenant_id, tariff_id, effective_at) DO UPDATE SET"
    " language = excluded.language, explanation_json = excluded.explanation_json,"
    " warnings_json = excluded.warnings_json",
)
SELECT_TARIFFS = Statement(
    "select_tariffs",
    "SELECT tenant_id, tariff_id, effective_at, language, explanation_json, warnings_json"
    " FROM rm_tariffs",
)
INVOICE_PARTY_CONFIGURED = Statement(
    "invoice_party_configured",
    "INSERT INTO rm_invoice_parties (tenant_id, party_kind, party_id, effective_at, event_id,"
    " legal_name, vat_id, address_street, address_postcode, address_city, address_country,"
    " invoice_email, buyer_reference, time_zone, payment_terms)"
    " VALUES (:tenant_id, :party_kind, :party_id, :effective_at, :event_id, :legal_name,"
    " :vat_id, :address_street, :address_postcode, :address_city, :address_country,"
    " :invoice_email, :buyer_reference, :time_zone, :payment_terms)"
    " ON CONFLICT (tenant_id, party_kind, party_id, effective_at, event_id) DO NOTHING",
)
CORPORATE_ACCOUNT_OPENED = Statement(
    "corporate_account_opened",
    "INSERT INTO rm_corporate_accounts (tenant_id, partner_id, period_start, period_end,"
    " currency, pool_cap, pool_used)"
    " VALUES (:tenant_id, :partner_id, :period_start, :period_end, :currency, :pool_cap,"
    " :pool_used) ON CONFLICT (tenant_id, partner_id, period_start) DO NOTHING",
)
CORPORATE_ACCOUNT_USED = Statement(
    "corporate_account_used",
    "UPDATE rm_corporate_accounts SET pool_used = :pool_used"
    " WHERE tenant_id = :tenant_id AND partner_id = :partner_id"
    " AND period_start = :period_start",
)
WALLET_OPENED = Statement(
    "wallet_opened",
    "INSERT INTO rm_wallets (tenant_id, driver_id, currency)"
    " VALUES (:tenant_id, :driver_id, :currency)"
    " ON CONFLICT (tenant_id, driver_id) DO NOTHING",
)
DEAD_LETTER_RECORDED = Statement(
    "dead_letter_recorded",
    "INSERT INTO rm_dead_letters (source, source_position, tenant_id, event_id, type_name,"
    " message_key, reason, payload, received_at)"
    " VALUES (:source, :source_position, :tenant_id, :event_id, :type_name, :message_key,"
    " :reason, :payload, :received_at)"
    " ON CONFLICT (source, source_position) DO NOTHING",
)
REFUSAL_RECORDED = Statement(
    "refusal_recorded",
    "INSERT INTO rm_refusals (tenant_id, event_id, type_name, subject, reason, refused_at)"
    " VALUES (:tenant_id, :event_id, :type_name, :subject, :reason, :refused_at)"
    " ON CONFLICT (tenant_id, event_id) DO NOTHING",
)
REFUND_RECORDED = Statement(
    "refund_recorded",
    "INSERT INTO rm_refunds (tenant_id, refund_id, session_id, currency, amount, reason,"
    " refunded_at, shares_json, credit_notes_json, credit_cdr_id)"
    " VALUES (:tenant_id, :refund_id, :session_id, :currency, :amount, :reason,"
    " :refunded_at, :shares_json, :credit_notes_json, :credit_cdr_id)"
    " ON CONFLICT (tenant_id, refund_id) DO NOTHING",
)
MESSAGE_PARKED = Statement(
    "message_parked",
    "INSERT INTO rm_parked (source, source_position, tenant_id, event_id, type_name,"
    " message_key, awaits, reason, occurred_at)"
    " VALUES (:source, :source_position, :tenant_id, :event_id, :type_name, :message_key,"
    " :awaits, :reason, :occurred_at)"
    " ON CONFLICT (source, source_position) DO UPDATE SET awaits = excluded.awaits,"
    " reason = excluded.reason",
)
PARKED_RELEASED = Statement(
    "parked_released",
    "DELETE FROM rm_parked WHERE source = :source AND source_position = :source_position",
)
COMMAND_ISSUED = Statement(
    "command_issued",
    "INSERT INTO rm_outbound_commands (tenant_id, command_id, topic, message_key, type_name,"
    " payload_json, subject_json)"
    " VALUES (:tenant_id, :command_id, :topic, :message_key, :type_name, :payload_json,"
    " :subject_json)"
    " ON CONFLICT (tenant_id, command_id) DO NOTHING",
)

# ---------------------------------------------------------------------------- queries
SELECT_SESSIONS = Statement(
    "select_sessions",
    "SELECT tenant_id, session_id, status, billing_model, driver_id, currency,"
    " total_excl_vat, total_vat, total_incl_vat, receipt_number, ended_at, stop_reason"
    " FROM rm_sessions",
)
SELECT_SESSION_PAYERS = Statement(
    "select_session_payers",
    "SELECT tenant_id, session_id, seq, payer, payer_id, amount_incl_vat"
    " FROM rm_session_payers",
)
SELECT_INVOICES = Statement(
    "select_invoices",
    "SELECT tenant_id, number, kind, reference, bill_to, currency, total_excl_vat,"
    " total_vat, total_incl_vat, issued_at FROM rm_invoices",
)
# A wallet's balance is what the journal says, nothing else: minus the sum of the postings
# on its liability account `wallet:<driver>` (a credit balance is money we owe the driver).
SELECT_WALLET_BALANCES = Statement(
    "select_wallet_balances",
    "SELECT w.tenant_id, w.driver_id, w.currency,"
    " COALESCE(SUM(p.amount_minor), 0) AS postings_minor"
    " FROM rm_wallets w LEFT JOIN rm_journal_postings p"
    " ON p.tenant_id = w.tenant_id AND p.account = 'wallet:' || w.driver_id"
    " GROUP BY w.tenant_id, w.driver_id, w.currency",
)
SELECT_ACCOUNT_BALANCES = Statement(
    "select_account_balances",
    "SELECT tenant_id, account, currency, SUM(amount_minor) AS postings_minor"
    " FROM rm_journal_postings GROUP BY tenant_id, account, currency",
)
# Per tenant, so a report of one tenant (`ledger report --tenant`) counts only its own.
SELECT_JOURNAL_ENTRY_COUNT = Statement(
    "select_journal_entry_count",
    "SELECT tenant_id, COUNT(*) FROM rm_journal_entries GROUP BY tenant_id",
)
SELECT_POSTING_SUMS = Statement(
    "select_posting_sums",
    "SELECT tenant_id, currency, SUM(amount_minor) AS postings_minor, COUNT(*) AS postings"
    " FROM rm_journal_postings GROUP BY tenant_id, currency",
)
# Entries whose postings do not sum to zero: always empty unless something upstream broke.
SELECT_UNBALANCED_ENTRIES = Statement(
    "select_unbalanced_entries",
    "SELECT tenant_id, entry_id FROM rm_journal_postings"
    " GROUP BY tenant_id, entry_id HAVING SUM(amount_minor) <> 0",
)
SELECT_CORPORATE_ACCOUNTS = Statement(
    "select_corporate_accounts",
    "SELECT tenant_id, partner_id, period_start, period_end, currency, pool_cap, pool_used"
    " FROM rm_corporate_accounts",
)
SELECT_DEAD_LETTERS = Statement(
    "select_dead_letters",
    "SELECT source, source_position, tenant_id, event_id, type_name, message_key, reason,"
    " received_at FROM rm_dead_letters",
)
SELECT_REFUNDS = Statement(
    "select_refunds",
    "SELECT tenant_id, refund_id, session_id, currency, amount, reason, refunded_at,"
    " shares_json, credit_notes_json, credit_cdr_id FROM rm_refunds",
)
SELECT_REFUSALS = Statement(
    "select_refusals",
    "SELECT tenant_id, event_id, type_name, subject, reason, refused_at FROM rm_refusals",
)
SELECT_PARKED = Statement(
    "select_parked",
    "SELECT source, source_position, tenant_id, event_id, type_name, message_key, awaits,"
    " reason, occurred_at FROM rm_parked",
)
SELECT_COMMAND_COUNTS = Statement(
    "select_command_counts",
    "SELECT tenant_id, type_name, COUNT(*) FROM rm_outbound_commands"
    " GROUP BY tenant_id, type_name",
)


def select_all(table: str) -> str:
    """Every row of a read-model table in a fixed order (for comparing two read models)."""
    assert table in TABLE_NAMES, table
    return f"SELECT * FROM {table}"
# A customer's documents, e.g. an ad hoc terminal's receipt by its reference.
SELECT_DOCUMENTS_BILLED_TO = Statement(
    "select_documents_billed_to",
    "SELECT number, kind, reference, bill_to, currency, total_excl_vat, total_vat,"
    " total_incl_vat, issued_at, lines_json FROM rm_invoices"
    " WHERE tenant_id = :tenant_id AND bill_to = :bill_to",
)

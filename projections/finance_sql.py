"""The finance desk's SQL: the API-key table and the tenant-scoped queries it reads.

Same dialect rules as `sql.py` (both databases, `:name` parameters, no `%`). Every query
filters by `tenant_id` itself: SQLite has no row-level security, and on PostgreSQL the
filter and the policy (`tenant_isolation.py`) both hold, so one missing never leaks rows.
Queries return rows in no particular order: callers sort in Python (code-point order on
both databases, see `sql.py`).
"""

from __future__ import annotations

from projections.sql import Statement

# Not a read model: keys are issued by an operator, not derived from events, so a rebuild
# of the read models (which drops `rm_*`) keeps them. Only the SHA-256 of a key is stored.
API_KEYS_TABLE = "finance_api_keys"
CREATE_API_KEYS = f"""CREATE TABLE IF NOT EXISTS {API_KEYS_TABLE} (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key_sha256 TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)"""
INSERT_API_KEY = Statement(
    "insert_api_key",
    f"INSERT INTO {API_KEYS_TABLE} (key_id, tenant_id, key_sha256, label, created_at)"
    " VALUES (:key_id, :tenant_id, :key_sha256, :label, :created_at)",
)
SELECT_API_KEY = Statement(
    "select_api_key",
    f"SELECT tenant_id, key_sha256, revoked_at FROM {API_KEYS_TABLE} WHERE key_id = :key_id",
)
SELECT_API_KEYS = Statement(
    "select_api_keys",
    f"SELECT key_id, tenant_id, label, created_at, revoked_at FROM {API_KEYS_TABLE}",
)
REVOKE_API_KEY = Statement(
    "revoke_api_key",
    f"UPDATE {API_KEYS_TABLE} SET revoked_at = :revoked_at"
    " WHERE key_id = :key_id AND revoked_at IS NULL",
)

# ---------------------------------------------------------------------------- per tenant
TENANT_DOCUMENTS = Statement(
    "tenant_documents",
    "SELECT number, kind, reference, bill_to, currency, total_excl_vat, total_vat,"
    " total_incl_vat, issued_at FROM rm_invoices WHERE tenant_id = :tenant_id",
)
TENANT_DOCUMENT_LINES = Statement(
    "tenant_document_lines",
    "SELECT lines_json FROM rm_invoices WHERE tenant_id = :tenant_id AND number = :number",
)
# Every configured version of one invoice party (projections/invoice_parties.py).
TENANT_INVOICE_PARTY = Statement(
    "tenant_invoice_party",
    "SELECT effective_at, event_id, legal_name, vat_id, address_street, address_postcode,"
    " address_city, address_country, invoice_email, buyer_reference, time_zone, payment_terms"
    " FROM rm_invoice_parties WHERE tenant_id = :tenant_id AND party_kind = :party_kind"
    " AND party_id = :party_id",
)
TENANT_SESSIONS = Statement(
    "tenant_sessions",
    "SELECT session_id, status, billing_model, driver_id, location_id, charge_point_id,"
    " currency, total_excl_vat, total_vat, total_incl_vat, receipt_number, ended_at,"
    " stop_reason FROM rm_sessions WHERE tenant_id = :tenant_id",
)
TENANT_SESSION_PAYERS = Statement(
    "tenant_session_payers",
    "SELECT session_id, seq, payer, payer_id, amount_incl_vat FROM rm_session_payers"
    " WHERE tenant_id = :tenant_id",
)
TENANT_JOURNAL_ENTRIES = Statement(
    "tenant_journal_entries",
    "SELECT entry_id, currency, description, booked_by FROM rm_journal_entries"
    " WHERE tenant_id = :tenant_id",
)
TENANT_JOURNAL_POSTINGS = Statement(
    "tenant_journal_postings",
    "SELECT entry_id, seq, account, currency, amount_minor FROM rm_journal_postings"
    " WHERE tenant_id = :tenant_id",
)
TENANT_WALLETS = Statement(
    "tenant_wallets",
    "SELECT w.driver_id, w.currency, COALESCE(SUM(p.amount_minor), 0)"
    " FROM rm_wallets w LEFT JOIN rm_journal_postings p"
    " ON p.tenant_id = w.tenant_id AND p.account = 'wallet:' || w.driver_id"
    " WHERE w.tenant_id = :tenant_id GROUP BY w.driver_id, w.currency",
)
TENANT_ACCOUNT_BALANCES = Statement(
    "tenant_account_balances",
    "SELECT account, currency, SUM(amount_minor) FROM rm_journal_postings"
    " WHERE tenant_id = :tenant_id GROUP BY account, currency",
)
TENANT_CORPORATE_ACCOUNTS = Statement(
    "tenant_corporate_accounts",
    "SELECT partner_id, period_start, period_end, currency, pool_cap, pool_used"
    " FROM rm_corporate_accounts WHERE tenant_id = :tenant_id",
)
TENANT_DEAD_LETTERS = Statement(
    "tenant_dead_letters",
    "SELECT source, source_position, event_id, type_name, message_key, reason, received_at"
    " FROM rm_dead_letters WHERE tenant_id = :tenant_id",
)
TENANT_REFUSALS = Statement(
    "tenant_refusals",
    "SELECT event_id, type_name, subject, reason, refused_at FROM rm_refusals"
    " WHERE tenant_id = :tenant_id",
)

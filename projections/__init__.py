"""The read side: plain SQL tables kept up to date from the ledger's event log.

    sql.py          every read-model statement (DDL, row changes, queries), in one place
    database.py     a tiny adapter: the same SQL on SQLite (stdlib) and PostgreSQL (psycopg)
    values.py       how event values become column values (amounts, instants, JSON)
    identities.py   which tenant (and natural key) an aggregate belongs to
    sessions.py, journal.py, invoices.py, wallets.py, inbox.py, outbox.py
                    one read model each: pure functions from an event to row changes
    mapping.py      event -> row changes, dispatching to the read models
    runner.py       the page-batched pull loop (catch up, run forever, rebuild)
    report.py       the finance report (CONTRACT.md) built from the read models
    as_of.py        the report as of an instant of recording time, for auditors
    business_as_of.py  the books as of a business date, each tenant in its own zone
    bill_differences.py  what a proposed configuration changes in a period's bills

Dependencies point inward: projections import `ledger`, never `consumers` or Kafka.
"""

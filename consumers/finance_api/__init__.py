"""The finance desk over HTTP: a JSON API (`api.py`) and server-rendered pages (`pages.py`)
on the finance queries (`projections/finance_queries.py`), served by `ledger serve`.

    desk.py      the read-model connection, scoped to one tenant per request; as_of
                 views replayed from the event store
    auth.py      API keys from a header or the login cookie -> the tenant
    api.py       /api/v1/...: JSON, cursor pages, CSV exports and document downloads
    pages.py     /, /invoices, /sessions, /debts, /settlements, /login (Jinja2)
    exports.py   CSV and document renderings shared by the API and the pages
    chart.py     revenue per day by billing model as a server-rendered SVG
    app.py       composition: the FastAPI application and its error handlers
"""

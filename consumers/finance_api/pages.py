"""The finance pages: server-rendered HTML on the same queries as the API; the key comes
from an HttpOnly cookie set by the login form. Not part of the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from consumers.finance_api.auth import KEY_COOKIE, tenant_or_login
from consumers.finance_api.chart import revenue_svg
from consumers.finance_api.rendering import render
from projections import finance_queries as fq
from projections.api_keys import KEY_CHARS_MAX

router = APIRouter(include_in_schema=False)
Tenant = Annotated[str, Depends(tenant_or_login)]
From = Annotated[str | None, Query(alias="from", max_length=10)]
To = Annotated[str | None, Query(alias="to", max_length=10)]
# Lists on a page: more than this and the page asks for a period or the CSV instead.
PAGE_ROWS_MAX = 500
# A browser session (the cookie) lasts a working day.
COOKIE_MAX_AGE_S = 12 * 3600


def _html(template: str, request: Request, tenant: str | None, **context: Any
          ) -> HTMLResponse:
    return HTMLResponse(render(template, tenant=tenant, path=request.url.path, **context))


@router.get("/login")
def login_form(request: Request, error: str | None = None) -> HTMLResponse:
    return _html("login.html", request, None, error=error)


@router.post("/login")
def login(request: Request, key: Annotated[str, Form(max_length=KEY_CHARS_MAX)]) -> Response:
    if request.app.state.desk.tenant_of(key.strip()) is None:
        return _html("login.html", request, None, error="That key is not valid.")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(KEY_COOKIE, key.strip(), max_age=COOKIE_MAX_AGE_S, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(KEY_COOKIE)
    return response


@router.get("/")
def overview(request: Request, tenant: Tenant, from_: From = None, to: To = None
             ) -> HTMLResponse:
    period = fq.Period.parse(from_, to)
    with request.app.state.desk.read(tenant) as q:
        days = fq.revenue_by_day(q, tenant, period)
        documents = fq.documents(q, tenant, period)
        sessions = fq.sessions(q, tenant, period)
        balances = fq.balances(q, tenant)
    currency = next((d["currency"] for d in documents), "EUR")
    by_model: dict[str, int] = {}
    for s in sessions:
        by_model[s["billing_model"] or "unresolved"] = by_model.get(
            s["billing_model"] or "unresolved", 0) + 1
    return _html("overview.html", request, tenant, chart=revenue_svg(days, currency),
                 days=days, currency=currency, documents=len(documents),
                 sessions_by_model=sorted(by_model.items()), balances=balances,
                 from_=from_, to=to)


@router.get("/invoices")
def invoices(request: Request, tenant: Tenant, from_: From = None, to: To = None,
             kind: str | None = None) -> HTMLResponse:
    period = fq.Period.parse(from_, to)
    with request.app.state.desk.read(tenant) as q:
        documents = fq.documents(q, tenant, period, kind or None)
    return _html("invoices.html", request, tenant, documents=documents[:PAGE_ROWS_MAX],
                 more=max(0, len(documents) - PAGE_ROWS_MAX), kind=kind or "",
                 from_=from_ or "", to=to or "")


@router.get("/invoices/{number}")
def invoice(request: Request, tenant: Tenant, number: str) -> HTMLResponse:
    with request.app.state.desk.read(tenant) as q:
        document = fq.document(q, tenant, number)
    if document is None:
        raise HTTPException(404, f"no document {number!r}")
    return _html("document.html", request, tenant, document=document, standalone=False)


@router.get("/sessions")
def sessions_page(request: Request, tenant: Tenant, from_: From = None, to: To = None
                  ) -> HTMLResponse:
    period = fq.Period.parse(from_, to)
    with request.app.state.desk.read(tenant) as q:
        found = fq.sessions(q, tenant, period)
    return _html("sessions.html", request, tenant, sessions=found[:PAGE_ROWS_MAX],
                 more=max(0, len(found) - PAGE_ROWS_MAX))


@router.get("/sessions/{session_id}")
def session_page(request: Request, tenant: Tenant, session_id: str) -> HTMLResponse:
    with request.app.state.desk.read(tenant) as q:
        found = fq.session(q, tenant, session_id)
    if found is None:
        raise HTTPException(404, f"no session {session_id!r}")
    return _html("session.html", request, tenant, session=found)


@router.get("/debts")
def debts(request: Request, tenant: Tenant) -> HTMLResponse:
    with request.app.state.desk.read(tenant) as q:
        balances = fq.balances(q, tenant)
    negative = [w for w in balances["wallets"] if w["balance"].startswith("-")]
    return _html("debts.html", request, tenant, receivables=balances["receivables"],
                 negative_wallets=negative)


@router.get("/settlements")
def settlements(request: Request, tenant: Tenant) -> HTMLResponse:
    with request.app.state.desk.read(tenant) as q:
        balances = fq.balances(q, tenant)
        partner_ids = fq.partner_ids(q, tenant)
        partner_documents = [d for d in fq.documents(q, tenant)
                             if d["bill_to"] in partner_ids]
    partners = [r for r in balances["receivables"] if r["kind"] == "partner_receivable"]
    return _html("settlements.html", request, tenant, pools=balances["partner_pools"],
                 partners=partners, documents=partner_documents)

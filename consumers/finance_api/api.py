"""/api/v1: the finance API. Every route needs a key; the key's tenant is the only tenant a
route can see, so another tenant's number or session id is simply not found (404).

`as_of` (balances, documents): the figures as they stood at a business date or time in the
tenant's time zone, replayed from the event store for the key's tenant alone, the same
figures as `ledger report --as-of` (projections/business_as_of.py states the rule)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from consumers.finance_api import exports
from consumers.finance_api.auth import api_key_header, tenant_or_401
from consumers.finance_api.rendering import document_html
from projections import finance_queries as fq
from projections.business_as_of import CUTOFF_CHARS_MAX, BusinessCutoff, CutoffError
from projections.einvoice import EInvoiceError, NotAnEInvoice, einvoice_xml
from projections.tenant_isolation import Query as BooksQuery

router = APIRouter(prefix="/api/v1", dependencies=[Security(api_key_header)])
Tenant = Annotated[str, Depends(tenant_or_401)]
From = Annotated[str | None, Query(alias="from", description="first day (YYYY-MM-DD), UTC",
                                   max_length=10)]
To = Annotated[str | None, Query(alias="to", description="day after the last (YYYY-MM-DD)",
                                 max_length=10)]
RequiredFrom = Annotated[str, Query(alias="from", description="first day (YYYY-MM-DD), UTC",
                                    max_length=10)]
RequiredTo = Annotated[str, Query(alias="to", description="day after the last (YYYY-MM-DD)",
                                  max_length=10)]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page",
                                     max_length=fq.CURSOR_CHARS_MAX)]
Limit = Annotated[int, Query(ge=1, le=fq.PAGE_ITEMS_MAX, description="items per page")]
Filter = Annotated[str | None, Query(max_length=200)]
AsOf = Annotated[str | None, Query(
    description="business date (YYYY-MM-DD: the end of that day in the tenant's time zone),"
                " local time (YYYY-MM-DDTHH:MM) or instant (...Z): the figures as they stood"
                " then, replayed from the events", max_length=CUTOFF_CHARS_MAX)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such item for this key's tenant"},
}


def _page(page: fq.Page) -> dict[str, Any]:
    return {"items": page.items, "next_cursor": page.next_cursor}


@contextmanager
def _books(request: Request, tenant: str, as_of: str | None
           ) -> Iterator[tuple[BooksQuery, dict[str, Any]]]:
    """The live read models, or with `as_of` the tenant's books then; and what to add to the
    answer to say which (nothing for the live ones)."""
    if as_of is None:
        with request.app.state.desk.read(tenant) as q:
            yield q, {}
        return
    try:
        cutoff = BusinessCutoff.parse(as_of)
    except CutoffError as exc:
        raise fq.FinanceQueryError(f"as_of: {exc}") from None
    with request.app.state.desk.read_as_of(tenant, cutoff) as (q, tenant_cutoff):
        until = None if tenant_cutoff is None else tenant_cutoff.until
        yield q, {"as_of": {
            "asked": as_of, "basis": "business_time",
            "time_zone": None if tenant_cutoff is None else tenant_cutoff.time_zone,
            "until": None if until is None else until.isoformat().replace("+00:00", "Z"),
        }}


@router.get("/documents", summary="receipts, invoices and credit notes, by number")
def list_documents(request: Request, tenant: Tenant, from_: From = None, to: To = None,
                   kind: Filter = None, customer: Filter = None, cursor: Cursor = None,
                   limit: Limit = fq.PAGE_ITEMS_DEFAULT, as_of: AsOf = None
                   ) -> dict[str, Any]:
    period = fq.Period.parse(from_, to)
    with _books(request, tenant, as_of) as (q, which):
        found = fq.documents(q, tenant, period, kind, customer)
    return _page(fq.paginate(found, lambda d: [d["number"]], cursor, limit)) | which


def _document(request: Request, tenant: str, number: str) -> dict[str, Any]:
    with request.app.state.desk.read(tenant) as q:
        found = fq.document(q, tenant, number)
    if found is None:
        raise HTTPException(404, f"no document {number!r}")
    return found


@router.get("/documents/{number}", summary="one document with its lines", responses=NOT_FOUND)
def get_document(request: Request, tenant: Tenant, number: str) -> dict[str, Any]:
    return _document(request, tenant, number)


EINVOICE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "format=cii of a document that is not a C- or V- invoice"},
    409: {"description": "format=cii: the seller or buyer configuration lacks a field "
                         "EN 16931 requires (the message names it)"},
}


def _einvoice(request: Request, tenant: str, number: str) -> bytes:
    """The EN 16931 e-invoice of a C- or V- invoice (projections/einvoice.py)."""
    with request.app.state.desk.read(tenant) as q:
        source = fq.einvoice_source(q, tenant, number)
    if source is None:
        raise HTTPException(404, f"no document {number!r}")
    try:
        return einvoice_xml(source)
    except NotAnEInvoice as exc:
        raise HTTPException(400, str(exc)) from None
    except EInvoiceError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/documents/{number}/download",
            summary="a document as a JSON or HTML file, or a C-/V- invoice as an EN 16931 "
                    "e-invoice (format=cii: UN/CEFACT CII XML)",
            responses=NOT_FOUND | EINVOICE_ERRORS, response_class=Response)
def download_document(request: Request, tenant: Tenant, number: str,
                      format: Literal["json", "html", "cii"] = "json") -> Response:
    name = exports.safe_filename(number)
    if format == "cii":
        return Response(_einvoice(request, tenant, number), media_type="application/xml",
                        headers=exports.attachment(f"{name}.xml"))
    found = _document(request, tenant, number)
    if format == "html":
        return HTMLResponse(document_html(found, tenant),
                            headers=exports.attachment(f"{name}.html"))
    return Response(exports.document_json(found), media_type="application/json",
                    headers=exports.attachment(f"{name}.json"))


@router.get("/sessions", summary="sessions with their payer split")
def list_sessions(request: Request, tenant: Tenant, from_: From = None, to: To = None,
                  billing_model: Filter = None, cursor: Cursor = None,
                  limit: Limit = fq.PAGE_ITEMS_DEFAULT) -> dict[str, Any]:
    period = fq.Period.parse(from_, to)
    with request.app.state.desk.read(tenant) as q:
        found = fq.sessions(q, tenant, period, billing_model)
    return _page(fq.paginate(found, lambda s: [s["session_id"]], cursor, limit))


@router.get("/sessions/{session_id}", summary="one session, its payers and journal entries",
            responses=NOT_FOUND)
def get_session(request: Request, tenant: Tenant, session_id: str) -> dict[str, Any]:
    with request.app.state.desk.read(tenant) as q:
        found = fq.session(q, tenant, session_id)
    if found is None:
        raise HTTPException(404, f"no session {session_id!r}")
    return found


@router.get("/balances", summary="wallets, receivables and partner pools")
def get_balances(request: Request, tenant: Tenant, as_of: AsOf = None) -> dict[str, Any]:
    with _books(request, tenant, as_of) as (q, which):
        return fq.balances(q, tenant) | which


@router.get("/journal/trial-balance", summary="debits, credits and balance per account")
def get_trial_balance(request: Request, tenant: Tenant, from_: From = None,
                      to: To = None) -> dict[str, Any]:
    period = fq.Period.parse(from_, to)
    with request.app.state.desk.read(tenant) as q:
        accounts = fq.trial_balance(q, tenant, period)
    return {"from": from_, "to": to, "accounts": accounts}


@router.get("/journal/entries", summary="journal entries with their postings")
def list_journal_entries(request: Request, tenant: Tenant, from_: From = None, to: To = None,
                         cursor: Cursor = None, limit: Limit = fq.PAGE_ITEMS_DEFAULT
                         ) -> dict[str, Any]:
    period = fq.Period.parse(from_, to)
    with request.app.state.desk.read(tenant) as q:
        found = fq.journal(q, tenant, period)
    return _page(fq.paginate(found, lambda e: [e["date"] or "", e["entry_id"]], cursor, limit))


@router.get("/operations/dead-letters", summary="inbound messages that could not be applied")
def list_dead_letters(request: Request, tenant: Tenant, cursor: Cursor = None,
                      limit: Limit = fq.PAGE_ITEMS_DEFAULT) -> dict[str, Any]:
    with request.app.state.desk.read(tenant) as q:
        found = fq.dead_letters(q, tenant)
    return _page(fq.paginate(found, lambda d: [d["source"], d["position"]], cursor, limit))


@router.get("/operations/refusals", summary="requests the billing rules refused, with why")
def list_refusals(request: Request, tenant: Tenant, cursor: Cursor = None,
                  limit: Limit = fq.PAGE_ITEMS_DEFAULT) -> dict[str, Any]:
    with request.app.state.desk.read(tenant) as q:
        found = fq.refusals(q, tenant)
    return _page(fq.paginate(found, lambda r: [r["event_id"]], cursor, limit))


@router.get("/exports/invoices.csv", summary="one period's documents as CSV",
            response_class=PlainTextResponse)
def export_invoices(request: Request, tenant: Tenant, from_: RequiredFrom, to: RequiredTo
                    ) -> Response:
    period = fq.Period.parse(from_, to)
    with request.app.state.desk.read(tenant) as q:
        found = fq.documents(q, tenant, period)
    return Response(exports.invoices_csv(found), media_type="text/csv; charset=utf-8",
                    headers=exports.attachment(
                        exports.safe_filename(f"invoices-{tenant}-{from_}-{to}.csv")))


@router.get("/exports/journal.csv", summary="one period's journal as CSV, a posting a row",
            response_class=PlainTextResponse)
def export_journal(request: Request, tenant: Tenant, from_: RequiredFrom, to: RequiredTo
                   ) -> Response:
    period = fq.Period.parse(from_, to)
    with request.app.state.desk.read(tenant) as q:
        found = fq.journal(q, tenant, period)
    return Response(exports.journal_csv(found), media_type="text/csv; charset=utf-8",
                    headers=exports.attachment(
                        exports.safe_filename(f"journal-{tenant}-{from_}-{to}.csv")))

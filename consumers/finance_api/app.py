"""Composition of the finance desk: the FastAPI application, its routers and error shapes.

Every error is JSON `{"message": ...}` (pages: a short HTML page), with a 4xx status for
anything the caller can fix: 400 bad period/cursor/filter, 401 no or bad key, 404 unknown
(or another tenant's) id, 409 an e-invoice whose parties lack a required field (api.py),
422 a parameter of the wrong shape.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumers.finance_api import api, pages
from consumers.finance_api.auth import NotLoggedIn
from consumers.finance_api.desk import AsOfUnavailable, Desk
from consumers.finance_api.rendering import render
from projections.database import ReadModelDatabase
from projections.finance_queries import FinanceQueryError

API_PREFIX = "/api/"


def create_app(db: ReadModelDatabase, ledger: Application[Any] | None = None) -> FastAPI:
    """`ledger`: the event store, for `as_of` views (replayed from the events); without it
    an `as_of` question is answered 503."""
    app = FastAPI(
        title="evledger finance API",
        version="1",
        description="Invoices, sessions, balances and the journal of one tenant (the API "
                    "key's). Amounts are decimal strings in major units.",
    )
    app.state.desk = Desk(db, ledger)
    app.include_router(api.router)
    app.include_router(pages.router)

    def _error(request: Request, status: int, message: str,
               headers: dict[str, str] | None = None) -> Response:
        if request.url.path.startswith(API_PREFIX) or request.url.path.startswith("/openapi"):
            return JSONResponse({"message": message}, status_code=status, headers=headers)
        return Response(render("error.html", tenant=None, path=request.url.path,
                               status=status, message=message),
                        status_code=status, media_type="text/html", headers=headers)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors())
        return _error(request, 422, f"invalid request: {problems}")

    @app.exception_handler(FinanceQueryError)
    def query_error(request: Request, exc: FinanceQueryError) -> Response:
        return _error(request, 400, str(exc))

    @app.exception_handler(AsOfUnavailable)
    def as_of_unavailable(request: Request, exc: AsOfUnavailable) -> Response:
        return _error(request, 503, str(exc))

    @app.exception_handler(NotLoggedIn)
    def not_logged_in(request: Request, exc: NotLoggedIn) -> Response:
        return RedirectResponse("/login", status_code=303)

    return app

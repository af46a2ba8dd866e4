"""Who is asking: an API key in the `X-API-Key` header (or `Authorization: Bearer`), or, for
the pages, in the HttpOnly cookie the login form sets. The key names the tenant."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.security import APIKeyHeader

KEY_HEADER = "X-API-Key"
KEY_COOKIE = "evledger_key"
api_key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False,
                              description="a finance API key (`ledger api-keys create`)")


class NotLoggedIn(Exception):
    """A page was asked for without a valid key cookie: the login form answers."""


def presented_key(request: Request) -> str | None:
    key = request.headers.get(KEY_HEADER)
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    return request.cookies.get(KEY_COOKIE)


def tenant_or_401(request: Request) -> str:
    key = presented_key(request)
    tenant = request.app.state.desk.tenant_of(key) if key else None
    if tenant is None:
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API key: send it in the X-API-Key header",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    return str(tenant)


def tenant_or_login(request: Request) -> str:
    key = request.cookies.get(KEY_COOKIE)
    tenant = request.app.state.desk.tenant_of(key) if key else None
    if tenant is None:
        raise NotLoggedIn()
    return str(tenant)

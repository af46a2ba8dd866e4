"""What a message needs that may not have arrived yet: ask to wait, or decide now.

Kafka orders nothing across topics, so a session's Started can come before the
DriverConfigured it needs, a PSP result before the command it answers. A handler that finds
such a thing missing calls `wait_for` (or `wait_or_go_without`): while the message may still
wait it raises `PrerequisiteMissing` and the ledger parks the message (`ledger/parking.py`);
once the wait is over (`deciding_now`), the handler does what it did before parking existed:
refuse with `otherwise`, or carry on without the thing when it has a fallback (an unknown
id token is a session nobody can pay for).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NoReturn

from ledger.domain.errors import LedgerError, PrerequisiteMissing

_deciding_now: ContextVar[bool] = ContextVar("deciding_now", default=False)


def awaited_key(kind: str, tenant_id: str, key: str) -> str:
    """How a missing thing is named while messages wait for it: `driver:cpo-de/d-17`."""
    return f"{kind}:{tenant_id}/{key}"


def wait_for(
    kind: str, tenant_id: str, key: str, reason: str, otherwise: type[LedgerError]
) -> NoReturn:
    """`kind` `key` of `tenant_id` is not there: wait for it; the wait over, `otherwise`."""
    wait_or_go_without(kind, tenant_id, key, reason)
    raise otherwise(reason)


def wait_or_go_without(kind: str, tenant_id: str, key: str, reason: str) -> None:
    """`kind` `key` of `tenant_id` is not there: wait for it; the wait over, return and let
    the handler go on without it."""
    if not _deciding_now.get():
        raise PrerequisiteMissing(awaited_key(kind, tenant_id, key), reason)


@contextmanager
def deciding_now() -> Iterator[None]:
    """Apply without waiting any longer: a parked message whose wait is over."""
    token = _deciding_now.set(True)
    try:
        yield
    finally:
        _deciding_now.reset(token)

"""A row change: what one event does to one read-model row, as data.

Read models return these from pure functions; only the runner executes them, in event
order, inside the page's transaction. Tests compare them without a database.
"""

from __future__ import annotations

from dataclasses import dataclass

from projections.sql import Statement
from projections.values import SqlValue


@dataclass(frozen=True, slots=True)
class RowChange:
    statement: Statement
    values: dict[str, SqlValue]


def event_class(aggregate: type, name: str) -> type:
    """The event class `aggregate.<name>` that eventsourcing's @event generated.

    Looked up by name (mypy cannot see generated classes), once, at import: a renamed
    event fails loudly here instead of being skipped silently by the projection.
    """
    found = getattr(aggregate, name, None)
    assert isinstance(found, type), f"{aggregate.__name__}.{name} is not an event class"
    return found

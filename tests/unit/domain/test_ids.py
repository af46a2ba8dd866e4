"""Ids derived from natural keys are `uuid.uuid5` exactly: every stored aggregate and every
command id sent before depends on it."""

from __future__ import annotations

from uuid import uuid5

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.ids import EVLEDGER_NAMESPACE, command_id, natural_id


@given(st.text(), st.text(), st.lists(st.text(), max_size=4))
def test_natural_id_is_uuid5_of_the_joined_parts(kind: str, tenant: str, parts: list[str]
                                                 ) -> None:
    expected = uuid5(EVLEDGER_NAMESPACE, "\x1f".join((kind, tenant, *parts)))
    found = natural_id(kind, tenant, *parts)
    assert found == expected
    assert (str(found), hash(found), found.version, found.variant) == (
        str(expected), hash(expected), 5, expected.variant)


def test_a_known_command_id_never_changes() -> None:
    """Pinned: a PSP deduplicates by it, across versions of the ledger."""
    assert command_id("t1", "cost_update", "tx1", "0") == "203d6607-7d91-5b7e-b461-95c52e701475"

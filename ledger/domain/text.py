"""Text that every stage can hold: what PostgreSQL text refuses, and control characters.

PostgreSQL text cannot hold NUL, and its UTF-8 encoding cannot hold a lone surrogate (which
Python strings can). Inbound messages refuse both, and every other control character, at
the edge (`ledger/messages.py`); text the ledger keeps without a model around it (a dead
letter's key, type header, reason, raw payload) and every value a read model writes is made
storable here instead, visibly: the character becomes its `\\uXXXX` escape.
"""

from __future__ import annotations

import re

# Control characters (C0, DEL, C1) and lone surrogates.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Control characters a multi-line text (a tariff's JSON) may carry.
LINE_WHITESPACE = frozenset("\t\n\r")
# What no PostgreSQL text column can hold.
UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
TRUNCATION_MARK = "...[truncated]"


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def control_character_in(text: str, *, multiline: bool = False) -> str | None:
    """The first control character of `text` (as an escape, for a message), or None."""
    for match in CONTROL_CHARACTERS.finditer(text):
        if not (multiline and match.group() in LINE_WHITESPACE):
            return _escaped(match)
    return None


def storable(text: str) -> str:
    """`text` with NUL and lone surrogates escaped: holdable by every store, else unchanged."""
    return UNSTORABLE_CHARACTERS.sub(_escaped, text)


def printable(text: str, chars_max: int) -> str:
    """One line of at most `chars_max` characters: every control character escaped."""
    assert chars_max > len(TRUNCATION_MARK)
    line = CONTROL_CHARACTERS.sub(_escaped, text)
    if len(line) <= chars_max:
        return line
    return line[: chars_max - len(TRUNCATION_MARK)] + TRUNCATION_MARK

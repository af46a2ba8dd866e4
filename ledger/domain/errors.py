"""Typed errors of the domain core.

    LedgerError
    ├── InvalidInput            bad data from outside: dead-lettered or reported, never applied
    │   ├── InvalidAmount
    │   ├── UnknownCurrency
    │   ├── InvalidTariff
    │   ├── InvalidCdr
    │   └── InvalidMessage
    ├── RuleViolation           well-formed input the billing rules refuse (a reason event)
    └── HandlerFailed           anything else a handler raised: the message is dead-lettered
"""


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""


class InvalidInput(LedgerError):
    """Input that can never be applied, whatever the state."""


class InvalidAmount(InvalidInput):
    pass


class UnknownCurrency(InvalidInput):
    pass


class InvalidTariff(InvalidInput):
    pass


class InvalidCdr(InvalidInput):
    pass


class InvalidMessage(InvalidInput):
    pass


class RuleViolation(LedgerError):
    """Well-formed input that the billing rules refuse in the current state."""


class HandlerFailed(LedgerError):
    """A handler raised an exception no rule expects (a bug, or a value nobody foresaw).

    The one message is dead-lettered with the error's type and text and the partition moves
    on: a bug must show (log, metric, dead letter), never stall every message behind it.
    """

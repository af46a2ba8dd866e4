"""Typed errors of the domain core.

    LedgerError
    ├── InvalidInput            bad data from outside: dead-lettered or reported, never applied
    │   ├── InvalidAmount
    │   ├── UnknownCurrency
    │   ├── InvalidTariff
    │   ├── InvalidCdr
    │   └── InvalidMessage
    ├── RuleViolation           well-formed input the billing rules refuse (a reason event)
    ├── PrerequisiteMissing     what the message needs has not arrived yet: parked, not refused
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


class PrerequisiteMissing(LedgerError):
    """What the message needs (a tenant, a driver, the request a result answers) has not
    been applied yet, and may still arrive: Kafka orders nothing across topics.

    `awaits` names it, e.g. `driver:cpo-de/d-17`; the message is parked until it arrives
    (docs/reliability.md, "Parking"). Never raised for what can no longer change.
    """

    def __init__(self, awaits: str, reason: str) -> None:
        super().__init__(reason)
        self.awaits = awaits
        self.reason = reason


class HandlerFailed(LedgerError):
    """A handler raised an exception no rule expects (a bug, or a value nobody foresaw).

    The one message is dead-lettered with the error's type and text and the partition moves
    on: a bug must show (log, metric, dead letter), never stall every message behind it.
    """

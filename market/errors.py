"""Typed refusals of the application: a transaction that breaks a ledger rule.

Each is raised before anything is written (execution runs on an overlay that is dropped), so
a refused transaction changes nothing.
"""

from __future__ import annotations

from protocol.errors import GridchainError


class ApplicationError(GridchainError):
    code = "rejected"
    http_status = 422


class NotRegisteredError(ApplicationError):
    code = "unregistered_sender"
    http_status = 403


class NotGovernanceError(ApplicationError):
    code = "not_governance"
    http_status = 403


class ReplayedNonceError(ApplicationError):
    """The nonce was already used: a replay or a duplicate."""

    code = "nonce_replayed"
    http_status = 409


class NonceGapError(ApplicationError):
    code = "nonce_gap"


class InsufficientBalanceError(ApplicationError):
    code = "insufficient_balance"


class InvalidAmountError(ApplicationError):
    code = "invalid_amount"


class UnknownRecipientError(ApplicationError):
    code = "unknown_recipient"


class AlreadyRegisteredError(ApplicationError):
    code = "already_registered"
    http_status = 409


class SupplyOverflowError(ApplicationError):
    code = "supply_overflow"


class BlockRejectedError(ApplicationError):
    """A proposed block whose execution fails or whose state root differs."""

    code = "block_rejected"

"""Why the pool refuses a transaction, apart from the pool itself.

A gateway maps a validator's refusal code to the HTTP status the validator's API gives for it
(gateway/verdicts.py); it needs these classes, not the pool, whose import brings the whole
application (and numpy with it: about 20 MiB resident in a process that executes nothing).
"""

from __future__ import annotations

from gridchain.protocol.errors import GridchainError


class MempoolError(GridchainError):
    code = "mempool_refused"


class MempoolFullError(MempoolError):
    code = "mempool_full"
    http_status = 503


class DuplicateTxError(MempoolError):
    code = "duplicate_tx"
    http_status = 409

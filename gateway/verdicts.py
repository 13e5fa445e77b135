"""The validators' answer to a forwarded transaction, as the client's HTTP answer.

A validator refuses a forwarded transaction with the code its own API would have given
(``insufficient_balance``, ``replayed_nonce``, ``mempool_full``...), so the gateway answers the
client with that code and the same HTTP status a validator's API gives for it: a wallet behind
a gateway reads the same refusals as one talking to a validator.  The statuses are looked up
among the project's typed errors by code; a code no class declares is a 422.
"""

from __future__ import annotations

import functools

# The modules that declare the codes a validator answers with, and nothing of the validator
# itself (its runtime, the application, numpy): tests/unit/gateway/test_verdict_statuses.py
# checks that this gives every code the status the validator's own process gives it.
from gridchain.market import device_links as _device_links  # noqa: F401 - registers the codes
from gridchain.market import errors as _market_errors  # noqa: F401 - registers the codes
from gridchain.market.scheduling import errors as _scheduling  # noqa: F401 - registers the codes
from gridchain.node import api_reply as _api_reply  # noqa: F401 - registers the codes
from gridchain.node import mempool_errors as _mempool  # noqa: F401 - registers the codes
from gridchain.node import state_sync as _state_sync  # noqa: F401 - registers the codes
from gridchain.protocol import sealed as _sealed  # noqa: F401 - registers the codes
from gridchain.protocol import sealed_read as _sealed_read  # noqa: F401 - registers the codes
from gridchain.protocol.errors import GridchainError

UNKNOWN_CODE_STATUS = 422


def _subclasses(cls: type[GridchainError]) -> list[type[GridchainError]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


@functools.cache
def _statuses() -> dict[str, int]:
    table: dict[str, int] = {}
    for cls in _subclasses(GridchainError):
        table.setdefault(cls.code, cls.http_status)
    return table


def status_for(code: str) -> int:
    """The HTTP status a validator's API answers with for a refusal ``code``."""
    return _statuses().get(code, UNKNOWN_CODE_STATUS)


def refusal_of(exc: GridchainError) -> tuple[int, str, str]:
    """(status, code, message) of a forwarding failure: a validator's refusal keeps the
    validator's own code (``reason``), anything else is the error's own code and status."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        detail = getattr(exc, "detail", exc.message)
        return status_for(reason), reason, str(detail)
    return exc.http_status, exc.code, exc.message

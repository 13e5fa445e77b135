"""The check every key a transaction registers passes first (participants, meter bridges).

protocol.crypto.check_public_key decides; this turns its refusal into an ApplicationError so
the transaction is left out of a block (or refused by the mempool) like any other rule it
breaks, while keeping the type and code that name the defect.
"""

from __future__ import annotations

from gridchain.market.errors import (
    KeyNotOnCurveRefusedError,
    NonCanonicalKeyRefusedError,
    RefusedKeyError,
    SmallOrderKeyRefusedError,
)
from gridchain.protocol.crypto import check_public_key
from gridchain.protocol.errors import (
    BadKeyError,
    KeyNotOnCurveError,
    NonCanonicalKeyError,
    SmallOrderKeyError,
)


def require_registrable_key(public_key: bytes, *, what: str) -> None:
    """Raise a RefusedKeyError (a BadKeyError and an ApplicationError) for a refused key."""
    try:
        check_public_key(public_key, what=what)
    except SmallOrderKeyError as exc:
        raise SmallOrderKeyRefusedError(exc.message) from None
    except NonCanonicalKeyError as exc:
        raise NonCanonicalKeyRefusedError(exc.message) from None
    except KeyNotOnCurveError as exc:
        raise KeyNotOnCurveRefusedError(exc.message) from None
    except BadKeyError as exc:
        raise RefusedKeyError(exc.message) from None

"""What became of each sealed transaction: applied, or refused with a code (docs/sealed.md).

A sealed transaction that passes its envelope checks always enters its block and always uses
its nonce, whatever its hidden body does; this record, kept in the state under the owner's
address, is how its sender learns the outcome (through a sealed read, never the public API).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import (
    U8,
    U64,
    Bytes32,
    LabelledEnum,
    Record,
    Size,
    decode,
    register,
)

SEALED_PREFIX = b"seal:"


class SealedStatus(LabelledEnum):
    APPLIED = 0
    REFUSED = 1


@register(0x6D)
@dataclass(frozen=True, slots=True)
class SealedOutcome(Record):
    """``code`` is the refusal's error code (empty when applied); ``height`` its block."""

    tx_hash: Bytes32
    status: U8
    code: Annotated[str, Size(0, 64)]
    height: U64


def put_outcome(view: Overlay, owner: bytes, outcome: SealedOutcome) -> None:
    view.put(SEALED_PREFIX + owner + outcome.tx_hash, outcome.encode())


def get_outcome(state: StateReader, owner: bytes, tx_hash: bytes) -> SealedOutcome | None:
    raw = state.get(SEALED_PREFIX + owner + tx_hash)
    return None if raw is None else decode(raw, SealedOutcome)


def outcomes_of(state: StateReader, owner: bytes) -> Iterator[SealedOutcome]:
    """An address's sealed transactions' outcomes, by transaction hash."""
    for _, raw in state.scan(SEALED_PREFIX + owner):
        yield decode(raw, SealedOutcome)

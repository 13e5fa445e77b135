"""The refusal to sign twice, shared by every engine, and the errors that halt a validator.

A validator that signs two different blocks for one step of one (height, round) is exactly the
Byzantine behaviour every engine's quorum arithmetic assumes at most f validators show, so the
engines keep, per kind of signature, the last one made, and refuse anything that would
contradict it.  Before a signature leaves an engine, the record that covers it is handed to the
runtime as a :class:`~consensus.engine.Persist` action (synced before the message is sent), so
the guard is rebuilt from the store after a crash; which records an engine keeps, under which
keys and in which format, stays the engine's business (its guard.py or engine.py).

An honest engine signs each kind in increasing (height, round) order (heights only grow, and
within a height rounds or views only grow), so the last signature of a kind is enough to refuse
anything that would conflict, and the records take constant space.

Both errors are :class:`~protocol.errors.InvariantViolation`, not refusals: nobody sent bad
input.  A double-sign attempt means this node's own logic went wrong; a persisted record that
does not read back means its store is damaged, and resuming without it could sign what it
already contradicted.  Either way the node must halt, whatever path (timer, peer message, API
call) got it there.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from gridchain.protocol.errors import DecodeError, InvariantViolation

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class DoubleSignError(InvariantViolation):
    """The engine was about to sign a second, different block for one (height, round, kind)."""

    code = "double_sign"


class PersistedStateError(InvariantViolation):
    """The engine's own persisted records do not read back: the store is damaged."""

    code = "persisted_state"


@dataclass(frozen=True, slots=True)
class Signed:
    """One signature made: what the guard compares new ones of the same kind against."""

    height: int
    #: the round (ePoB, PoB, solo) or view (PBFT) it was made in
    round: int
    block_hash: bytes


def _label(kind: Hashable) -> str:
    return kind.name if isinstance(kind, Enum) else str(kind)


class SigningGuard(Generic[K]):
    """Refuses to sign what conflicts with, or goes back behind, the last one of its kind.

    ``K`` is whatever names a kind of signature in the engine (PBFT: a VoteStep; ePoB: the
    strings "proposal", "prevote", "precommit"); kinds are guarded separately.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[K, Signed] = {}

    def last(self, kind: K) -> Signed | None:
        return self._last.get(kind)

    def permits(self, kind: K, height: int, round_: int, block_hash: bytes) -> bool:
        """True when signing this cannot contradict an earlier signature of the same kind."""
        last = self._last.get(kind)
        if last is None:
            return True
        if (height, round_) != (last.height, last.round):
            return (height, round_) > (last.height, last.round)
        return block_hash == last.block_hash

    def record(self, kind: K, height: int, round_: int, block_hash: bytes) -> None:
        """Remember a signature about to be made; raise DoubleSignError if it conflicts."""
        if not self.permits(kind, height, round_, block_hash):
            last = self._last[kind]
            raise DoubleSignError(
                f"refusing to sign {_label(kind)} for {block_hash.hex()[:16]} at height {height} "
                f"round {round_}: already signed {last.block_hash.hex()[:16]} at height "
                f"{last.height} round {last.round}",
                evidence={
                    "kind": _label(kind),
                    "height": str(height),
                    "round": str(round_),
                    "block_hash": block_hash.hex(),
                    "signed_height": str(last.height),
                    "signed_round": str(last.round),
                    "signed_block_hash": last.block_hash.hex(),
                },
            )
        self._last[kind] = Signed(height, round_, block_hash)


def read_record(
    persisted: Mapping[bytes, bytes], key: bytes, decode: Callable[[bytes], T]
) -> T | None:
    """Decode the engine's record under ``key`` (None if absent); a damaged one halts."""
    raw = persisted.get(key)
    if raw is None:
        return None
    try:
        return decode(raw)
    except DecodeError as exc:
        raise PersistedStateError(
            f"the persisted record {key.decode(errors='replace')} is damaged: {exc.message}",
            evidence={"key": key.hex(), "error": exc.code},
        ) from None

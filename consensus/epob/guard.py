"""What ePoB safety needs to survive a crash, and the refusal to sign twice.

Before a signature leaves the engine, the record that covers it is handed to the runtime as a
:class:`~consensus.engine.Persist` action, which the runtime syncs before the message is sent:

``epob/proposal``
    the last :class:`~consensus.epob.messages.ProposalClaim` signed (one proposal per round);
``epob/prevote``
    the last prevote signed (a ``Vote`` with step PREPARE);
``epob/lock``
    the polka and block of the last precommit signed: the guard for precommits and the lock a
    restarted validator keeps (and re-proposes);
``epob/last-commit``
    the last commit certificate this engine assembled, to help a validator that is behind
    (liveness only).

Keys are fixed and overwritten: an honest engine signs each kind in increasing (height, round)
order, so the last one signed is enough to refuse anything that would conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from gridchain.consensus.epob.messages import LockRecord, ProposalClaim, decode_record
from gridchain.protocol.block import Certificate, Vote, VoteStep
from gridchain.protocol.errors import DecodeError, GridchainError

PREFIX: Final = b"epob/"
PROPOSAL_KEY: Final = PREFIX + b"proposal"
PREVOTE_KEY: Final = PREFIX + b"prevote"
LOCK_KEY: Final = PREFIX + b"lock"
LAST_COMMIT_KEY: Final = PREFIX + b"last-commit"

Kind = Literal["proposal", "prevote", "precommit"]


class DoubleSignError(GridchainError):
    """The engine was about to sign a second, different block for one (height, round, kind)."""

    code = "double_sign"
    http_status = 500


class PersistedStateError(GridchainError):
    """The engine's own persisted records do not decode: the store is damaged."""

    code = "epob_persisted_state"
    http_status = 500


@dataclass(frozen=True, slots=True)
class Signed:
    height: int
    round: int
    block_hash: bytes


class SigningGuard:
    """Refuses to sign what conflicts with, or goes back behind, the last one of its kind."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[Kind, Signed] = {}

    def last(self, kind: Kind) -> Signed | None:
        return self._last.get(kind)

    def permits(self, kind: Kind, height: int, round_: int, block_hash: bytes) -> bool:
        last = self._last.get(kind)
        if last is None:
            return True
        if (height, round_) != (last.height, last.round):
            return (height, round_) > (last.height, last.round)
        return block_hash == last.block_hash

    def record(self, kind: Kind, height: int, round_: int, block_hash: bytes) -> None:
        """Remember a signature about to be made; raise DoubleSignError if it conflicts."""
        if not self.permits(kind, height, round_, block_hash):
            last = self._last[kind]
            raise DoubleSignError(
                f"refusing to sign {kind} for {block_hash.hex()[:16]} at height {height} round "
                f"{round_}: already signed {last.block_hash.hex()[:16]} at height {last.height} "
                f"round {last.round}"
            )
        self._last[kind] = Signed(height, round_, block_hash)


@dataclass(frozen=True, slots=True)
class Restored:
    """The engine's records as found at start (any of them may be missing)."""

    proposal: ProposalClaim | None
    prevote: Vote | None
    lock: LockRecord | None
    last_commit: Certificate | None

    def guard(self) -> SigningGuard:
        guard = SigningGuard()
        if self.proposal is not None:
            p = self.proposal
            guard.record("proposal", p.height, p.round, p.block_hash)
        if self.prevote is not None:
            v = self.prevote
            guard.record("prevote", v.height, v.round, v.block_hash)
        if self.lock is not None:
            v = self.lock.polka.vote
            guard.record("precommit", v.height, v.round, v.block_hash)
        return guard

    def last_round(self, height: int) -> int | None:
        """The highest round this validator signed anything in at ``height``."""
        rounds = [
            r.round
            for r in (
                self.proposal,
                self.prevote,
                None if self.lock is None else self.lock.polka.vote,
            )
            if r is not None and r.height == height
        ]
        return max(rounds, default=None)


def restore(persisted: Mapping[bytes, bytes]) -> Restored:
    """Decode the engine's records; a record that does not decode stops the engine."""
    try:
        raw = persisted.get(PROPOSAL_KEY)
        proposal = None if raw is None else decode_record(raw, ProposalClaim)
        raw = persisted.get(PREVOTE_KEY)
        prevote = None if raw is None else decode_record(raw, Vote)
        raw = persisted.get(LOCK_KEY)
        lock = None if raw is None else decode_record(raw, LockRecord)
        raw = persisted.get(LAST_COMMIT_KEY)
        last_commit = None if raw is None else decode_record(raw, Certificate)
    except DecodeError as exc:
        raise PersistedStateError(f"a persisted ePoB record is damaged: {exc.message}") from None
    if prevote is not None and prevote.step != VoteStep.PREPARE:
        raise PersistedStateError("the persisted prevote is not a PREPARE vote")
    if lock is not None and lock.polka.vote.block_hash != lock.block.hash():
        raise PersistedStateError("the persisted lock's polka is for another block")
    return Restored(proposal, prevote, lock, last_commit)

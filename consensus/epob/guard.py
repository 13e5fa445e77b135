"""What ePoB safety needs to survive a crash: the records that rebuild its signing guard.

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

Keys are fixed and overwritten; the guard itself (one per kind, refusing to go back or to sign
a second block) is consensus/kernel/guard.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Final, Literal

from gridchain.consensus.epob.messages import LockRecord, ProposalClaim, decode_record
from gridchain.consensus.kernel.guard import PersistedStateError, SigningGuard, read_record
from gridchain.protocol.block import Certificate, Vote, VoteStep

PREFIX: Final = b"epob/"
PROPOSAL_KEY: Final = PREFIX + b"proposal"
PREVOTE_KEY: Final = PREFIX + b"prevote"
LOCK_KEY: Final = PREFIX + b"lock"
LAST_COMMIT_KEY: Final = PREFIX + b"last-commit"

#: What the ePoB guard tells apart: each kind of signature is guarded on its own.
Kind = Literal["proposal", "prevote", "precommit"]


@dataclass(frozen=True, slots=True)
class Restored:
    """The engine's records as found at start (any of them may be missing)."""

    proposal: ProposalClaim | None
    prevote: Vote | None
    lock: LockRecord | None
    last_commit: Certificate | None

    def guard(self) -> SigningGuard[Kind]:
        guard = SigningGuard[Kind]()
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
    proposal = read_record(persisted, PROPOSAL_KEY, partial(decode_record, expected=ProposalClaim))
    prevote = read_record(persisted, PREVOTE_KEY, partial(decode_record, expected=Vote))
    lock = read_record(persisted, LOCK_KEY, partial(decode_record, expected=LockRecord))
    last_commit = read_record(
        persisted, LAST_COMMIT_KEY, partial(decode_record, expected=Certificate)
    )
    if prevote is not None and prevote.step != VoteStep.PREPARE:
        raise PersistedStateError("the persisted prevote is not a PREPARE vote")
    if lock is not None and lock.polka.vote.block_hash != lock.block.hash():
        raise PersistedStateError("the persisted lock's polka is for another block")
    return Restored(proposal, prevote, lock, last_commit)

"""What PBFT safety needs to survive a crash: the records that rebuild its signing guard.

A validator that forgets a vote it sent can be made to sign a conflicting one after a restart,
which is exactly the Byzantine behaviour PBFT's quorums assume at most f validators show.  So
before a signature leaves the engine, the record that covers it is handed to the runtime as a
:class:`~consensus.engine.Persist` action, which the runtime syncs before the message is sent:

``pbft/prepare``
    the last prepare vote signed (a pre-prepare counts as the primary's prepare);
``pbft/prepared``
    the prepared certificate and block of the last commit vote signed: the guard for commit
    votes and the lock a view change must report;
``pbft/view``
    the view and whether a view change was sent (a replica must never act in a lower view at
    that height once it asked to leave);
``pbft/last-commit``
    the last commit certificate this engine assembled, so it can help a validator that is
    behind even after a restart (liveness only).

Keys are fixed and overwritten, so the records take constant space; the guard itself (one per
vote step, refusing to go back or to sign a second block) is consensus/kernel/guard.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Final

from gridchain.consensus.kernel.guard import PersistedStateError, SigningGuard, read_record
from gridchain.consensus.pbft.messages import PreparedRecord, ViewRecord, decode_record
from gridchain.protocol.block import Block, Certificate, Vote, VoteStep

PREFIX: Final = b"pbft/"
PREPARE_KEY: Final = PREFIX + b"prepare"
PREPARED_KEY: Final = PREFIX + b"prepared"
VIEW_KEY: Final = PREFIX + b"view"
LAST_COMMIT_KEY: Final = PREFIX + b"last-commit"


@dataclass(frozen=True, slots=True)
class Restored:
    """The engine's records as found at start (any of them may be missing)."""

    prepare: Vote | None
    prepared: PreparedRecord | None
    view: ViewRecord | None
    last_commit: Certificate | None

    def guard(self) -> SigningGuard[VoteStep]:
        guard = SigningGuard[VoteStep]()
        if self.prepare is not None:
            v = self.prepare
            guard.record(VoteStep.PREPARE, v.height, v.round, v.block_hash)
        if self.prepared is not None:
            v = self.prepared.certificate.vote
            guard.record(VoteStep.COMMIT, v.height, v.round, v.block_hash)
        return guard


def restore(persisted: Mapping[bytes, bytes]) -> Restored:
    """Decode the engine's records; a record that does not decode stops the engine."""
    prepare = read_record(persisted, PREPARE_KEY, partial(decode_record, expected=Vote))
    prepared = read_record(persisted, PREPARED_KEY, partial(decode_record, expected=PreparedRecord))
    view = read_record(persisted, VIEW_KEY, partial(decode_record, expected=ViewRecord))
    last_commit = read_record(
        persisted, LAST_COMMIT_KEY, partial(decode_record, expected=Certificate)
    )
    if prepare is not None and prepare.step != VoteStep.PREPARE:
        raise PersistedStateError("the persisted prepare vote is not a PREPARE vote")
    return Restored(prepare, prepared, view, last_commit)


def prepared_record(certificate: Certificate, block: Block) -> bytes:
    return PreparedRecord(certificate, block).encode()


def view_record(height: int, view: int, changing: bool) -> bytes:
    return ViewRecord(height, view, changing).encode()

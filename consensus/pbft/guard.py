"""What safety needs to survive a crash, and the refusal to sign twice.

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

Keys are fixed and overwritten, so the records take constant space: an honest engine signs
votes of one step in increasing (height, view) order (heights only grow; within a height views
only grow), so the last signed vote is enough to refuse anything that would conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gridchain.consensus.pbft.messages import PreparedRecord, ViewRecord, decode_record
from gridchain.protocol.block import Block, Certificate, Vote, VoteStep
from gridchain.protocol.errors import DecodeError, GridchainError

PREFIX: Final = b"pbft/"
PREPARE_KEY: Final = PREFIX + b"prepare"
PREPARED_KEY: Final = PREFIX + b"prepared"
VIEW_KEY: Final = PREFIX + b"view"
LAST_COMMIT_KEY: Final = PREFIX + b"last-commit"


class DoubleSignError(GridchainError):
    """The engine was about to sign a second, different block for one (view, height, step)."""

    code = "double_sign"
    http_status = 500


class PersistedStateError(GridchainError):
    """The engine's own persisted records do not decode: the store is damaged."""

    code = "pbft_persisted_state"
    http_status = 500


@dataclass(frozen=True, slots=True)
class Signed:
    """One signed vote: what the guard compares new votes against."""

    height: int
    view: int
    block_hash: bytes


class SigningGuard:
    """Refuses to sign a vote that conflicts with, or goes back behind, the last one signed."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[VoteStep, Signed] = {}

    def last(self, step: VoteStep) -> Signed | None:
        return self._last.get(step)

    def permits(self, step: VoteStep, height: int, view: int, block_hash: bytes) -> bool:
        """True when signing this vote cannot contradict an earlier one of the same step."""
        last = self._last.get(step)
        if last is None:
            return True
        if (height, view) != (last.height, last.view):
            return (height, view) > (last.height, last.view)
        return block_hash == last.block_hash

    def record(self, step: VoteStep, height: int, view: int, block_hash: bytes) -> None:
        """Remember a vote about to be signed; raise DoubleSignError if it conflicts."""
        if not self.permits(step, height, view, block_hash):
            last = self._last[step]
            raise DoubleSignError(
                f"refusing to sign {step.name} for {block_hash.hex()[:16]} at height {height} "
                f"view {view}: already signed {last.block_hash.hex()[:16]} at height "
                f"{last.height} view {last.view}"
            )
        self._last[step] = Signed(height, view, block_hash)


@dataclass(frozen=True, slots=True)
class Restored:
    """The engine's records as found at start (any of them may be missing)."""

    prepare: Vote | None
    prepared: PreparedRecord | None
    view: ViewRecord | None
    last_commit: Certificate | None

    def guard(self) -> SigningGuard:
        guard = SigningGuard()
        if self.prepare is not None:
            v = self.prepare
            guard.record(VoteStep.PREPARE, v.height, v.round, v.block_hash)
        if self.prepared is not None:
            v = self.prepared.certificate.vote
            guard.record(VoteStep.COMMIT, v.height, v.round, v.block_hash)
        return guard


def restore(persisted: Mapping[bytes, bytes]) -> Restored:
    """Decode the engine's records; a record that does not decode stops the engine."""
    try:
        raw = persisted.get(PREPARE_KEY)
        prepare = None if raw is None else decode_record(raw, Vote)
        raw = persisted.get(PREPARED_KEY)
        prepared = None if raw is None else decode_record(raw, PreparedRecord)
        raw = persisted.get(VIEW_KEY)
        view = None if raw is None else decode_record(raw, ViewRecord)
        raw = persisted.get(LAST_COMMIT_KEY)
        last_commit = None if raw is None else decode_record(raw, Certificate)
    except DecodeError as exc:
        raise PersistedStateError(f"a persisted PBFT record is damaged: {exc.message}") from None
    if prepare is not None and prepare.step != VoteStep.PREPARE:
        raise PersistedStateError("the persisted prepare vote is not a PREPARE vote")
    return Restored(prepare, prepared, view, last_commit)


def prepare_record(vote: Vote) -> bytes:
    return vote.encode()


def prepared_record(certificate: Certificate, block: Block) -> bytes:
    return PreparedRecord(certificate, block).encode()


def view_record(height: int, view: int, changing: bool) -> bytes:
    return ViewRecord(height, view, changing).encode()

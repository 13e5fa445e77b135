"""The interface every consensus engine implements: inputs in, a batch of actions out.

Engines are pure state machines in the style of etcd's raft: they never touch a socket, a disk
or a clock.  The runtime (node/) calls them with what happened (a tick carrying the current
time, a message from a peer, the block it built on request, a block it committed) and applies
the returned actions *in order*: records are persisted (synced) before any message leaves, so
a crash can never make a validator forget a vote it sent; then messages are sent, blocks
committed, and the next timer armed.  The same engine code runs under the node and under the
deterministic cluster simulator in tests/sim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from protocol.block import Block, Certificate
from protocol.encoding import Record

# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Persist:
    """Store ``value`` under the engine's ``key`` (synced) before anything after it happens."""

    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    message: Record


@dataclass(frozen=True, slots=True)
class Send:
    to: bytes  # validator public key
    message: Record


@dataclass(frozen=True, slots=True)
class RequestProposal:
    """Ask the runtime to build a block at ``height`` from its mempool and hand it back."""

    height: int
    round: int
    prev_hash: bytes
    min_timestamp_ms: int


@dataclass(frozen=True, slots=True)
class ValidateBlock:
    """Ask the runtime to check and execute ``block`` on the committed head's state.

    The runtime answers with ``on_block_validated(block_hash, valid, now_ms)``, in the same
    batch or later.  Engines vote for a block only after it was found valid.
    """

    block: Block


@dataclass(frozen=True, slots=True)
class SyncTo:
    """The engine saw evidence that the chain reached ``height``: fetch certified blocks."""

    height: int


@dataclass(frozen=True, slots=True)
class CommitBlock:
    block: Block
    certificate: Certificate


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call ``on_tick`` no later than ``at_ms`` (replaces the previous timer)."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    """Proof that ``offender`` misbehaved (e.g. two signed votes for one height and round)."""

    offender: bytes
    kind: str
    evidence: tuple[Record, ...]


Action = (
    Persist
    | Broadcast
    | Send
    | RequestProposal
    | ValidateBlock
    | SyncTo
    | CommitBlock
    | SetTimer
    | ReportEvidence
)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """What the runtime has committed when the engine starts or after each commit."""

    height: int
    block_hash: bytes
    timestamp_ms: int


class Engine(Protocol):
    """A consensus engine.  Every method returns the actions the runtime must apply."""

    name: str

    def start(self, head: ChainHead, persisted: Mapping[bytes, bytes], now_ms: int) -> list[Action]:
        """Resume from the committed head and the engine's own persisted records."""
        ...

    def decode_message(self, data: bytes) -> Record:
        """Decode a peer's consensus message (raises DecodeError); the runtime calls this."""
        ...

    def on_tick(self, now_ms: int) -> list[Action]: ...

    def on_message(self, sender: bytes, message: Record, now_ms: int) -> list[Action]: ...

    def on_proposal(self, block: Block | None, now_ms: int) -> list[Action]:
        """The runtime's answer to RequestProposal; None when there is nothing to propose."""
        ...

    def on_block_validated(self, block_hash: bytes, valid: bool, now_ms: int) -> list[Action]:
        """The runtime's answer to ValidateBlock."""
        ...

    def on_block_committed(self, head: ChainHead, now_ms: int) -> list[Action]:
        """A block was committed: one this engine decided, or one fetched while catching up."""
        ...

    def on_pending_work(self, pending: bool, now_ms: int) -> list[Action]:
        """The mempool became non-empty (True) or empty (False).

        Lets a replica notice a primary that has work to propose but does not.
        """
        ...

    def status(self) -> Mapping[str, int | str]:
        """Round/view and similar figures for /v1/status."""
        ...


def actions_of(*batches: Sequence[Action]) -> list[Action]:
    return [a for batch in batches for a in batch]

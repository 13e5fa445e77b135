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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gridchain.consensus.certificates import CommitRule
from gridchain.protocol.block import Block, Certificate
from gridchain.protocol.encoding import Record

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
    """Ask the runtime to build a block at ``height`` from its mempool and hand it back.

    ``prev_hash`` is normally the committed head; an engine with forks (pob) may name a block
    it has not committed yet, as long as the runtime built or validated that block before.
    The runtime answers ``on_proposal(None)`` when it cannot build on ``prev_hash``.
    """

    height: int
    round: int
    prev_hash: bytes
    min_timestamp_ms: int
    #: Build a block even with nothing to carry: pob needs blocks on top of a pending block
    #: with content before that content can become final.
    allow_empty: bool = False
    #: At most this many transactions of at most ``max_bytes`` encoded bytes (pob sizes its
    #: blocks to the round, ADR 0045); None: the chain's ``max_block_txs`` and the runtime's
    #: byte limit.
    max_txs: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ValidateBlock:
    """Ask the runtime to check and execute ``block`` on the committed head's state.

    The runtime answers with ``on_block_validated(block_hash, valid, now_ms, reason)``, in the
    same batch or later; ``reason`` is the refusal's error code (``benefit_mismatch`` when the
    header claims another benefit than the one recomputed from its schedule).  Engines vote for
    a block only after it was found valid.  The parent may be a block that is not committed yet
    (pob's forks) if the runtime validated it earlier; a block whose parent the runtime does
    not know is answered invalid with reason ``unknown_parent``.
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
    """What the runtime has committed when the engine starts or after each commit.

    ``validators`` is the set that certifies the next height (``height + 1``), in its order,
    told by the driver from the committed state (market/validators.py, ADR 0035): the engine
    votes and counts votes for that height with it, and when it differs from the set it had,
    it switches.  Empty means "the set the engine was built with" (tests that drive an engine
    by hand, chains whose set never changes).
    """

    height: int
    block_hash: bytes
    timestamp_ms: int
    validators: tuple[bytes, ...] = ()


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

    def on_block_validated(
        self, block_hash: bytes, valid: bool, now_ms: int, reason: str = ""
    ) -> list[Action]:
        """The runtime's answer to ValidateBlock (``reason``: the error code when invalid)."""
        ...

    def on_block_committed(self, head: ChainHead, now_ms: int) -> list[Action]:
        """A block was committed: one this engine decided, or one fetched while catching up."""
        ...

    def on_pending_work(self, pending: bool, now_ms: int) -> list[Action]:
        """The mempool became non-empty (True) or empty (False).

        Lets a replica notice a primary that has work to propose but does not.
        """
        ...

    def commit_rule(self, block: Block) -> CommitRule:
        """Who may sign ``block``'s certificate, how many distinct signatures it needs and for
        which vote step, in the validator set valid at ``block``'s height: the set of the
        engine's next height, which the driver told it in the last ChainHead (the driver asks
        only about the block after its head, and checks that the signers the rule admits are
        in the chain's set for that height).

        The chain driver checks every certificate (the engine's own decisions and fetched
        blocks) against this with :func:`consensus.certificates.check_certificate`: 2f+1
        validators' commit votes for pbft, the quorum's precommits for epob, the block's own
        proposer for pob (whose finality is by depth, not by votes), the one validator for solo.
        """
        ...

    def status(self) -> Mapping[str, int | str]:
        """Round/view and similar figures for /v1/status."""
        ...


def actions_of(*batches: Sequence[Action]) -> list[Action]:
    return [a for batch in batches for a in batch]


Step = Callable[[int], "list[Action] | None"]


def run_steps(steps: Sequence[Step], now_ms: int) -> list[Action]:
    """Take the first step that can act, again and again, until none can; return the actions.

    Engines written as a list of guarded steps (each returns None when it cannot act, or its
    actions after changing the state so it will not take the same step again) share this
    loop; the order of ``steps`` is their priority, most decisive first.
    """
    actions: list[Action] = []
    for _ in range(64):  # a handful of steps settle it; the bound only guards against a bug
        for step in steps:
            out = step(now_ms)
            if out is not None:
                actions.extend(out)
                break
        else:
            break
    return actions

"""The message log of one height: verified votes, pre-prepares, view changes and new views.

Only messages whose signatures verified are stored, and from each validator at most one vote
per (view, step): a second, different one is equivocation, reported as evidence and never
counted, so a Byzantine validator can neither inflate a tally nor grow the log without bound.
The engine keeps one log per height between the watermarks and drops whole logs when a
checkpoint becomes stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridchain.consensus.pbft.messages import NewView, PrePrepare, ViewChange
from gridchain.consensus.pbft.quorum import ValidatorSet
from gridchain.protocol.block import Block, Certificate, Vote, VoteSignature
from gridchain.protocol.encoding import Record


@dataclass(slots=True)
class Tally:
    """Votes of one step at one height: the first vote of each validator in each view."""

    #: (view, signer) -> (block hash, the message that carried the vote)
    first: dict[tuple[int, bytes], tuple[bytes, Record]] = field(default_factory=dict)
    #: (view, block hash) -> signer -> signature, in arrival order
    sigs: dict[tuple[int, bytes], dict[bytes, VoteSignature]] = field(default_factory=dict)

    def add(
        self, view: int, block_hash: bytes, signature: VoteSignature, message: Record
    ) -> Record | None:
        """Count a verified vote; return the earlier conflicting message, if there is one."""
        key = (view, signature.validator)
        known = self.first.get(key)
        if known is not None:
            return None if known[0] == block_hash else known[1]
        self.first[key] = (block_hash, message)
        self.sigs.setdefault((view, block_hash), {})[signature.validator] = signature
        return None

    def voted(self, view: int, signer: bytes) -> bytes | None:
        known = self.first.get((view, signer))
        return None if known is None else known[0]

    def count(self, view: int, block_hash: bytes) -> int:
        return len(self.sigs.get((view, block_hash), ()))

    def certificate(self, vote: Vote, validators: ValidatorSet, quorum: int) -> Certificate | None:
        """``quorum`` signatures over ``vote`` in genesis order, if that many were counted."""
        sigs = self.sigs.get((vote.round, vote.block_hash), {})
        if len(sigs) < quorum:
            return None
        chosen = validators.ordered(list(sigs))[:quorum]
        return Certificate(vote, tuple(sigs[k] for k in chosen))

    def quorums(self, quorum: int) -> list[tuple[int, bytes]]:
        """(view, block hash) pairs with at least ``quorum`` votes, highest view first."""
        found = [key for key, sigs in self.sigs.items() if len(sigs) >= quorum]
        return sorted(found, reverse=True)


@dataclass(slots=True)
class HeightLog:
    height: int
    #: view -> the first valid pre-prepare of that view's primary
    pre_prepares: dict[int, PrePrepare] = field(default_factory=dict)
    prepares: Tally = field(default_factory=Tally)
    commits: Tally = field(default_factory=Tally)
    #: target view -> signer -> verified view change (stored without its block)
    view_changes: dict[int, dict[bytes, ViewChange]] = field(default_factory=dict)
    #: view -> a new view that verified
    new_views: dict[int, NewView] = field(default_factory=dict)
    #: blocks carried by verified messages, by hash
    blocks: dict[bytes, Block] = field(default_factory=dict)

    def highest_targets(self) -> dict[bytes, int]:
        """The highest view each validator asked to move to at this height."""
        out: dict[bytes, int] = {}
        for view, senders in self.view_changes.items():
            for signer in senders:
                if out.get(signer, -1) < view:
                    out[signer] = view
        return out

    def message_count(self) -> int:
        """How many messages the log holds (for the memory bound tests)."""
        return (
            len(self.pre_prepares)
            + len(self.prepares.first)
            + len(self.commits.first)
            + sum(len(v) for v in self.view_changes.values())
            + len(self.new_views)
        )

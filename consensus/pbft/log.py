"""The message log of one height: verified votes, pre-prepares, view changes and new views.

Only messages whose signatures verified are stored, and from each validator at most one vote
per (view, step): a second, different one is equivocation, reported as evidence and never
counted, so a Byzantine validator can neither inflate a tally nor grow the log without bound.
The engine keeps one log per height between the watermarks and drops whole logs when a
checkpoint becomes stable.  The prepares and commits are counted by consensus/kernel/tally.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridchain.consensus.kernel.tally import Tally
from gridchain.consensus.pbft.messages import NewView, PrePrepare, ViewChange
from gridchain.protocol.block import Block


@dataclass(slots=True)
class HeightLog:
    height: int
    #: prepares (a pre-prepare counts as its primary's prepare), counted by kernel/tally.py
    prepares: Tally
    commits: Tally
    #: view -> the first valid pre-prepare of that view's primary
    pre_prepares: dict[int, PrePrepare] = field(default_factory=dict)
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

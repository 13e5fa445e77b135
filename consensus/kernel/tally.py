"""Votes of one step at one height, counted once per validator and round: PBFT's prepares and
commits, ePoB's prevotes and precommits.

Only the first vote of each validator in each round counts; a second, different one is handed
back as evidence of equivocation.  The pairs (round, block hash) that reach a quorum are kept
highest round first, which is the order every engine looks for a decision or a lock in.
(PoB's votes are announces naming a parent block, counted in its block tree: see
consensus/pob/tree.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridchain.consensus.kernel.validators import ValidatorSet
from gridchain.protocol.block import Certificate, Vote, VoteSignature
from gridchain.protocol.encoding import Record


@dataclass(slots=True)
class Tally:
    """Votes of one step at one height: the first vote of each validator in each round."""

    #: how many votes make a quorum
    q: int
    #: (round, signer) -> (block hash, the message that carried the vote)
    first: dict[tuple[int, bytes], tuple[bytes, Record]] = field(default_factory=dict)
    #: (round, block hash) -> signer -> signature, in arrival order
    sigs: dict[tuple[int, bytes], dict[bytes, VoteSignature]] = field(default_factory=dict)
    #: (round, block hash) pairs that reached q votes, highest round first
    reached: list[tuple[int, bytes]] = field(default_factory=list)

    def add(
        self,
        round_: int,
        block_hash: bytes,
        signature: VoteSignature,
        message: Record,
        *,
        certified: bool = False,
    ) -> Record | None:
        """Count a verified vote; return the earlier conflicting message, if there is one.

        A validator's second, different vote in a round is not counted, unless it comes in a
        ``certified`` quorum (a polka someone else assembled): that certificate proves the
        quorum whatever this validator heard first, so all of its signatures count.
        """
        key = (round_, signature.validator)
        known = self.first.get(key)
        earlier: Record | None = None
        if known is None:
            self.first[key] = (block_hash, message)
        elif known[0] != block_hash:
            earlier = known[1]
            if not certified:
                return earlier
        sigs = self.sigs.setdefault((round_, block_hash), {})
        if signature.validator in sigs:
            return earlier
        sigs[signature.validator] = signature
        if len(sigs) == self.q:
            self.reached.append((round_, block_hash))
            self.reached.sort(reverse=True)
        return earlier

    def voted(self, round_: int, signer: bytes) -> bytes | None:
        """The block ``signer`` voted for first in ``round_``, if any."""
        known = self.first.get((round_, signer))
        return None if known is None else known[0]

    def quorums(self) -> list[tuple[int, bytes]]:
        """(round, block hash) pairs with at least q votes, highest round first."""
        return self.reached

    def certificate(self, vote: Vote, validators: ValidatorSet) -> Certificate | None:
        """q signatures over ``vote`` in genesis order, if that many were counted."""
        sigs = self.sigs.get((vote.round, vote.block_hash), {})
        if len(sigs) < self.q:
            return None
        chosen = validators.ordered(list(sigs))[: self.q]
        return Certificate(vote, tuple(sigs[k] for k in chosen))

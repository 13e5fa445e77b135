"""The tree of validated, not yet final blocks above the committed head, with their votes.

Pure bookkeeping for engine.py: which blocks this validator has validated (each with the
summed benefit of its branch), which announces vote for which block, which blocks are
*notarized* (q announces of the round after the block's own name it as their parent) and which
block the finality rule makes final.  The root is the committed head: it counts as notarized
(it is final) and all blocks in the tree descend from it.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Final

from gridchain.consensus.kernel.validators import quorum_size
from gridchain.consensus.pob.messages import Announce, BlockMessage
from gridchain.protocol.crypto import sha256

#: Finality needs at least three notarized blocks of consecutive rounds (Streamlet's rule).
MIN_FINALITY_DEPTH: Final = 3


def tie_key(prev_hash: bytes, proposer: bytes) -> bytes:
    """Breaks ties between equal benefits: the proposer cannot grind it (unlike a block hash,
    which it can vary through the timestamp), and it changes with the parent."""
    return sha256(prev_hash + proposer)


@dataclass(frozen=True, slots=True)
class TreeBlock:
    message: BlockMessage
    block_hash: bytes
    parent: bytes
    height: int
    round: int
    benefit: int
    proposer: bytes
    timestamp_ms: int
    #: summed benefit of the blocks from the root (excluded) up to this one (included)
    weight: int

    def rank_key(self) -> tuple[int, int, bytes]:
        """Smaller is better: the heaviest branch, then the lowest tie key."""
        return (-self.weight, -self.benefit, tie_key(self.parent, self.proposer))


class BlockTree:
    """Validated blocks above the committed head and the votes (announces) for them."""

    def __init__(
        self, quorum: int, root_hash: bytes, root_height: int, root_ms: int, root_round: int | None
    ) -> None:
        self.quorum = quorum
        self.root_hash = root_hash
        self.root_height = root_height
        self.root_ms = root_ms
        #: the round of the committed head, when this validator saw its block (not after a
        #: restart): only then can the head be the first of a finality run
        self.root_round = root_round
        self.blocks: dict[bytes, TreeBlock] = {}
        #: (announce round, named parent) -> voter -> its announce, first announce per voter
        self.votes: dict[tuple[int, bytes], dict[bytes, Announce]] = {}
        #: block -> who may vote for it and how many must (the set of the height after it on
        #: its own branch, ADR 0044); a block without an entry counts every vote against
        #: ``quorum``
        self.voters: dict[bytes, tuple[frozenset[bytes], int]] = {}
        #: set when a block or vote is added (finality may have moved); the engine clears it
        self.changed = False

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self.blocks

    def __len__(self) -> int:
        return len(self.blocks)

    # --- blocks ---------------------------------------------------------------------------

    def knows(self, block_hash: bytes) -> bool:
        return block_hash == self.root_hash or block_hash in self.blocks

    def height_of(self, block_hash: bytes) -> int:
        if block_hash == self.root_hash:
            return self.root_height
        return self.blocks[block_hash].height

    def round_of(self, block_hash: bytes) -> int | None:
        if block_hash == self.root_hash:
            return self.root_round
        return self.blocks[block_hash].round

    def timestamp_of(self, block_hash: bytes) -> int:
        if block_hash == self.root_hash:
            return self.root_ms
        return self.blocks[block_hash].timestamp_ms

    def weight_of(self, block_hash: bytes) -> int:
        return 0 if block_hash == self.root_hash else self.blocks[block_hash].weight

    def add(
        self, message: BlockMessage, block_hash: bytes, voters: frozenset[bytes] | None = None
    ) -> TreeBlock:
        """Add a validated block whose parent is in the tree (KeyError otherwise); only the
        votes of ``voters`` count for it, when given."""
        h = message.block.header
        if not self.knows(h.prev_hash):
            raise KeyError(f"parent {h.prev_hash.hex()} is not in the tree")
        node = TreeBlock(
            message,
            block_hash,
            h.prev_hash,
            h.height,
            h.round,
            h.benefit,
            h.proposer,
            h.timestamp_ms,
            self.weight_of(h.prev_hash) + h.benefit,
        )
        self.blocks[block_hash] = node
        if voters is not None:
            self.voters[block_hash] = (voters, quorum_size(len(voters), "bft"))
        self.changed = True
        return node

    def chain_to(self, block_hash: bytes) -> list[TreeBlock]:
        """The blocks from just above the root up to ``block_hash``, oldest first."""
        out: list[TreeBlock] = []
        current = block_hash
        while current != self.root_hash:
            node = self.blocks[current]
            out.append(node)
            current = node.parent
        out.reverse()
        return out

    def reroot(self, root_hash: bytes, root_height: int, root_ms: int) -> None:
        """The committed head moved to ``root_hash``: keep only its descendants."""
        old = self.blocks.get(root_hash)
        self.root_round = old.round if old is not None else None
        self.root_hash, self.root_height, self.root_ms = root_hash, root_height, root_ms
        keep: dict[bytes, TreeBlock] = {}
        # Blocks were added parent first, so one pass in insertion order sees parents first.
        for block_hash, node in self.blocks.items():
            if node.height <= root_height:
                continue
            if node.parent == root_hash or node.parent in keep:
                keep[block_hash] = node
        self.blocks = keep
        self.voters = {h: v for h, v in self.voters.items() if h in keep}
        self.changed = True

    # --- votes ----------------------------------------------------------------------------

    def add_vote(self, announce: Announce) -> None:
        voters = self.votes.setdefault((announce.round, announce.prev_hash), {})
        if announce.signer not in voters:
            voters[announce.signer] = announce
            self.changed = True

    def notarization(self, block_hash: bytes) -> tuple[Announce, ...]:
        """The announces of the round after the block's that name it (its votes)."""
        node = self.blocks.get(block_hash)
        if node is None:
            return ()
        return tuple(self.votes.get((node.round + 1, block_hash), {}).values())

    def notarized(self, block_hash: bytes) -> bool:
        """The committed head, or a block with q votes from the round after its own."""
        if block_hash == self.root_hash:
            return True
        node = self.blocks.get(block_hash)
        if node is None:
            return False
        votes = self.votes.get((node.round + 1, block_hash), {})
        counted = self.voters.get(block_hash)
        if counted is None:
            return len(votes) >= self.quorum
        members, quorum = counted
        return len(votes) >= quorum and sum(1 for v in votes if v in members) >= quorum

    def max_notarized(self) -> tuple[int, bytes]:
        """The height and hash of the highest notarized block (the root if none is higher)."""
        best = (self.root_height, self.root_hash)
        for block_hash, node in self.blocks.items():
            if node.height > best[0] and self.notarized(block_hash):
                best = (node.height, block_hash)
        return best

    def prune_votes(self, min_round: int, keep: Container[bytes] = ()) -> None:
        """Forget votes of rounds below ``min_round`` unless they notarize a block we hold
        (or one in ``keep``: blocks on their way into the tree)."""
        self.votes = {
            key: voters
            for key, voters in self.votes.items()
            if key[0] >= min_round
            or key[1] in keep
            or (key[1] in self.blocks and self.blocks[key[1]].round + 1 == key[0])
        }

    # --- finality ---------------------------------------------------------------------------

    def final_block(self, depth: int) -> TreeBlock | None:
        """The highest block made final by a run of ``depth`` notarized blocks.

        A run is ``depth`` blocks, each the parent of the next, all notarized, of consecutive
        rounds; the second-to-last block of a run is final with all its ancestors.  The first
        block of a run may be the committed head when its round is known.
        """
        depth = max(depth, MIN_FINALITY_DEPTH)
        best: TreeBlock | None = None
        for block_hash, last in self.blocks.items():
            if not self.notarized(block_hash):
                continue
            candidate = self.blocks.get(last.parent)
            if candidate is None or (best is not None and candidate.height <= best.height):
                continue
            if self._run_ends_at(last, depth):
                best = candidate
        return best

    def _run_ends_at(self, last: TreeBlock, depth: int) -> bool:
        current = last
        for step in range(depth - 1):
            parent_hash = current.parent
            if not self.notarized(parent_hash):
                return False
            parent_round = self.round_of(parent_hash)
            if parent_round is None or parent_round + 1 != current.round:
                return False
            if parent_hash == self.root_hash:
                # the run may start at the head, not reach below it
                return step == depth - 2
            current = self.blocks[parent_hash]
        return True

"""A scripted adversary against a PoB validator-set change (ADR 0049).

Six honest PoB engines (the real ``PobEngine``, which counts votes with ``validators_on``)
and two Byzantine validators run a chain whose set changes from O = {h1, h2, h3, h4, x, z1,
z2} to N = O - x + y at height 4 (governance swaps one key; the same transaction is in both
conflicting blocks of height 2, so both branches have the same schedule: the fork is below the
pending change).  Two Byzantine validators (f = 2 in both sets) vote on both branches, which
an honest validator's lock forbids; the network (this script) delays chosen messages, which
asynchrony allows.  The script follows the trace of ADR 0049:

1. rounds 1-3: B0, B1, B2 at heights 1-3; B0 and B1 are notarized by O, B2 by {z1, z2, y, h1,
   h2} of N, seen by h1 only, which finalizes B1;
2. round 5: z1 proposes C on B0 (height 2); x, h3 and h4 (locked at height 1) vote for it;
3. rounds 6-8: C + 1 and C + 2 are voted by N's h2, h3, h4 and y (locked at height 2 at
   most), which finalizes C + 1 on C.

The set comes from the real governance rule (``schedule_change``): on the code before ADR 0049
it accepts the swap and the engines finalize B1 and C at height 2 (the run fails its safety
check); with ADR 0049 it refuses the swap (``validator_quorum_overlap``), the set stays O, and
the same script finalizes nothing that conflicts.

Run: ``python -m tests.sim.pob_set_fork`` (``--trace`` prints every commit).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from gridchain.consensus.engine import (
    Action,
    Broadcast,
    ChainHead,
    CommitBlock,
    RequestProposal,
    ValidateBlock,
)
from gridchain.consensus.pob.engine import PobEngine
from gridchain.consensus.pob.messages import (
    NO_BLOCK,
    Announce,
    BlockMessage,
    make_announce,
    make_block_message,
)
from gridchain.market.validators import (
    ValidatorChangeError,
    ValidatorEpoch,
    schedule_change,
    set_at,
)
from gridchain.protocol.block import Block, BlockHeader, schedule_root, tx_root
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.encoding import Record
from gridchain.protocol.tx import UpdateValidators
from tests.helpers import det_key, small_bundle

ROUND_MS = 600
GENESIS_MS = 1_000_000
#: the swap is committed at height 2 (in B1 and in C alike): in force from height 4
CHANGE_HEIGHT = 2
ROOT = sha256(b"pob set fork root")
STEP_MS = 5
LAST_ROUND = 12
#: round -> the block z1 or z2 proposes in it: (label, proposer, parent label, height)
PROPOSALS: dict[int, tuple[str, str, str | None, int]] = {
    1: ("B0", "z1", None, 1),
    2: ("B1", "z2", "B0", 2),
    3: ("B2", "z1", "B1", 3),
    5: ("C", "z1", "B0", 2),
    6: ("C+1", "z2", "C", 3),
    7: ("C+2", "z1", "C+1", 4),
}
#: round -> the block z1 and z2 announce on and the height they build (a vote when that
#: block is of the round before); later rounds repeat the last, to keep the rounds going
VOTES: dict[int, tuple[str, int]] = {
    2: ("B0", 2),
    3: ("B1", 3),
    4: ("B2", 4),
    5: ("B0", 2),
    6: ("C", 3),
    7: ("C+1", 4),
    8: ("C+2", 5),
}


@dataclass
class ForkOutcome:
    """What the run did: the change's refusal (None: accepted), each honest validator's
    commits, and the first height two of them committed different blocks at."""

    refused: str | None
    commits: dict[str, dict[int, bytes]] = field(default_factory=dict)
    conflict: int | None = None
    trace: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return self.conflict is None


class SetFork:
    """The cluster, the network's delivery rule and the Byzantine validators' script."""

    def __init__(self, *, forced: bool = False) -> None:
        """``forced``: put the swap in the schedule even if governance refuses it (what the
        code before ADR 0049 accepted), to show the script still forks the engines then."""
        bundle = small_bundle(validators=7, engine="pob")
        self.genesis = bundle.genesis
        self.chain_id = bundle.genesis.chain_id
        keys = [v.key for v in bundle.validators]
        self.keys: dict[str, SigningKey] = dict(
            zip(("h1", "h2", "h3", "h4", "x", "z1", "z2"), keys, strict=True)
        )
        self.keys["y"] = det_key("pob set fork joiner")
        self.names = {k.public_key: name for name, k in self.keys.items()}
        epochs: tuple[ValidatorEpoch, ...] = (ValidatorEpoch(0, self.genesis.validator_keys()),)
        swap = UpdateValidators(add=(self.pk("y"),), remove=(self.pk("x"),))
        self.outcome = ForkOutcome(refused=None)
        try:
            epochs = schedule_change(epochs, self.genesis, swap, CHANGE_HEIGHT)
        except ValidatorChangeError as exc:
            self.outcome.refused = exc.code
            if forced:
                kept = tuple(k for k in epochs[-1].keys if k != self.pk("x"))
                epochs = (*epochs, ValidatorEpoch(CHANGE_HEIGHT + 2, (*kept, self.pk("y"))))
        self.epochs = epochs
        self.engines: dict[str, PobEngine] = {
            name: PobEngine(
                self.keys[name],
                self.chain_id,
                self.genesis.validator_keys(),
                round_ms=ROUND_MS,
                genesis_time_ms=GENESIS_MS,
                finality_depth=3,
                validators_on=self.validators_on,
            )
            for name in ("h1", "h2", "h3", "h4", "x", "y")
        }
        self.blocks: dict[str, Block] = {}
        self.now = 0

    def pk(self, name: str) -> bytes:
        return self.keys[name].public_key

    def validators_on(self, parent: bytes, height: int) -> tuple[bytes, ...]:
        """Both branches carry the change at height 2: the schedule's set of ``height``."""
        return set_at(self.epochs, height)

    # --- the network -----------------------------------------------------------------------

    def delivers(self, sender: str, receiver: str, message: Record) -> bool:
        """Asynchrony, chosen by the adversary: B2 reaches h1, h2 and y only; the votes that
        notarize B2 reach everyone but h2 and y (h3, h4 and x do not hold B2, so they only
        pace their rounds with them); h1, once it finalized B1, is cut off."""
        if sender == "h1" and isinstance(message, Announce) and message.round >= 5:
            return False
        b2 = self.blocks.get("B2")
        if isinstance(message, BlockMessage) and b2 is not None and message.block == b2:
            return receiver in ("h1", "h2", "y")
        if isinstance(message, Announce) and b2 is not None and message.prev_hash == b2.hash():
            return receiver not in ("h2", "y")
        return True

    def send(self, sender: str, message: Record) -> None:
        for name, engine in self.engines.items():
            if name != sender and self.delivers(sender, name, message):
                self.run(name, engine.on_message(self.pk(sender), message, self.now))

    def run(self, name: str, actions: list[Action]) -> None:
        """Carry out an honest engine's actions: its proposals are always None (only the
        Byzantine validators make blocks here), every block is valid, requests for missing
        blocks are lost."""
        engine = self.engines[name]
        for action in actions:
            if isinstance(action, Broadcast):
                self.send(name, action.message)
            elif isinstance(action, RequestProposal):
                self.run(name, engine.on_proposal(None, self.now))
            elif isinstance(action, ValidateBlock):
                block_hash = action.block.hash()
                self.run(name, engine.on_block_validated(block_hash, True, self.now))
            elif isinstance(action, CommitBlock):
                self.commit(name, action.block)

    def commit(self, name: str, block: Block) -> None:
        mine = self.outcome.commits.setdefault(name, {})
        mine[block.height] = block.hash()
        label = next((k for k, b in self.blocks.items() if b.hash() == block.hash()), "?")
        at = self.now - GENESIS_MS
        self.outcome.trace.append(f"{at} ms: {name} commits h{block.height} {label}")
        for other, theirs in self.outcome.commits.items():
            known = theirs.get(block.height)
            differs = other != name and known is not None and known != block.hash()
            if differs and self.outcome.conflict is None:
                self.outcome.conflict = block.height
        engine = self.engines[name]
        head = ChainHead(block.height, block.hash(), block.header.timestamp_ms)
        self.run(name, engine.on_block_committed(head, self.now))

    # --- the Byzantine validators ------------------------------------------------------------

    def propose(self, label: str, who: str, parent: str | None, height: int, round_: int) -> None:
        prev = ROOT if parent is None else self.blocks[parent].hash()
        header = BlockHeader(
            self.chain_id,
            height,
            prev,
            GENESIS_MS + round_ * ROUND_MS + 1,
            self.pk(who),
            round_,
            0,
            tx_root(()),
            schedule_root(()),
            sha256(label.encode()),
        )
        block = Block(header, (), ())
        self.blocks[label] = block
        self.send(who, make_block_message(self.keys[who], self.chain_id, block))

    def vote(self, round_: int, parent: str, height: int, block: str | None = None) -> None:
        """z1 and z2 announce in ``round_`` on ``parent`` (a vote for it when it is a block of
        the round before); the one named in ``block`` proposes it with its announce."""
        for who in ("z1", "z2"):
            mine = self.blocks[block] if block is not None and self.proposer(block) == who else None
            announce = make_announce(
                self.keys[who],
                self.chain_id,
                height=height,
                round_=round_,
                prev_hash=self.blocks[parent].hash(),
                block_hash=NO_BLOCK if mine is None else mine.hash(),
                benefit=0,
                final_height=0,
            )
            self.send(who, announce)

    def proposer(self, label: str) -> str:
        return self.names[self.blocks[label].header.proposer]

    def script(self, round_: int) -> None:
        """What z1 and z2 do a quarter into each round (after the honest announces of the
        round, before the round's blocks are due): propose the round's block of the trace,
        and announce on the block they vote for."""
        proposal = PROPOSALS.get(round_)
        if proposal is not None:
            label, who, parent, height = proposal
            self.propose(label, who, parent, height, round_)
        parent_label, height = VOTES.get(round_, VOTES[max(VOTES)])
        if round_ > 1:
            self.vote(round_, parent_label, height, None if proposal is None else proposal[0])

    # --- the run -------------------------------------------------------------------------------

    def play(self) -> ForkOutcome:
        self.now = GENESIS_MS
        head = ChainHead(0, ROOT, GENESIS_MS)
        for name, engine in self.engines.items():
            self.run(name, engine.start(head, {}, self.now))
        for round_ in range(1, LAST_ROUND + 1):
            start = GENESIS_MS + round_ * ROUND_MS
            while self.now < start + ROUND_MS // 4:
                self.now += STEP_MS
                for name, engine in self.engines.items():
                    self.run(name, engine.on_tick(self.now))
            self.script(round_)
            while self.now < start + ROUND_MS:
                self.now += STEP_MS
                for name, engine in self.engines.items():
                    self.run(name, engine.on_tick(self.now))
        return self.outcome


def run_set_fork(*, forced: bool = False) -> ForkOutcome:
    return SetFork(forced=forced).play()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument(
        "--forced", action="store_true", help="schedule the swap even if governance refuses it"
    )
    args = parser.parse_args(argv)
    outcome = run_set_fork(forced=args.forced)
    if args.trace:
        print("\n".join(outcome.trace))
    refusal = "accepted" if outcome.refused is None else f"refused ({outcome.refused})"
    heights = {name: max(c, default=0) for name, c in sorted(outcome.commits.items())}
    if outcome.safe:
        print(f"set fork: swap {refusal}; safe; committed heights {heights}")
        return 0
    print(
        f"set fork: swap {refusal}; SAFETY VIOLATED: two honest validators committed "
        f"different blocks at height {outcome.conflict}; committed heights {heights}"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""How much one PoB block may carry: what a round can carry, not a fixed cap (ADR 0045).

PoB makes one block per round, so a block cap fixed for every round length (the chain's
``max_block_txs``, sized for the other engines' block interval) caps throughput at
``max_block_txs / round_ms`` however idle the validators are.  The budget here grows with the
round instead: the winner's block leaves at the end of the announce window (``round_ms // 3``)
and every validator must have it verified and executed a third of a round later, before the
fallback ranks' slots run out; so a block carries what a validator executes, and a link
carries, in a third of a round.

The budget is a function of ``round_ms`` alone, the same at every validator, so it is part of
block validity: a proposer reaps at most this much (``RequestProposal.max_txs`` /
``max_bytes``) and a validator refuses a block over it before executing it.  Changing the
constants below changes which blocks are valid (a new chain or a coordinated upgrade).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gridchain.protocol.block import MAX_BLOCK_BYTES, MAX_BLOCK_TXS, Block

#: Transactions a validator is sized to verify and execute per second.  A transfer costs
#: about 0.15 ms to verify and 0.05 ms to apply on one core of the reference machine (ADR 0032's
#: per-core verify rate is ~7,000/s, and admission has usually verified it already): 6,000/s
#: leaves room for a loaded device.
VALIDATOR_TXS_PER_S: Final = 6_000
#: Bytes of transactions a validator's links carry per second (32 Mbit/s, a community LAN).
LINK_BYTES_PER_S: Final = 4_000_000
#: The smallest budget, however short the round: a round always carries some transactions.
MIN_BLOCK_TXS: Final = 50


@dataclass(frozen=True, slots=True)
class BlockBudget:
    """At most ``max_txs`` transactions of at most ``max_bytes`` encoded bytes in all."""

    max_txs: int
    max_bytes: int

    def admits(self, block: Block) -> bool:
        """Whether ``block``'s transactions fit (the schedule is bounded by the chain's C&D
        limits, not by the round)."""
        if len(block.txs) > self.max_txs:
            return False
        return sum(len(tx.encoded) for tx in block.txs) <= self.max_bytes


def round_budget(round_ms: int) -> BlockBudget:
    """What a block of a round of ``round_ms`` may carry: a third of the round's worth of
    execution and of link capacity, within the protocol's block limits."""
    carry_ms = max(1, round_ms // 3)
    txs = max(MIN_BLOCK_TXS, carry_ms * VALIDATOR_TXS_PER_S // 1000)
    size = carry_ms * LINK_BYTES_PER_S // 1000
    return BlockBudget(min(txs, MAX_BLOCK_TXS), max(1, min(size, MAX_BLOCK_BYTES // 2)))

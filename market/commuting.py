"""Which transactions commute: their combined effect does not depend on their order.

Why: a follower's mempool is in gossip arrival order and a proposer's block in its own pool
order, so a committed block is rarely the oldest pending transactions.  The pool then had to
re-apply everything still pending after every commit (ADR 0032 measured each transaction
applied about five times on a follower).  When every pending transaction commutes, it need
not: the pool's pending state is the committed state *before* the block with every pending
transaction applied, and the block applied some of those very transactions, so the state after
the block with the rest applied is the same state (ADR 0040).

A plain :class:`~protocol.tx.Transfer` commutes with other plain transfers:

- its effect is fixed once it applies: the sender's balance goes down and its nonce up by one,
  the recipient's balance up, by the transfer's own amount; sums do not depend on order;
- whether it applies depends on the sender's nonce, which only the sender's own transactions
  move and which keep their nonce order in any valid block, on the recipient being registered,
  which no transfer changes, and on the sender's spendable balance, which other transfers only
  *raise*: moved earlier (the block took some of the later ones first), a transfer finds at
  least the balance it found in the pool;
- a balance never overflows (it is bounded by the supply).

Everything else reads the block's time or context (orders, C&D requests, readings, sealed
bodies) or changes who may transact (registrations, mint, burn), and is re-applied.
"""

from __future__ import annotations

from gridchain.protocol.tx import Transaction, Transfer


def commutes(tx: Transaction) -> bool:
    """Whether ``tx`` commutes with every other transaction for which this is true."""
    return type(tx.body) is Transfer

"""The recheck after a commit re-applies only what the block can have changed.

Why: a follower's pool is in gossip arrival order and the proposer's block in the proposer's,
so after almost every commit the pool is not a prefix of the block and would be applied again
in full: in `bench consensus` that made a follower apply each transaction about five times.
Keeping the recorded writes of a transaction is only right when applying it again would give
the same writes, so the property here is the whole contract: given the keys the block wrote,
the pool ends exactly as a full re-application leaves it (same drops, same pending state, same
order), over random pools and random blocks, and stays so over a second commit.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gridchain.genesis.builder import GenesisBundle, NamedKey
from gridchain.market.app import Application, BlockContext
from gridchain.market.errors import ApplicationError
from gridchain.market.orders import MarketEvent
from gridchain.market.state import MerkleState, Overlay
from gridchain.node.mempool import Mempool
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.tx import Transaction
from tests.helpers import block_context, burn, transfer

#: (sender index, recipient index or 3 = governance, amount in mc); governance burns are 4
TxSpec = tuple[int, int, int]


def _pool(app: Application, state: MerkleState) -> Mempool:
    return Mempool(app, state, lambda: block_context(1), max_txs=1000, max_bytes=1 << 24)


def _txs(bundle: GenesisBundle, app: Application, specs: list[TxSpec]) -> list[Transaction]:
    peers: list[NamedKey] = list(bundle.participants)
    chain_id = bundle.genesis.chain_id
    nonces = [0, 0, 0, 0]
    out = []
    for sender, to, amount in specs:
        if sender == 3:  # governance burns from a participant's account
            out.append(burn(bundle.governance, chain_id, nonces[3], peers[to % 3], amount))
        else:
            recipient = app.governance_address if to == 3 else peers[to]
            out.append(transfer(peers[sender], chain_id, nonces[sender], recipient, amount))
        nonces[sender] += 1
    return out


def _admit(pool: Mempool, txs: list[Transaction]) -> None:
    for tx in txs:
        # refused (overspent, or after a refused nonce): both pools refuse alike
        with contextlib.suppress(GridchainError):
            pool.add(tx, len(tx.encode()))


def _snapshot(pool: Mempool) -> tuple[list[Transaction], dict[bytes, bytes | None], int]:
    return pool.reap(10_000, 1 << 30), dict(pool.pending_state.writes), pool.size_bytes


specs = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from([1, 10, 400_000, 700_000])),
    min_size=1,
    max_size=14,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=specs, more=specs, data=st.data())
def test_a_recheck_with_the_blocks_writes_equals_a_full_one(
    bundle: GenesisBundle, specs: list[TxSpec], more: list[TxSpec], data: st.DataObject
) -> None:
    app = Application(bundle.genesis)
    states = [app.genesis_state(), app.genesis_state()]
    fast, full = (_pool(app, s) for s in states)
    txs = _txs(bundle, app, specs + more)
    first, later = txs[: len(specs)], txs[len(specs) :]
    for pool in (fast, full):
        _admit(pool, first)

    for height, arriving in ((1, later), (2, [])):
        pending = fast.reap(10_000, 1 << 30)
        block = data.draw(st.permutations(pending)).copy()
        block = block[: data.draw(st.integers(0, len(block)))]
        try:
            execution = app.execute_block(states[0], block, block_context(height))
        except ApplicationError:
            assume(False)  # this order does not execute: no validator would commit it
            raise
        for s in states:
            s.apply(execution.writes)

        dropped_fast = fast.update_after_commit(block, written=execution.writes)
        dropped_full = full.update_after_commit(block)

        assert dropped_fast == dropped_full
        assert _snapshot(fast) == _snapshot(full)
        for pool in (fast, full):
            _admit(pool, arriving)
        assert _snapshot(fast) == _snapshot(full)


def test_a_transaction_the_block_did_not_touch_is_not_applied_again(
    bundle: GenesisBundle, chain_id: bytes
) -> None:
    app = Application(bundle.genesis)
    state = app.genesis_state()
    pool = _pool(app, state)
    a, b, c = bundle.participants
    a0 = transfer(a, chain_id, 0, b, 10)
    b0 = transfer(b, chain_id, 0, a, 20)
    c0 = transfer(c, chain_id, 0, app.governance_address, 30)  # reads only c and governance
    c1 = transfer(c, chain_id, 1, a, 40)  # reads a's account, which the block writes
    _admit(pool, [a0, b0, c0, c1])
    block = [b0, a0]  # the proposer's order: not a prefix of this pool
    execution = app.execute_block(state, block, block_context(1))
    state.apply(execution.writes)

    applied: list[Transaction] = []
    apply_tx = app.apply_tx

    def counting(
        tx: Transaction, view: Overlay, ctx: BlockContext, *, admission: bool = False
    ) -> list[MarketEvent]:
        applied.append(tx)
        return apply_tx(tx, view, ctx, admission=admission)

    app.apply_tx = counting  # type: ignore[method-assign]
    assert pool.update_after_commit(block, written=execution.writes) == []
    assert applied == [c1]
    assert pool.reap(10, 1 << 20) == [c0, c1]

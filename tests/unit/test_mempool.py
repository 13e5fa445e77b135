"""The mempool: admission against the pending state, bounds, reaping and recheck after commit.

Why: a block is built from the pool in arrival order and must always execute, so every
admitted transaction has already been applied on top of the ones before it; a refused one must
leave no trace (a half-admitted transaction would poison every later check); the bounds stop a
flood; and after a commit the pool must drop what was included and whatever the new state made
invalid, saying why, so clients learn their transaction will never be included.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridchain.genesis.builder import GenesisBundle, NamedKey
from gridchain.market.accounts import get_account
from gridchain.market.app import Application
from gridchain.market.errors import (
    ApplicationError,
    InsufficientBalanceError,
    NonceGapError,
    ReplayedNonceError,
)
from gridchain.market.state import MerkleState
from gridchain.node.mempool import DuplicateTxError, Mempool, MempoolFullError
from gridchain.protocol.errors import GridchainError, SignatureError
from gridchain.protocol.tx import Transaction, Transfer
from tests.helpers import addr, block_context, burn, transfer

START_MC = 1_000_000


def _pool(
    app: Application, state: MerkleState, *, max_txs: int = 100, max_bytes: int = 1 << 20
) -> Mempool:
    return Mempool(app, state, lambda: block_context(1), max_txs=max_txs, max_bytes=max_bytes)


def _add(pool: Mempool, tx: Transaction) -> bytes:
    return pool.add(tx, len(tx.encode()))


def _snapshot(pool: Mempool) -> tuple[int, int, dict[bytes, bytes | None], list[Transaction]]:
    return len(pool), pool.size_bytes, dict(pool.pending_state.writes), pool.reap(1000, 1 << 30)


def _commit(app: Application, state: MerkleState, txs: list[Transaction], height: int) -> None:
    """What the runtime does before it calls update_after_commit."""
    state.apply(app.execute_block(state, txs, block_context(height)).writes)


def _peers(bundle: GenesisBundle) -> tuple[NamedKey, NamedKey, NamedKey]:
    a, b, c = bundle.participants
    return a, b, c


# --- admission -------------------------------------------------------------------------------


def test_a_sender_queues_transactions_in_nonce_order(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    pool = _pool(app, state)
    txs = [transfer(a, chain_id, n, b, 1_000) for n in range(3)]
    hashes = [_add(pool, tx) for tx in txs]

    assert hashes == [tx.hash() for tx in txs]
    assert len(pool) == 3
    assert pool.size_bytes == sum(len(tx.encode()) for tx in txs)
    assert all(h in pool and pool.get(h) == tx for h, tx in zip(hashes, txs, strict=True))
    pending = get_account(pool.pending_state, addr(a))
    assert (pending.nonce, pending.balance_mc) == (3, START_MC - 3_000)
    assert get_account(state, addr(a)).nonce == 0  # the committed state is untouched


def test_nonces_out_of_order_or_replayed_are_refused(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    pool = _pool(app, state)
    with pytest.raises(NonceGapError):
        _add(pool, transfer(a, chain_id, 1, b, 10))
    _add(pool, transfer(a, chain_id, 0, b, 10))
    with pytest.raises(ReplayedNonceError):
        _add(pool, transfer(a, chain_id, 0, b, 11))
    _add(pool, transfer(a, chain_id, 1, b, 10))
    assert len(pool) == 2


def test_queued_transfers_cannot_overspend_together(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    pool = _pool(app, state)
    _add(pool, transfer(a, chain_id, 0, b, 600_000))
    with pytest.raises(InsufficientBalanceError):
        _add(pool, transfer(a, chain_id, 1, b, 600_000))
    assert len(pool) == 1


def test_a_duplicate_is_refused(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    pool = _pool(app, state)
    tx = transfer(a, chain_id, 0, b, 10)
    _add(pool, tx)
    with pytest.raises(DuplicateTxError):
        _add(pool, tx)
    assert len(pool) == 1


def test_the_pool_is_bounded_by_count(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    pool = _pool(app, state, max_txs=2)
    _add(pool, transfer(a, chain_id, 0, b, 10))
    _add(pool, transfer(a, chain_id, 1, b, 10))
    with pytest.raises(MempoolFullError):
        _add(pool, transfer(a, chain_id, 2, b, 10))
    assert len(pool) == 2


def test_the_pool_is_bounded_by_bytes(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    txs = [transfer(a, chain_id, n, b, 10) for n in range(3)]
    size = len(txs[0].encode())
    assert all(len(tx.encode()) == size for tx in txs)
    pool = _pool(app, state, max_bytes=3 * size - 1)
    _add(pool, txs[0])
    _add(pool, txs[1])
    with pytest.raises(MempoolFullError):
        _add(pool, txs[2])
    assert pool.size_bytes == 2 * size

    exact = _pool(app, state, max_bytes=3 * size)
    for tx in txs:
        _add(exact, tx)
    assert exact.size_bytes == 3 * size  # the limit itself is allowed


@pytest.mark.parametrize("refusal", ["duplicate", "full", "invalid", "bad_signature"])
def test_a_refusal_changes_nothing(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes, refusal: str
) -> None:
    a, b, c = _peers(bundle)
    queued = [transfer(a, chain_id, 0, b, 10), transfer(b, chain_id, 0, c, 20)]
    pool = _pool(app, state, max_txs=3)
    for tx in queued:
        _add(pool, tx)
    if refusal == "full":
        _add(pool, transfer(c, chain_id, 0, a, 30))
        queued.append(transfer(c, chain_id, 0, a, 30))
    before = _snapshot(pool)
    good = transfer(a, chain_id, 1, c, 5)
    bad = {
        "duplicate": queued[0],
        "full": good,
        "invalid": transfer(a, chain_id, 1, c, START_MC),
        "bad_signature": Transaction(good.sender, 1, Transfer(addr(c), 6), good.signature),
    }[refusal]
    expected: type[GridchainError] = {
        "duplicate": DuplicateTxError,
        "full": MempoolFullError,
        "invalid": InsufficientBalanceError,
        "bad_signature": SignatureError,
    }[refusal]

    with pytest.raises(expected):
        _add(pool, bad)

    assert _snapshot(pool) == before
    assert before[3] == queued
    assert bad.hash() not in pool or refusal == "duplicate"


# --- reaping ---------------------------------------------------------------------------------


def test_reap_returns_arrival_order_within_the_limits(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, c = _peers(bundle)
    txs = [
        transfer(b, chain_id, 0, a, 1),
        transfer(a, chain_id, 0, c, 2),
        transfer(b, chain_id, 1, c, 3),
        transfer(c, chain_id, 0, b, 4),
    ]
    pool = _pool(app, state)
    sizes = [100, 300, 100, 100]  # the size the caller measured on the wire
    for tx, size in zip(txs, sizes, strict=True):
        pool.add(tx, size)

    assert pool.reap(10, 10_000) == txs
    assert pool.reap(2, 10_000) == txs[:2]
    assert pool.reap(10, 400) == txs[:2]
    # Stops at the first transaction that does not fit rather than skip ahead of it (skipping
    # could put a sender's later nonce in a block without the earlier one).
    assert pool.reap(10, 250) == txs[:1]
    assert pool.reap(10, 99) == []
    assert pool.reap(0, 10_000) == []
    assert len(pool) == 4  # reaping removes nothing


def test_reap_skips_what_the_pending_parent_holds_without_counting_it(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    """A PoB block on a pending parent: the parent's transactions are still in the pool (they
    leave at commit), so they are skipped, and the limits count only what the new block takes
    (ADR 0045; counting them gave the child of a full block nothing new)."""
    a, b, c = _peers(bundle)
    txs = [
        transfer(b, chain_id, 0, a, 1),
        transfer(a, chain_id, 0, c, 2),
        transfer(b, chain_id, 1, c, 3),
        transfer(c, chain_id, 0, b, 4),
    ]
    pool = _pool(app, state)
    for tx in txs:
        pool.add(tx, 100)
    parent = {tx.hash() for tx in txs[:2]}
    assert pool.reap(2, 10_000, parent) == txs[2:]
    assert pool.reap(10, 100, parent) == txs[2:3]
    assert pool.reap(10, 10_000, {tx.hash() for tx in txs}) == []
    assert len(pool) == 4


# --- recheck after a commit ------------------------------------------------------------------


def test_update_after_commit_drops_the_included_transactions(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, c = _peers(bundle)
    txs = [transfer(a, chain_id, n, b, 10) for n in range(3)] + [transfer(c, chain_id, 0, a, 7)]
    pool = _pool(app, state)
    for tx in txs:
        _add(pool, tx)
    block = pool.reap(2, 1 << 20)
    _commit(app, state, block, 1)

    assert pool.update_after_commit(block) == []

    assert pool.reap(10, 1 << 20) == txs[2:]
    assert len(pool) == 2
    assert pool.size_bytes == sum(len(tx.encode()) for tx in txs[2:])
    assert txs[0].hash() not in pool
    assert pool.get(txs[0].hash()) is None
    assert get_account(pool.pending_state, addr(a)).nonce == 3
    _add(pool, transfer(a, chain_id, 3, b, 10))  # the pending state continues from the block
    assert len(pool) == 3


def test_recheck_drops_what_the_committed_block_made_invalid(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, c = _peers(bundle)
    gov = bundle.governance
    mine = transfer(a, chain_id, 0, b, 100)  # a's nonce 0 will be used by another tx
    follow_up = transfer(a, chain_id, 1, c, 100)  # still valid after that
    big = transfer(b, chain_id, 0, c, 900_000)  # b loses money in the block
    pool = _pool(app, state)
    for tx in (mine, follow_up, big):
        _add(pool, tx)

    # A block from elsewhere: a's nonce 0 spent differently, and b's balance burned down.
    other = [transfer(a, chain_id, 0, c, 50), burn(gov, chain_id, 0, b, 500_000)]
    _commit(app, state, other, 1)
    dropped = pool.update_after_commit(other)

    assert dropped == [(mine.hash(), "nonce_replayed"), (big.hash(), "insufficient_balance")]
    assert pool.reap(10, 1 << 20) == [follow_up]
    assert len(pool) == 1
    assert pool.size_bytes == len(follow_up.encode())
    assert get_account(pool.pending_state, addr(a)).nonce == 2


def test_recheck_drops_the_followers_of_a_dropped_transaction(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, c = _peers(bundle)
    first = transfer(c, chain_id, 0, a, 900_000)
    second = transfer(c, chain_id, 1, a, 50_000)
    unrelated = transfer(b, chain_id, 0, a, 1)
    pool = _pool(app, state)
    for tx in (first, second, unrelated):
        _add(pool, tx)

    block = [burn(bundle.governance, chain_id, 0, c, 500_000)]
    _commit(app, state, block, 1)
    dropped = pool.update_after_commit(block)

    assert dropped == [(first.hash(), "insufficient_balance"), (second.hash(), "nonce_gap")]
    assert pool.reap(10, 1 << 20) == [unrelated]
    for tx in (first, second):
        with pytest.raises(ApplicationError):
            app.check_tx(tx, state, block_context(2))


# --- the prefix shortcut after a commit -----------------------------------------------------


def _recheck_view(
    app: Application, state: MerkleState, txs: list[Transaction]
) -> dict[bytes, bytes | None]:
    """What a full recheck would compute: the remaining txs applied on the committed state."""
    fresh = _pool(app, state)
    for tx in txs:
        _add(fresh, tx)
    return {k: fresh.pending_state.get(k) for k in fresh.pending_state.writes}


def test_committing_the_oldest_pending_txs_keeps_the_pending_state_exact(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, c = _peers(bundle)
    pool = _pool(app, state)
    txs = [
        transfer(a.key, chain_id, 0, b, 100),
        transfer(b.key, chain_id, 0, c, 40),
        transfer(a.key, chain_id, 1, c, 7),
        transfer(c.key, chain_id, 0, a, 3),
    ]
    for tx in txs:
        _add(pool, tx)
    _commit(app, state, txs[:2], 1)
    assert pool.update_after_commit(txs[:2]) == []
    expected = _recheck_view(app, state, txs[2:])
    for key, value in expected.items():
        assert pool.pending_state.get(key) == value
    assert pool.reap(10, 1 << 30) == txs[2:]
    # The next nonce of each sender is still the pending one, so admission goes on correctly.
    with pytest.raises(ReplayedNonceError):
        _add(pool, transfer(a.key, chain_id, 1, c, 8))
    _add(pool, transfer(a.key, chain_id, 2, c, 1))


def test_a_block_that_is_not_the_pool_prefix_triggers_a_full_recheck(
    app: Application, bundle: GenesisBundle, state: MerkleState, chain_id: bytes
) -> None:
    a, b, _ = _peers(bundle)
    pool = _pool(app, state)
    first = transfer(a.key, chain_id, 0, b, 10)
    second = transfer(b.key, chain_id, 0, a, 20)
    _add(pool, first)
    _add(pool, second)
    # Another proposer put only the *second* transaction in the block.
    _commit(app, state, [second], 1)
    assert pool.update_after_commit([second]) == []
    assert pool.reap(10, 1 << 30) == [first]
    assert (
        get_account(pool.pending_state, addr(b)).balance_mc
        == get_account(state, addr(b)).balance_mc + 10
    )


# --- commuting transfers after a block in another order (ADR 0040) --------------------------


def _count_applies(app: Application, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    applied: list[bytes] = []
    real = app.apply_tx

    def counting(tx: Transaction, *args: object, **kwargs: object) -> object:
        applied.append(tx.hash())
        return real(tx, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "apply_tx", counting)
    return applied


def test_transfers_committed_in_another_order_keep_the_pending_state_exact_unapplied(
    app: Application,
    bundle: GenesisBundle,
    state: MerkleState,
    chain_id: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A follower's pool of transfers, a block of some of them in the proposer's order: the
    pending state equals a full recheck without applying anything again."""
    a, b, c = _peers(bundle)
    pool = _pool(app, state)
    txs = [
        transfer(a, chain_id, 0, c, 100),
        transfer(b, chain_id, 0, c, 40),
        transfer(c, chain_id, 0, a, 30),
        transfer(a, chain_id, 1, b, 7),
        transfer(b, chain_id, 1, a, 3),
    ]
    for tx in txs:
        _add(pool, tx)
    block = [txs[1], txs[4], txs[0]]  # not the pool's prefix: b's two, then a's first
    _commit(app, state, block, 1)
    applied = _count_applies(app, monkeypatch)

    assert pool.update_after_commit(block) == []

    assert applied == []
    remaining = [txs[2], txs[3]]
    assert pool.reap(10, 1 << 30) == remaining
    for key, value in _recheck_view(app, state, remaining).items():
        assert pool.pending_state.get(key) == value
    with pytest.raises(ReplayedNonceError):
        _add(pool, transfer(a, chain_id, 1, c, 8))
    _add(pool, transfer(a, chain_id, 2, c, 1))


def test_a_pool_holding_a_transaction_that_does_not_commute_is_rechecked(
    app: Application,
    bundle: GenesisBundle,
    state: MerkleState,
    chain_id: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, _ = _peers(bundle)
    pool = _pool(app, state)
    first = transfer(a, chain_id, 0, b, 10)
    second = transfer(b, chain_id, 0, a, 20)
    cut = burn(bundle.governance, chain_id, 0, a, 5)  # a burn reads and changes the supply
    for tx in (first, second, cut):
        _add(pool, tx)
    _commit(app, state, [second], 1)
    applied = _count_applies(app, monkeypatch)

    assert pool.update_after_commit([second]) == []

    assert applied == [first.hash(), cut.hash()]


def test_a_block_with_a_transaction_the_pool_never_held_is_rechecked(
    app: Application,
    bundle: GenesisBundle,
    state: MerkleState,
    chain_id: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, c = _peers(bundle)
    pool = _pool(app, state)
    mine = transfer(a, chain_id, 0, b, 10)
    follow_up = transfer(b, chain_id, 0, a, 1)
    _add(pool, mine)
    _add(pool, follow_up)
    elsewhere = transfer(a, chain_id, 0, c, 999_000)  # a's nonce 0, spent otherwise
    _commit(app, state, [elsewhere], 1)
    applied = _count_applies(app, monkeypatch)

    dropped = pool.update_after_commit([elsewhere])

    assert dropped == [(mine.hash(), "nonce_replayed")]
    assert applied == [mine.hash(), follow_up.hash()]


# --- remembered effects in the proposer's block build (ADR 0040) -----------------------------

_PEOPLE = st.integers(min_value=0, max_value=2)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pool_txs=st.lists(
        st.tuples(_PEOPLE, _PEOPLE, st.integers(min_value=1, max_value=600_000)), max_size=12
    ),
    block_pick=st.lists(st.integers(min_value=0, max_value=11), max_size=6, unique=True),
    later=st.lists(
        st.tuples(_PEOPLE, _PEOPLE, st.integers(min_value=1, max_value=600_000)), max_size=4
    ),
)
def test_a_build_with_remembered_effects_equals_applying_everything(
    bundle: GenesisBundle,
    chain_id: bytes,
    pool_txs: list[tuple[int, int, int]],
    block_pick: list[int],
    later: list[tuple[int, int, int]],
) -> None:
    """Whatever the pool went through (admissions that failed, a commit of some of its
    transfers in another order, which leaves their effects recorded on an older pending
    state), building from it with the remembered effects gives the build without them."""
    app = Application(bundle.genesis)
    state = app.genesis_state()
    people = list(bundle.participants)
    pool = _pool(app, state)
    nonces = [0, 0, 0]

    def offer(sender: int, to: int, amount: int) -> None:
        tx = transfer(people[sender], chain_id, nonces[sender], people[to], amount)
        try:
            _add(pool, tx)
        except ApplicationError:
            return
        nonces[sender] += 1

    for sender, to, amount in pool_txs:
        offer(sender, to, amount)
    pending = pool.reap(100, 1 << 30)
    # A block of some pending transfers in another order that keeps each sender's nonces.
    chosen = sorted({i for i in block_pick if i < len(pending)}, reverse=True)
    block: list[Transaction] = []
    for i in chosen:
        tx = pending[i]
        if any(p.sender == tx.sender and p.nonce < tx.nonce for p in pending if p not in block):
            continue
        block.append(tx)
    block.sort(key=lambda tx: (tx.sender, tx.nonce))
    if block:
        _commit(app, state, block, 1)
        pool.update_after_commit(block)
    for sender, to, amount in later:
        offer(sender, to, amount)

    candidates = pool.reap(100, 1 << 30)
    ctx = block_context(2)
    plain = app.build_block(state, candidates, ctx)
    reused = app.build_block(state, candidates, ctx, known=pool.effect_of)

    assert reused.txs == plain.txs
    assert [(tx, exc.code) for tx, exc in reused.left_out] == [
        (tx, exc.code) for tx, exc in plain.left_out
    ]
    assert reused.execution.writes == plain.execution.writes
    assert reused.execution.state_root == plain.execution.state_root


# --- remembered effects in a follower's block execution (ADR 0046) ---------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pool_txs=st.lists(
        st.tuples(_PEOPLE, _PEOPLE, st.integers(min_value=1, max_value=600_000)), max_size=12
    ),
    order=st.randoms(use_true_random=False),
    keep=st.integers(min_value=0, max_value=12),
)
def test_executing_a_block_with_remembered_effects_equals_applying_everything(
    bundle: GenesisBundle,
    chain_id: bytes,
    pool_txs: list[tuple[int, int, int]],
    order: random.Random,
    keep: int,
) -> None:
    """A follower's pool admitted transfers in its own order (self-transfers, several payers
    of one account, some refused); the proposer's block holds some of them in another order
    that keeps each sender's nonces.  Executing it with the pool's remembered effects gives
    the writes and root of executing it without them, or the same refusal."""
    app = Application(bundle.genesis)
    state = app.genesis_state()
    people = list(bundle.participants)
    pool = _pool(app, state)
    nonces = [0, 0, 0]
    for sender, to, amount in pool_txs:
        tx = transfer(people[sender], chain_id, nonces[sender], people[to], amount)
        try:
            _add(pool, tx)
        except ApplicationError:
            continue
        nonces[sender] += 1
    pending = pool.reap(100, 1 << 30)
    # Another order: shuffle, then put each sender's transactions back in nonce order.
    picked = order.sample(pending, min(keep, len(pending)))
    picked = [
        tx
        for tx in picked
        if all(p in picked for p in pending if p.sender == tx.sender and p.nonce < tx.nonce)
    ]
    slots = [tx.sender for tx in picked]
    by_sender = {
        s: sorted((tx for tx in picked if tx.sender == s), key=lambda t: t.nonce)
        for s in set(slots)
    }
    block = [by_sender[s].pop(0) for s in slots]
    ctx = block_context(1)

    def execute(known: bool) -> tuple[dict[bytes, bytes | None], bytes] | str:
        try:
            done = app.execute_block(state, block, ctx, known=pool.effect_of if known else None)
        except ApplicationError as exc:
            return exc.code
        return done.writes, done.state_root

    assert execute(True) == execute(False)

"""One verification per transaction per validator, and never a cache hit for other bytes.

Why: the Ed25519 check is a validator's main per-transaction cost, and a validator meets one
transaction at admission (POST /v1/txs and a gateway's link call Mempool.add), in the block it
validates (after the commit the mempool no longer holds it) and in gossip that arrives late.
The shared cache must make those one check, but it is keyed by the hash of the *signed*
encoding, so a forged signature over a body that verified is still refused; and it is bounded
so a flood of distinct transactions cannot grow a validator's memory.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridchain.genesis.builder import GenesisBundle
from gridchain.market.app import Application
from gridchain.market.errors import ReplayedNonceError
from gridchain.market.state import MerkleState
from gridchain.node.mempool import Mempool
from gridchain.protocol.block import check_block_structure
from gridchain.protocol.crypto import Domain, verify
from gridchain.protocol.errors import SignatureError
from gridchain.protocol.tx import Transaction
from gridchain.protocol.tx_signatures import TxSignatureCache
from tests.helpers import block_context, make_block, transfer


class CountingVerifier:
    """protocol.crypto.verify, counting the calls (the real check still decides)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self, public_key: bytes, signature: bytes, domain: Domain, chain_id: bytes, payload: bytes
    ) -> bool:
        self.calls += 1
        return verify(public_key, signature, domain, chain_id, payload)


def _forged(tx: Transaction) -> Transaction:
    """The same sender, nonce and body under a signature with one bit flipped."""
    signature = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
    return replace(tx, signature=signature)


def test_a_transaction_admitted_over_the_api_and_then_in_a_block_is_verified_once(
    bundle: GenesisBundle, chain_id: bytes
) -> None:
    counting = CountingVerifier()
    app = Application(bundle.genesis, verifier=counting)
    state: MerkleState = app.genesis_state()
    pool = Mempool(app, state, lambda: block_context(1), max_txs=100, max_bytes=1 << 20)
    a, b, _ = bundle.participants
    tx = transfer(a, chain_id, 0, b, 1_000)

    pool.add(tx, len(tx.encode()))  # what POST /v1/txs does (Node.submit)
    assert counting.calls == 1

    # The block arrives after the pool let the transaction go (committed elsewhere first, or
    # a proposal validated after the commit): the pool no longer vouches for it.
    block = make_block(chain_id, 1, bytes(32), [tx])
    check_block_structure(block, chain_id, (), app.signatures)
    state.apply(app.execute_block(state, list(block.txs), block_context(1)).writes)
    pool.update_after_commit(list(block.txs))
    assert tx.hash() not in pool

    # Gossip of the same transaction arriving late: refused for its nonce, not re-verified.
    with pytest.raises(ReplayedNonceError):
        app.check_tx(tx, state, block_context(2))
    assert counting.calls == 1


def test_a_forged_signature_over_a_verified_body_is_refused(
    bundle: GenesisBundle, chain_id: bytes
) -> None:
    counting = CountingVerifier()
    app = Application(bundle.genesis, verifier=counting)
    state = app.genesis_state()
    a, b, _ = bundle.participants
    tx = transfer(a, chain_id, 0, b, 1_000)
    app.signatures.require(tx)
    forged = _forged(tx)
    assert forged.payload == tx.payload
    assert forged.hash() != tx.hash()

    with pytest.raises(SignatureError):
        app.check_tx(forged, state, block_context(1))
    block = make_block(chain_id, 1, bytes(32), [forged])
    with pytest.raises(SignatureError):
        check_block_structure(block, chain_id, (), app.signatures)
    assert forged.hash() not in app.signatures
    assert counting.calls == 3  # the good one once; the forged one checked each time


def test_the_cache_belongs_to_one_chain(bundle: GenesisBundle, chain_id: bytes) -> None:
    a, b, _ = bundle.participants
    tx = transfer(a, chain_id, 0, b, 1_000)
    TxSignatureCache(chain_id).require(tx)
    with pytest.raises(SignatureError):
        TxSignatureCache(bytes(32)).require(tx)


def test_the_cache_is_bounded_and_forgets_the_oldest_first(
    bundle: GenesisBundle, chain_id: bytes
) -> None:
    counting = CountingVerifier()
    cache = TxSignatureCache(chain_id, counting, limit=2)
    a, b, _ = bundle.participants
    txs = [transfer(a, chain_id, n, b, 1_000) for n in range(3)]
    for tx in txs:
        cache.require(tx)
    assert len(cache) == 2 == cache.limit
    assert txs[0].hash() not in cache
    assert txs[1].hash() in cache
    assert txs[2].hash() in cache

    cache.require(txs[2])  # remembered: no check
    assert counting.calls == 3
    cache.require(txs[0])  # forgotten: checked again (and txs[1], now the oldest, goes)
    assert counting.calls == 4
    assert len(cache) == 2
    assert txs[1].hash() not in cache


def test_a_cache_of_no_entries_is_refused(chain_id: bytes) -> None:
    with pytest.raises(ValueError, match="at least one"):
        TxSignatureCache(chain_id, limit=0)

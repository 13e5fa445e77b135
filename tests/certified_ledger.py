"""A long certified chain written straight into a validator's ledger, through the real driver.

A running cluster of real processes makes a few blocks per second on this machine; a test of
state sync needs thousands.  This builds them in one process with the code a validator runs:
each block is made by :meth:`node.driver.ChainDriver.build_on` (the proposer path: the real
application executes it and fills in the state root), certified by a quorum of the genesis
validators' commit votes, handed to :meth:`ChainDriver.on_fetched` (certificate checked under
the engine's commit rule, block validated and executed again, as a catching-up validator
does) and written with the ledger's one synced batch (:meth:`node.store.Store.commit_block`).
The data directory is then an ordinary validator's ledger: copy it to the other validators
that should have the chain and start them.
"""

from __future__ import annotations

from pathlib import Path

from gridchain.consensus.engine import ChainHead
from gridchain.genesis.builder import GenesisBundle
from gridchain.market.app import Application
from gridchain.node.driver import ChainDriver, CommitBatch
from gridchain.node.mempool import Mempool
from gridchain.node.runtime import make_engine
from gridchain.node.sealing import validator_opener
from gridchain.node.state_nodes import bind_genesis, ledger_state
from gridchain.node.store import Store
from gridchain.protocol.block import CommittedBlock
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.tx import RegisterParticipant, sign_tx
from tests.helpers import certify


def build_certified_ledger(
    bundle: GenesisBundle,
    genesis_doc: bytes,
    data_dir: Path,
    blocks: int,
    *,
    signers: int,
    step_ms: int = 1,
    registrations: int = 0,
    registrations_per_block: int = 500,
) -> bytes:
    """Write ``blocks`` empty certified blocks into a new ledger at ``data_dir``, timestamps
    ``step_ms`` apart from the genesis time, certified by the first ``signers`` validators;
    ``genesis_doc`` is the genesis file's bytes.  The first blocks also register
    ``registrations`` new participants (signed by the governance key,
    ``registrations_per_block`` a block), so the live state is community-sized (an entry
    each) rather than a test genesis's handful.  Returns the last block's state root."""
    genesis = bundle.genesis
    proposer = bundle.validators[0].key
    app = Application(genesis, validator_opener(genesis, proposer.public_key, None))
    store = Store(data_dir)
    try:
        bind_genesis(store, genesis.chain_id, genesis_doc, app.genesis_state())
        state, nodes = ledger_state(store)
        driver: ChainDriver
        mempool = Mempool(
            app,
            state,
            lambda: driver.next_context(genesis.genesis_time_ms),
            max_txs=max(10, 2 * registrations_per_block),
            max_bytes=1 << 20,
        )
        driver = ChainDriver(
            genesis=genesis,
            app=app,
            engine=make_engine(genesis, proposer),
            state=state,
            head=ChainHead(0, genesis.chain_id, genesis.genesis_time_ms),
            mempool=mempool,
            proposer=proposer.public_key,
        )
        keys = [v.key for v in bundle.validators[:signers]]
        governance = bundle.governance.key
        nonce = 0
        root = b""
        for height in range(1, blocks + 1):
            timestamp = genesis.genesis_time_ms + step_ms * height
            for _ in range(min(registrations_per_block, registrations - nonce)):
                member = SigningKey(sha256(b"member" + nonce.to_bytes(8, "big")))
                body = RegisterParticipant(member.public_key, f"member-{nonce}")
                tx = sign_tx(governance, genesis.chain_id, nonce, body)
                mempool.add(tx, len(tx.encode()))
                nonce += 1
            made = driver.build_on(driver.head.block_hash, height, 0, timestamp, allow_empty=True)
            assert made is not None, f"no block built at height {height}"
            block, _ = made
            committed = CommittedBlock(block, certify(block, keys, genesis.chain_id))
            effects, progressed = driver.on_fetched([committed], timestamp)
            assert progressed, f"the driver refused block {height}: {effects}"
            for effect in effects:
                if isinstance(effect, CommitBatch):
                    store.commit_block(
                        effect.committed,
                        effect.writes,
                        effect.tree_writes,
                        archived=effect.archived,
                    )
                    nodes.written(effect.tree_writes)
            root = block.header.state_root
        return root
    finally:
        store.close()

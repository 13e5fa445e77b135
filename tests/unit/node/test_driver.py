"""The chain driver (node/driver.py) on its own: inputs in, effects out, no I/O.

The engine here is scripted (it returns the actions a test chooses), so each test pins one
decision of the driver: which certificates commit a block, what halts the node and what a halt
keeps of the batch it cut short.
"""

from __future__ import annotations

from collections.abc import Mapping

from gridchain.consensus.certificates import CommitRule
from gridchain.consensus.engine import (
    Action,
    Broadcast,
    ChainHead,
    CommitBlock,
    Persist,
    SetTimer,
)
from gridchain.consensus.pbft.messages import make_checkpoint
from gridchain.market.app import Application, BlockContext
from gridchain.market.errors import BlockRejectedError
from gridchain.node.driver import ChainDriver, CommitBatch, Halt, Note
from gridchain.node.mempool import Mempool
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    CommittedBlock,
    Vote,
    VoteStep,
    schedule_root,
    tx_root,
)
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import InvariantViolation
from tests.helpers import GENESIS_TIME_MS, small_bundle

BUNDLE = small_bundle(validators=4, engine="pbft", seed="driver-test")
GENESIS = BUNDLE.genesis
CID = GENESIS.chain_id
KEYS = [v.key for v in BUNDLE.validators]
NOW = GENESIS_TIME_MS + 5_000


class ScriptedEngine:
    """An engine that answers each tick with the next scripted batch (or raises it)."""

    name = "scripted"

    def __init__(self, *ticks: list[Action] | InvariantViolation) -> None:
        self.ticks = list(ticks)
        self.committed: list[ChainHead] = []
        self.calls = 0

    def start(self, head: ChainHead, persisted: Mapping[bytes, bytes], now_ms: int) -> list[Action]:
        return []

    def decode_message(self, data: bytes) -> Record:
        raise NotImplementedError

    def on_tick(self, now_ms: int) -> list[Action]:
        self.calls += 1
        step = self.ticks.pop(0)
        if isinstance(step, InvariantViolation):
            raise step
        return step

    def on_message(self, sender: bytes, message: Record, now_ms: int) -> list[Action]:
        self.calls += 1
        return []

    def on_proposal(self, block: Block | None, now_ms: int) -> list[Action]:
        return []

    def on_block_validated(
        self, block_hash: bytes, valid: bool, now_ms: int, reason: str = ""
    ) -> list[Action]:
        return []

    def on_block_committed(self, head: ChainHead, now_ms: int) -> list[Action]:
        self.committed.append(head)
        return [SetTimer(now_ms + 100)]

    def on_pending_work(self, pending: bool, now_ms: int) -> list[Action]:
        return []

    def commit_rule(self, block: Block) -> CommitRule:
        return CommitRule(frozenset(k.public_key for k in KEYS), 3, VoteStep.COMMIT)

    def status(self) -> Mapping[str, int | str]:
        return {}


def make_driver(engine: ScriptedEngine) -> ChainDriver:
    app = Application(GENESIS)
    state = app.genesis_state()
    head = ChainHead(0, CID, GENESIS.genesis_time_ms)
    mempool = Mempool(app, state, lambda: BlockContext(1, NOW, b""), max_txs=100, max_bytes=1 << 20)
    return ChainDriver(
        genesis=GENESIS,
        app=app,
        engine=engine,
        state=state,
        head=head,
        mempool=mempool,
        proposer=KEYS[0].public_key,
    )


def first_block(*, state_root: bytes | None = None) -> Block:
    app = Application(GENESIS)
    timestamp = GENESIS.genesis_time_ms + 1_000
    execution = app.execute_block(
        app.genesis_state(), (), BlockContext(1, timestamp, KEYS[1].public_key)
    )
    header = BlockHeader(
        chain_id=CID,
        height=1,
        prev_hash=CID,
        timestamp_ms=timestamp,
        proposer=KEYS[1].public_key,
        round=0,
        benefit=0,
        tx_root=tx_root(()),
        schedule_root=schedule_root(()),
        state_root=execution.state_root if state_root is None else state_root,
    )
    return Block(header, (), ())


def certificate(block: Block, step: VoteStep) -> Certificate:
    vote = Vote(block.height, 0, block.hash(), int(step))
    return Certificate(vote, tuple(vote.sign(k, CID) for k in KEYS[1:]))


def test_a_fetched_block_with_a_prepare_quorum_is_refused_and_a_commit_quorum_commits() -> None:
    block = first_block()
    driver = make_driver(ScriptedEngine())

    effects, progressed = driver.on_fetched(
        [CommittedBlock(block, certificate(block, VoteStep.PREPARE))], NOW
    )
    assert not progressed
    assert driver.head.height == 0
    assert driver.halted is None
    assert [type(e) for e in effects] == [Note]
    assert "prepare votes" in str(effects[0])

    effects, progressed = driver.on_fetched(
        [CommittedBlock(block, certificate(block, VoteStep.COMMIT))], NOW
    )
    assert progressed
    assert driver.head.block_hash == block.hash()
    assert isinstance(effects[0], CommitBatch)
    assert effects[0].committed.block == block


def test_an_engine_committing_with_a_prepare_quorum_halts_the_node() -> None:
    """The engine's own decision must prove itself too: a prepare quorum is a contradiction."""
    block = first_block()
    persist = Persist(b"k", b"v")
    engine = ScriptedEngine(
        [persist, CommitBlock(block, certificate(block, VoteStep.PREPARE)), SetTimer(NOW + 9)]
    )
    driver = make_driver(engine)

    effects = driver.on_tick(NOW)

    assert driver.head.height == 0
    assert driver.halted is not None
    assert driver.halted.startswith("engine_contradiction")
    # the durable write before the violation is kept; the timer after it is not
    assert effects[0] == persist
    assert isinstance(effects[-1], Halt)
    assert effects[-1].evidence["block"] == block.hash().hex()
    assert not any(isinstance(e, SetTimer) for e in effects)


def test_a_certified_block_that_does_not_execute_halts_with_state_divergence() -> None:
    block = first_block(state_root=b"\x09" * 32)
    driver = make_driver(ScriptedEngine([CommitBlock(block, certificate(block, VoteStep.COMMIT))]))

    effects = driver.on_tick(NOW)

    assert driver.halted is not None
    assert driver.halted.startswith("state_divergence")
    assert [type(e) for e in effects] == [Halt]
    halt = effects[0]
    assert isinstance(halt, Halt)
    assert halt.evidence["code"] == BlockRejectedError.code
    assert "state root differs" in halt.reason


def test_a_halted_driver_ignores_every_input() -> None:
    """No votes, no proposals, no commits: the engine is not even asked."""
    violation = InvariantViolation("signed twice", evidence={"height": "3"})
    engine = ScriptedEngine(violation, [Broadcast(make_checkpoint(KEYS[0], CID, 5, b"\x01" * 32))])
    driver = make_driver(engine)

    effects = driver.on_tick(NOW)
    assert effects == [
        Halt(
            "invariant_violation: signed twice",
            {"input": "tick", "error": "InvariantViolation", "height": "3"},
        )
    ]
    calls = engine.calls

    assert driver.on_tick(NOW + 1) == []
    assert (
        driver.on_message(KEYS[1].public_key, make_checkpoint(KEYS[1], CID, 5, b"\x01" * 32), NOW)
        == []
    )
    assert driver.on_mempool_changed(NOW) == []
    block = first_block()
    assert driver.on_fetched([CommittedBlock(block, certificate(block, VoteStep.COMMIT))], NOW) == (
        [],
        False,
    )
    assert engine.calls == calls
    assert driver.head.height == 0

"""The chain driver checks each certificate against the validator set of its height (ADR 0035).

Five PBFT validators; governance removes the fifth in block 1, so the set changes from height
3 (1 + 2).  Through the driver's catch-up path (certified blocks a peer serves): block 2 is
still certified by the old set (the removed validator's signature counts), block 3 is not
(a certificate counting it is refused), and the engine is told each height's set.
"""

from __future__ import annotations

import pytest

from gridchain.consensus.engine import ChainHead
from gridchain.consensus.pbft import PbftEngine
from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.market.app import Application, BlockContext
from gridchain.market.state import MerkleState
from gridchain.node.driver import ChainDriver
from gridchain.node.follower import Follower
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
from gridchain.protocol.errors import SignatureError
from gridchain.protocol.tx import Approve, Propose, Transaction, UpdateValidators
from tests.helpers import GENESIS_TIME_MS, key_factory, signed, small_bundle
from tests.sim.cluster import SimMempool

T0_OFFSET = 1_000


class Chain:
    """Blocks built on a shadow state, as the validators would have certified them."""

    def __init__(self, bundle: GenesisBundle) -> None:
        self.bundle = bundle
        self.genesis = bundle.genesis
        self.app = Application(self.genesis)
        self.state = self.app.genesis_state()
        self.prev = self.genesis.chain_id
        self.height = 0

    def next(self, txs: tuple[Transaction, ...] = ()) -> Block:
        self.height += 1
        proposer = self.bundle.validators[0].key.public_key
        ts = self.genesis.genesis_time_ms + T0_OFFSET * self.height
        built = self.app.build_block(self.state, txs, BlockContext(self.height, ts, proposer))
        assert not built.left_out
        header = BlockHeader(
            chain_id=self.genesis.chain_id,
            height=self.height,
            prev_hash=self.prev,
            timestamp_ms=ts,
            proposer=proposer,
            round=0,
            benefit=0,
            tx_root=tx_root(built.txs),
            schedule_root=schedule_root(()),
            state_root=built.execution.state_root,
        )
        block = Block(header, built.txs, ())
        self.state.apply(built.execution.writes)
        self.prev = block.hash()
        return block

    def certified(self, block: Block, signers: tuple[int, ...]) -> CommittedBlock:
        vote = Vote(block.height, 0, block.hash(), int(VoteStep.COMMIT))
        keys = [self.bundle.validators[i].key for i in signers]
        sigs = tuple(vote.sign(k, self.genesis.chain_id) for k in keys)
        return CommittedBlock(block, Certificate(vote, sigs))


def driver(bundle: GenesisBundle) -> ChainDriver:
    genesis = bundle.genesis
    app = Application(genesis)
    state: MerkleState = app.genesis_state()
    key = bundle.validators[1].key
    engine = PbftEngine(
        key,
        genesis.chain_id,
        genesis.validator_keys(),
        block_interval_ms=100,
        view_timeout_ms=1_000,
    )
    d = ChainDriver(
        genesis=genesis,
        app=app,
        engine=engine,
        state=state,
        head=ChainHead(0, genesis.chain_id, genesis.genesis_time_ms),
        mempool=SimMempool(state),
        proposer=key.public_key,
    )
    d.start({}, genesis.genesis_time_ms)
    return d


def test_each_certificate_is_checked_against_the_set_of_its_height() -> None:
    bundle = small_bundle(validators=5, engine="pbft", seed="valset-driver")
    chain = Chain(bundle)
    gone = bundle.validators[4].key.public_key
    removal = signed(
        bundle.governance, bundle.genesis.chain_id, 0, UpdateValidators(remove=(gone,))
    )
    b1, b2, b3 = chain.next((removal,)), chain.next(), chain.next()
    d = driver(bundle)
    now = bundle.genesis.genesis_time_ms + 10 * T0_OFFSET
    d.on_peer_height(3)

    # Heights 1 and 2: five validators, q = 4; the one being removed still counts.
    d.on_fetched([chain.certified(b1, (1, 2, 3, 4))], now)
    assert d.head.height == 1
    assert d.head.validators == bundle.genesis.validator_keys()  # the set of height 2
    d.on_fetched([chain.certified(b2, (0, 2, 3, 4))], now)
    assert d.head.height == 2
    assert gone not in d.head.validators  # the set of height 3: four validators, q = 3

    # Height 3: four signatures, a quorum of the old set, but one is the removed validator's:
    # refused ...
    effects, progressed = d.on_fetched([chain.certified(b3, (1, 2, 3, 4))], now)
    assert not progressed
    assert d.head.height == 2
    assert d.halted is None  # a lying (or stale) peer is not this node's fault
    assert any(getattr(e, "event", "") == "fetched block refused" for e in effects)
    # ... and three of the four that remain (too few for the old set) certify it.
    _, progressed = d.on_fetched([chain.certified(b3, (0, 2, 3))], now)
    assert progressed
    assert d.head.height == 3
    assert d.validators_for(100) == bundle.genesis.validator_keys()[:4]


def test_a_gateway_follows_the_set_of_each_height() -> None:
    """The gateway has no state: it replays the chain's UpdateValidators on the same pure
    schedule and checks each certificate against the set of its height."""
    bundle = build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=5,
        participants=3,
        engine="pbft",
        new_key=key_factory("valset-gateway"),
        gateways=1,
    )
    chain = Chain(bundle)
    gone = bundle.validators[4].key.public_key
    body = UpdateValidators(remove=(gone,))
    removal = signed(bundle.governance, bundle.genesis.chain_id, 0, body)
    b1, b2, b3 = chain.next((removal,)), chain.next(), chain.next()
    follower = Follower(bundle.genesis, bundle.gateways[0].key, [])
    follower._accept(chain.certified(b1, (1, 2, 3, 4)))
    follower._accept(chain.certified(b2, (0, 2, 3, 4)))
    with pytest.raises(SignatureError):
        follower._accept(chain.certified(b3, (1, 2, 3, 4)))
    follower._accept(chain.certified(b3, (0, 2, 3)))
    assert follower.head.height == 3


def test_a_gateway_applies_a_council_set_change_at_its_threshold_approval() -> None:
    """With a 2-of-3 council the change is proposed in block 1 and approved in block 3, so the
    chain applies it at 3 and the set changes from 5; a gateway that applied it at the
    proposal would refuse block 3's and block 4's certificates (which the removed validator
    still signs) and accept a block 5 certificate it must refuse."""
    bundle = build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=5,
        participants=3,
        engine="pbft",
        new_key=key_factory("valset-council"),
        gateways=1,
        council=3,
        threshold=2,
    )
    chain = Chain(bundle)
    gone = bundle.validators[4].key.public_key
    change = UpdateValidators(remove=(gone,)).encode()
    first, second = bundle.council[0], bundle.council[1]
    proposal = signed(first, bundle.genesis.chain_id, 0, Propose(change, 100))
    approval = signed(second, bundle.genesis.chain_id, 0, Approve(proposal.hash()))
    blocks = [chain.next((proposal,)), chain.next(), chain.next((approval,))]
    blocks += [chain.next(), chain.next()]
    follower = Follower(bundle.genesis, bundle.gateways[0].key, [])
    for block in blocks[:4]:  # heights 1-4: the old set, the removed validator counts
        follower._accept(chain.certified(block, (1, 2, 3, 4)))
    with pytest.raises(SignatureError):
        follower._accept(chain.certified(blocks[4], (1, 2, 3, 4)))
    follower._accept(chain.certified(blocks[4], (0, 1, 2)))
    assert follower.head.height == 5

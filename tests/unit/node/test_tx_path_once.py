"""Each transaction is decoded once and applied once on a proposer and on a follower.

Why (issue 17 item 4, ADR 0040): a follower met every transaction twice as bytes, in gossip
and inside the proposal, and decoded it both times; and because its pool is in gossip order,
not in the proposer's block order, every commit made it re-apply everything still pending
(ADR 0032 counted about five applies per transaction).  Here two chain drivers, each with its
own application, mempool and decoded-transaction memory (as in two processes), carry the
bench's workload (several senders paying one account) through a proposal and a commit, and
count per transaction hash: decodes (the transaction record built from wire values) and
applies (``Application.apply_tx``).  Each applies a transaction once, at admission: the
proposer's block and the follower's execution of it take the remembered effects (ADR 0046);
nobody re-applies after the commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from gridchain.consensus.certificates import CommitRule
from gridchain.consensus.engine import (
    Action,
    ChainHead,
    CommitBlock,
    RequestProposal,
    ValidateBlock,
)
from gridchain.market.app import Application, BlockContext
from gridchain.market.state import Overlay
from gridchain.node.driver import ChainDriver, CommitBatch
from gridchain.node.mempool import Mempool
from gridchain.protocol import encoding
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    Vote,
    VoteStep,
    schedule_root,
    tx_root,
)
from gridchain.protocol.encoding import Record, decode
from gridchain.protocol.tx import Transaction, decode_tx
from tests.helpers import GENESIS_TIME_MS, small_bundle, transfer

BUNDLE = small_bundle(validators=4, participants=5, engine="pbft", seed="tx-path-once")
GENESIS = BUNDLE.genesis
CID = GENESIS.chain_id
KEYS = [v.key for v in BUNDLE.validators]
NOW = GENESIS_TIME_MS + 5_000
SENDERS = BUNDLE.participants[:-1]
SINK = BUNDLE.participants[-1]


class Engine:
    """Answers each tick with the next scripted batch; keeps what it was handed."""

    name = "scripted"

    def __init__(self) -> None:
        self.next: list[Action] = []
        self.proposals: list[Block] = []
        self.valid: list[bool] = []

    def start(self, head: ChainHead, persisted: Mapping[bytes, bytes], now_ms: int) -> list[Action]:
        return []

    def decode_message(self, data: bytes) -> Record:
        raise NotImplementedError

    def on_tick(self, now_ms: int) -> list[Action]:
        out, self.next = self.next, []
        return out

    def on_message(self, sender: bytes, message: Record, now_ms: int) -> list[Action]:
        return []

    def on_proposal(self, block: Block | None, now_ms: int) -> list[Action]:
        assert block is not None
        self.proposals.append(block)
        return []

    def on_block_validated(
        self, block_hash: bytes, valid: bool, now_ms: int, reason: str = ""
    ) -> list[Action]:
        self.valid.append(valid)
        return []

    def on_block_committed(self, head: ChainHead, now_ms: int) -> list[Action]:
        return []

    def on_pending_work(self, pending: bool, now_ms: int) -> list[Action]:
        return []

    def commit_rule(self, block: Block) -> CommitRule:
        return CommitRule(frozenset(k.public_key for k in KEYS), 3, VoteStep.COMMIT)

    def status(self) -> Mapping[str, int | str]:
        return {}


class Validator:
    """One validator's driver, with its applies counted per transaction hash."""

    def __init__(self, proposer_index: int) -> None:
        self.engine = Engine()
        self.app = Application(GENESIS)
        self.applies: Counter[bytes] = Counter()
        real_apply = self.app.apply_tx

        def counting_apply(tx: Transaction, view: Overlay, ctx: BlockContext, **kw: Any) -> Any:
            self.applies[tx.hash()] += 1
            return real_apply(tx, view, ctx, **kw)

        self.app.apply_tx = counting_apply  # type: ignore[method-assign]
        state = self.app.genesis_state()
        self.head = ChainHead(0, CID, GENESIS.genesis_time_ms)
        mempool = Mempool(
            self.app, state, lambda: self.driver.next_context(NOW), max_txs=100, max_bytes=1 << 20
        )
        self.driver = ChainDriver(
            genesis=GENESIS,
            app=self.app,
            engine=self.engine,
            state=state,
            head=self.head,
            mempool=mempool,
            proposer=KEYS[proposer_index].public_key,
            known_effects=mempool.effect_of,  # as node.runtime.Node wires it
        )
        self.pool = mempool

    def receive(self, raw: bytes) -> None:
        """What Node.on_tx (gossip) and POST /v1/txs do with a transaction's bytes."""
        self.pool.add(decode_tx(raw), len(raw))

    def act(self, *actions: Action, now_ms: int = NOW) -> list[object]:
        self.engine.next = list(actions)
        return list(self.driver.on_tick(now_ms))


def certificate(block: Block) -> Certificate:
    vote = Vote(block.height, 0, block.hash(), int(VoteStep.COMMIT))
    return Certificate(vote, tuple(vote.sign(k, CID) for k in KEYS[1:]))


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Counter[bytes]:
    """Transaction records built, by hash: each decode that does not reuse a known one."""
    counts: Counter[bytes] = Counter()
    real_init: Callable[..., None] = Transaction.__init__

    def counting_init(self: Transaction, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        counts[self.hash()] += 1

    monkeypatch.setattr(Transaction, "__init__", counting_init)
    return counts


def new_process() -> None:
    """Forget what this process decoded: the next validator runs as if in its own process."""
    encoding.forget_decoded()


def test_a_proposer_and_a_follower_decode_and_apply_each_transaction_once(
    decodes: Counter[bytes],
) -> None:
    # Four senders pay one account (the bench's workload); nonces 0-2 make the first block,
    # nonce 3 arrives at the follower before that block and waits in its pool.
    first = [transfer(s, CID, n, SINK, 1 + n) for n in range(3) for s in SENDERS]
    later = [transfer(s, CID, 3, SINK, 7) for s in SENDERS]
    wire_first = [tx.encode() for tx in first]
    wire_later = [tx.encode() for tx in later]
    decodes.clear()  # signing built them

    # --- the proposer: admits the first transactions, proposes, commits -------------------
    new_process()
    proposer = Validator(0)
    for raw in wire_first:
        proposer.receive(raw)
    proposer.act(RequestProposal(1, 0, CID, NOW))
    (block,) = proposer.engine.proposals
    assert [tx.hash() for tx in block.txs] == [tx.hash() for tx in first]
    block_bytes = block.encode()  # what the pre-prepare carries to the followers
    for raw in wire_later:
        proposer.receive(raw)
    effects = proposer.act(CommitBlock(block, certificate(block)))
    assert any(isinstance(e, CommitBatch) for e in effects)
    proposer_decodes = Counter(decodes)

    # --- a follower: gossip in another order, then the proposal, then the commit ----------
    new_process()
    decodes.clear()
    follower = Validator(1)
    gossip_order = [raw for s in reversed(range(len(SENDERS))) for raw in wire_first[s::4]]
    for raw in gossip_order + wire_later:
        follower.receive(raw)
    proposal = decode(block_bytes, Block)
    follower.act(ValidateBlock(proposal))
    assert follower.engine.valid == [True]
    effects = follower.act(CommitBlock(proposal, certificate(proposal)))
    assert any(isinstance(e, CommitBatch) for e in effects)
    assert follower.driver.head.block_hash == proposer.driver.head.block_hash
    assert follower.driver.state.root() == proposer.driver.state.root()

    everything = [tx.hash() for tx in first + later]
    # Decoded once per validator: at admission; the proposal reuses the admitted objects.
    assert proposer_decodes == Counter(everything)
    assert decodes == Counter(everything)
    # Each validator applied each once, at admission: the proposer's block build and the
    # follower's execution of the block (in the proposer's order, not its pool's: every
    # sender pays the sink, so the sink's balance read at admission no longer holds) took the
    # remembered writes and credits, and nothing was re-applied after the commit (ADR 0046).
    assert proposer.applies == Counter(everything)
    assert follower.applies == Counter(everything)
    # Both pools still hold the waiting transactions with an exact pending state.
    assert proposer.pool.reap(10, 1 << 20) == later
    assert [tx.hash() for tx in follower.pool.reap(10, 1 << 20)] == [tx.hash() for tx in later]


def test_a_backlog_larger_than_the_memory_is_still_decoded_once(
    decodes: Counter[bytes],
) -> None:
    """A pool holding more than the decode-once memory's own budget (512 KiB, about 4,000
    transfers) while new transfers keep arriving: every block that takes the oldest 500 still
    finds them decoded (ADR 0058), block after block; and once the pool has drained, the
    memory is back within its own bounds."""
    backlog, rounds, block = 4_500, 12, 500  # about 131 bytes each: past 512 KiB
    per_sender, rest = divmod(backlog + rounds * block, len(SENDERS))
    assert rest == 0  # whole nonce sequences
    assert (backlog + rounds * block) % block == 0  # whole blocks
    txs = [transfer(s, CID, n, SINK, 1) for n in range(per_sender) for s in SENDERS]
    wire = [tx.encode() for tx in txs]
    assert sum(map(len, wire[:backlog])) > encoding._DECODED_ONCE_BUDGET_BYTES
    decodes.clear()
    new_process()
    validator = Validator(1)
    validator.pool.max_txs = len(wire)
    validator.pool.max_bytes = 1 << 30
    for raw in wire[:backlog]:
        validator.receive(raw)
    state = validator.app.genesis_state()
    arrived = backlog
    for height in range(1, len(txs) // block + 1):
        batch = tuple(txs[(height - 1) * block : height * block])  # the oldest, as reaped
        header = BlockHeader(
            CID, height, CID, NOW, KEYS[0].public_key, 0, 0,
            tx_root(batch), schedule_root(()), state.root(),
        )  # fmt: skip
        admitted = Counter(decodes)
        carried = decode(Block(header, batch).encode(), Block)  # what a proposal carries
        assert decodes == admitted, f"block {height} decoded transactions again"
        reaped = validator.pool.reap(block, 1 << 30)
        assert all(a is b for a, b in zip(carried.txs, reaped, strict=True))
        assert validator.pool.update_after_commit(list(carried.txs)) == []
        for raw in wire[arrived : arrived + block]:  # meanwhile, the next ones arrive
            validator.receive(raw)
        arrived = min(len(wire), arrived + block)
    assert len(validator.pool) == 0
    assert decodes == Counter(tx.hash() for tx in txs)  # once each, at admission
    decode_tx(transfer(SINK, CID, 0, SENDERS[0], 1).encode())  # the next one learnt
    assert len(encoding._DECODED_ONCE) <= encoding._DECODED_ONCE_ENTRIES
    assert encoding._decoded_once_bytes <= encoding._DECODED_ONCE_BUDGET_BYTES

"""The node's synced writes: grouped into one batch per run of effects, never after a message.

Why (ADR 0051): a PBFT height cost a validator four synced LevelDB writes, one per engine
record (prepare vote, prepared lock, commit certificate) and one for the block, each a few
milliseconds on the critical path of every height.  ``Node._perform`` now writes the records
and the block that follow each other with no message between them as one batch.  What must
not change: a record is durable BEFORE the message after it leaves (a vote never goes out
before the record that forbids signing another block at its height, or a crash could make the
validator sign twice), and what was written is what a restart reads back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridchain.consensus.engine import Broadcast, Persist, RequestProposal, Send
from gridchain.node.config import load_config
from gridchain.node.driver import CommitBatch, Effect, Note
from gridchain.node.runtime import Node
from gridchain.node.store import Store
from gridchain.protocol.block import CommittedBlock, Vote, VoteStep
from gridchain.protocol.tx import Transfer, sign_tx
from tests.helpers import certify
from tests.procs import Chain, make_chain


class RecordingNetwork:
    """Records each message with what the store held (durably) when it was sent."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sent: list[tuple[str, dict[bytes, bytes], int]] = []

    def _note(self, kind: str) -> None:
        self.sent.append((kind, self.store.consensus_records(), self.store.head_height()))

    def broadcast_consensus(self, payload: bytes) -> None:
        self._note("broadcast")

    def send_consensus(self, to: bytes, payload: bytes) -> None:
        self._note("send")

    def set_validators(self, keys: object) -> None:
        pass  # the commit tells the network its validators; nothing to record

    has_gateway_links = False


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    return make_chain(tmp_path / "chain")


@pytest.fixture
def node(chain: Chain) -> Iterator[Node]:
    """A solo validator that is not started: the test hands it effects."""
    node = Node(load_config(chain.config_path()))
    try:
        yield node
    finally:
        node.store.close()


def _writes(node: Node, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every synced store write the node makes from now on: ("records", {...}) or
    ("block", (height, {consensus records in the same batch}))."""
    calls: list[tuple[str, Any]] = []
    persist, commit = node.store.persist_consensus, node.store.commit_block

    def persist_consensus(records: dict[bytes, bytes]) -> None:
        calls.append(("records", dict(records)))
        persist(records)

    def commit_block(committed: CommittedBlock, *args: Any, **kwargs: Any) -> None:
        calls.append(("block", (committed.block.height, dict(kwargs.get("consensus") or {}))))
        commit(committed, *args, **kwargs)

    monkeypatch.setattr(node.store, "persist_consensus", persist_consensus)
    monkeypatch.setattr(node.store, "commit_block", commit_block)
    return calls


def _next_commits(node: Node, chain: Chain, count: int) -> list[CommitBatch]:
    """CommitBatch effects for ``count`` certified blocks on the node's head (not written)."""
    batches: list[CommitBatch] = []
    blocks: list[CommittedBlock] = []
    for nonce in range(count):
        tx = sign_tx(chain.peer(0), chain.chain_id, nonce, Transfer(chain.address(1), 1))
        node.submit(tx, tx.encode())  # a block needs content (empty blocks are off)
        head = node.head
        block = node.driver.build_proposal(
            RequestProposal(head.height + 1, 0, head.block_hash, head.timestamp_ms + 1),
            node.clock(),
        )
        assert block is not None
        blocks.append(
            CommittedBlock(block, certify(block, [chain.bundle.validators[0].key], chain.chain_id))
        )
        effects, committed = node.driver.on_fetched(blocks[-1:], node.clock())
        assert committed
        batches.extend(e for e in effects if isinstance(e, CommitBatch))
    return batches


def _vote(height: int) -> Vote:
    return Vote(height, 0, b"\x11" * 32, int(VoteStep.PREPARE))


def test_records_and_the_block_between_two_messages_are_one_synced_batch(
    node: Node, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primary's height boundary: its commit record, the block, its vote for the next
    height, then its pre-prepare.  One write, and the message leaves after it."""
    (commit,) = _next_commits(node, chain, 1)
    network = RecordingNetwork(node.store)
    node.network = network  # type: ignore[assignment]  # only the two send methods are used
    calls = _writes(node, monkeypatch)
    effects: list[Effect] = [
        Persist(b"last-commit", b"cert-1"),
        commit,
        Persist(b"prepare", b"vote-2"),
        Broadcast(_vote(2)),
        Persist(b"prepared", b"lock-2"),
        Send(chain.bundle.validators[0].key.public_key, _vote(2)),
    ]
    node._perform(effects)
    assert calls == [
        ("block", (1, {b"last-commit": b"cert-1", b"prepare": b"vote-2"})),
        ("records", {b"prepared": b"lock-2"}),
    ]
    # each message left after the records before it were durable, and before those after it
    assert network.sent == [
        ("broadcast", {b"last-commit": b"cert-1", b"prepare": b"vote-2"}, 1),
        ("send", {b"last-commit": b"cert-1", b"prepare": b"vote-2", b"prepared": b"lock-2"}, 1),
    ]


def test_a_record_is_never_written_after_the_message_that_follows_it(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vote record, its message, the next record: two writes, the message between them
    (the order that keeps a restarted validator from signing twice)."""
    network = RecordingNetwork(node.store)
    node.network = network  # type: ignore[assignment]
    calls = _writes(node, monkeypatch)
    node._perform(
        [
            Persist(b"prepare", b"v1"),
            Persist(b"view", b"7"),
            Note("info", "probe"),  # a log line is not a message: it does not split the batch
            Broadcast(_vote(1)),
            Persist(b"prepare", b"v2"),
        ]
    )
    assert calls == [
        ("records", {b"prepare": b"v1", b"view": b"7"}),
        ("records", {b"prepare": b"v2"}),
    ]
    assert network.sent == [("broadcast", {b"prepare": b"v1", b"view": b"7"}, 0)]
    assert node.store.consensus_records() == {b"prepare": b"v2", b"view": b"7"}


def test_two_blocks_in_one_run_are_written_one_after_the_other(
    node: Node, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catching up commits several fetched blocks in one driver input: each block is its own
    batch (the store checks each one extends the head); a record between them goes with the
    first, whose batch is written when the second block comes."""
    first, second = _next_commits(node, chain, 2)
    calls = _writes(node, monkeypatch)
    node._perform([first, Persist(b"last-commit", b"cert-2"), second])
    assert calls == [("block", (1, {b"last-commit": b"cert-2"})), ("block", (2, {}))]
    assert node.store.head_height() == 2


def test_a_restart_reads_back_what_one_batch_wrote(chain: Chain) -> None:
    """The records written with the block are the engine's records a restarted node loads."""
    node = Node(load_config(chain.config_path()))
    try:
        (commit,) = _next_commits(node, chain, 1)
        node._perform([Persist(b"solo/probe", b"x"), commit])
    finally:
        node.store.close()
    again = Node(load_config(chain.config_path()))
    try:
        assert again.store.head_height() == 1
        assert again.store.consensus_records()[b"solo/probe"] == b"x"
    finally:
        again.store.close()

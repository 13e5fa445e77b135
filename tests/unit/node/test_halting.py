"""An invariant violation halts the node the same way from every entry path.

Why: a double-sign attempt, a state divergence or an engine contradiction means the node can no
longer be trusted, wherever it surfaced.  Once a peer-message path only logged it at debug level
and the timer path caught only refusals.  Each test makes the engine raise a violation from one
entry (the engine's timer, a peer's consensus message, a client's submitted transaction) and
checks the same outcome: ``halted`` with the reason (also in /v1/status), an error log carrying
the evidence, and an engine that is never asked anything again.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from gridchain.consensus.engine import Action
from gridchain.consensus.kernel.guard import DoubleSignError
from gridchain.consensus.solo import SoloEngine
from gridchain.node.config import load_config
from gridchain.node.runtime import Node
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import InvariantViolation
from tests.procs import Chain, make_chain

VIOLATION = InvariantViolation(
    "refused to sign a second block at height 4", evidence={"height": "4", "first": "ab12"}
)


class ViolatingEngine(SoloEngine):
    """A solo engine that raises VIOLATION from the entry a test names."""

    def __init__(self, node: Node, entry: str) -> None:
        super().__init__(node.key, node.chain_id, node.genesis.params.block_interval_ms)
        self.entry = entry
        self.asked = 0

    def on_tick(self, now_ms: int) -> list[Action]:
        return self._maybe("tick")

    def on_message(self, sender: bytes, message: Record, now_ms: int) -> list[Action]:
        return self._maybe("message")

    def on_pending_work(self, pending: bool, now_ms: int) -> list[Action]:
        return self._maybe("pending")

    def decode_message(self, data: bytes) -> Record:
        return VIOLATION_RECORD

    def _maybe(self, entry: str) -> list[Action]:
        self.asked += 1
        if entry == self.entry:
            raise VIOLATION
        return []


class _Nothing(Record):
    pass


VIOLATION_RECORD = _Nothing()


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    return make_chain(tmp_path / "chain")


@pytest.fixture
def node(chain: Chain) -> Iterator[Node]:
    node = Node(load_config(chain.config_path()))
    try:
        yield node
    finally:
        node.store.close()


def assert_halted(
    node: Node, engine: ViolatingEngine, logs: list[MutableMapping[str, Any]], source: str
) -> None:
    reason = "invariant_violation: refused to sign a second block at height 4"
    assert node.halted == reason
    assert node.status()["halted"] == reason
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors == [
        {
            "event": "node halted",
            "log_level": "error",
            "reason": reason,
            "input": source,
            "error": "InvariantViolation",
            "height": "4",
            "first": "ab12",
        }
    ]
    asked = engine.asked
    node.on_consensus(node.key.public_key, b"\x00")
    node._on_timer()
    assert engine.asked == asked  # no votes, no proposals: the engine is not asked again


def test_a_violation_on_the_timer_halts(node: Node) -> None:
    engine = ViolatingEngine(node, "tick")
    node.driver.engine = engine
    with structlog.testing.capture_logs() as logs:
        node._on_timer()
    assert_halted(node, engine, logs, "tick")


def test_a_violation_from_a_peer_message_halts_and_is_not_a_refusal(node: Node) -> None:
    """The network scores the peer for refusals; a violation is this node's, so the callback
    returns normally (nothing for the network to log at debug) and the node is halted."""
    engine = ViolatingEngine(node, "message")
    node.driver.engine = engine
    with structlog.testing.capture_logs() as logs:
        node.on_consensus(node.key.public_key, b"\x00")
    assert_halted(node, engine, logs, "message")


def test_a_violation_during_an_api_submit_halts(node: Node, chain: Chain) -> None:
    engine = ViolatingEngine(node, "pending")
    node.driver.engine = engine
    tx = chain.transfer(0, 1, 0, 5)
    with structlog.testing.capture_logs() as logs:
        node.submit(tx, tx.encode())
    assert_halted(node, engine, logs, "mempool")


class GuardRefusingEngine(ViolatingEngine):
    """Raises a real engine's DoubleSignError (the kernel's, an InvariantViolation) instead."""

    def _maybe(self, entry: str) -> list[Action]:
        self.asked += 1
        if entry == self.entry:
            raise DoubleSignError("refusing to sign a second block at height 4")
        return []


def test_an_engine_double_sign_error_from_a_peer_message_halts(node: Node) -> None:
    """Once the network logged this at debug level as a refused payload and the node went on."""
    engine = GuardRefusingEngine(node, "message")
    node.driver.engine = engine
    with structlog.testing.capture_logs() as logs:
        node.on_consensus(node.key.public_key, b"\x00")
    assert node.halted is not None
    assert "refusing to sign a second block" in node.halted
    assert node.status()["halted"] == node.halted
    (error,) = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "node halted"
    assert error["input"] == "message"
    assert error["error"] == "DoubleSignError"

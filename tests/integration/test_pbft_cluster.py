"""A 4-validator PBFT cluster of real processes on loopback (issue 3, integration a-d).

(a) transfers submitted to different validators commit everywhere with identical block hashes
    and state roots;
(b) kill -9 the primary under load: a view change happens, commits continue, nothing reported
    committed is lost;
(c) the restarted primary catches up to the same head;
(d) a node of another chain, or with a key outside the validator set, is refused.
"""

from __future__ import annotations

import asyncio
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridchain.node.p2p import HandshakeError, PeerRefusedError
from gridchain.node.p2p.handshake import handshake
from gridchain.protocol.crypto import SigningKey
from tests.procs import (
    Chain,
    NodeProcess,
    http_get,
    make_chain,
    node_for,
    submit,
    wait_committed,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("pbft_cluster")]

N = 4


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Chain, list[NodeProcess]]]:
    chain = make_chain(tmp_path / "chain", validators=N, engine="pbft", block_interval_ms=100)
    nodes = [node_for(chain, i) for i in range(N)]
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        node.wait_healthy()
    wait_for(lambda: all(len(status(n)["peers_connected"]) == N - 1 for n in nodes), 30, nodes)
    yield chain, nodes
    for node in nodes:
        node.terminate()


def status(node: NodeProcess) -> dict[str, Any]:
    code, body = http_get(node.api_url + "/v1/status", timeout=2.0)
    if code != 200:
        return {"height": -1, "peers_connected": [], "consensus": {}}
    body["peers_connected"] = [p for p in body.get("peers", []) if p.get("connected")]
    result: dict[str, Any] = body
    return result


def same_chain(nodes: list[NodeProcess], height: int) -> None:
    """Every node has the same block hash and state root at every height up to ``height``."""
    for h in range(1, height + 1):
        blocks = [http_get(f"{n.api_url}/v1/blocks/{h}")[1] for n in nodes]
        hashes = {b["hash"] for b in blocks}
        roots = {b["header"]["state_root"] for b in blocks}
        assert len(hashes) == 1, f"height {h}: {hashes}"
        assert len(roots) == 1, f"height {h}: {roots}"


def test_a_transfers_to_different_nodes_commit_everywhere(
    cluster: tuple[Chain, list[NodeProcess]],
) -> None:
    chain, nodes = cluster
    hashes = []
    for i in range(3):  # peer i sends through validator i
        code, body = submit(nodes[i].api_url, chain.transfer(i, (i + 1) % 3, 0, 1000 + i))
        assert code == 202, body
        hashes.append(body["hash"])
    for node in nodes:
        for tx_hash in hashes:
            wait_committed(node.api_url, tx_hash)
    wait_for(lambda: len({status(n)["height"] for n in nodes}) == 1, 20, nodes)
    height = status(nodes[0])["height"]
    assert height >= 1
    same_chain(nodes, height)
    roots = {status(n)["state_root"] for n in nodes}
    assert len(roots) == 1


class Load:
    """Streams transfers from every peer through the given validators; records commits."""

    def __init__(self, chain: Chain, targets: list[NodeProcess]) -> None:
        self.chain = chain
        self.targets = targets
        self.stop = threading.Event()
        self.sent: list[str] = []
        self.nonces = [0, 0, 0]
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            sender = i % 3
            target = self.targets[i % len(self.targets)]
            tx = self.chain.transfer(sender, (sender + 1) % 3, self.nonces[sender], 1)
            code, body = submit(target.api_url, tx)
            if code == 202:
                self.sent.append(body["hash"])
                self.nonces[sender] += 1
            else:
                time.sleep(0.02)
            i += 1
            time.sleep(0.005)


def committed_hashes(node: NodeProcess, upto: int) -> set[str]:
    out: set[str] = set()
    for h in range(1, upto + 1):
        code, block = http_get(f"{node.api_url}/v1/blocks/{h}")
        assert code == 200, f"block {h} missing on {node.api_url}"
        out.update(tx["hash"] for tx in block["txs"])
    return out


def test_b_c_kill_primary_view_change_and_catch_up(
    cluster: tuple[Chain, list[NodeProcess]],
) -> None:
    chain, nodes = cluster
    primary_key = status(nodes[0])["consensus"]["primary"]
    primary = next(n for n in nodes if status(n)["validator"] == primary_key)
    others = [n for n in nodes if n is not primary]
    # Each sender keeps to one validator so its nonces arrive in order.
    load = Load(chain, [others[0]])
    load.thread.start()
    wait_for(lambda: status(others[0])["height"] >= 3, 30, nodes)
    before = status(others[0])
    reported = committed_hashes(others[0], before["height"])
    assert reported

    primary.kill9()
    view_before = before["consensus"]["view"]
    wait_for(
        lambda: all(status(n)["consensus"].get("view", 0) > view_before for n in others), 60, others
    )
    height_after_view_change = status(others[0])["height"]
    wait_for(
        lambda: min(status(n)["height"] for n in others) > height_after_view_change + 2, 60, others
    )
    load.stop.set()
    load.thread.join(timeout=10)

    head = status(others[0])["height"]
    still = committed_hashes(others[0], head)
    assert reported <= still, "a transaction reported committed was lost"
    for node in others:
        wait_for(lambda node=node: status(node)["height"] >= head, 30, others)
    same_chain(others, head)

    # (c) the old primary restarts and catches up to the same head.
    primary.start()
    target = max(status(n)["height"] for n in others)
    wait_for(lambda: status(primary)["height"] >= target, 60, nodes)
    same_chain(nodes, target)


def test_d_foreign_chain_is_refused(
    cluster: tuple[Chain, list[NodeProcess]], tmp_path: Path
) -> None:
    """A validator of another chain, configured to dial this cluster, gets no link."""
    chain, nodes = cluster
    other = make_chain(tmp_path / "other", validators=N, engine="pbft")
    intruder = node_for(other, 0)
    config = tomllib.loads(intruder.config.read_text())
    ours = tomllib.loads(chain.config_path(0).read_text())
    # Keep the intruder's identity and ports; aim its peer links at this cluster's validators.
    lines = [
        "[node]",
        'name = "intruder"',
        f'data_dir = "{intruder.config.parent / "data"}"',
        f'genesis_file = "{other.directory / "genesis.json"}"',
        f'private_key = "{config["node"]["private_key"]}"',
        "[api]",
        f"port = {config['api']['port']}",
        "[p2p]",
        f"port = {config['p2p']['port']}",
    ]
    targets = [*ours["p2p"]["peers"], {"name": "node-1", "port": ours["p2p"]["port"]}]
    for theirs, target in zip(config["p2p"]["peers"], targets, strict=False):
        lines += [
            "[[p2p.peers]]",
            f'name = "{theirs["name"]}"',
            f'public_key = "{theirs["public_key"]}"',
            'host = "127.0.0.1"',
            f"port = {target['port']}",
        ]
    intruder.config.write_text("\n".join(lines) + "\n")
    intruder.start()
    try:
        wait_for(lambda: "chain" in intruder.log_tail(20_000).lower(), 20, [intruder])
        for node in nodes:
            keys = {p["public_key"] for p in status(node)["peers_connected"]}
            assert len(keys) == N - 1
            assert other.bundle.validators[0].key.public_key.hex() not in keys
        assert status(intruder)["peers_connected"] == []
    finally:
        intruder.terminate()


async def test_d_unknown_key_handshake_is_refused(
    cluster: tuple[Chain, list[NodeProcess]],
) -> None:
    """A key outside the validator set cannot open a peer link to a running validator."""
    chain, _ = cluster
    port = tomllib.loads(chain.config_path(0).read_text())["p2p"]["port"]
    stranger = SigningKey(b"\x13" * 32)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with pytest.raises((PeerRefusedError, HandshakeError)):
            await handshake(
                reader,
                writer,
                key=stranger,
                chain_id=chain.chain_id,
                initiator=True,
                admit=lambda key: None,
                expected_key=chain.bundle.validators[0].key.public_key,
                height=0,
                max_frame_bytes=8 << 20,
                timeout_s=5,
            )
    finally:
        writer.close()

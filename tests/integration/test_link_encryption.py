"""No plaintext on the wire: a recording proxy between two validators and between a gateway and
a validator, real processes (issue 13 "Must show", ADR 0024).

Why: the links carry every transaction before it is public and every vote; a tap on the
community network (a shared switch, a telecom operator's line) must learn nothing of them.  A
4-validator PBFT chain runs as processes; the link between node-1 and node-2 (in both dialing
directions) and the gateway's link to node-1 go through recording proxies.  A transfer with a
known memo is submitted through the gateway and commits; then none of its bytes - the encoded
transaction, its signature, its sender's key, the recipient's address, the memo, its hash, a
hex or JSON spelling of any of them - may appear in what the proxies captured.  The control:
the validators' own keys, which the Hellos carry in the clear, are found there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from gridchain.node.config import load_config
from gridchain.node.follower import Follower
from gridchain.node.follower_config import load_gateway_section
from gridchain.node.p2p import NetworkTuning, PeerAddress
from gridchain.protocol.tx import Transfer, sign_tx
from tests.procs import Chain, NodeProcess, free_test_port, http_get, make_chain, node_for
from tests.proxy import RecordingProxy, recording_proxy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("link_encryption"),
    pytest.mark.timeout(180),
]

N = 4
MEMO = "canary-7d1f-plaintext-must-not-appear"
WAIT_S = 30.0


def peers_json(chain: Chain, index: int, via: dict[int, int]) -> str:
    """node ``index``'s p2p.peers, with the peers in ``via`` reached at a proxy port."""
    entries = []
    for j, validator in enumerate(chain.bundle.validators):
        if j == index:
            continue
        port = via.get(j, load_config(chain.config_path(j)).p2p.port)
        entries.append(
            {
                "name": validator.name,
                "public_key": validator.key.public_key.hex(),
                "host": "127.0.0.1",
                "port": port,
            }
        )
    return json.dumps(entries)


@pytest.fixture
def tapped(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Chain, dict[str, RecordingProxy]]]:
    chain = make_chain(
        tmp_path_factory.mktemp("taps") / "chain",
        validators=N,
        engine="pbft",
        block_interval_ms=100,
        gateways=1,
    )
    p2p = [load_config(chain.config_path(i)).p2p.port for i in range(N)]
    with ExitStack() as stack:
        taps = {
            "node-1 -> node-2": stack.enter_context(recording_proxy(free_test_port(), p2p[1])),
            "node-2 -> node-1": stack.enter_context(recording_proxy(free_test_port(), p2p[0])),
            "gateway -> node-1": stack.enter_context(recording_proxy(free_test_port(), p2p[0])),
        }
        nodes: list[NodeProcess] = [node_for(chain, i) for i in range(N)]
        nodes[0].env = {
            "GRIDCHAIN_P2P__PEERS": peers_json(chain, 0, {1: taps["node-1 -> node-2"].port})
        }
        nodes[1].env = {
            "GRIDCHAIN_P2P__PEERS": peers_json(chain, 1, {0: taps["node-2 -> node-1"].port})
        }
        for node in nodes:
            node.start(wait=False)
            stack.callback(node.terminate)
        for node in nodes:
            node.wait_healthy()
        yield chain, taps


async def test_no_plaintext_of_a_transaction_crosses_a_link(
    tapped: tuple[Chain, dict[str, RecordingProxy]],
) -> None:
    chain, taps = tapped
    section = load_gateway_section(chain.gateway_config_path(0))
    node1 = chain.bundle.validators[0]
    # The gateway reaches node-1 only, through its tap.
    gateway_tap = taps["gateway -> node-1"]
    follower = Follower(
        chain.bundle.genesis,
        section.signing_key,
        [PeerAddress(node1.name, node1.key.public_key, "127.0.0.1", gateway_tap.port)],
        tuning=NetworkTuning(ping_interval_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.5),
    )
    await follower.start()
    try:
        async with asyncio.timeout(WAIT_S):
            while follower.connected_validators() != [node1.key.public_key]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        sender, recipient = chain.peer(0), chain.address(1)
        tx = sign_tx(
            sender,
            chain.chain_id,
            follower.next_nonce(sender.public_key),
            Transfer(recipient, 1234, MEMO),
        )
        assert await follower.submit(tx, to=[node1.key.public_key]) == tx.hash()

        def committed() -> int | None:
            status, body = http_get(f"{chain.api_url(1)}/v1/txs/{tx.hash().hex()}")
            return body["height"] if status == 200 and body["status"] == "committed" else None

        async with asyncio.timeout(WAIT_S):
            while (height := committed()) is None:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.05)
        await asyncio.wait_for(follower.wait_for_height(height), WAIT_S)
        held = follower.block(height)
        assert held is not None
        assert tx.hash() in {t.hash() for t in held.block.txs}
    finally:
        await follower.stop()

    raw = tx.encode()
    secrets_of_the_tx = {
        "encoded transaction": raw,
        "signature": tx.signature,
        "sender key": tx.sender,
        "recipient address": recipient,
        "memo": MEMO.encode(),
        "hash": tx.hash(),
        "hex of the transaction": raw.hex().encode(),
        "hex of the sender key": tx.sender.hex().encode(),
        "JSON of the submission": json.dumps({"tx": raw.hex()}).encode(),
        "a JSON fragment": b'{"tx": "',
    }
    # Ciphertext is uniformly random: a needle of n bytes turns up by chance in a capture of
    # N bytes with probability about N / 256**n: a 2-byte needle turns up in a capture of tens of
    # kilobytes in a large share of runs (CI hit it). Eight bytes make it about 10**-14 per run.
    assert all(len(needle) >= 8 for needle in secrets_of_the_tx.values())
    # node-1 and node-2 both dial: the link the lower key dialed is kept (the other one is
    # retired after its handshake), so the two taps together hold that one link.
    links = {
        "node-1 <-> node-2": [taps["node-1 -> node-2"], taps["node-2 -> node-1"]],
        "gateway -> node-1": [gateway_tap],
    }
    for name, group in links.items():
        captured = b"".join(tap.capture.all_bytes() for tap in group)
        # The taps carried the link: traffic both ways, beyond one handshake (about 250 bytes
        # each way) and more than the transaction that crossed it.
        assert sum(len(t.capture.up) for t in group) > 300, name
        assert sum(len(t.capture.down) for t in group) > 300, name
        assert len(captured) > 1000 + len(raw), name
        # Control: what the Hellos carry in the clear (the nodes' identities) is found.
        assert node1.key.public_key in captured, name
        for what, needle in secrets_of_the_tx.items():
            assert needle not in captured, f"{what} readable on the {name} link"

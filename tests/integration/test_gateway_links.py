"""The gateway role on the peer network, against real validator processes (issue 13, ADR 0024).

Why: a gateway is the public edge the validators hide behind.  It must learn the chain from
the validators without taking part in it (certified blocks pushed as they commit, verified
against the genesis validator set), know every registered sender and each one's next nonce
from those blocks alone, and forward transactions that the validators admit as client
submissions, with every refusal coming back typed.  A validator configured with
``api.client_txs = "gateways"`` must refuse POST /v1/txs (403 gateways_only) and still admit
what gateways forward and what other validators gossip.

One 4-validator PBFT chain with one genesis gateway; node-1 and node-2 take client
transactions only from gateways, node-3 and node-4 also over HTTP.  The follower runs in this
test's event loop, as the gateway process runs it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gridchain.node.follower import Follower
from gridchain.node.follower_config import load_gateway_section
from gridchain.node.p2p import NetworkTuning, TxRefusedError
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import Propose, RegisterParticipant, Transaction, Transfer, sign_tx
from tests.procs import Chain, NodeProcess, http_get, make_chain, node_for, submit

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("gateway_links"),
    pytest.mark.timeout(180),
]

N = 4
GATEWAYS_ONLY = (0, 1)
WAIT_S = 30.0
TUNING = NetworkTuning(ping_interval_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.5)


@dataclass
class Net:
    chain: Chain
    nodes: list[NodeProcess]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    chain = make_chain(
        tmp_path_factory.mktemp("gateway-links") / "chain",
        validators=N,
        engine="pbft",
        block_interval_ms=100,
        gateways=1,
    )
    nodes = [node_for(chain, i) for i in range(N)]
    for i in GATEWAYS_ONLY:
        nodes[i].env = {"GRIDCHAIN_API__CLIENT_TXS": "gateways"}
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        node.wait_healthy()
    yield Net(chain, nodes)
    for node in nodes:
        node.terminate()


@pytest.fixture
async def follower(net: Net) -> AsyncIterator[Follower]:
    section = load_gateway_section(net.chain.gateway_config_path(0))
    gateway = Follower.from_config(section, tuning=TUNING)
    await gateway.start()
    try:
        await wait_for(lambda: len(gateway.connected_validators()) == N, "links to every validator")
        _, status = http_get(net.chain.api_url(3) + "/v1/status")
        await asyncio.wait_for(gateway.wait_for_height(status["height"]), WAIT_S)
        yield gateway
    finally:
        await gateway.stop()


async def wait_for(cond: Any, what: str) -> None:
    """Poll a condition; the bound only turns a hang into a named failure."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not cond():  # noqa: ASYNC110 - state in another process or task
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for: {what}") from None


async def committed(net: Net, follower: Follower, tx_hash: bytes) -> dict[str, Any]:
    """Wait until node-4 reports the transaction committed and the follower has its block."""

    def record() -> dict[str, Any] | None:
        status, body = http_get(f"{net.chain.api_url(3)}/v1/txs/{tx_hash.hex()}")
        return body if status == 200 and body["status"] == "committed" else None

    await wait_for(lambda: record() is not None, f"tx {tx_hash.hex()[:16]} committed")
    found = record()
    assert found is not None
    await asyncio.wait_for(follower.wait_for_height(found["height"]), WAIT_S)
    return found


def account_nonce(net: Net, address: str) -> int:
    status, body = http_get(f"{net.chain.api_url(3)}/v1/accounts/{address}")
    assert status == 200, body
    nonce: int = body["nonce"]
    return nonce


def transfer(net: Net, sender: int, nonce: int, amount_mc: int = 1) -> Transaction:
    return net.chain.transfer(sender, (sender + 1) % 3, nonce, amount_mc)


async def test_the_gateway_follows_certified_blocks_and_is_no_peer(
    net: Net, follower: Follower
) -> None:
    tx = transfer(net, 0, follower.next_nonce(net.chain.peer(0).public_key))
    tx_hash = await follower.submit(tx)
    record = await committed(net, follower, tx_hash)

    # The follower holds the validators' certified block, byte for byte.
    held = follower.block(record["height"])
    assert held is not None
    _, block = http_get(f"{net.chain.api_url(0)}/v1/blocks/{record['height']}")
    assert held.block.hash().hex() == block["hash"]
    assert tx_hash in {t.hash() for t in held.block.txs}

    gateway_key = net.chain.bundle.gateways[0].key.public_key.hex()
    for node in net.nodes:
        _, status = http_get(node.api_url + "/v1/status")
        roles = {p["public_key"]: p["role"] for p in status["peers"] if p["connected"]}
        assert roles.get(gateway_key) == "gateway"
        assert sum(1 for role in roles.values() if role == "validator") == N - 1
        _, metrics = http_get(node.api_url + "/metrics")
        assert f"gridchain_peers_connected {float(N - 1)}" in metrics  # the gateway is no peer


async def test_nonces_and_registrations_are_derived_from_certified_blocks(
    net: Net, follower: Follower
) -> None:
    chain = net.chain
    sender = chain.peer(1)
    first = follower.next_nonce(sender.public_key)
    assert first == account_nonce(net, chain.bundle.participants[1].address)
    hashes = [await follower.submit(transfer(net, 1, first + i)) for i in range(3)]
    for tx_hash in hashes:
        await committed(net, follower, tx_hash)
    assert follower.next_nonce(sender.public_key) == first + 3
    assert follower.next_nonce(sender.public_key) == account_nonce(
        net, chain.bundle.participants[1].address
    )

    # A participant registered by a transaction becomes a registered sender once it commits.
    newcomer = SigningKey.generate()
    assert not follower.is_registered(newcomer.public_key)
    governance = chain.bundle.governance.key
    feed = follower.subscribe()
    register = sign_tx(
        governance,
        chain.chain_id,
        follower.next_nonce(governance.public_key),
        RegisterParticipant(newcomer.public_key, "newcomer"),
    )
    record = await committed(net, follower, await follower.submit(register))
    assert follower.is_registered(newcomer.public_key)
    assert follower.next_nonce(governance.public_key) == account_nonce(
        net, chain.bundle.governance.address
    )
    seen: list[int] = []
    while not feed.queue.empty():
        seen.append(feed.queue.get_nowait().block.height)
    assert record["height"] in seen
    assert seen == sorted(seen)


async def test_a_key_a_council_proposal_admits_is_let_through(net: Net, follower: Follower) -> None:
    """The genesis governance key is this chain's council of one: its proposal applies at
    once, and the follower, which sees blocks but not the state, learns the key from it."""
    chain = net.chain
    newcomer = SigningKey.generate()
    governance = chain.bundle.governance.key
    assert follower.is_registered(governance.public_key)
    propose = sign_tx(
        governance,
        chain.chain_id,
        follower.next_nonce(governance.public_key),
        Propose(RegisterParticipant(newcomer.public_key, "by-proposal").encode(), 10_000),
    )
    await committed(net, follower, await follower.submit(propose))
    assert follower.is_registered(newcomer.public_key)
    address = format_address(address_of(newcomer.public_key))
    _, account = http_get(f"{chain.api_url(0)}/v1/accounts/{address}")
    assert account["registered"] is True


async def test_a_refusal_comes_back_typed_and_changes_nothing(net: Net, follower: Follower) -> None:
    chain = net.chain
    sender = chain.peer(2)
    nonce = follower.next_nonce(sender.public_key)
    await committed(net, follower, await follower.submit(transfer(net, 2, nonce)))
    with pytest.raises(TxRefusedError) as replayed:
        await follower.submit(transfer(net, 2, nonce, amount_mc=2))
    assert replayed.value.reason == "nonce_replayed"
    with pytest.raises(TxRefusedError) as gap:
        await follower.submit(transfer(net, 2, nonce + 5))
    assert gap.value.reason == "nonce_gap"
    stranger = SigningKey.generate()
    with pytest.raises(TxRefusedError) as unknown:
        await follower.submit(
            sign_tx(stranger, chain.chain_id, 0, Transfer(chain.address(0), 1, ""))
        )
    assert unknown.value.reason == "unregistered_sender"
    assert follower.next_nonce(sender.public_key) == nonce + 1


async def test_a_gateways_only_validator_refuses_http_and_admits_links_and_gossip(
    net: Net, follower: Follower
) -> None:
    chain = net.chain
    strict = net.nodes[GATEWAYS_ONLY[0]]
    strict_key = chain.bundle.validators[GATEWAYS_ONLY[0]].key.public_key
    sender = chain.peer(0)

    # HTTP submission to it: 403 with the typed code, and nothing admitted.
    refused = transfer(net, 0, follower.next_nonce(sender.public_key))
    status, body = submit(strict.api_url, refused)
    assert status == 403
    assert body["error"]["code"] == "gateways_only"
    assert http_get(f"{strict.api_url}/v1/txs/{refused.hash().hex()}")[0] == 404

    # The same transaction forwarded over the gateway's link to that very validator commits.
    tx_hash = await follower.submit(refused, to=[strict_key])
    assert tx_hash == refused.hash()
    await committed(net, follower, tx_hash)

    # A transaction posted to an open validator reaches it by gossip and commits there too.
    gossiped = transfer(net, 0, follower.next_nonce(sender.public_key))
    status, body = submit(net.chain.api_url(3), gossiped)
    assert status == 202, body
    record = await committed(net, follower, gossiped.hash())
    status, seen = http_get(f"{strict.api_url}/v1/txs/{gossiped.hash().hex()}")
    assert status == 200
    assert seen["height"] == record["height"]

    # The refusal is documented in the node's own contract.
    _, spec = http_get(strict.api_url + "/openapi.json")
    assert "gateways_only" in json.dumps(spec["paths"]["/v1/txs"]["post"]["responses"]["403"])


def test_the_gateway_config_written_by_genesis_init_loads(net: Net, tmp_path: Path) -> None:
    section = load_gateway_section(net.chain.gateway_config_path(0))
    assert section.signing_key.public_key in net.chain.bundle.genesis.gateway_keys()
    assert len(section.validators) == N

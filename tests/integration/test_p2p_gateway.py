"""The gateway role of the peer network over real sockets, in one event loop (ADR 0024).

Why: a gateway is admitted on a validator's peer port, so the rules that keep it an observer
must hold on the wire: it is never sent engine messages or gossip, its height is no evidence
for the validator, a frame of the wrong role ends its link, and a key that genesis does not
name as a gateway is refused.  On the other side, a follower must accept a pushed block only
with a certificate that proves it under the genesis validator set and roots that match.

"Did not arrive" is proven by ordering, as in test_p2p: a link is one TCP stream, so once a
block announced *after* X has arrived at the gateway, X would have arrived before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.node.follower import Follower
from gridchain.node.p2p import NoValidatorLinkError, PeerAddress, PeerNetwork
from gridchain.node.p2p.frames import ConsensusFrame
from gridchain.protocol.block import Block, CommittedBlock
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.tx import Transaction, Transfer, sign_tx
from tests.helpers import GENESIS_TIME_MS, certify, key_factory, make_block
from tests.integration.test_p2p import FAST, BenignRefusalError, Recorder, wait_until
from tests.procs import free_test_port as free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def bundle() -> GenesisBundle:
    return build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=4,
        participants=2,
        engine="pbft",
        new_key=key_factory("p2p-gateway"),
        gateways=2,
    )


@dataclass
class Validator:
    key: SigningKey
    port: int
    handler: Recorder
    net: PeerNetwork

    def address(self) -> PeerAddress:
        return PeerAddress("v", self.key.public_key, "127.0.0.1", self.port)


@dataclass
class BlockRecorder:
    """A FollowerHandler that records what a gateway's network hands it."""

    blocks: list[tuple[bytes, bytes]] = field(default_factory=list)
    heights: dict[bytes, int] = field(default_factory=dict)

    def on_new_block(self, sender: bytes, committed: bytes) -> None:
        self.blocks.append((sender, committed))

    def on_peer_height(self, sender: bytes, height: int) -> None:
        self.heights[sender] = height


def validator(bundle: GenesisBundle, index: int, peers: Sequence[PeerAddress] = ()) -> Validator:
    key = bundle.validators[index].key
    handler = Recorder()
    port = free_port()
    net = PeerNetwork(
        key=key,
        chain_id=bundle.genesis.chain_id,
        validators=bundle.genesis.validator_keys(),
        gateways=bundle.genesis.gateway_keys(),
        listen_host="127.0.0.1",
        listen_port=port,
        peers=peers,
        handler=handler,
        local_height=lambda: handler.height,
        tuning=FAST,
    )
    return Validator(key, port, handler, net)


def gateway_network(
    bundle: GenesisBundle, key: SigningKey, validators: list[Validator], recorder: BlockRecorder
) -> PeerNetwork:
    return PeerNetwork(
        key=key,
        chain_id=bundle.genesis.chain_id,
        validators=bundle.genesis.validator_keys(),
        gateways=bundle.genesis.gateway_keys(),
        listen_host=None,
        listen_port=0,
        peers=[v.address() for v in validators],
        follower=recorder,
        tuning=FAST,
    )


@pytest.fixture
async def pair(
    bundle: GenesisBundle,
) -> AsyncIterator[tuple[Validator, Validator, PeerNetwork, BlockRecorder]]:
    """Two linked validators and gateway-1 linked to the first."""
    a = validator(bundle, 0)
    b = validator(bundle, 1, [a.address()])
    recorder = BlockRecorder()
    gate = gateway_network(bundle, bundle.gateways[0].key, [a], recorder)
    await a.net.start()
    await b.net.start()
    await gate.start()
    try:
        await wait_until(
            lambda: (
                a.net.connected_peers() == [b.key.public_key]
                and a.net.connected_gateways() == [bundle.gateways[0].key.public_key]
            ),
            "validators and gateway linked",
        )
        yield a, b, gate, recorder
    finally:
        await gate.stop()
        await b.net.stop()
        await a.net.stop()


async def test_a_gateway_gets_blocks_but_no_engine_messages_or_gossip(
    pair: tuple[Validator, Validator, PeerNetwork, BlockRecorder],
) -> None:
    a, b, gate, recorder = pair
    a.net.broadcast_consensus(b"vote")
    a.net.send_consensus(gate_key(gate), b"direct vote")
    a.net.gossip_tx(b"some tx bytes")
    a.net.announce_block(b"marker block")
    await wait_until(lambda: recorder.blocks == [(a.key.public_key, b"marker block")], "marker")
    # Had a consensus or gossip frame been sent first, the gateway would have closed the link
    # as a protocol violation; it is still up and nobody was scored.
    assert gate.connected_peers() == [a.key.public_key]
    assert a.net.connected_gateways() == [gate_key(gate)]
    (seen_by_gate,) = gate.peer_info()
    assert seen_by_gate["score"] == FAST.score_max
    assert seen_by_gate["last_error"] is None
    # b got them (the validator link) and counts only a as a peer.
    await wait_until(lambda: (a.key.public_key, b"vote") in b.handler.consensus, "vote at b")
    assert a.net.connected_peers() == [b.key.public_key]
    roles = {e["public_key"]: e["role"] for e in a.net.peer_info()}
    assert roles == {b.key.public_key.hex(): "validator", gate_key(gate).hex(): "gateway"}


def gate_key(gate: PeerNetwork) -> bytes:
    return gate._own


async def test_a_gateways_height_is_not_handed_to_the_validator(
    pair: tuple[Validator, Validator, PeerNetwork, BlockRecorder],
) -> None:
    a, b, gate, recorder = pair
    b.handler.height = 7
    await wait_until(lambda: a.handler.heights.get(b.key.public_key) == 7, "b's height")
    await wait_until(lambda: recorder.heights.get(a.key.public_key) == 0, "a's height at gate")
    assert gate_key(gate) not in a.handler.heights


async def test_submitted_transactions_are_admitted_answered_and_gossiped(
    pair: tuple[Validator, Validator, PeerNetwork, BlockRecorder],
) -> None:
    a, b, gate, _ = pair
    verdicts = await gate.submit_tx(b"client tx", [a.key.public_key])
    verdict = verdicts[a.key.public_key]
    assert not isinstance(verdict, Exception)
    assert verdict.code == ""
    assert a.handler.client_txs == [(gate_key(gate), b"client tx")]
    await wait_until(lambda: b.handler.tx_count(b"client tx") == 1, "gossiped to b")
    # A refusal travels back with the validator's code and is not gossiped.
    a.handler.refuse_txs.add(b"refused tx")
    verdicts = await gate.submit_tx(b"refused tx", [a.key.public_key])
    refused = verdicts[a.key.public_key]
    assert not isinstance(refused, Exception)
    assert refused.code == BenignRefusalError.code
    a.net.gossip_tx(b"marker tx")
    await wait_until(lambda: b.handler.tx_count(b"marker tx") == 1, "marker")
    assert b.handler.tx_count(b"refused tx") == 0


async def test_a_gateway_that_sends_an_engine_message_loses_its_link(
    bundle: GenesisBundle,
) -> None:
    a = validator(bundle, 0)
    recorder = BlockRecorder()
    gate = gateway_network(bundle, bundle.gateways[0].key, [a], recorder)
    await a.net.start()
    await gate.start()
    try:
        await wait_until(lambda: a.net.connected_gateways() != [], "gateway linked")
        # A gateway's network refuses to send engine messages itself, so reach past it.
        link = gate._states[a.key.public_key].link
        assert link is not None
        link.send(ConsensusFrame(b"a vote from a gateway"))
        await wait_until(
            lambda: any(e["last_error"] == "protocol_violation" for e in a.net.peer_info()),
            "the validator closed the link as a violation",
        )
        assert a.handler.consensus == []
    finally:
        await gate.stop()
        await a.net.stop()


async def test_keys_genesis_does_not_name_as_gateways_are_refused(
    bundle: GenesisBundle,
) -> None:
    a = validator(bundle, 0)
    outsider = key_factory("outsider")()
    # The outsider believes it is a gateway (its own genesis list says so).
    recorder = BlockRecorder()
    rogue = PeerNetwork(
        key=outsider,
        chain_id=bundle.genesis.chain_id,
        validators=bundle.genesis.validator_keys(),
        gateways=[outsider.public_key],
        listen_host=None,
        listen_port=0,
        peers=[a.address()],
        follower=recorder,
        tuning=FAST,
    )
    await a.net.start()
    await rogue.start()
    try:
        await wait_until(
            lambda: any(e["last_error"] == "refused:unknown_peer" for e in rogue.peer_info()),
            "refused as unknown",
        )
        assert a.net.connected_gateways() == []
    finally:
        await rogue.stop()
        await a.net.stop()


# --- the follower accepts only certified blocks -----------------------------------------------


def certified(
    bundle: GenesisBundle,
    height: int,
    prev: bytes,
    signers: int,
    *,
    txs: Sequence[Transaction] = (),
) -> CommittedBlock:
    chain_id = bundle.genesis.chain_id
    block = make_block(chain_id, height, prev, txs, proposer=bundle.validators[0].key.public_key)
    keys = [v.key for v in bundle.validators[:signers]]
    return CommittedBlock(block, certify(block, keys, chain_id))


async def test_the_follower_accepts_certified_blocks_only(bundle: GenesisBundle) -> None:
    a = validator(bundle, 0)
    follower = Follower(
        bundle.genesis,
        bundle.gateways[1].key,
        [a.address()],
        tuning=FAST,
    )
    chain_id = bundle.genesis.chain_id
    peer = bundle.participants[0].key
    tx = sign_tx(peer, chain_id, 0, Transfer(bytes(20), 5, ""))
    await a.net.start()
    await follower.start()
    try:
        await wait_until(lambda: follower.connected_validators() == [a.key.public_key], "link")
        first = certified(bundle, 1, chain_id, 3, txs=(tx,))
        a.net.announce_block(first.encode())
        await asyncio.wait_for(follower.wait_for_height(1), 10)
        assert follower.next_nonce(peer.public_key) == 1
        assert follower.head.block_hash == first.block.hash()

        head = first.block.hash()
        bad: dict[str, CommittedBlock] = {
            "two of four signatures": certified(bundle, 2, head, 2),
            "another parent": certified(bundle, 2, sha256(b"elsewhere"), 3),
            "transactions swapped": _swap_txs(certified(bundle, 2, head, 3), (tx,)),
        }
        for block in bad.values():
            a.net.announce_block(block.encode())
        # The blocks were sent in order on one stream: once the good one is in, each bad one
        # was seen before it, refused, and scored against the validator that sent it.
        good = certified(bundle, 2, head, 3)
        a.net.announce_block(good.encode())
        await asyncio.wait_for(follower.wait_for_height(2), 10)
        assert follower.head.block_hash == good.block.hash()
        assert follower.next_nonce(peer.public_key) == 1
        (entry,) = follower.network.peer_info()
        assert entry["score"] == FAST.score_max - len(bad) * FAST.penalty_misbehaviour
    finally:
        await follower.stop()
        await a.net.stop()


def _swap_txs(committed: CommittedBlock, txs: tuple[Transaction, ...]) -> CommittedBlock:
    """The same header and certificate over other transactions (tx_root no longer matches)."""
    block = committed.block
    return CommittedBlock(Block(block.header, txs, block.schedule), committed.certificate)


async def test_a_follower_without_links_says_so(bundle: GenesisBundle) -> None:
    follower = Follower(bundle.genesis, bundle.gateways[0].key, [])
    peer = bundle.participants[0].key
    tx = sign_tx(peer, bundle.genesis.chain_id, 0, Transfer(bytes(20), 5, ""))
    await follower.start()
    try:
        with pytest.raises(NoValidatorLinkError):
            await follower.submit(tx)
    finally:
        await follower.stop()

"""The peer network over real TCP sockets on 127.0.0.1, several PeerNetworks in one event loop.

Nothing here asserts a duration.  Waits are bounded polls for a condition (a bound only turns a
hang into a failure), and "X did *not* arrive" is proven with ordering instead of sleeping: a
link is one TCP stream, so once a marker sent *after* X on the same link has arrived, X would
have arrived first.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from gridchain.node.p2p import (
    BadHandshakeSignatureError,
    ChainMismatchError,
    LinkClosedError,
    NetworkObserver,
    NetworkTuning,
    PeerAddress,
    PeerNetwork,
    PeerRefusedError,
)
from gridchain.node.p2p.frames import (
    HANDSHAKE_MAX_FRAME_BYTES,
    MIN_FRAME_BYTES,
    PROTOCOL_VERSION,
    ConsensusFrame,
    Frame,
    Hello,
    HelloAuth,
    Refuse,
    TxGossip,
    encode_frame,
    read_frame,
)
from gridchain.node.p2p.handshake import Authenticated, handshake, transcript_bytes
from gridchain.node.p2p.secure import Ephemeral, SecureChannel, hellos_hash
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    CommittedBlock,
    Vote,
    VoteSignature,
)
from gridchain.protocol.crypto import Domain, SigningKey, sha256
from gridchain.protocol.errors import DecodeError, GridchainError, SignatureError
from tests.helpers import det_key
from tests.procs import free_test_port as free_port

pytestmark = pytest.mark.timeout(60)

CHAIN = sha256(b"gridchain/p2p-test")
OTHER_CHAIN = sha256(b"gridchain/another-genesis")
KEYS = [det_key(f"p2p/{i}") for i in range(4)]
VALIDATORS = [k.public_key for k in KEYS]
STRANGER = det_key("p2p/stranger")

FAST = NetworkTuning(
    ping_interval_s=0.1,
    idle_timeout_s=5.0,
    connect_timeout_s=2.0,
    handshake_timeout_s=2.0,
    fetch_timeout_s=1.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.3,
    retire_grace_s=0.5,
    score_recovery=0.0,  # scores move only when a test causes it
    ban_s=30.0,
)
WAIT_S = 15.0


async def wait_until(cond: Callable[[], bool], what: str) -> None:
    """Poll until ``cond`` holds; the bound only turns a hang into a named failure."""
    try:
        async with asyncio.timeout(WAIT_S):
            # The state lives in other tasks' objects that offer no event to wait on.
            while not cond():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for: {what}") from None


class BenignRefusalError(GridchainError):
    """A state-dependent refusal (like a stale nonce): not misbehaviour."""

    code = "benign_refusal"


@dataclass
class Recorder:
    """A NetworkHandler that records everything and can be told to refuse."""

    height: int = 0
    blocks: dict[int, bytes] = field(default_factory=dict)
    consensus: list[tuple[bytes, bytes]] = field(default_factory=list)
    txs: list[tuple[bytes, bytes]] = field(default_factory=list)
    client_txs: list[tuple[bytes, bytes]] = field(default_factory=list)
    heights: dict[bytes, int] = field(default_factory=dict)
    consensus_error: GridchainError | None = None
    refuse_txs: set[bytes] = field(default_factory=set)
    serve_error: Exception | None = None
    serve_override: list[bytes] | None = None

    def on_consensus(self, sender: bytes, payload: bytes) -> None:
        self.consensus.append((sender, payload))
        if self.consensus_error is not None:
            raise self.consensus_error

    def on_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        self.txs.append((sender, tx_bytes))
        if tx_bytes in self.refuse_txs:
            raise BenignRefusalError("refused by the test")

    def get_blocks(self, from_height: int, count: int) -> list[bytes]:
        if self.serve_error is not None:
            raise self.serve_error
        if self.serve_override is not None:
            return self.serve_override
        heights = range(from_height, from_height + count)
        return [self.blocks[h] for h in heights if h in self.blocks]

    def on_peer_height(self, sender: bytes, height: int) -> None:
        self.heights[sender] = height

    def on_client_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        self.client_txs.append((sender, tx_bytes))
        if tx_bytes in self.refuse_txs:
            raise BenignRefusalError("refused by the test")

    def payloads_from(self, sender: bytes) -> list[bytes]:
        return [p for s, p in self.consensus if s == sender]

    def tx_count(self, tx: bytes) -> int:
        return sum(1 for _, t in self.txs if t == tx)


@dataclass
class Node:
    key: SigningKey
    port: int
    handler: Recorder
    net: PeerNetwork

    @property
    def pk(self) -> bytes:
        return self.key.public_key

    def address(self, name: str) -> PeerAddress:
        return PeerAddress(name, self.pk, "127.0.0.1", self.port)

    def info(self, other: Node | bytes) -> dict[str, Any]:
        key = other.pk if isinstance(other, Node) else other
        for entry in self.net.peer_info():
            if entry["public_key"] == key.hex():
                return entry
        return {}

    def connected_to(self, *others: Node) -> bool:
        return all(o.pk in self.net.connected_peers() for o in others)


def make_node(
    key: SigningKey,
    port: int,
    peers: Sequence[PeerAddress] = (),
    *,
    chain_id: bytes = CHAIN,
    validators: Sequence[bytes] = VALIDATORS,
    handler: Recorder | None = None,
    tuning: NetworkTuning = FAST,
    observer: NetworkObserver | None = None,
) -> Node:
    handler = handler or Recorder()
    net = PeerNetwork(
        key=key,
        chain_id=chain_id,
        validators=validators,
        listen_host="127.0.0.1",
        listen_port=port,
        peers=peers,
        handler=handler,
        local_height=lambda: handler.height,
        tuning=tuning,
        observer=observer,
    )
    return Node(key, port, handler, net)


@contextlib.asynccontextmanager
async def running(*nodes: Node) -> AsyncIterator[None]:
    try:
        for node in nodes:
            await node.net.start()
        yield
    finally:
        for node in nodes:
            await node.net.stop()


def build_nodes(edges: Sequence[tuple[int, int]], n: int = 4) -> list[Node]:
    """Node i dials node j for each (i, j) in ``edges``."""
    ports = [free_port() for _ in range(n)]
    names = "abcd"

    def addr(j: int) -> PeerAddress:
        return PeerAddress(names[j], KEYS[j].public_key, "127.0.0.1", ports[j])

    return [
        make_node(KEYS[i], ports[i], [addr(j) for a, j in edges if a == i and j < n])
        for i in range(n)
    ]


ALL_TO_ALL = [(i, j) for i in range(4) for j in range(4) if i != j]
LINE = [(0, 1), (1, 2), (2, 3)]


@pytest.fixture
async def mesh() -> AsyncIterator[list[Node]]:
    nodes = build_nodes(ALL_TO_ALL)
    async with running(*nodes):

        def full_mesh() -> bool:
            return all(n.connected_to(*(o for o in nodes if o is not n)) for n in nodes)

        await wait_until(full_mesh, "full mesh")
        yield nodes


async def markers_delivered(senders: Sequence[Node], receivers: Sequence[Node]) -> None:
    """Each sender broadcasts a fresh marker; wait until every receiver has every marker.

    Everything a sender queued to a receiver before its marker has then been delivered.
    """
    marks = {s.pk: b"marker/" + secrets.token_bytes(8) for s in senders}
    for s in senders:
        s.net.broadcast_consensus(marks[s.pk])

    def done() -> bool:
        return all(
            marks[s.pk] in r.handler.payloads_from(s.pk)
            for s in senders
            for r in receivers
            if r is not s and s.pk in r.net.connected_peers()
        )

    await wait_until(done, "markers")


# --- links ------------------------------------------------------------------------------------


async def test_four_nodes_connect_all_to_all_once_per_pair(mesh: list[Node]) -> None:
    def single_links() -> bool:
        return all(a.info(b).get("links") == 1 for a in mesh for b in mesh if a is not b)

    await wait_until(single_links, "duplicate links retired")
    for a in mesh:
        assert sorted(a.net.connected_peers()) == sorted(o.pk for o in mesh if o is not a)
        for b in mesh:
            if a is b:
                continue
            mine, theirs = a.info(b), b.info(a)
            # Both ends use the same TCP connection ...
            assert mine["remote"] == theirs["local"]
            assert mine["local"] == theirs["remote"]
            assert {mine["direction"], theirs["direction"]} == {"in", "out"}
            assert mine["score"] == FAST.score_max


LOW, HIGH = sorted(KEYS[:2], key=lambda k: k.public_key)


async def read_until_closed(link: HandLink) -> list[object]:
    frames: list[object] = []
    with contextlib.suppress(LinkClosedError, ConnectionError):
        while True:
            frames.append(await link.read())
    return frames


async def test_a_duplicate_link_yields_to_the_one_the_lower_key_dialed() -> None:
    low_port, high_port = free_port(), free_port()
    low = make_node(LOW, low_port, [PeerAddress("high", HIGH.public_key, "127.0.0.1", high_port)])
    high = make_node(HIGH, high_port)
    async with running(low, high):
        await wait_until(lambda: low.connected_to(high) and high.connected_to(low), "linked")
        existing = low.info(high)["remote"]
        # HIGH dials LOW a second time: LOW keeps the link it dialed and retires the newcomer.
        link = await authenticated_as(HIGH, low_port)
        assert await read_until_closed(link) is not None
        link.writer.close()
        assert low.info(high)["remote"] == existing
        assert low.connected_to(high)


async def test_a_link_the_lower_key_dials_replaces_one_the_higher_key_dialed() -> None:
    low_port, high_port = free_port(), free_port()
    low = make_node(LOW, low_port)
    high = make_node(HIGH, high_port, [PeerAddress("low", LOW.public_key, "127.0.0.1", low_port)])
    async with running(low, high):
        await wait_until(lambda: low.connected_to(high) and high.connected_to(low), "linked")
        link = await authenticated_as(LOW, high_port)
        host, port = link.writer.get_extra_info("sockname")[:2]
        mine = f"{host}:{port}"
        await wait_until(lambda: high.info(low).get("remote") == mine, "switched to the new link")
        # The old link is retired at both ends; traffic now uses the new one.
        await wait_until(lambda: high.info(low)["links"] == 1, "old link closed")
        high.net.broadcast_consensus(b"over-the-new-link")
        while True:
            frame = await link.read()
            if isinstance(frame, ConsensusFrame):
                assert frame.payload == b"over-the-new-link"
                break
        link.writer.close()


async def test_heights_are_announced_by_pings(mesh: list[Node]) -> None:
    mesh[2].handler.height = 42
    await wait_until(
        lambda: all(n.handler.heights.get(mesh[2].pk) == 42 for n in mesh if n is not mesh[2]),
        "height 42 announced",
    )
    assert mesh[0].info(mesh[2])["height"] == 42


# --- consensus delivery ---------------------------------------------------------------------


async def test_broadcast_reaches_all_and_send_reaches_one(mesh: list[Node]) -> None:
    a, b, c, d = mesh
    a.net.broadcast_consensus(b"pre-prepare")
    a.net.send_consensus(b.pk, b"only-for-b")
    a.net.broadcast_consensus(b"pre-prepare")  # identical payload: de-duplicated
    await markers_delivered([a], [b, c, d])
    assert b.handler.payloads_from(a.pk)[:2] == [b"pre-prepare", b"only-for-b"]
    for other in (c, d):
        assert b"pre-prepare" in other.handler.payloads_from(a.pk)
        assert b"only-for-b" not in other.handler.payloads_from(a.pk)
    for other in (b, c, d):
        assert other.handler.payloads_from(a.pk).count(b"pre-prepare") == 1
        assert all(s == a.pk for s, p in other.handler.consensus if p == b"pre-prepare")
    assert a.handler.consensus == []


async def test_a_repeated_consensus_message_is_passed_on_again_after_the_repeat_interval(
    mesh: list[Node],
) -> None:
    """Engines retransmit byte-identical messages; a receiver that dropped the first copy
    (it was behind) must get a later one.  A seen set that dropped every repeat for good
    stalled PBFT view changes for tens of seconds (issue 12).  A tight loop is still cut."""
    a, b, _, _ = mesh
    interval = FAST.consensus_repeat_s
    a.net.send_consensus(b.pk, b"view-change")
    a.net.send_consensus(b.pk, b"view-change")  # at once: dropped
    await markers_delivered([a], [b])
    assert b.handler.payloads_from(a.pk).count(b"view-change") == 1
    await asyncio.sleep(interval * 1.5)
    a.net.send_consensus(b.pk, b"view-change")  # a retransmission: passed on
    await wait_until(
        lambda: b.handler.payloads_from(a.pk).count(b"view-change") == 2, "the retransmission"
    )


async def test_send_to_an_unconnected_key_is_dropped(mesh: list[Node]) -> None:
    mesh[0].net.send_consensus(STRANGER.public_key, b"nobody")
    await markers_delivered([mesh[0]], mesh[1:])
    assert all(b"nobody" not in n.handler.payloads_from(mesh[0].pk) for n in mesh)


# --- transaction gossip ---------------------------------------------------------------------


async def test_tx_gossip_reaches_all_once_in_a_mesh(mesh: list[Node]) -> None:
    tx = b"tx/" + secrets.token_bytes(16)
    mesh[0].net.gossip_tx(tx)
    mesh[0].net.gossip_tx(tx)  # a second local submission is not re-flooded
    await wait_until(lambda: all(n.handler.tx_count(tx) for n in mesh[1:]), "tx everywhere")
    await markers_delivered(mesh, mesh)  # every forward queued before a marker has arrived
    assert [n.handler.tx_count(tx) for n in mesh] == [0, 1, 1, 1]


async def test_tx_gossip_crosses_a_line_exactly_once_per_node() -> None:
    a, b, c, d = nodes = build_nodes(LINE)
    async with running(*nodes):
        await wait_until(lambda: b.connected_to(a, c) and c.connected_to(b, d), "line")
        at_c = spy_tx_frames(c)
        tx = b"tx/" + secrets.token_bytes(16)
        a.net.gossip_tx(tx)
        await wait_until(lambda: d.handler.tx_count(tx) == 1, "tx at the far end")
        await markers_delivered(nodes, nodes)
        assert [n.handler.tx_count(tx) for n in nodes] == [0, 1, 1, 1]
        # Each hop heard it from its neighbour, authenticated as that neighbour.
        assert b.handler.txs == [(a.pk, tx)]
        assert c.handler.txs == [(b.pk, tx)]
        assert d.handler.txs == [(c.pk, tx)]
        # b has no link to d, so it asks c to pass it on (ADR 0047)
        assert [(sender, f.txs, f.relay) for sender, f in at_c] == [(b.pk, (tx,), True)]
        assert a.connected_to(b)
        assert not a.connected_to(c)

        # A transaction the middle node refuses is not forwarded and costs the sender nothing.
        bad = b"tx/refused/" + secrets.token_bytes(8)
        b.handler.refuse_txs.add(bad)
        a.net.gossip_tx(bad)
        await wait_until(lambda: b.handler.tx_count(bad) == 1, "refused tx at b")
        await markers_delivered([b], [c])
        assert c.handler.tx_count(bad) == 0
        assert b.info(a)["score"] == FAST.score_max


def spy_tx_frames(node: Node) -> list[tuple[bytes, TxGossip]]:
    """Every TxGossip frame ``node`` receives from now on, with its sender, before handling."""
    frames: list[tuple[bytes, TxGossip]] = []
    dispatch = node.net._dispatch

    def spy(state: Any, link: Any, frame: Frame) -> None:
        if isinstance(frame, TxGossip):
            frames.append((state.key, frame))
        dispatch(state, link, frame)

    node.net._dispatch = spy  # type: ignore[method-assign]
    return frames


async def test_tx_gossip_crosses_one_hop_in_a_full_mesh(mesh: list[Node]) -> None:
    """ADR 0047: a sender with a link to every validator says so (relay=False) and nobody
    passes the transaction on; before, every validator flooded it to all its peers, so each
    received it from every peer (n - 1 frames per transaction and validator)."""
    frames = {n.pk: spy_tx_frames(n) for n in mesh[1:]}
    tx = b"tx/" + secrets.token_bytes(16)
    mesh[0].net.gossip_tx(tx)
    await wait_until(lambda: all(n.handler.tx_count(tx) for n in mesh[1:]), "tx everywhere")
    await markers_delivered(mesh, mesh)
    for n in mesh[1:]:
        assert [(sender, f.txs, f.relay) for sender, f in frames[n.pk]] == [
            (mesh[0].pk, (tx,), False)
        ]


async def test_txs_gossiped_in_one_turn_travel_in_one_frame(mesh: list[Node]) -> None:
    """An API batch admitted in one turn of the event loop is one TxGossip per link, in the
    order it was admitted (a sender's nonces stay in order)."""
    frames = {n.pk: spy_tx_frames(n) for n in mesh[1:]}
    txs = [f"tx/{i}/".encode() + secrets.token_bytes(8) for i in range(50)]
    for tx in txs:
        mesh[0].net.gossip_tx(tx)
    await wait_until(
        lambda: all(n.handler.tx_count(txs[-1]) for n in mesh[1:]), "the batch everywhere"
    )
    await markers_delivered(mesh, mesh)
    for n in mesh[1:]:
        assert [f.txs for _, f in frames[n.pk]] == [tuple(txs)]
        assert [t for _, t in n.handler.txs] == txs


# --- who may connect --------------------------------------------------------------------------


async def test_another_genesis_is_refused_in_both_directions() -> None:
    a_port, x_port = free_port(), free_port()
    x_key = KEYS[1]  # a validator key, but on another chain
    a = make_node(KEYS[0], a_port, [PeerAddress("x", x_key.public_key, "127.0.0.1", x_port)])
    x = make_node(
        x_key,
        x_port,
        [PeerAddress("a", KEYS[0].public_key, "127.0.0.1", a_port)],
        chain_id=OTHER_CHAIN,
    )
    async with running(a, x):
        await wait_until(
            lambda: (
                a.info(x).get("last_error") == "chain_mismatch"
                and x.info(a).get("last_error") == "chain_mismatch"
            ),
            "both dialers see chain_mismatch",
        )
        # A dialer gets the typed error directly from the handshake, too.
        reader, writer = await asyncio.open_connection("127.0.0.1", a_port)
        with pytest.raises(ChainMismatchError):
            await dial_handshake(reader, writer, x_key, OTHER_CHAIN, expected=KEYS[0].public_key)
        writer.close()
        assert a.net.connected_peers() == []
        assert x.net.connected_peers() == []


async def test_a_key_outside_the_validator_set_is_refused_in_both_directions() -> None:
    a_port, s_port = free_port(), free_port()
    everyone = [*VALIDATORS, STRANGER.public_key]
    # The stranger believes it belongs and dials a; a dials what its config says is b but the
    # stranger answers there.
    a = make_node(KEYS[0], a_port, [PeerAddress("b", KEYS[1].public_key, "127.0.0.1", s_port)])
    stranger = make_node(
        STRANGER,
        s_port,
        [PeerAddress("a", KEYS[0].public_key, "127.0.0.1", a_port)],
        validators=everyone,
    )
    async with running(a, stranger):
        await wait_until(
            lambda: (
                a.info(KEYS[1].public_key).get("last_error") == "unknown_peer"
                and stranger.info(a).get("last_error") == "refused:unknown_peer"
            ),
            "stranger refused both ways",
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", a_port)
        with pytest.raises(PeerRefusedError) as refused:
            await dial_handshake(reader, writer, STRANGER, CHAIN, expected=KEYS[0].public_key)
        assert refused.value.reason == "unknown_peer"
        writer.close()
        assert a.net.connected_peers() == []
        assert stranger.net.connected_peers() == []


async def dial_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    key: SigningKey,
    chain_id: bytes,
    *,
    expected: bytes | None,
    height: int = 0,
    max_frame_bytes: int = 8 * 1024 * 1024,
) -> Authenticated:
    return await handshake(
        reader,
        writer,
        key=key,
        chain_id=chain_id,
        initiator=True,
        admit=lambda _: None,
        expected_key=expected,
        height=height,
        max_frame_bytes=max_frame_bytes,
        timeout_s=5.0,
    )


#: sign(their Hello, my nonce, the Hellos' hash) -> the signature to present.
Signer = Callable[[Hello, bytes, bytes], bytes]


async def forged_handshake(port: int, claimed: bytes, sign: Signer) -> Refuse:
    """Dial as ``claimed`` (speaking the protocol by hand, with genuine link keys) and answer
    with ``sign(their_hello, my_nonce, hellos)``; return the responder's sealed verdict."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        nonce = secrets.token_bytes(32)
        ephemeral = Ephemeral()
        hello = Hello(
            PROTOCOL_VERSION, CHAIN, claimed, nonce, MIN_FRAME_BYTES, ephemeral.public_bytes
        )
        writer.write(encode_frame(hello))
        theirs, _ = await read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
        assert isinstance(theirs, Hello)
        hellos = hellos_hash(hello.encode(), theirs.encode())
        secret = ephemeral.shared_secret(theirs.ephemeral_key)
        channel = SecureChannel.derive(secret, hellos, initiator=True)
        writer.write(channel.seal_encoded(encode_frame(HelloAuth(sign(theirs, nonce, hellos)))))
        await writer.drain()
        _auth, _ = await channel.read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
        verdict, _ = await channel.read_frame(reader, HANDSHAKE_MAX_FRAME_BYTES)
        assert isinstance(verdict, Refuse)
        assert await reader.read() == b""  # and the responder closed the connection
        return verdict
    finally:
        writer.close()


async def test_forged_replayed_or_reflected_handshake_signatures_are_refused() -> None:
    a = make_node(KEYS[0], free_port())
    b_key, b_pk = KEYS[1], KEYS[1].public_key

    def transcript(
        theirs: Hello,
        nonce: bytes,
        hellos: bytes,
        *,
        initiator: bool,
        responder_nonce: bytes | None = None,
    ) -> bytes:
        return transcript_bytes(
            signer_is_initiator=initiator,
            initiator_key=b_pk,
            responder_key=theirs.public_key,
            initiator_nonce=nonce,
            responder_nonce=theirs.nonce if responder_nonce is None else responder_nonce,
            hellos=hellos,
        )

    attacks: dict[str, Signer] = {
        # Claims b's key but signs with its own.
        "forged": lambda h, n, hh: STRANGER.sign(
            Domain.HANDSHAKE, CHAIN, transcript(h, n, hh, initiator=True)
        ),
        # b's genuine signature from an earlier connection (other responder nonce).
        "replayed": lambda h, n, hh: b_key.sign(
            Domain.HANDSHAKE,
            CHAIN,
            transcript(h, n, hh, initiator=True, responder_nonce=secrets.token_bytes(32)),
        ),
        # b's genuine signature made in the responder role, reflected as the initiator's.
        "reflected": lambda h, n, hh: b_key.sign(
            Domain.HANDSHAKE, CHAIN, transcript(h, n, hh, initiator=False)
        ),
        # b's genuine signature for another chain.
        "other chain": lambda h, n, hh: b_key.sign(
            Domain.HANDSHAKE, OTHER_CHAIN, transcript(h, n, hh, initiator=True)
        ),
        # b's genuine signature over other Hellos (another pair of link keys: a man in the
        # middle that swapped the ephemeral keys would hold one like it).
        "other link keys": lambda h, n, hh: b_key.sign(
            Domain.HANDSHAKE, CHAIN, transcript(h, n, sha256(hh), initiator=True)
        ),
    }
    async with running(a):
        for name, sign in attacks.items():
            verdict = await forged_handshake(a.port, b_pk, sign)
            assert verdict.code == BadHandshakeSignatureError.code, name
        # The control: b's real signature over this connection's transcript is accepted.
        reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
        peer = await dial_handshake(reader, writer, b_key, CHAIN, expected=a.pk)
        assert peer.public_key == a.pk
        await wait_until(lambda: a.net.connected_peers() == [b_pk], "genuine b accepted")
        writer.close()
        # Refused handshakes never count against the key they claimed.
        assert a.info(b_pk)["score"] == FAST.score_max


# --- misbehaviour -----------------------------------------------------------------------------


@dataclass
class HandLink:
    """An authenticated link driven by hand: frames are sealed with its real keys."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    channel: SecureChannel

    def send(self, frame: Frame) -> None:
        self.writer.write(self.channel.seal_encoded(encode_frame(frame)))

    def send_body(self, body: bytes) -> None:
        """Seal arbitrary bytes as a frame body (authentic, but maybe not a valid record)."""
        self.writer.write(self.channel.seal(body))

    async def read(self) -> Frame:
        frame, _ = await self.channel.read_frame(self.reader, 1 << 24)
        return frame


async def authenticated_as(key: SigningKey, port: int) -> HandLink:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    peer = await dial_handshake(reader, writer, key, CHAIN, expected=None)
    return HandLink(reader, writer, peer.channel)


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Read until the peer ends the stream (pings may arrive first)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass
    return True


async def test_garbage_and_oversize_frames_disconnect_score_and_ban() -> None:
    a = make_node(KEYS[0], free_port())
    b_pk = KEYS[1].public_key
    async with running(a):
        # Garbage sealed with the link's keys: authentic, so only the peer can have sent it.
        link = await authenticated_as(KEYS[1], a.port)
        link.send_body(b"\xc1\xc1\xc1\xc1\xc1")
        assert await closed_by_peer(link.reader)
        link.writer.close()
        await wait_until(lambda: a.info(b_pk).get("last_error") == "malformed", "scored")
        assert a.info(b_pk)["score"] == FAST.score_max - FAST.penalty_malformed

        # A length prefix far beyond the frame bound: refused before any body is read.
        link = await authenticated_as(KEYS[1], a.port)
        link.writer.write((1 << 31).to_bytes(4, "big"))
        assert await closed_by_peer(link.reader)
        link.writer.close()
        await wait_until(lambda: a.info(b_pk).get("last_error") == "oversize", "scored")
        assert a.info(b_pk)["score"] == FAST.score_max - 2 * FAST.penalty_malformed

        # A handshake frame on an authenticated link is a protocol violation; the third
        # offence takes the score to zero: banned.
        link = await authenticated_as(KEYS[1], a.port)
        link.send(Hello(PROTOCOL_VERSION, CHAIN, b_pk, bytes(32), MIN_FRAME_BYTES, bytes(32)))
        assert await closed_by_peer(link.reader)
        link.writer.close()
        await wait_until(lambda: a.info(b_pk)["banned_s"] > 0, "banned")

        reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
        with pytest.raises(PeerRefusedError) as refused:
            await dial_handshake(reader, writer, KEYS[1], CHAIN, expected=a.pk)
        assert refused.value.reason == "banned"
        writer.close()
        # Others are unaffected.
        link = await authenticated_as(KEYS[2], a.port)
        await wait_until(lambda: a.net.connected_peers() == [KEYS[2].public_key], "c links")
        link.writer.close()


async def test_handler_decode_errors_lower_the_score_then_ban() -> None:
    ports = [free_port(), free_port()]
    a = make_node(KEYS[0], ports[0])
    b = make_node(KEYS[1], ports[1], [a.address("a")])
    a.handler.consensus_error = DecodeError("not a consensus message")
    async with running(a, b):
        await wait_until(lambda: a.connected_to(b) and b.connected_to(a), "linked")
        b.net.broadcast_consensus(b"bad/0")
        await wait_until(
            lambda: a.info(b)["score"] == FAST.score_max - FAST.penalty_misbehaviour, "scored"
        )
        assert a.connected_to(b)  # one bad message is not enough to drop a validator
        offences = int(FAST.score_max // FAST.penalty_misbehaviour)
        for i in range(1, offences + 5):
            b.net.broadcast_consensus(b"bad/%d" % i)
        await wait_until(lambda: a.info(b)["banned_s"] > 0, "banned")
        await wait_until(lambda: not b.connected_to(a), "b disconnected")
        # b learns why, and its redials are refused while the ban lasts.
        await wait_until(lambda: b.info(a)["last_error"] == "refused:banned", "b told")
        assert not a.connected_to(b)
        # Frames that arrived after the ban decision are not handed to the handler.
        assert len(a.handler.payloads_from(b.pk)) <= offences + 5


async def test_signature_errors_count_but_benign_refusals_do_not(mesh: list[Node]) -> None:
    a, b = mesh[0], mesh[1]
    b.handler.consensus_error = BenignRefusalError("stale view")
    a.net.send_consensus(b.pk, b"stale")
    await markers_delivered([a], [b])
    assert b.info(a)["score"] == FAST.score_max
    b.handler.consensus_error = SignatureError("vote signature does not verify")
    a.net.send_consensus(b.pk, b"forged-vote")
    await wait_until(lambda: b.info(a)["last_error"] == "bad_signature", "scored")
    assert b.info(a)["score"] == FAST.score_max - FAST.penalty_misbehaviour


async def test_consensus_frames_are_delivered_even_from_a_hand_written_peer() -> None:
    a = make_node(KEYS[0], free_port())
    async with running(a):
        link = await authenticated_as(KEYS[3], a.port)
        link.send(ConsensusFrame(b"raw"))
        link.send(ConsensusFrame(b"raw"))
        await link.writer.drain()
        await wait_until(lambda: a.handler.payloads_from(KEYS[3].public_key) == [b"raw"], "raw")
        link.writer.close()


# --- reconnection ---------------------------------------------------------------------------


async def test_links_come_back_after_a_restart_on_the_same_port() -> None:
    nodes = build_nodes(ALL_TO_ALL, n=3)
    a, b, c = nodes
    async with running(a, b):
        await c.net.start()
        try:
            await wait_until(
                lambda: all(n.connected_to(*(o for o in nodes if o is not n)) for n in nodes),
                "mesh",
            )
        finally:
            await c.net.stop()
        await wait_until(lambda: not a.connected_to(c) and not b.connected_to(c), "c gone")

        c2 = make_node(c.key, c.port, [a.address("a"), b.address("b")])
        async with running(c2):
            await wait_until(
                lambda: c2.connected_to(a, b) and a.connected_to(c2) and b.connected_to(c2),
                "c back",
            )
            a.net.broadcast_consensus(b"after-restart")
            await wait_until(lambda: b"after-restart" in c2.handler.payloads_from(a.pk), "flow")


# --- fetching blocks ------------------------------------------------------------------------


def committed_block(height: int, key: SigningKey = KEYS[1]) -> bytes:
    header = BlockHeader(
        chain_id=CHAIN,
        height=height,
        prev_hash=sha256(b"%d" % (height - 1)),
        timestamp_ms=1_704_067_200_000 + height,
        proposer=key.public_key,
        round=0,
        benefit=0,
        tx_root=bytes(32),
        schedule_root=bytes(32),
        state_root=bytes(32),
    )
    vote = Vote(height, 0, header.hash(), 2)
    certificate = Certificate(vote, (vote.sign(key, CHAIN),))
    assert isinstance(certificate.signatures[0], VoteSignature)
    return CommittedBlock(Block(header, ()), certificate).encode()


async def test_fetch_blocks_falls_over_from_bad_and_silent_peers() -> None:
    ports = [free_port() for _ in range(3)]
    a = make_node(KEYS[0], ports[0])
    good = make_node(KEYS[1], ports[1], [a.address("a")])
    bad = make_node(KEYS[2], ports[2], [a.address("a")])
    chain = {h: committed_block(h) for h in range(1, 8)}
    good.handler.blocks = dict(chain)
    # Peers whose announced head reaches the requested height are asked first; the good peer
    # announces none, so every failing peer below is asked before it.
    good.handler.height = 0
    bad.handler.height = 100
    bad.handler.serve_override = [chain[5], chain[6]]
    async with running(a, good, bad):
        await wait_until(lambda: a.connected_to(good, bad), "linked")
        await wait_until(lambda: a.info(bad)["height"] == 100, "heights known")

        assert await a.net.fetch_blocks(3, 4) == [chain[3], chain[4], chain[5], chain[6]]
        assert a.info(bad)["last_error"] == "protocol_violation"
        assert a.info(bad)["score"] == FAST.score_max - FAST.penalty_misbehaviour

        # Undecodable bytes are scored too, and a failing handler answers with nothing.
        bad.handler.serve_override = [b"\xc1junk"]
        assert await a.net.fetch_blocks(1, 2) == [chain[1], chain[2]]
        assert a.info(bad)["last_error"] == "malformed"
        bad.handler.serve_error = RuntimeError("store unavailable")
        assert await a.net.fetch_blocks(7, 10) == [chain[7]]

        # A peer that never answers times out and the next one is asked.
        _silent_reader, silent = await asyncio.open_connection("127.0.0.1", ports[0])
        await dial_handshake(_silent_reader, silent, KEYS[3], CHAIN, expected=a.pk, height=1000)
        await wait_until(lambda: a.info(KEYS[3].public_key).get("height") == 1000, "silent")
        assert await a.net.fetch_blocks(2, 1) == [chain[2]]
        assert a.info(KEYS[3].public_key)["last_error"] == "fetch_timeout"
        silent.close()

        # Nobody has blocks past the head.
        assert await a.net.fetch_blocks(8, 5) == []


async def test_fetch_blocks_is_served_by_the_remote_handler() -> None:
    ports = [free_port(), free_port()]
    a = make_node(KEYS[0], ports[0])
    b = make_node(KEYS[1], ports[1], [a.address("a")])
    chain = {h: committed_block(h) for h in range(1, 4)}
    a.handler.blocks = chain
    async with running(a, b):
        await wait_until(lambda: b.connected_to(a), "linked")
        assert await b.net.fetch_blocks(1, 1000) == [chain[1], chain[2], chain[3]]
        assert await b.net.fetch_blocks(2, 1) == [chain[2]]


# --- resource bounds ------------------------------------------------------------------------


async def test_a_silent_link_is_closed_as_idle() -> None:
    a = make_node(KEYS[0], free_port(), tuning=replace(FAST, idle_timeout_s=0.5))
    async with running(a):
        link = await authenticated_as(KEYS[1], a.port)
        await wait_until(lambda: a.net.connected_peers() == [KEYS[1].public_key], "linked")
        # Pings from a arrive, but nothing is sent back: a gives up on the link.
        assert await read_until_closed(link)
        link.writer.close()
        await wait_until(lambda: a.info(KEYS[1].public_key)["links"] == 0, "closed")
        assert a.info(KEYS[1].public_key)["last_disconnect"] == "idle timeout"
        assert a.info(KEYS[1].public_key)["score"] == FAST.score_max  # slow is not hostile


async def test_a_peer_that_does_not_read_is_dropped_not_buffered() -> None:
    a = make_node(KEYS[0], free_port(), tuning=replace(FAST, max_queue_bytes=1024 * 1024))
    async with running(a):
        link = await authenticated_as(KEYS[1], a.port)
        await wait_until(lambda: a.net.connected_peers() == [KEYS[1].public_key], "linked")
        payload = secrets.token_bytes(512 * 1024)
        # Far more than the socket buffers of both ends hold, so a's queue must fill.
        for _ in range(400):
            if not a.net.connected_peers():
                break
            a.net.broadcast_consensus(payload)
            await asyncio.sleep(0)
        await wait_until(lambda: a.info(KEYS[1].public_key)["links"] == 0, "dropped")
        assert a.info(KEYS[1].public_key)["last_disconnect"] == "slow peer: write queue full"
        link.writer.close()


async def test_frames_larger_than_a_peer_accepts_are_not_sent_to_it() -> None:
    ports = [free_port(), free_port()]
    a = make_node(KEYS[0], ports[0])
    b = make_node(KEYS[1], ports[1], [a.address("a")])
    b.net = PeerNetwork(
        key=b.key,
        chain_id=CHAIN,
        validators=VALIDATORS,
        listen_host="127.0.0.1",
        listen_port=b.port,
        peers=[a.address("a")],
        handler=b.handler,
        max_frame_bytes=MIN_FRAME_BYTES,
        tuning=FAST,
    )
    async with running(a, b):
        await wait_until(lambda: a.connected_to(b) and b.connected_to(a), "linked")
        a.net.broadcast_consensus(b"x" * (MIN_FRAME_BYTES + 1))
        await markers_delivered([a], [b])
        assert [len(p) for p in b.handler.payloads_from(a.pk)] == [len(b"marker/") + 8]
        # Skipping it locally means b never saw an oversize frame: nobody is punished.
        assert b.info(a)["score"] == FAST.score_max
        assert a.connected_to(b)


async def test_a_ban_expires() -> None:
    a = make_node(KEYS[0], free_port(), tuning=replace(FAST, ban_s=0.5))
    b_pk = KEYS[1].public_key
    async with running(a):
        for _ in range(3):
            link = await authenticated_as(KEYS[1], a.port)
            link.send_body(b"\xc1")
            assert await closed_by_peer(link.reader)
            link.writer.close()
        # 100 - 3 x 40 <= 0: banned, and the score starts afresh (whether or not the short ban
        # has already run out by now).
        await wait_until(lambda: a.info(b_pk)["last_error"] == "malformed", "scored")
        assert a.info(b_pk)["score"] == FAST.score_max
        refusals: list[str] = []

        async def try_again() -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
            try:
                await dial_handshake(reader, writer, KEYS[1], CHAIN, expected=a.pk)
            except PeerRefusedError as exc:
                refusals.append(exc.reason)
                return False
            finally:
                writer.close()
            return True

        async with asyncio.timeout(WAIT_S):
            while not await try_again():  # noqa: ASYNC110 - each round is a real handshake
                await asyncio.sleep(0.05)
        assert set(refusals) <= {"banned"}

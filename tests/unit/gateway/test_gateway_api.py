"""The gateway's HTTPS API in front of a real ledger: a solo validator in this process.

The followed chain here is the validator itself (``LedgerChain``: its registered senders, its
nonces, and ``submit`` admitting exactly as a validator admits a forwarded transaction), so
every filter is seen end to end through HTTPS: the client gets the typed refusal, the
gateway's counter moves, and the ledger never hears of the transaction (its mempool and its
admission counters are unchanged, the hash is unknown to it).  The real follower over the p2p
links is exercised by tests/e2e/test_gateway_e2e.py.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gridchain.api.client import NodeCertificateError, NodeClient, NodeRefusedError
from gridchain.gateway.server import serve_gateway
from gridchain.gateway.settings import (
    FiltersSection,
    GatewayApiSection,
    GatewaySettings,
    RelaySection,
)
from gridchain.genesis.community_ca import Issued, issue_server_cert, make_ca
from gridchain.node.query import NodeQuery
from gridchain.node.runtime import Node
from gridchain.protocol.address import format_address
from gridchain.protocol.tx import Transaction, Transfer, decode_tx, sign_tx
from tests.procs import free_port_block
from tests.unit.gateway.conftest import ManualClock
from tests.unit.node.conftest import LiveNode, live_node

MAX_PER_IP = 6


class LedgerChain:
    """A FollowedChain answered by an in-process validator."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.query = NodeQuery(node)
        #: Cleared by a test to hold forwarded transactions at the gateway (in flight).
        self.gate = asyncio.Event()
        self.gate.set()
        #: Set once a transaction is held at the gate.
        self.holding = asyncio.Event()
        #: Set by a test: the link to the validators fails.
        self.broken = False

    def is_registered(self, sender: bytes) -> bool:
        return self.query.account(_address(sender)).registered

    def next_nonce(self, sender: bytes) -> int:
        return self.query.account(_address(sender)).nonce

    def head_height(self) -> int | None:
        return self.node.head.height

    async def submit(self, raw: bytes) -> None:
        if not self.gate.is_set():
            self.holding.set()
        await self.gate.wait()
        if self.broken:
            raise ConnectionResetError("link lost")
        self.node.submit(decode_tx(raw), raw)


def _address(sender: bytes) -> bytes:
    from gridchain.protocol.address import address_of

    return address_of(sender)


@dataclass
class Edge:
    live: LiveNode
    url: str
    ca_file: Path
    clock: ManualClock
    chain: LedgerChain

    def client(self, **kwargs: object) -> NodeClient:
        return NodeClient(self.url, ca_file=self.ca_file, retries=0, **kwargs)  # type: ignore[arg-type]

    def transfer(self, peer: int, nonce: int, amount_mc: int = 1000) -> Transaction:
        chain = self.live.chain
        to = chain.peer((peer + 1) % 3).public_key
        from gridchain.protocol.address import address_of

        body = Transfer(to=address_of(to), amount_mc=amount_mc)
        return sign_tx(chain.peer(peer), chain.chain_id, nonce, body)

    def ledger_received(self) -> float:
        value = self.live.node.metrics.registry.get_sample_value("gridchain_txs_received_total")
        return value or 0.0

    async def gateway_metric(self, name: str, labels: dict[str, str]) -> float:
        """A gateway metric, read from a loopback address of its own (127.0.0.3), so that a
        test holding the per-IP share of 127.0.0.1 can still read it."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        connector = aiohttp.TCPConnector(ssl=context, local_addr=("127.0.0.3", 0))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(self.url + "/metrics") as resp,
        ):
            text = await resp.text()
        pattern = name + " "
        if labels:
            pattern = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        for line in text.splitlines():
            if line.startswith(pattern):
                return float(line.split()[-1])
        return 0.0


def _write(path: Path, issued: Issued) -> tuple[Path, Path]:
    cert, key = path / "cert.pem", path / "key.pem"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    return cert, key


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    ca = make_ca("test community")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    cert, key = _write(tmp_path, issue_server_cert(ca, "gateway-1", ["127.0.0.1", "localhost"]))
    port = free_port_block(1)
    clock = ManualClock()
    async with live_node(tmp_path / "chain") as live:
        settings = GatewaySettings(
            api=GatewayApiSection(
                host="127.0.0.1", port=port, tls_cert=cert, tls_key=key, max_per_ip=MAX_PER_IP
            ),
            filters=FiltersSection(sender_rate=1.0, sender_burst=5, nonce_window=8),
            relay=RelaySection(api_urls=[live.url]),
        )
        ready, stop = asyncio.Event(), asyncio.Event()
        chain = LedgerChain(live.node)
        task = asyncio.create_task(
            serve_gateway(
                settings,
                chain,
                live.chain.chain_id,
                ready=ready,
                stop=stop,
                clock=clock,
            )
        )
        await asyncio.wait_for(ready.wait(), 10)
        try:
            yield Edge(live, f"https://127.0.0.1:{port}", ca_file, clock, chain)
        finally:
            stop.set()
            await task


async def test_a_transfer_through_the_gateway_commits(edge: Edge) -> None:
    tx = edge.transfer(0, 0)
    async with edge.client() as client:
        tx_hash = await client.submit_tx(tx)
        status = await client.wait_committed(tx_hash, timeout_s=15)  # read relayed
        assert status.height is not None
        account = await client.account(format_address(tx.sender_address))
    assert account.nonce == 1
    assert await edge.gateway_metric("gridchain_gateway_forwarded_total", {}) == 1


async def _refused(edge: Edge, raw_hex: str) -> tuple[int, str]:
    async with edge.client() as client:
        session = client._open_session()
        async with session.post(edge.url + "/v1/txs", json={"tx": raw_hex}) as resp:
            body = await resp.json()
            return resp.status, body["error"]["code"]


async def _assert_refused_at_the_edge(
    edge: Edge, tx_or_raw: Transaction | bytes, status: int, code: str, filter_name: str
) -> None:
    raw = tx_or_raw if isinstance(tx_or_raw, bytes) else tx_or_raw.encode()
    received = edge.ledger_received()
    pending = len(edge.live.node.mempool)
    counted = await edge.gateway_metric(
        "gridchain_gateway_refused_total", {"filter": filter_name, "code": code}
    )
    assert await _refused(edge, raw.hex()) == (status, code)
    assert (
        await edge.gateway_metric(
            "gridchain_gateway_refused_total", {"filter": filter_name, "code": code}
        )
        == counted + 1
    )
    # nothing reached the ledger: not admitted, not pending, unknown by hash
    assert edge.ledger_received() == received
    assert len(edge.live.node.mempool) <= pending  # earlier ones may commit meanwhile
    if not isinstance(tx_or_raw, bytes):
        assert edge.live.node.mempool.get(tx_or_raw.hash()) is None


async def test_size_filter(edge: Edge) -> None:
    raw = edge.transfer(0, 0).encode() + bytes(70_000)  # beyond MAX_TX_BYTES
    await _assert_refused_at_the_edge(edge, raw, 413, "tx_too_large", "size")


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"\x99junk", "malformed"), (b"\x02\x99junk", "non_canonical")],
)
async def test_decoding_filter(edge: Edge, raw: bytes, code: str) -> None:
    await _assert_refused_at_the_edge(edge, raw, 400, code, "decode")


async def test_signature_filter(edge: Edge) -> None:
    good = edge.transfer(0, 0)
    forged = Transaction(good.sender, good.nonce, good.body, bytes(64))
    await _assert_refused_at_the_edge(edge, forged, 400, "bad_signature", "signature")


async def test_registered_sender_filter(edge: Edge) -> None:
    from tests.helpers import det_key

    stranger = det_key("not a participant")
    tx = sign_tx(stranger, edge.live.chain.chain_id, 0, Transfer(to=b"\x01" * 20, amount_mc=1))
    await _assert_refused_at_the_edge(edge, tx, 403, "unregistered_sender", "sender")


async def test_nonce_window_filter(edge: Edge) -> None:
    await _assert_refused_at_the_edge(
        edge, edge.transfer(0, 9), 409, "nonce_out_of_window", "nonce"
    )


async def test_dedup_filter(edge: Edge) -> None:
    """A copy sent while the first is on its way is refused at the edge (once the first has
    committed, the nonce window refuses copies before the cache is asked)."""
    tx = edge.transfer(1, 0)
    edge.chain.gate.clear()  # hold the first copy in flight at the gateway
    async with edge.client() as client:
        first = asyncio.create_task(client.submit_tx(tx))
        await edge.chain.holding.wait()
        received = edge.ledger_received()
        assert await _refused(edge, tx.encode().hex()) == (409, "duplicate_tx")
        assert edge.ledger_received() == received
        assert len(edge.live.node.mempool) == 0
        edge.chain.gate.set()
        assert await first == tx.hash().hex()
    assert (
        await edge.gateway_metric(
            "gridchain_gateway_refused_total", {"filter": "duplicate", "code": "duplicate_tx"}
        )
        == 1
    )


async def test_token_bucket_filter_and_its_refill_by_the_clock(edge: Edge) -> None:
    async with edge.client() as client:
        for nonce in range(5):  # burst 5
            await client.submit_tx(edge.transfer(2, nonce))
    await _assert_refused_at_the_edge(edge, edge.transfer(2, 5), 429, "rate_limited", "quota")
    edge.clock.advance(1.0)  # rate 1/s: one more token
    async with edge.client() as client:
        await client.submit_tx(edge.transfer(2, 5))


async def test_a_validator_refusal_comes_back_with_the_validators_code(edge: Edge) -> None:
    tx = edge.transfer(0, 0, amount_mc=10**15)  # far beyond the balance
    async with edge.client() as client:
        with pytest.raises(NodeRefusedError) as caught:
            await client.submit_tx(tx)
    assert caught.value.node_code == "insufficient_balance"
    assert caught.value.status == 422
    # refused by the ledger, so the gateway forgot it: the same bytes are judged again
    assert await _refused(edge, tx.encode().hex()) == (422, "insufficient_balance")


async def test_per_ip_connection_cap_counts_silent_sockets_before_tls(edge: Edge) -> None:
    """MAX_PER_IP silent TCP sockets (no ClientHello) from one address hold its whole share:
    the next TLS client from that address is closed before its handshake (counted), while a
    client from another loopback address is still served."""
    context = ssl.create_default_context(cafile=str(edge.ca_file))
    port = int(edge.url.rsplit(":", 1)[1])
    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(MAX_PER_IP)]
    try:
        for _ in range(500):  # until the gateway has accepted them all
            if await edge.gateway_metric("gridchain_gateway_http_connections", {}) >= MAX_PER_IP:
                break
        with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
            await asyncio.open_connection("127.0.0.1", port, ssl=context)
        # another source address has its own share
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, local_addr=("127.0.0.2", 0),
            server_hostname="127.0.0.1",
        )  # fmt: skip
        writer.close()
    finally:
        for sock in silent:
            sock.close()
    assert (
        await edge.gateway_metric(
            "gridchain_gateway_refused_total", {"filter": "connections", "code": "per_source_cap"}
        )
        >= 1
    )


async def test_a_certificate_from_another_ca_is_refused(edge: Edge, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(make_ca("another community").cert_pem)
    async with NodeClient(edge.url, ca_file=other, retries=0) as client:
        with pytest.raises(NodeCertificateError):
            await client.health()


async def test_plain_http_is_not_served_on_the_tls_port(edge: Edge) -> None:
    port = int(edge.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = sock.recv(1024)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 200")


async def test_openapi_lists_the_gateway_refusals(edge: Edge) -> None:
    async with edge.client() as client:
        session = client._open_session()
        async with session.get(edge.url + "/openapi.json") as resp:
            doc = await resp.json()
    post = doc["paths"]["/v1/txs"]["post"]
    for code in (
        "tx_too_large",
        "bad_signature",
        "unregistered_sender",
        "nonce_out_of_window",
        "duplicate_tx",
        "rate_limited",
        "queue_full",
        "too_many_connections",
    ):
        assert code in post["x-gateway-refusals"], code
    assert "429" in post["responses"]


async def test_events_are_relayed(edge: Edge) -> None:
    async with edge.client() as client:
        session = client._open_session()
        async with session.ws_connect(edge.url + "/v1/events") as ws:
            # a block is made per transaction; the first may commit before the gateway's own
            # feed is connected, so send until one is seen (the bucket allows a burst of 5)
            msg = None
            for nonce in range(5):
                await client.submit_tx(edge.transfer(0, nonce))
                try:
                    msg = await asyncio.wait_for(ws.receive(), 3)
                    break
                except TimeoutError:
                    continue
    assert msg is not None
    assert msg.type == aiohttp.WSMsgType.TEXT
    assert re.search(r'"type"\s*:\s*"block_committed"', msg.data)


async def test_a_lost_link_is_a_503_the_client_may_retry(edge: Edge) -> None:
    edge.chain.broken = True
    tx = edge.transfer(0, 0)
    assert await _refused(edge, tx.encode().hex()) == (503, "forward_failed")
    edge.chain.broken = False
    async with edge.client() as client:  # forgotten by the dedup cache: the retry passes
        assert await client.submit_tx(tx) == tx.hash().hex()


async def test_the_gateway_serves_the_operator_page_and_relays_its_reads(edge: Edge) -> None:
    """The same files as a validator's, and the page's public aggregates relayed unchanged."""
    from gridchain.api.routes import UI_ROUTES
    from gridchain.node.operator_page import CSP

    async with edge.client() as client:
        session = client._open_session()
        for route in UI_ROUTES:
            async with session.get(edge.url + route.path) as resp:
                assert resp.status == 200, route.path
                assert resp.headers["Content-Security-Policy"] == CSP
                served = await resp.read()
            async with edge.live.session.get(edge.live.url + route.path) as direct:
                assert served == await direct.read()
        stats = await client.slot_stats(first=0, count=3)
        load = await client.load_stats(limit=5)
    _, direct_stats = await edge.live.get("/v1/stats/slots?from=0&count=3")
    assert stats.model_dump(mode="json") == direct_stats
    assert load.intervals == []

"""The node client against a real aiohttp server on loopback: parsing and typed failures."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from gridchain.api.client import (
    CommitTimeoutError,
    NodeClient,
    NodeRefusedError,
    NodeResponseError,
    NodeUnreachableError,
    NodeUrlError,
    TxFailedError,
    resolve_node_url,
)
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import Transfer, sign_tx
from tests.unit.wallet.conftest import CHAIN_ID, FakeNode, account_doc, addr, error_response, serve

KEY = SigningKey(bytes([3]) * 32)
TO = SigningKey(bytes([4]) * 32)


def closed_port() -> int:
    """A port nothing listens on: bound, read, closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def signed_transfer() -> tuple[bytes, Transfer]:
    body = Transfer(bytes(20), 1_000, "")
    return sign_tx(KEY, CHAIN_ID, 0, body).encode(), body


async def test_status_and_account_are_parsed(node: FakeNode) -> None:
    node.accounts[addr(KEY)] = account_doc(addr(KEY))
    async with NodeClient(node.url) as client:
        status = await client.status()
        account = await client.account(addr(KEY))
    assert status.chain_id == CHAIN_ID
    assert status.chain_name == "testnet"
    assert status.height == 41
    assert account.spendable_mc == 750_000
    assert account.pending_nonce == 5
    assert account.registered is True


async def test_submit_then_wait_polls_until_committed(node: FakeNode) -> None:
    tx = sign_tx(KEY, CHAIN_ID, 0, Transfer(bytes(20), 1_000, ""))
    node.polls_before_commit = 3
    async with NodeClient(node.url) as client:
        tx_hash = await client.submit_tx(tx)
        status = await client.wait_committed(tx_hash, timeout_s=5, poll_interval_s=0.01)
    assert tx_hash == tx.hash().hex()
    assert node.polls[tx_hash] == 4
    assert (status.status, status.height, status.index) == ("committed", 42, 0)


async def test_unknown_transaction_is_none(node: FakeNode) -> None:
    async with NodeClient(node.url) as client:
        assert await client.tx_status("00" * 32) is None


async def test_wait_times_out_with_the_hash(node: FakeNode) -> None:
    tx = sign_tx(KEY, CHAIN_ID, 0, Transfer(bytes(20), 1_000, ""))
    node.polls_before_commit = 10**9
    async with NodeClient(node.url) as client:
        tx_hash = await client.submit_tx(tx)
        with pytest.raises(CommitTimeoutError, match="last seen: pending") as info:
            await client.wait_committed(tx_hash, timeout_s=0.3, poll_interval_s=0.05)
    assert info.value.tx_hash == tx_hash
    assert node.polls[tx_hash] >= 2


async def test_refusal_carries_the_nodes_code_and_message(node: FakeNode) -> None:
    node.refuse_submit = (409, "nonce_replayed", "nonce 4 was already used")
    tx = sign_tx(KEY, CHAIN_ID, 4, Transfer(bytes(20), 1_000, ""))
    async with NodeClient(node.url) as client:
        with pytest.raises(NodeRefusedError) as info:
            await client.submit_tx(tx)
    assert info.value.node_code == "nonce_replayed"
    assert info.value.node_message == "nonce 4 was already used"
    assert info.value.status == 409
    assert "nonce 4 was already used" in info.value.message


async def test_unreachable_node_names_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with NodeClient(url) as client:
        with pytest.raises(NodeUnreachableError, match="connection refused") as info:
            await client.status()
    assert url in info.value.message
    assert info.value.code == "node_unreachable"


async def test_slow_node_is_unreachable_after_the_request_timeout() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v1/status", slow)
    async with serve(app) as url, NodeClient(url, request_timeout_s=0.2) as client:
        with pytest.raises(NodeUnreachableError, match="did not answer") as info:
            await client.status()
        release.set()  # lets the server shut down without waiting for the handler
    assert url in info.value.message


async def test_wait_rides_out_a_node_that_stops_answering() -> None:
    """Accepted is not failed: unreachable polls count as 'not yet', up to the deadline."""
    url = f"http://127.0.0.1:{closed_port()}"
    async with NodeClient(url) as client:
        with pytest.raises(CommitTimeoutError, match="connection refused"):
            await client.wait_committed("ab" * 32, timeout_s=0.3, poll_interval_s=0.05)


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        ("<html>proxy error</html>", "text/html", "not JSON"),
        ('{"node": "v", "chain_id": "zz", "chain_name": "t", "height": 1}', None, "chain_id"),
        ('{"node": "v", "chain_id": "00", "chain_name": "t", "height": 1}', None, "32 bytes"),
        ('{"node": "v", "chain_name": "t", "height": 1}', None, "missing"),
        (
            f'{{"node": "v", "chain_id": "{"00" * 32}", "chain_name": "t", "height": true}}',
            None,
            "height",
        ),
        (
            f'{{"node": "v", "chain_id": "{"00" * 32}", "chain_name": "t", "height": -1}}',
            None,
            "height",
        ),
        ("[]", None, "JSON object"),
    ],
)
async def test_malformed_answers_are_typed(body: str, content_type: str | None, match: str) -> None:
    async def status(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type=content_type or "application/json")

    app = web.Application()
    app.router.add_get("/v1/status", status)
    async with serve(app) as url, NodeClient(url) as client:
        with pytest.raises(NodeResponseError, match=match):
            await client.status()


async def test_error_status_without_error_object_is_a_response_error() -> None:
    async def status(request: web.Request) -> web.Response:
        return web.json_response({"detail": "nope"}, status=500)

    app = web.Application()
    app.router.add_get("/v1/status", status)
    async with serve(app) as url, NodeClient(url) as client:
        with pytest.raises(NodeResponseError, match="HTTP 500"):
            await client.status()


async def test_node_reporting_another_hash_is_refused() -> None:
    async def submit(request: web.Request) -> web.Response:
        return web.json_response({"hash": "00" * 32, "status": "pending"}, status=202)

    app = web.Application()
    app.router.add_post("/v1/txs", submit)
    tx = sign_tx(KEY, CHAIN_ID, 0, Transfer(bytes(20), 1, ""))
    async with serve(app) as url, NodeClient(url) as client:
        with pytest.raises(NodeResponseError, match="reports hash"):
            await client.submit_tx(tx)


async def test_a_final_status_other_than_committed_stops_the_wait() -> None:
    async def tx(request: web.Request) -> web.Response:
        h = request.match_info["hash"]
        return web.json_response({"hash": h, "status": "rejected", "height": None, "index": None})

    app = web.Application()
    app.router.add_get("/v1/txs/{hash}", tx)
    async with serve(app) as url, NodeClient(url) as client:
        with pytest.raises(TxFailedError, match="rejected"):
            await client.wait_committed("ab" * 32, timeout_s=5, poll_interval_s=0.01)


async def test_not_found_on_another_route_stays_a_refusal() -> None:
    async def account(request: web.Request) -> web.Response:
        return error_response(404, "not_found", "no such account")

    app = web.Application()
    app.router.add_get("/v1/accounts/{a}", account)
    async with serve(app) as url, NodeClient(url) as client:
        with pytest.raises(NodeRefusedError) as info:
            await client.account(addr(TO))
    assert info.value.node_code == "not_found"


@pytest.mark.parametrize("url", ["localhost:8700", "ftp://host/", "http://", "not a url", ""])
def test_bad_node_urls(url: str) -> None:
    with pytest.raises(NodeUrlError):
        NodeClient(url)


def test_node_url_precedence() -> None:
    assert resolve_node_url("http://flag:1", {"GRIDCHAIN_NODE": "http://env:2"}) == "http://flag:1"
    assert resolve_node_url(None, {"GRIDCHAIN_NODE": "http://env:2"}) == "http://env:2"
    assert resolve_node_url(None, {"GRIDCHAIN_NODE": ""}) == "http://127.0.0.1:8700"
    assert resolve_node_url(None, {}) == "http://127.0.0.1:8700"


async def test_base_url_with_a_path_prefix_and_trailing_slash(node: FakeNode) -> None:
    """A node behind a reverse proxy at /gc/ is reached at /gc/v1/...; no double slash."""
    app = web.Application()
    app.add_subapp("/gc/", node.app())
    async with serve(app) as url, NodeClient(url + "/gc/") as client:
        assert (await client.status()).chain_id == CHAIN_ID
    assert node.requests == ["GET /gc/v1/status"]

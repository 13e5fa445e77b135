"""A canned node on a real loopback socket, and keystores that open fast.

The fake node serves the HTTP contract the wallet codes against (DESIGN.md section 10 and the
issue): it decodes what is POSTed with the real protocol decoder, answers polls with
``pending`` a configurable number of times before ``committed``, and records every request so
tests can assert on what the wallet sent, and on what it did *not* send.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gridchain.cli import main
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import TESTNET_SCRYPT_N, seal
from gridchain.protocol.tx import Transaction, decode_tx
from gridchain.wallet.keystore_file import write_keystore

PASSWORD = "correct horse"
CHAIN_ID = bytes(range(32))


def addr(key: SigningKey) -> str:
    return format_address(address_of(key.public_key))


def account_doc(
    address: str,
    *,
    balance_mc: int = 1_000_000,
    locked_mc: int = 250_000,
    nonce: int = 3,
    pending_nonce: int = 5,
    registered: bool = True,
    name: str | None = "alice",
) -> dict[str, Any]:
    return {
        "address": address,
        "balance_mc": balance_mc,
        "locked_mc": locked_mc,
        "spendable_mc": balance_mc - locked_mc,
        "nonce": nonce,
        "pending_nonce": pending_nonce,
        "registered": registered,
        "name": name,
    }


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@dataclass
class FakeNode:
    """State and handlers of the canned node; ``url`` is set once it listens."""

    chain_id: bytes = CHAIN_ID
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls_before_commit: int = 2
    commit_height: int = 42
    refuse_submit: tuple[int, str, str] | None = None
    url: str = ""
    requests: list[str] = field(default_factory=list)
    submitted: list[Transaction] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/v1/status", self._status)
        app.router.add_get("/v1/accounts/{address}", self._account)
        app.router.add_post("/v1/txs", self._submit)
        app.router.add_get("/v1/txs/{hash}", self._tx)
        return app

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        return await handler(request)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "node": "val-0",
                "chain_id": self.chain_id.hex(),
                "chain_name": "testnet",
                "height": 41,
                "head_hash": "ab" * 32,
                "head_time_ms": 1_700_000_000_000,
                "state_root": "cd" * 32,
                "consensus": {"engine": "solo", "round": 0},
                "mempool": {"txs": 0, "bytes": 0},
                "validator": "ef" * 32,
                "peers": [],
                "halted": None,
            }
        )

    async def _account(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        doc = self.accounts.get(address)
        if doc is None:
            doc = account_doc(
                address, balance_mc=0, locked_mc=0, nonce=0, pending_nonce=0, registered=False
            )
            doc["name"] = None
        return web.json_response(doc)

    async def _submit(self, request: web.Request) -> web.Response:
        if self.refuse_submit is not None:
            return error_response(*self.refuse_submit)
        body = await request.json()
        tx = decode_tx(bytes.fromhex(body["tx"]))
        self.submitted.append(tx)
        tx_hash = tx.hash().hex()
        self.polls[tx_hash] = 0
        return web.json_response({"hash": tx_hash, "status": "pending"}, status=202)

    async def _tx(self, request: web.Request) -> web.Response:
        tx_hash = request.match_info["hash"]
        if tx_hash not in self.polls:
            return error_response(404, "not_found", f"no transaction {tx_hash}")
        self.polls[tx_hash] += 1
        committed = self.polls[tx_hash] > self.polls_before_commit
        return web.json_response(
            {
                "hash": tx_hash,
                "status": "committed" if committed else "pending",
                "height": self.commit_height if committed else None,
                "index": 0 if committed else None,
                "tx": {"kind": "Transfer"},
            }
        )


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 on a free port; yield its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's wallet, node or password, nor writes under their HOME."""
    for var in ("GRIDCHAIN_WALLET", "GRIDCHAIN_NODE", "GRIDCHAIN_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # Not a terminal: a test that forgets the password fails instead of hanging on a prompt.
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    fake = FakeNode()
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake


@dataclass
class Wallet:
    path: Path
    key: SigningKey

    @property
    def address(self) -> str:
        return addr(self.key)


@pytest.fixture
def wallet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Wallet:
    """A keystore sealed with a low scrypt cost (fast) and its password in the environment."""
    key = SigningKey(bytes([7]) * 32)
    path = tmp_path / "wallets" / "alice.json"
    write_keystore(path, seal(key, PASSWORD, name="alice", n=TESTNET_SCRYPT_N))
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", PASSWORD)
    return Wallet(path, key)


@dataclass
class Run:
    code: int
    out: str
    err: str


CliRunner = Callable[[Sequence[str]], Awaitable[Run]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Run ``gridchain <argv>`` in a worker thread (it calls asyncio.run) and capture output."""

    async def run(argv: Sequence[str]) -> Run:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run

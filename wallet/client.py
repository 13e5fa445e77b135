"""The wallet's client of a node's HTTP API (DESIGN.md section 10), with typed failures.

The wallet talks to the node over JSON under ``/v1`` and nothing else (it does not import the
node).  Every way a request can go wrong becomes one of four errors, because each asks the user
for something different:

* :class:`NodeUrlError`: the ``--node`` value is not an http(s) URL; fix the flag.
* :class:`NodeUnreachableError`: nothing answered at that URL (refused, timed out, DNS); the
  message names the URL, since a wrong port or a stopped node is the usual cause.
* :class:`NodeRefusedError`: the node answered with ``{"error": {"code", "message"}}``; it carries
  the node's code so scripts can branch on ``insufficient_balance`` or ``nonce_gap`` exactly as
  the node named them.
* :class:`NodeResponseError`: something answered, but not as a gridchain node does (HTML from a
  proxy, a field of the wrong type); the wallet refuses to guess.

Responses are checked field by field into small frozen dataclasses, so a handler never indexes
an unchecked dictionary and a malformed answer never surfaces as a ``KeyError`` stack trace.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from gridchain.protocol.crypto import CHAIN_ID_BYTES, HASH_BYTES
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.tx import Transaction

NODE_ENV = "GRIDCHAIN_NODE"
DEFAULT_NODE_URL = "http://127.0.0.1:8700"
#: One HTTP exchange; waiting for a commit has its own, longer, budget.
REQUEST_TIMEOUT_S = 10.0
DEFAULT_POLL_INTERVAL_S = 0.25
USER_AGENT = "gridchain-wallet/0.1"


class NodeError(GridchainError):
    """Base of the failures of talking to a node."""

    code = "node_error"


class NodeUrlError(NodeError):
    code = "bad_node_url"


class NodeUnreachableError(NodeError):
    code = "node_unreachable"


class NodeResponseError(NodeError):
    code = "bad_node_response"


class NodeRefusedError(NodeError):
    """The node answered with an error object; ``node_code`` is the node's own code."""

    code = "node_refused"

    def __init__(self, url: str, status: int, node_code: str, node_message: str) -> None:
        super().__init__(f"the node refused: {node_message} [{node_code}]")
        self.url = url
        self.status = status
        self.node_code = node_code
        self.node_message = node_message


class CommitTimeoutError(NodeError):
    """The node accepted a transaction, but it was not committed within the wait."""

    code = "commit_timeout"

    def __init__(self, message: str, tx_hash: str) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class TxFailedError(NodeError):
    """The node reports a final status other than committed for a transaction."""

    code = "tx_failed"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    node: str
    chain_id: bytes
    chain_name: str
    height: int


@dataclass(frozen=True, slots=True)
class AccountInfo:
    address: str
    balance_mc: int
    locked_mc: int
    spendable_mc: int
    nonce: int
    pending_nonce: int
    registered: bool
    name: str | None


@dataclass(frozen=True, slots=True)
class TxStatus:
    hash: str
    status: str
    height: int | None
    index: int | None


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """The chain's market rules as ``GET /v1/markets`` reports them."""

    slot_length_ms: int
    gate_closure_ms: int
    day_ahead_gate_closure_ms: int
    matching_rule: str
    iceberg_execution: str
    now_ms: int
    current_slot: int
    first_open_slot: dict[str, int]

    def gate_closure_of(self, market: str, slot: int) -> int:
        lead = self.day_ahead_gate_closure_ms if market == "day_ahead" else self.gate_closure_ms
        return slot * self.slot_length_ms - lead


@dataclass(frozen=True, slots=True)
class OrderInfo:
    id: str
    owner: str
    market: str
    slot: int
    side: str
    device: str
    price_mc_per_kwh: int
    quantity_wh: int
    peak_wh: int
    open_wh: int
    display_wh: int
    filled_wh: int
    cancelled_wh: int
    locked_mc: int
    status: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class TradeInfo:
    trade_id: int
    market: str
    slot: int
    seller: str
    buyer: str
    sell_order: str
    buy_order: str
    quantity_wh: int
    price_mc_per_kwh: int
    amount_mc: int
    aggressor: str
    height: int


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    """A settled trade; ``record`` is the node's whole receipt (readings, pool, fines)."""

    trade_id: int
    market: str
    slot: int
    seller: str
    buyer: str
    quantity_wh: int
    delivered_wh: int
    price_mc_per_kwh: int
    paid_mc: int
    fine_mc: int
    fine_paid_mc: int
    status: str
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Level:
    price_mc_per_kwh: int
    quantity_wh: int
    orders: int


@dataclass(frozen=True, slots=True)
class BookInfo:
    market: str
    slot: int
    start_ms: int
    gate_closure_ms: int
    open: bool
    height: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


def _order_info(doc: Any, what: str) -> OrderInfo:
    f = _Fields(doc, what)
    return OrderInfo(
        id=f.string("id"),
        owner=f.string("owner"),
        market=f.string("market"),
        slot=f.integer("slot"),
        side=f.string("side"),
        device=f.string("device"),
        price_mc_per_kwh=f.integer("price_mc_per_kwh"),
        quantity_wh=f.integer("quantity_wh"),
        peak_wh=f.integer("peak_wh"),
        open_wh=f.integer("open_wh"),
        display_wh=f.integer("display_wh"),
        filled_wh=f.integer("filled_wh"),
        cancelled_wh=f.integer("cancelled_wh"),
        locked_mc=f.integer("locked_mc"),
        status=f.string("status"),
        expires_ms=f.integer("expires_ms"),
    )


def _trade_info(doc: Any, what: str) -> TradeInfo:
    f = _Fields(doc, what)
    return TradeInfo(
        trade_id=f.integer("trade_id"),
        market=f.string("market"),
        slot=f.integer("slot"),
        seller=f.string("seller"),
        buyer=f.string("buyer"),
        sell_order=f.string("sell_order"),
        buy_order=f.string("buy_order"),
        quantity_wh=f.integer("quantity_wh"),
        price_mc_per_kwh=f.integer("price_mc_per_kwh"),
        amount_mc=f.integer("amount_mc"),
        aggressor=f.string("aggressor"),
        height=f.integer("height"),
    )


def _receipt_info(doc: Any, what: str) -> ReceiptInfo:
    f = _Fields(doc, what)
    return ReceiptInfo(
        trade_id=f.integer("trade_id"),
        market=f.string("market"),
        slot=f.integer("slot"),
        seller=f.string("seller"),
        buyer=f.string("buyer"),
        quantity_wh=f.integer("quantity_wh"),
        delivered_wh=f.integer("delivered_wh"),
        price_mc_per_kwh=f.integer("price_mc_per_kwh"),
        paid_mc=f.integer("paid_mc"),
        fine_mc=f.integer("fine_mc"),
        fine_paid_mc=f.integer("fine_paid_mc"),
        status=f.string("status"),
        record=dict(doc),
    )


def _levels(doc: Any, what: str) -> tuple[Level, ...]:
    if not isinstance(doc, list):
        raise NodeResponseError(f"{what}: a list of price levels was expected")
    out = []
    for item in doc:
        f = _Fields(item, what)
        out.append(
            Level(f.integer("price_mc_per_kwh"), f.integer("quantity_wh"), f.integer("orders"))
        )
    return tuple(out)


def resolve_node_url(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``--node`` if given, else ``$GRIDCHAIN_NODE`` if non-empty, else the local default."""
    if flag:
        return flag
    env: Mapping[str, str] = os.environ if environ is None else environ
    return env.get(NODE_ENV) or DEFAULT_NODE_URL


def _parse_base_url(text: str) -> URL:
    try:
        url = URL(text.strip())
    except (ValueError, TypeError):
        raise NodeUrlError(f"not a URL: {text!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise NodeUrlError(f"a node URL looks like {DEFAULT_NODE_URL}, got {text!r}")
    return url


class _Fields:
    """Typed access to one JSON object of a response, failing as NodeResponseError."""

    def __init__(self, doc: Any, what: str) -> None:
        if not isinstance(doc, dict):
            raise NodeResponseError(f"{what}: a JSON object was expected")
        self._doc: dict[str, Any] = doc
        self._what = what

    def _get(self, key: str) -> Any:
        if key not in self._doc:
            raise NodeResponseError(f"{self._what}: field {key!r} is missing")
        return self._doc[key]

    def _bad(self, key: str, expected: str) -> NodeResponseError:
        return NodeResponseError(f"{self._what}: field {key!r} is not {expected}")

    def integer(self, key: str) -> int:
        value = self._get(key)
        # bool is an int in Python but never a count or an amount in JSON.
        if type(value) is not int or value < 0:
            raise self._bad(key, "a non-negative integer")
        return value

    def opt_integer(self, key: str) -> int | None:
        return None if self._doc.get(key) is None else self.integer(key)

    def string(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def opt_string(self, key: str) -> str | None:
        return None if self._doc.get(key) is None else self.string(key)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def items(self, key: str) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value

    def int_map(self, key: str) -> dict[str, int]:
        value = self._get(key)
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in value.items()
        ):
            raise self._bad(key, "an object of non-negative integers")
        return dict(value)

    def hex_bytes(self, key: str, size: int) -> bytes:
        text = self.string(key)
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise self._bad(key, "hex") from None
        if len(raw) != size:
            raise self._bad(key, f"{size} bytes of hex")
        return raw


class NodeClient:
    """An async client of one node.  Use as ``async with NodeClient(url) as node: ...``."""

    def __init__(self, base_url: str, *, request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.base_url = _parse_base_url(base_url)
        self.url = str(self.base_url).rstrip("/")
        self._request_timeout_s = request_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> NodeClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._request_timeout_s),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- the API -------------------------------------------------------------------------

    async def status(self) -> NodeStatus:
        f = _Fields(await self._request("GET", "/v1/status"), "GET /v1/status")
        return NodeStatus(
            node=f.string("node"),
            chain_id=f.hex_bytes("chain_id", CHAIN_ID_BYTES),
            chain_name=f.string("chain_name"),
            height=f.integer("height"),
        )

    async def account(self, address_text: str) -> AccountInfo:
        path = f"/v1/accounts/{address_text}"
        f = _Fields(await self._request("GET", path), f"GET {path}")
        return AccountInfo(
            address=f.string("address"),
            balance_mc=f.integer("balance_mc"),
            locked_mc=f.integer("locked_mc"),
            spendable_mc=f.integer("spendable_mc"),
            nonce=f.integer("nonce"),
            pending_nonce=f.integer("pending_nonce"),
            registered=f.flag("registered"),
            name=f.opt_string("name"),
        )

    async def markets(self) -> MarketInfo:
        f = _Fields(await self._request("GET", "/v1/markets"), "GET /v1/markets")
        return MarketInfo(
            slot_length_ms=f.integer("slot_length_ms"),
            gate_closure_ms=f.integer("gate_closure_ms"),
            day_ahead_gate_closure_ms=f.integer("day_ahead_gate_closure_ms"),
            matching_rule=f.string("matching_rule"),
            iceberg_execution=f.string("iceberg_execution"),
            now_ms=f.integer("now_ms"),
            current_slot=f.integer("current_slot"),
            first_open_slot=f.int_map("first_open_slot"),
        )

    async def order(self, order_id: str) -> OrderInfo:
        path = f"/v1/orders/{order_id}"
        return _order_info(await self._request("GET", path), f"GET {path}")

    async def orders(
        self, address_text: str, *, slot: int | None = None, status: str | None = None
    ) -> list[OrderInfo]:
        path = _with_query(
            "/v1/orders", {"address": address_text, "slot": slot, "status": status, "limit": 1000}
        )
        f = _Fields(await self._request("GET", path), f"GET {path}")
        return [_order_info(item, f"GET {path}") for item in f.items("orders")]

    async def trades(
        self, *, address: str | None = None, slot: int | None = None, market: str | None = None
    ) -> list[TradeInfo]:
        path = _with_query(
            "/v1/trades", {"address": address, "slot": slot, "market": market, "limit": 1000}
        )
        f = _Fields(await self._request("GET", path), f"GET {path}")
        return [_trade_info(item, f"GET {path}") for item in f.items("trades")]

    async def receipts(
        self, *, address: str | None = None, slot: int | None = None
    ) -> list[ReceiptInfo]:
        """Settlement receipts (GET /v1/settlements), by slot and trade id."""
        path = _with_query("/v1/settlements", {"address": address, "slot": slot, "limit": 1000})
        f = _Fields(await self._request("GET", path), f"GET {path}")
        return [_receipt_info(item, f"GET {path}") for item in f.items("receipts")]

    async def book(self, market: str, slot: int) -> BookInfo:
        path = f"/v1/markets/{market}/slots/{slot}/book"
        what = f"GET {path}"
        f = _Fields(await self._request("GET", path), what)
        return BookInfo(
            market=f.string("market"),
            slot=f.integer("slot"),
            start_ms=f.integer("start_ms"),
            gate_closure_ms=f.integer("gate_closure_ms"),
            open=f.flag("open"),
            height=f.integer("height"),
            bids=_levels(f.items("bids"), what),
            asks=_levels(f.items("asks"), what),
        )

    async def submit_tx(self, tx: Transaction) -> str:
        """POST the signed transaction; return its hash after checking the node agrees on it."""
        body = {"tx": tx.encode().hex()}
        f = _Fields(await self._request("POST", "/v1/txs", body), "POST /v1/txs")
        node_hash = f.string("hash").lower()
        local_hash = tx.hash().hex()
        if node_hash != local_hash:
            raise NodeResponseError(
                f"POST /v1/txs: the node reports hash {node_hash} for transaction {local_hash}"
            )
        return local_hash

    async def tx_status(self, tx_hash: str, *, timeout_s: float | None = None) -> TxStatus | None:
        """The transaction's status, or None while the node does not know it (404 not_found)."""
        path = f"/v1/txs/{tx_hash}"
        try:
            doc = await self._request("GET", path, timeout_s=timeout_s)
        except NodeRefusedError as exc:
            if exc.status == 404 and exc.node_code == "not_found":
                return None
            raise
        f = _Fields(doc, f"GET {path}")
        f.hex_bytes("hash", HASH_BYTES)
        return TxStatus(
            hash=f.string("hash").lower(),
            status=f.string("status"),
            height=f.opt_integer("height"),
            index=f.opt_integer("index"),
        )

    async def wait_committed(
        self,
        tx_hash: str,
        *,
        timeout_s: float,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    ) -> TxStatus:
        """Poll until the transaction is committed, or raise CommitTimeoutError at the deadline.

        The transaction was already accepted, so a node that restarts or a dropped connection
        during the wait is not a failure yet: polling continues until the deadline and the
        timeout message reports what was last seen.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last = "not yet polled"
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise CommitTimeoutError(
                    f"transaction {tx_hash} was accepted but not committed within "
                    f"{timeout_s:g} s (last seen: {last}); it may still commit, check it with "
                    f"GET {self.url}/v1/txs/{tx_hash}",
                    tx_hash,
                )
            try:
                status = await self.tx_status(
                    tx_hash, timeout_s=min(self._request_timeout_s, remaining)
                )
            except NodeUnreachableError as exc:
                last = exc.message
            else:
                if status is None:
                    last = "unknown to the node"
                elif status.status == "committed":
                    if status.height is None:
                        raise NodeResponseError(
                            f"GET /v1/txs/{tx_hash}: committed without a height"
                        )
                    return status
                elif status.status == "pending":
                    last = "pending"
                else:
                    raise TxFailedError(
                        f"transaction {tx_hash} ended with status {status.status!r}"
                    )
            await asyncio.sleep(max(0.0, min(poll_interval_s, deadline - loop.time())))

    # --- transport -------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Any:
        if self._session is None:
            raise RuntimeError("NodeClient used outside 'async with'")
        url = self.url + path
        timeout = self._request_timeout_s if timeout_s is None else timeout_s
        try:
            async with self._session.request(
                method, url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise NodeUnreachableError(
                f"cannot reach the node at {self.url}: {_reason(exc.os_error)}"
                f" (is it running? set --node or ${NODE_ENV})"
            ) from None
        except TimeoutError:
            raise NodeUnreachableError(
                f"the node at {self.url} did not answer {method} {path} within {timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise NodeUnreachableError(
                f"lost the connection to the node at {self.url} during {method} {path}: "
                f"{type(exc).__name__}"
            ) from None
        doc = _json(raw, f"{method} {path}", status)
        if 200 <= status < 300:
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            if isinstance(code, str) and isinstance(message, str):
                raise NodeRefusedError(self.url, status, code, message)
        raise NodeResponseError(
            f"{method} {path}: HTTP {status} from {self.url} without a gridchain error object"
        )


def _with_query(path: str, params: Mapping[str, object]) -> str:
    """``path`` with the given (non-None) query parameters, URL-encoded."""
    pairs = {k: str(v) for k, v in params.items() if v is not None}
    return str(URL(path).with_query(pairs)) if pairs else path


def _reason(error: OSError) -> str:
    """ "Connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', 1)"."""
    if error.errno and error.errno > 0:  # DNS failures carry negative getaddrinfo codes
        return os.strerror(error.errno).lower()
    return (error.strerror or type(error).__name__).lower()


def _json(raw: bytes, what: str, status: int) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise NodeResponseError(
            f"{what}: HTTP {status} with a body that is not JSON (is --node a gridchain node?)"
        ) from None

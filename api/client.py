"""The one async client of a node's HTTP API: typed answers, typed failures, one retry policy.

The wallet, the meter bridge, the testnet launcher and the benchmarks all talk to a node
through :class:`NodeClient`; none imports the node.  Answers are parsed into the contract's
models (gridchain.api.models), so a handler never indexes an unchecked dictionary.  Every way
a request can go wrong becomes one of four errors, because each asks the user for something
different:

* :class:`NodeUrlError`: the URL is not an http(s) URL (or ``--ca`` with plain http); fix it.
* :class:`NodeUnreachableError`: nothing answered (refused, timed out, DNS); the message names
  the URL, since a wrong port or a stopped node is the usual cause.
* :class:`NodeRefusedError`: the node answered ``{"error": {"code", "message"}}``; the one
  exception for every refusal, carrying the node's ``node_code``, ``node_message`` and HTTP
  ``status`` so a script can branch on ``insufficient_balance`` exactly as the node named it.
* :class:`NodeResponseError`: something answered, but not as a gridchain node does (HTML from
  a proxy, a field of the wrong type); the client refuses to guess.

Over HTTPS the client verifies the server's certificate; given ``ca_file`` (a wallet's
``--ca``, a community's CA, ADR 0025) it trusts that CA *only*, so a gateway's certificate from
any other authority, however public, is refused: the CA is pinned.

Retries live in one place, :meth:`NodeClient._send`: a connection that fails or drops, and a
429 or 5xx answer, are tried again with exponential backoff, for requests that are safe to
repeat: every GET, and a POST of signed transactions (the node knows a transaction by its hash,
so a second copy is refused as a duplicate, never applied twice).  A timeout is not retried: a
node that is slow now would only make the caller wait several times as long.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import BaseModel, TypeAdapter, ValidationError
from yarl import URL

from gridchain.api import models as m
from gridchain.protocol.address import address_of
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.hpke import public_bytes
from gridchain.protocol.sealed_read import ReadKind, ReadQuery, open_reply, sign_read
from gridchain.protocol.tx import Transaction, decode_tx

NODE_ENV = "GRIDCHAIN_NODE"
DEFAULT_NODE_URL = "http://127.0.0.1:8700"
#: One HTTP exchange; waiting for a commit has its own, longer, budget.
REQUEST_TIMEOUT_S = 10.0
DEFAULT_POLL_INTERVAL_S = 0.25
USER_AGENT = "gridchain-client/0.1"
#: Further attempts after a failed connection or a 429/5xx, and the first pause (doubling).
RETRIES = 3
BACKOFF_S = 0.1
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: What the node's mempool answers for a transaction it already holds.
DUPLICATE_TX = "duplicate_tx"
#: The most one list request returns (the node's bound).
LIST_MAX = 1000

M = TypeVar("M", bound=BaseModel)
#: How long a sealed read request stays valid (the node allows at most 120 s).
SEALED_READ_WINDOW_MS = 30_000
#: The model each kind of sealed read answers with (the open route's).
SEALED_READ_MODELS: dict[ReadKind, type[BaseModel]] = {
    ReadKind.ORDERS: m.OrderList,
    ReadKind.TRADES: m.TradeList,
    ReadKind.RECEIPTS: m.ReceiptList,
    ReadKind.READINGS: m.ReadingList,
    ReadKind.SEALED_OUTCOMES: m.SealedOutcomeList,
}
_EVENT: TypeAdapter[m.Event] = TypeAdapter(m.Event)


class NodeError(GridchainError):
    """Base of the failures of talking to a node."""

    code = "node_error"


class NodeUrlError(NodeError):
    code = "bad_node_url"


class NodeUnreachableError(NodeError):
    code = "node_unreachable"


class NodeCertificateError(NodeUnreachableError):
    """TLS refused the server's certificate (another CA, another host name): never retried."""

    code = "bad_node_certificate"


class NodeResponseError(NodeError):
    code = "bad_node_response"


class NodeRefusedError(NodeError):
    """The node answered with an error object; ``node_code`` is the node's own code."""

    code = "node_refused"

    def __init__(
        self, url: str, status: int, node_code: str, node_message: str, *, attempts: int = 1
    ) -> None:
        super().__init__(f"the node refused: {node_message} [{node_code}]")
        self.url = url
        self.status = status
        self.node_code = node_code
        self.node_message = node_message
        #: Requests sent before this answer (more than 1: an earlier one may have arrived).
        self.attempts = attempts


class _ConnectionFailedError(NodeUnreachableError):
    """Refused, reset or dropped: worth another try (a timeout is not, see the module)."""


class CommitTimeoutError(NodeError):
    """The node accepted a transaction, but it was not committed within the wait."""

    code = "commit_timeout"

    def __init__(self, message: str, tx_hash: str) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class TxFailedError(NodeError):
    """The node reports a final status other than committed for a transaction."""

    code = "tx_failed"


def resolve_node_url(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``--node`` if given, else ``$GRIDCHAIN_NODE`` if non-empty, else the local default."""
    if flag:
        return flag
    env: Mapping[str, str] = os.environ if environ is None else environ
    return env.get(NODE_ENV) or DEFAULT_NODE_URL


def pinned_context(ca_file: Path) -> ssl.SSLContext:
    """A TLS client context that trusts exactly the CA in ``ca_file`` (PEM), nothing else."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except FileNotFoundError:
        raise NodeUrlError(f"the CA file {ca_file} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        raise NodeUrlError(f"the CA file {ca_file} is not a PEM certificate: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def parse_base_url(text: str) -> URL:
    """The node's base URL, or NodeUrlError naming what a good one looks like."""
    try:
        url = URL(text.strip())
    except (ValueError, TypeError):
        raise NodeUrlError(f"not a URL: {text!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise NodeUrlError(f"a node URL looks like {DEFAULT_NODE_URL}, got {text!r}")
    return url


def with_query(path: str, params: Mapping[str, object]) -> str:
    """``path`` with the given (non-None) query parameters, URL-encoded."""
    pairs = {k: str(v) for k, v in params.items() if v is not None}
    return str(URL(path).with_query(pairs)) if pairs else path


def describe_validation(exc: ValidationError) -> str:
    """A pydantic error as one line a person can act on ("field 'height' is missing")."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        if not where:
            parts.append("a JSON object was expected")
        elif error["type"] == "missing":
            parts.append(f"field {where!r} is missing")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            parts.append(f"field {where!r}: {message}")
    return "; ".join(parts)


def parse(model: type[M], doc: Any, what: str) -> M:
    """``doc`` as ``model``, or NodeResponseError saying which field is wrong."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise NodeResponseError(f"{what}: {describe_validation(exc)}") from None


class NodeClient:
    """An async client of one node.  Use as ``async with NodeClient(url) as node: ...``."""

    def __init__(
        self,
        base_url: str,
        *,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        retries: int = RETRIES,
        backoff_s: float = BACKOFF_S,
        user_agent: str = USER_AGENT,
        ca_file: Path | str | None = None,
    ) -> None:
        self.base_url = parse_base_url(base_url)
        self.url = str(self.base_url).rstrip("/")
        self._ssl: ssl.SSLContext | bool = True
        if ca_file is not None:
            if self.base_url.scheme != "https":
                raise NodeUrlError(f"a pinned CA (--ca) needs an https:// URL, got {base_url!r}")
            self._ssl = pinned_context(Path(ca_file))
        self._request_timeout_s = request_timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> NodeClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl),
            timeout=aiohttp.ClientTimeout(total=self._request_timeout_s),
            headers={"User-Agent": self._user_agent, "Accept": "application/json"},
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

    # --- chain ---------------------------------------------------------------------------

    async def status(self) -> m.Status:
        return await self.get(m.Status, "/v1/status")

    async def health(self) -> m.Health:
        return await self.get(m.Health, "/health")

    async def block(self, height: int | str = "latest") -> m.BlockView:
        return await self.get(m.BlockView, f"/v1/blocks/{height}")

    async def block_by_hash(self, block_hash: str) -> m.BlockView:
        return await self.get(m.BlockView, f"/v1/blocks/by-hash/{block_hash}")

    async def blocks(self, first: int = 1, limit: int | None = None) -> m.BlockList:
        return await self.get(
            m.BlockList, with_query("/v1/blocks", {"from": first, "limit": limit})
        )

    async def tx(self, tx_hash: str) -> m.TxRecord | None:
        """The transaction with its body, or None while the node does not know it."""
        return await self._get_or_none(m.TxRecord, f"/v1/txs/{tx_hash}")

    async def tx_status(self, tx_hash: str, *, timeout_s: float | None = None) -> m.TxStatus | None:
        """Where the transaction is, or None while the node does not know it (404)."""
        return await self._get_or_none(
            m.TxStatus, f"/v1/txs/{tx_hash}", timeout_s=timeout_s, retries=0
        )

    async def submit_tx(self, tx: Transaction) -> str:
        """POST the signed transaction; return its hash after checking the node agrees on it."""
        local_hash = tx.hash().hex()
        node_hash = await self.submit_raw(tx.encode().hex())
        if node_hash != local_hash:
            raise NodeResponseError(
                f"POST /v1/txs: the node reports hash {node_hash} for transaction {local_hash}"
            )
        return local_hash

    async def submit_raw(self, raw_hex: str) -> str:
        """POST one encoded transaction (hex); return the hash the node reports."""
        body = m.SubmitTx(tx=raw_hex).model_dump()
        try:
            doc, _ = await self._send("POST", "/v1/txs", body)
        except NodeRefusedError as exc:
            # A retried POST whose first copy arrived: the node holds it, which is success.
            if exc.node_code == DUPLICATE_TX and exc.attempts > 1:
                return decode_tx(bytes.fromhex(raw_hex)).hash().hex()
            raise
        return parse(m.TxAccepted, doc, "POST /v1/txs").hash.lower()

    async def submit_batch(self, raws_hex: list[str]) -> m.BatchResults:
        """POST a batch; each item is admitted or refused alone (see BatchResults)."""
        body = m.SubmitBatch(txs=raws_hex).model_dump()
        doc, _ = await self._send("POST", "/v1/txs", body)
        return parse(m.BatchResults, doc, "POST /v1/txs")

    async def wait_committed(
        self,
        tx_hash: str,
        *,
        timeout_s: float,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    ) -> m.TxStatus:
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

    async def events(self) -> AsyncIterator[m.Event]:
        """The websocket feed of ``GET /v1/events``, one parsed message at a time."""
        session = self._open_session()
        # No receive timeout: a quiet chain sends nothing between blocks; the heartbeat notices
        # a dead peer instead.
        no_receive_timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0)
        async with session.ws_connect(
            self.url + "/v1/events", heartbeat=30, timeout=no_receive_timeout
        ) as ws:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                try:
                    yield _EVENT.validate_json(msg.data)
                except ValidationError as exc:
                    raise NodeResponseError(f"GET /v1/events: {describe_validation(exc)}") from None

    # --- accounts, participants, validators ----------------------------------------------

    async def account(self, address_text: str) -> m.Account:
        return await self.get(m.Account, f"/v1/accounts/{address_text}")

    async def participants(self, *, limit: int = LIST_MAX) -> m.ParticipantList:
        return await self.get(m.ParticipantList, with_query("/v1/participants", {"limit": limit}))

    async def proposals(
        self, *, status: str | None = None, limit: int = LIST_MAX
    ) -> m.ProposalList:
        """The chain's council proposals (``status``: open, applied, expired or failed)."""
        params = {"limit": limit, "status": status}
        return await self.get(m.ProposalList, with_query("/v1/proposals", params))

    async def proposal(self, proposal_id: str) -> m.Proposal | None:
        """One council proposal, or None when the chain has none with that id."""
        return await self._get_or_none(m.Proposal, f"/v1/proposals/{proposal_id.lower()}")

    async def params(self) -> m.ChainParameters:
        return await self.get(m.ChainParameters, "/v1/params")

    async def validators(self) -> m.ValidatorList:
        return await self.get(m.ValidatorList, "/v1/validators")

    # --- markets -------------------------------------------------------------------------

    async def markets(self) -> m.Markets:
        return await self.get(m.Markets, "/v1/markets")

    async def book(self, market: str, slot: int) -> m.Book:
        return await self.get(m.Book, f"/v1/markets/{market}/slots/{slot}/book")

    async def offers(self, market: str, slot: int) -> m.Offers:
        """A book's individual resting orders, each side in matching order."""
        path = with_query(f"/v1/markets/{market}/slots/{slot}/offers", {"limit": LIST_MAX})
        return await self.get(m.Offers, path)

    async def slot_stats(
        self, *, first: int | None = None, count: int | None = None
    ) -> m.SlotStatsList:
        """Per-slot public aggregates of the books and settlement."""
        return await self.get(
            m.SlotStatsList, with_query("/v1/stats/slots", {"from": first, "count": count})
        )

    async def load_stats(self, *, limit: int | None = None) -> m.LoadStats:
        """The community load against the committed schedule, with its PFL."""
        return await self.get(m.LoadStats, with_query("/v1/stats/load", {"limit": limit}))

    async def order(self, order_id: str) -> m.Order:
        return await self.get(m.Order, f"/v1/orders/{order_id}")

    async def orders(
        self, address_text: str, *, slot: int | None = None, status: str | None = None
    ) -> list[m.Order]:
        params = {"address": address_text, "slot": slot, "status": status, "limit": LIST_MAX}
        return list((await self.get(m.OrderList, with_query("/v1/orders", params))).orders)

    async def trades(
        self, *, address: str | None = None, slot: int | None = None, market: str | None = None
    ) -> list[m.Trade]:
        params = {"address": address, "slot": slot, "market": market, "limit": LIST_MAX}
        return list((await self.get(m.TradeList, with_query("/v1/trades", params))).trades)

    async def pool_prices(
        self, *, slot: int | None = None, count: int | None = None
    ) -> m.PoolPrices:
        params = {"slot": slot, "count": count}
        return await self.get(m.PoolPrices, with_query("/v1/pool/prices", params))

    # --- meters and settlement -----------------------------------------------------------

    async def meters(self, *, owner: str | None = None, limit: int = LIST_MAX) -> list[m.Meter]:
        path = with_query("/v1/meters", {"owner": owner, "limit": limit})
        return list((await self.get(m.MeterList, path)).meters)

    async def meter(self, meter_id: str) -> m.Meter | None:
        """The meter's chain head, or None when it is not registered (404 not_found)."""
        return await self._get_or_none(m.Meter, f"/v1/meters/{meter_id}")

    async def device_link(
        self, device_id: str, *, timeout_s: float | None = None, retries: int | None = None
    ) -> m.DeviceLink | None:
        """The meter the council linked the device to, or None when it is linked to none."""
        return await self._get_or_none(
            m.DeviceLink, f"/v1/devices/{device_id}", timeout_s=timeout_s, retries=retries
        )

    async def readings(
        self, meter_id: str, *, from_seq: int = 0, limit: int = LIST_MAX
    ) -> list[m.Reading]:
        path = with_query(f"/v1/meters/{meter_id}/readings", {"from_seq": from_seq, "limit": limit})
        return list((await self.get(m.ReadingList, path)).readings)

    async def receipts(
        self, *, address: str | None = None, slot: int | None = None
    ) -> list[m.Receipt]:
        """Settlement receipts (GET /v1/settlements), by slot and trade id."""
        path = with_query("/v1/settlements", {"address": address, "slot": slot, "limit": LIST_MAX})
        return list((await self.get(m.ReceiptList, path)).receipts)

    async def pool_slots(self, *, from_slot: int = 0) -> list[m.PoolSlot]:
        """Settled slots' real-time pools (GET /v1/pool/slots), oldest first."""
        path = with_query("/v1/pool/slots", {"from_slot": from_slot, "limit": LIST_MAX})
        return list((await self.get(m.PoolSlotList, path)).slots)

    async def pool_receipts(
        self, *, address: str | None = None, slot: int | None = None
    ) -> list[m.PoolReceipt]:
        """Households' pool receipts (GET /v1/pool/receipts), by slot."""
        query = {"address": address, "slot": slot, "limit": LIST_MAX}
        path = with_query("/v1/pool/receipts", query)
        return list((await self.get(m.PoolReceiptList, path)).receipts)

    # --- C&D requests and the schedule ---------------------------------------------------

    async def cd_request(self, request_id: str) -> m.CDRequest:
        return await self.get(m.CDRequest, f"/v1/cd/{request_id}")

    async def cd_receipts(self, request_id: str) -> list[m.CDReceipt]:
        return list((await self.get(m.CDReceipts, f"/v1/cd/{request_id}/receipts")).receipts)

    async def cd_requests(
        self, owner: str | None, *, status: str | None = None, limit: int = LIST_MAX
    ) -> list[m.CDRequest]:
        path = with_query("/v1/cd", {"owner": owner, "status": status, "limit": limit})
        return list((await self.get(m.CDList, path)).requests)

    async def schedule(
        self, *, interval: int | None = None, limit: int | None = None
    ) -> m.Schedule:
        path = with_query("/v1/schedule", {"interval": interval, "limit": limit})
        return await self.get(m.Schedule, path)

    # --- sealed reads (protocol/sealed_read.py) -------------------------------------------

    async def sealed_read(
        self,
        key: SigningKey,
        chain_id: bytes,
        kind: ReadKind,
        *,
        meter_id: str = "",
        window_ms: int = SEALED_READ_WINDOW_MS,
        now_ms: int | None = None,
    ) -> BaseModel:
        """Read the private data of ``key``'s account, answered sealed to a fresh reply key.

        A new request id and reply key per call; never retried (the node answers a request
        once, so a retry would be refused as a replay).  Returns the open route's model.
        """
        reply_key = X25519PrivateKey.generate()
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        query = ReadQuery(
            account=address_of(key.public_key),
            kind=int(kind),
            meter_id=meter_id,
            request_id=os.urandom(16),
            valid_until_ms=now + window_ms,
            reply_key=public_bytes(reply_key),
        )
        request = sign_read(key, chain_id, query)
        doc, _ = await self._send(
            "POST",
            "/v1/sealed-reads",
            m.SealedReadRequest(request=request.encode().hex()).model_dump(),
            retries=0,
        )
        answer = parse(m.SealedReply, doc, "POST /v1/sealed-reads")
        plain = open_reply(chain_id, request, reply_key, bytes.fromhex(answer.sealed))
        return parse(SEALED_READ_MODELS[kind], _json(plain, "sealed reply", 200), "sealed reply")

    # --- transport -----------------------------------------------------------------------

    async def get(
        self,
        model: type[M],
        path: str,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> M:
        """GET ``path`` and parse the answer as ``model``."""
        doc, _ = await self._send("GET", path, timeout_s=timeout_s, retries=retries)
        return parse(model, doc, f"GET {path}")

    async def _get_or_none(
        self,
        model: type[M],
        path: str,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> M | None:
        try:
            return await self.get(model, path, timeout_s=timeout_s, retries=retries)
        except NodeRefusedError as exc:
            if exc.status == 404 and exc.node_code == "not_found":
                return None
            raise

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("NodeClient used outside 'async with'")
        return self._session

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> tuple[Any, int]:
        """One request with the retry policy; the JSON answer and how many attempts it took.

        Only GETs and POSTs of signed transactions go through here, and both are safe to
        repeat (see the module docstring)."""
        attempts = 1 + (self._retries if retries is None else retries)
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                status, doc = await self._exchange(method, path, body, timeout_s)
            except _ConnectionFailedError:
                if last:
                    raise
            else:
                if 200 <= status < 300:
                    return doc, attempt
                if status not in RETRY_STATUSES or last:
                    raise self._failure(method, path, status, doc, attempt)
            await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _failure(self, method: str, path: str, status: int, doc: Any, attempt: int) -> NodeError:
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            if isinstance(code, str) and isinstance(message, str):
                return NodeRefusedError(self.url, status, code, message, attempts=attempt)
        return NodeResponseError(
            f"{method} {path}: HTTP {status} from {self.url} without a gridchain error object"
        )

    async def _exchange(
        self, method: str, path: str, body: dict[str, Any] | None, timeout_s: float | None
    ) -> tuple[int, Any]:
        session = self._open_session()
        url = self.url + path
        timeout = self._request_timeout_s if timeout_s is None else timeout_s
        try:
            async with session.request(
                method, url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ClientConnectorCertificateError as exc:
            raise NodeCertificateError(
                f"the server at {self.url} is not who it claims: its TLS certificate does "
                f"not verify ({exc.certificate_error}); check --ca and the URL's host"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise _ConnectionFailedError(
                f"cannot reach the node at {self.url}: {_reason(exc.os_error)}"
                f" (is it running? set --node or ${NODE_ENV})"
            ) from None
        except TimeoutError:
            raise NodeUnreachableError(
                f"the node at {self.url} did not answer {method} {path} within {timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise _ConnectionFailedError(
                f"lost the connection to the node at {self.url} during {method} {path}: "
                f"{type(exc).__name__}"
            ) from None
        return status, _json(raw, f"{method} {path}", status)


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

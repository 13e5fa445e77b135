"""Connection limits of the HTTP API: a cap on open connections and a header deadline.

Why: aiohttp keeps a connection that never completes a request for an hour and accepts as
many as the kernel hands it, so a few hundred silent sockets exhaust the open-files limit of
a small device and the API (and then the ledger, which needs descriptors too) stops working.
The guard wraps every connection's protocol: beyond ``max_connections`` a connection gets a
one-line 503 and is closed at once; a connection whose first request has not reached a
handler within ``header_timeout_s`` (idle, or headers sent a byte at a time) is aborted.
After the first request aiohttp's own keep-alive timeout bounds the idle time between
requests, and gridchain.node.api_input bounds the time a body may take.  Refusals are counted
by reason (``on_refused``), never logged once per connection.

A public edge (the gateway, ADR 0025) also caps the connections of one source address
(``max_per_source``): without it one host holding the whole budget locks every other client
out; such a refusal is a 429 naming the cause.  A site may serve TLS (``ssl_context``): the
guard then counts the raw TCP connection *before* the TLS handshake (so silent sockets that
never send a ClientHello count against both caps, and the header deadline bounds the handshake
too) and upgrades an admitted one with ``loop.start_tls``.  A connection refused over TLS is
closed without an answer: a TLS client could not read a plaintext one, and answering would
cost a handshake per refused connection, which is what a connection flood wants.
"""

from __future__ import annotations

import asyncio
import resource
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web

#: Descriptors kept for everything but API clients: the ledger's files, peer links and
#: handshakes, logs, the interpreter's own.
RESERVED_FDS = 128

_BUSY_BODY = b'{"error": {"code": "busy", "message": "too many connections"}}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_BUSY_BODY), _BUSY_BODY)
)
_PER_SOURCE_BODY = (
    b'{"error": {"code": "too_many_connections", "message": "too many connections from your '
    b'address"}}'
)
_PER_SOURCE = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_PER_SOURCE_BODY), _PER_SOURCE_BODY)
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Bytes a TLS client may send before its connection is handed to aiohttp (one request's
#: headers; a client that sends more before the upgrade finished is cut).
_MAX_EARLY_BYTES = 64 * 1024


def connection_budget(configured: int) -> int:
    """``configured``, lowered to fit the process's open-files limit (RLIMIT_NOFILE)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, max(soft - RESERVED_FDS, soft // 2)))


class ConnectionGuard:
    """Counts the API's connections and enforces the cap and the header deadline."""

    def __init__(
        self,
        *,
        max_connections: int,
        header_timeout_s: float,
        on_refused: Callable[[str], None],
        max_per_source: int | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.max_per_source = max_per_source
        self.open = 0
        self._on_refused = on_refused
        self._deadlines: dict[asyncio.BaseTransport, asyncio.TimerHandle] = {}
        self._per_source: Counter[str] = Counter()
        self._sources: dict[asyncio.BaseTransport, str] = {}

    def wrap(
        self, factory: Callable[[], asyncio.Protocol], ssl_context: ssl.SSLContext | None = None
    ) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` around aiohttp's own (with
        ``ssl_context``, for a plain TCP server: the guard does the TLS upgrade itself)."""
        return lambda: _GuardedProtocol(factory, self, ssl_context)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The request's headers are complete: its connection has met the header deadline."""
        if request.transport is not None:
            self._disarm(request.transport)
        return await handler(request)

    def admit(self, transport: asyncio.Transport, *, answer: bool = True) -> bool:
        """Count a new connection and start its header deadline, or refuse it (False); a
        refusal is answered in plain HTTP unless ``answer`` is False (a TLS connection)."""
        if self.open >= self.max_connections:
            self._on_refused("connection_cap")
            if answer:
                transport.write(_BUSY)
            transport.close()
            return False
        if self.max_per_source is not None:
            source = _source_of(transport)
            if self._per_source[source] >= self.max_per_source:
                self._on_refused("per_source_cap")
                if answer:
                    transport.write(_PER_SOURCE)
                transport.close()
                return False
            self._per_source[source] += 1
            self._sources[transport] = source
        self.open += 1
        loop = asyncio.get_running_loop()
        self._deadlines[transport] = loop.call_later(self.header_timeout_s, self._expire, transport)
        return True

    def _expire(self, transport: asyncio.Transport) -> None:
        self._deadlines.pop(transport, None)
        self._on_refused("header_timeout")
        transport.abort()

    def rekey(self, old: asyncio.BaseTransport, new: asyncio.BaseTransport) -> None:
        """The connection's transport is now ``new`` (its TLS layer over ``old``)."""
        if old in self._deadlines:
            self._deadlines[new] = self._deadlines.pop(old)
        if old in self._sources:
            self._sources[new] = self._sources.pop(old)

    def _disarm(self, transport: asyncio.BaseTransport) -> None:
        timer = self._deadlines.pop(transport, None)
        if timer is not None:
            timer.cancel()

    def closed(self, transport: asyncio.BaseTransport) -> None:
        """An admitted connection ended: it no longer counts against the cap."""
        self._disarm(transport)
        self.open -= 1
        source = self._sources.pop(transport, None)
        if source is not None:
            self._per_source[source] -= 1
            if self._per_source[source] <= 0:
                del self._per_source[source]

    def open_from(self, source: str) -> int:
        """Connections open from one source address."""
        return self._per_source.get(source, 0)


def _source_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


class _GuardedProtocol(asyncio.Protocol):
    """Forwards to aiohttp's protocol, which is only created for an admitted connection (after
    the TLS upgrade, when the site serves TLS)."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        guard: ConnectionGuard,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._factory = factory
        self._guard = guard
        self._ssl = ssl_context
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._released = False
        self._upgrade: asyncio.Task[None] | None = None
        #: What TLS decrypted before start_tls returned (a TLS 1.3 client sends its request
        #: right behind its Finished), handed to aiohttp's protocol once it exists.
        self._early: list[bytes] = []
        self._early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self._guard.admit(transport, answer=self._ssl is None):
            return
        self._transport = transport
        if self._ssl is None:
            self._inner = self._factory()
            self._inner.connection_made(transport)
            return
        transport.pause_reading()  # the ClientHello waits for start_tls, nothing is lost
        self._upgrade = asyncio.get_running_loop().create_task(self._start_tls(transport))

    async def _start_tls(self, raw: asyncio.Transport) -> None:
        assert self._ssl is not None
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                raw,
                self,
                self._ssl,
                server_side=True,
                ssl_handshake_timeout=self._guard.header_timeout_s,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, RuntimeError):
            self._release()
            raw.abort()
            return
        if tls is None or self._released:
            raw.abort()
            return
        self._guard.rekey(raw, tls)
        self._transport = tls
        inner = self._inner = self._factory()
        inner.connection_made(tls)
        early, self._early = self._early, []
        for data in early:
            inner.data_received(data)
        if self._early_eof:
            inner.eof_received()

    def _release(self) -> None:
        """Stop counting this connection (once, whichever way it ended)."""
        if not self._released and self._transport is not None:
            self._released = True
            self._guard.closed(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._release()
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)
        elif self._upgrade is not None:
            self._early.append(data)
            if sum(map(len, self._early)) > _MAX_EARLY_BYTES and self._transport is not None:
                cast(asyncio.Transport, self._transport).abort()

    def eof_received(self) -> bool | None:
        if self._inner is None:
            self._early_eof = self._upgrade is not None
            return None
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through a :class:`ConnectionGuard`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ):
        super().__init__(runner)
        self._host = host
        self._port = port
        self._guard = guard
        self._ssl = ssl_context

    @property
    def name(self) -> str:
        scheme = "http" if self._ssl is None else "https"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.wrap(server, self._ssl),
            self._host,
            self._port,
            reuse_address=True,
            # a deep accept queue: under a connection flood the default of 100 overflows and
            # the kernel drops an honest client's SYN, which it retries only after a second
            backlog=max(1024, min(self._guard.max_connections, 65_535)),
        )

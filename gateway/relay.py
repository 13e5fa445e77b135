"""Reads and the event feed, relayed to the validators' private APIs.

Why relay rather than answer from the gateway's own copy: the gateway follows certified blocks
without executing them (it has no state: no balances, books or receipts), and executing them
would make a third party's machine hold every household's data in the clear.  A read is
therefore passed, path and query unchanged, to one validator's API on its private address and
the answer comes back as the validator gave it; when that validator does not answer the next
one is asked.  Only the routes of the API contract are relayed, so the gateway never becomes an
open proxy into the validators' network.

The feed (``/v1/events``) is one websocket from the gateway to a validator, fanned out to every
client subscribed at the gateway: a thousand subscribers cost the validators one connection.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import aiohttp
import structlog

log = structlog.get_logger("gridchain.gateway.relay")

#: Pause before the feed reconnects to the next validator after losing one.
FEED_RETRY_S = 1.0
#: Largest answer relayed (a page of 100 blocks of many transactions stays well below).
MAX_ANSWER_BYTES = 32 * 1024 * 1024


class RelayUnavailableError(Exception):
    """No validator answered (the caller turns it into a 503)."""


class ReadRelay:
    """Passes read requests to the validators' APIs, rotating past any that does not answer."""

    def __init__(self, api_urls: Sequence[str], *, timeout_s: float) -> None:
        if not api_urls:
            raise ValueError("a relay needs at least one validator API")
        self.api_urls = [u.rstrip("/") for u in api_urls]
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._next = itertools.cycle(range(len(self.api_urls)))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, connector=aiohttp.TCPConnector(limit=64)
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path_qs: str) -> tuple[int, str, bytes]:
        return await self.request("GET", path_qs)

    async def request(
        self, method: str, path_qs: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, str, bytes]:
        """(status, content type, body) of ``method path_qs`` from the first validator that
        answers, starting with the next one in turn.  Reads are safe to ask again; a POST
        relayed here is a read too (a signed, sealed query: ADR 0025), never a write."""
        if self._session is None:
            raise RuntimeError("ReadRelay used before start()")
        first = next(self._next)
        for i in range(len(self.api_urls)):
            url = self.api_urls[(first + i) % len(self.api_urls)] + path_qs
            try:
                headers = {"Content-Type": content_type} if body is not None else None
                async with self._session.request(
                    method, url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    body = await resp.content.read(MAX_ANSWER_BYTES + 1)
                    if len(body) > MAX_ANSWER_BYTES:
                        continue
                    return resp.status, resp.content_type, body
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.debug("validator did not answer", url=url, reason=type(exc).__name__)
        raise RelayUnavailableError("no validator answered")


class EventFeed:
    """One upstream websocket to a validator's /v1/events, fanned out to local subscribers.

    Each subscriber has a bounded queue; one that falls ``max_events`` messages behind is told
    so (its queue's overflow flag) and closed by the handler, exactly as a validator closes a
    slow subscriber, so it resynchronises from /v1/blocks."""

    def __init__(self, api_urls: Sequence[str], *, max_events: int) -> None:
        self.api_urls = [u.rstrip("/") for u in api_urls]
        self.max_events = max_events
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.max_events)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def publish(self, message: str) -> None:
        for sub in list(self.subscribers):
            sub.offer(message)

    async def _run(self) -> None:
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)
        async with aiohttp.ClientSession() as session:
            for index in itertools.cycle(range(len(self.api_urls))):
                url = self.api_urls[index] + "/v1/events"
                try:
                    async with session.ws_connect(url, heartbeat=30, timeout=timeout) as ws:
                        log.info("event feed connected", url=url)
                        async for msg in ws:
                            if msg.type != aiohttp.WSMsgType.TEXT:
                                break
                            self.publish(msg.data)
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    log.debug("event feed lost", url=url, reason=type(exc).__name__)
                await asyncio.sleep(FEED_RETRY_S)


class Subscriber:
    def __init__(self, max_events: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(max_events)
        self.overflowed = asyncio.Event()

    def offer(self, message: str) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed.set()

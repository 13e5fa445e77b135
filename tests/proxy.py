"""A TCP proxy for tests that records every byte in both directions and can change them.

It stands where an eavesdropper or an active attacker on the path would: the tests read what
it captured (is anything readable?) or let it flip a byte (is the change noticed?).  It runs
on its own event loop in a thread, so a test that blocks on processes still keeps it moving.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: tamper(direction, offset of the chunk in that direction's stream, chunk) -> chunk to send.
Tamper = Callable[[str, int, bytes], bytes]
UPSTREAM = "up"  # from the client that dialed the proxy to the target
DOWNSTREAM = "down"


@dataclass
class Capture:
    """The bytes of every connection through the proxy, per direction, in order."""

    up: bytearray = field(default_factory=bytearray)
    down: bytearray = field(default_factory=bytearray)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def all_bytes(self) -> bytes:
        with self.lock:
            return bytes(self.up) + bytes(self.down)


class RecordingProxy:
    """Listens on 127.0.0.1:``port`` and forwards each connection to ``target_port``."""

    def __init__(self, port: int, target_port: int, tamper: Tamper | None = None) -> None:
        self.port = port
        self.target_port = target_port
        self.tamper = tamper
        self.capture = Capture()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> RecordingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        with self.capture.lock:
            self.capture.connections += 1
        try:
            target_r, target_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        try:
            await asyncio.gather(
                self._pipe(client_r, target_w, UPSTREAM, self.capture.up),
                self._pipe(target_r, client_w, DOWNSTREAM, self.capture.down),
            )
        finally:
            client_w.transport.abort()
            target_w.transport.abort()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        record: bytearray,
    ) -> None:
        offset = 0
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while chunk := await reader.read(65536):
                with self.capture.lock:
                    record.extend(chunk)
                sent = chunk if self.tamper is None else self.tamper(direction, offset, chunk)
                offset += len(chunk)
                writer.write(sent)
                await writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


@contextlib.contextmanager
def recording_proxy(
    port: int, target_port: int, tamper: Tamper | None = None
) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(port, target_port, tamper).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def flip_byte_at(direction: str, position: int) -> Tamper:
    """A tamper that flips the lowest bit of the byte at ``position`` of one direction's
    stream of every connection (each connection's stream counts from 0)."""

    def tamper(where: str, offset: int, chunk: bytes) -> bytes:
        if where != direction or not offset <= position < offset + len(chunk):
            return chunk
        changed = bytearray(chunk)
        changed[position - offset] ^= 0x01
        return bytes(changed)

    return tamper

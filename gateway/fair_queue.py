"""A bounded queue toward the validators that serves senders in turn (round-robin).

Why fair and not first-in first-out: a sender within its quota may still submit in bursts, and
under FIFO a burst of hundreds delays every honest transaction behind it.  Here each sender
has its own short line and the forwarders take one transaction from each sender in turn, so an
honest household waits behind at most one transaction per other active sender.  A sender's
transactions leave one at a time (the next only once the validators answered the previous),
so several forwarders never reorder one sender's nonces.  The queue is bounded in total and per
sender; when full it refuses at once (QueueFullError, a 429) instead of holding memory for a
flood.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from gridchain.gateway.errors import QueueFullError


@dataclass(eq=False)
class Queued:
    """A checked transaction waiting to be forwarded; ``verdict`` is settled by the forwarder
    (None once a validator admitted it, else the validators' refusal)."""

    sender: bytes
    tx_hash: bytes
    raw: bytes
    #: The de-duplication key of the sender's nonce (filters.nonce_slot).
    slot: bytes = b""
    verdict: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class FairQueue:
    def __init__(self, *, max_total: int, max_per_sender: int) -> None:
        self.max_total = max_total
        self.max_per_sender = max_per_sender
        self._lines: OrderedDict[bytes, deque[Queued]] = OrderedDict()  # senders ready to go
        self._held: dict[bytes, deque[Queued]] = {}  # senders with one in flight
        self._size = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return self._size

    def put(self, item: Queued) -> None:
        """Queue ``item`` behind its sender's earlier ones, or raise QueueFullError."""
        if self._size >= self.max_total:
            raise QueueFullError(
                f"the queue toward the validators is full ({self.max_total} transactions)"
            )
        line = self._lines.get(item.sender)
        if line is None:
            line = self._held.get(item.sender)
        if line is not None and len(line) >= self.max_per_sender:
            raise QueueFullError(
                f"sender {item.sender.hex()[:16]}... already has {self.max_per_sender} "
                "transactions waiting to be forwarded"
            )
        if line is None:
            line = self._lines[item.sender] = deque()
            self._ready.set()
        line.append(item)
        self._size += 1

    def pop(self) -> Queued | None:
        """The next item in round-robin order across senders, or None when none is ready.
        Its sender is held until :meth:`release`."""
        if not self._lines:
            return None
        sender, line = self._lines.popitem(last=False)
        item = line.popleft()
        self._size -= 1
        self._held[sender] = line
        if not self._lines:
            self._ready.clear()
        return item

    def release(self, sender: bytes) -> None:
        """``sender``'s transaction in flight is answered: its next one may go, after every
        other ready sender's (it rejoins the end of the round)."""
        line = self._held.pop(sender, None)
        if line:
            self._lines[sender] = line
            self._ready.set()

    async def get(self) -> Queued:
        """Wait for and return the next item (round-robin)."""
        while True:
            item = self.pop()
            if item is not None:
                return item
            await self._ready.wait()

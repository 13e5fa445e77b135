"""A bounded set of recently seen hashes, forgetting the oldest first.

Gossip de-duplication must hold memory constant under any traffic: a flood of distinct
transactions evicts old entries instead of growing the set.  Forgetting is safe because a
hash that comes back after eviction is only processed again (the mempool and the engine refuse
duplicates themselves); the set only keeps the common case cheap and stops echo loops.
"""

from __future__ import annotations

from collections import OrderedDict


class SeenSet:
    __slots__ = ("_capacity", "_items")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._items: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, key: bytes) -> bool:
        """Remember ``key``; True if it was new.  A repeat refreshes its age."""
        if key in self._items:
            self._items.move_to_end(key)
            return False
        self._items[key] = None
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return True


class RepeatFilter:
    """Drops a key repeated sooner than ``min_interval_s`` after it was last let through.

    For consensus frames from one peer.  Engines retransmit their messages on a timer, and
    because Ed25519 signatures are deterministic a retransmission is byte-for-byte the message
    sent before; a receiver that was behind when the first copy came (its engine dropped it as
    a future height) needs a later copy.  A plain seen set dropped every repeat for good, which
    stalled a PBFT view change until the timeouts, doubled, produced new messages (issue 12's
    long-network fault run).  The interval still keeps a peer from making us verify the same
    bytes in a tight loop.
    """

    __slots__ = ("_capacity", "_items", "_min_interval_s")

    def __init__(self, capacity: int, min_interval_s: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if min_interval_s < 0:
            raise ValueError("min_interval_s must not be negative")
        self._capacity = capacity
        self._min_interval_s = min_interval_s
        self._items: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def admit(self, key: bytes, now_s: float) -> bool:
        """True if ``key`` is new, or was last let through ``min_interval_s`` ago or more."""
        last = self._items.get(key)
        if last is not None and now_s - last < self._min_interval_s:
            return False
        self._items[key] = now_s
        self._items.move_to_end(key)
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return True

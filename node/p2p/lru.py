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

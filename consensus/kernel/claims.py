"""How far the other validators' signed messages prove the chain has gone (catching up).

A validator that is behind learns it from signed messages for higher heights: each proves that
its signer's committed head is at least one below the message's height.  One claim may be a
lie, but when ``f + 1`` validators (one of them, at least, not faulty) are ahead, the engine
asks the runtime to fetch certified blocks up to the height they all reached (``SyncTo``).  A
fetch only accepts certified blocks, so a lie costs a request, never safety.
"""

from __future__ import annotations


class HeadClaims:
    """validator -> the highest head height its signed messages prove it reached."""

    __slots__ = ("_heights", "dirty")

    def __init__(self) -> None:
        self._heights: dict[bytes, int] = {}
        #: a claim changed since :meth:`reached_by` last looked
        self.dirty = False

    def __len__(self) -> int:
        return len(self._heights)

    def of(self, signer: bytes) -> int:
        """The head ``signer`` proved it reached (0 when it proved nothing above ours)."""
        return self._heights.get(signer, 0)

    def claim(self, signer: bytes, height: int, head: int) -> None:
        """``signer`` proved (by a signed message) that its head is at least ``height``."""
        if height > head and height > self._heights.get(signer, 0):
            self._heights[signer] = height
            self.dirty = True

    def forget_up_to(self, head: int) -> None:
        """Drop the claims the committed ``head`` has caught up with."""
        for signer in [s for s, height in self._heights.items() if height <= head]:
            del self._heights[signer]

    def best(self) -> int:
        """The highest head anyone claims (0 if none): worth a look when stuck."""
        return max(self._heights.values(), default=0)

    def reached_by(self, count: int) -> int | None:
        """The highest height at least ``count`` validators reached (None: fewer claim)."""
        self.dirty = False
        heads = sorted(self._heights.values(), reverse=True)
        return heads[count - 1] if len(heads) >= count else None

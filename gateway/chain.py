"""The gateway's followed chain: the node's Follower (certified blocks over the p2p links),
seen through the narrow interface the filters and the forwarder use."""

from __future__ import annotations

from gridchain.node.follower import Follower
from gridchain.protocol.tx import decode_tx


class FollowerChain:
    """Adapts :class:`gridchain.node.follower.Follower` to ``FollowedChain``."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower

    def is_registered(self, sender: bytes) -> bool:
        return self.follower.is_registered(sender)

    def next_nonce(self, sender: bytes) -> int:
        return self.follower.next_nonce(sender)

    def head_height(self) -> int | None:
        """The followed head, or None while no validator is linked (nothing can be checked
        or forwarded then)."""
        if not self.follower.connected_validators():
            return None
        return self.follower.head.height

    async def submit(self, raw: bytes) -> None:
        # the bytes passed the filters' strict decoding already; decoding again is ~20 µs
        await self.follower.submit(decode_tx(raw))

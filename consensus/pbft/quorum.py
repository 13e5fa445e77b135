"""The validator set and its quorum arithmetic.

With n validators PBFT tolerates f = (n - 1) // 3 Byzantine ones and needs quorums of
q = n - f (2f + 1 when n = 3f + 1).  Two quorums then always share at least f + 1 validators,
so at least one honest one: that overlap is what makes two conflicting certificates
impossible.  f + 1 is the smallest set that must contain an honest validator, which is the
threshold for believing that the others are ahead (joining a view change, catching up).
"""

from __future__ import annotations

from collections.abc import Sequence

from gridchain.protocol.crypto import PUBLIC_KEY_BYTES
from gridchain.protocol.errors import GridchainError


class PbftConfigError(GridchainError):
    """The engine was configured with values it cannot run with."""

    code = "pbft_config"


class ValidatorSet:
    """The validators in genesis order; the order decides who is primary in which view."""

    __slots__ = ("f", "index", "keys", "n", "q")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise PbftConfigError("PBFT needs at least one validator")
        for key in keys:
            if len(key) != PUBLIC_KEY_BYTES:
                raise PbftConfigError(f"a validator key is {PUBLIC_KEY_BYTES} bytes")
        self.keys: tuple[bytes, ...] = tuple(keys)
        self.index: dict[bytes, int] = {k: i for i, k in enumerate(self.keys)}
        if len(self.index) != len(self.keys):
            raise PbftConfigError("validator keys must be unique")
        self.n = len(self.keys)
        self.f = (self.n - 1) // 3
        self.q = self.n - self.f

    def primary(self, view: int) -> bytes:
        return self.keys[view % self.n]

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def ordered(self, keys: Sequence[bytes]) -> list[bytes]:
        """``keys`` (members) sorted by genesis order: a deterministic, hash-free order."""
        return sorted(keys, key=self.index.__getitem__)

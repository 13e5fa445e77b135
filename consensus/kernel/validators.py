"""The validator set and its quorum arithmetic, for the engines that vote (PBFT, ePoB).

With n validators and quorums of q, two quorums share at least 2q - n validators; with the
Byzantine quorum q = n - f, f = (n - 1) // 3 (2f + 1 when n = 3f + 1) they share at least f + 1,
so at least one honest one: that overlap is what makes two conflicting certificates
impossible.  f + 1 = n - q + 1 is the smallest set that must contain a validator that is not
faulty, which is the threshold for believing that the others are ahead (joining a view change
or a later round, catching up).  ePoB may also run with the source's majority quorum,
n // 2 + 1, which only tolerates crashes (consensus/epob/engine.py says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from gridchain.protocol.crypto import PUBLIC_KEY_BYTES
from gridchain.protocol.errors import GridchainError

Quorum = Literal["bft", "majority"]


class ConsensusConfigError(GridchainError):
    """An engine was configured with values it cannot run with (each engine has a subclass)."""

    code = "consensus_config"


def quorum_size(n: int, quorum: Quorum) -> int:
    """q for n validators: n - (n - 1) // 3 ("bft") or n // 2 + 1 ("majority")."""
    if quorum == "bft":
        return n - (n - 1) // 3
    if quorum == "majority":
        return n // 2 + 1
    raise ConsensusConfigError(f"unknown quorum {quorum!r}")


class ValidatorSet:
    """The validators in genesis order, which decides every choice among them (a primary, a
    leader, the signatures a certificate carries): a deterministic, hash-free order."""

    __slots__ = ("f", "index", "keys", "n", "q")

    def __init__(
        self,
        keys: Sequence[bytes],
        quorum: Quorum = "bft",
        *,
        error: type[ConsensusConfigError] = ConsensusConfigError,
    ) -> None:
        """``error`` is the engine's own configuration error, raised for a set it cannot use."""
        if not keys:
            raise error("an engine needs at least one validator")
        for key in keys:
            if len(key) != PUBLIC_KEY_BYTES:
                raise error(f"a validator key is {PUBLIC_KEY_BYTES} bytes")
        self.keys: tuple[bytes, ...] = tuple(keys)
        self.index: dict[bytes, int] = {k: i for i, k in enumerate(self.keys)}
        if len(self.index) != len(self.keys):
            raise error("validator keys must be unique")
        if quorum not in ("bft", "majority"):
            raise error(f"unknown quorum {quorum!r}")
        self.n = len(self.keys)
        self.q = quorum_size(self.n, quorum)
        #: the most validators that may fail without stopping a quorum (n - q)
        self.f = self.n - self.q

    def primary(self, view: int) -> bytes:
        """PBFT's primary of ``view`` (the validators take turns in genesis order)."""
        return self.keys[view % self.n]

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def ordered(self, keys: Sequence[bytes]) -> list[bytes]:
        """``keys`` (members) sorted by genesis order: a deterministic, hash-free order."""
        return sorted(keys, key=self.index.__getitem__)

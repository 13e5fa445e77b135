"""Signature checks for the engines: one verifier, one cache, one certificate rule.

Every engine signs with :data:`protocol.crypto.Domain.VOTE` over the canonical encoding of a
record whose type tag says what is signed, and peers relay and repeat signed messages (a new
view carries q view changes, a proposal a polka, a lock its notarization), so the same
signature arrives many times.  A valid signature fixes what it signs, so a signature seen
again over an equal record needs no second Ed25519 check.  The verifier itself is a parameter
because the simulator passes one cached across all its validators.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Final

from gridchain.protocol.block import Block, BlockHeader, Certificate, VoteSignature
from gridchain.protocol.crypto import Domain, verify
from gridchain.protocol.encoding import Record

#: protocol.crypto.verify's signature; the simulator passes a cached one.
Verifier = Callable[[bytes, bytes, Domain, bytes, bytes], bool]
#: (signature, the signed record) -> whether it verifies.
SignatureCheck = Callable[[VoteSignature, Record], bool]

#: Verified signatures remembered per engine (the cache is emptied when full).
SIGNATURE_CACHE_LIMIT: Final = 8192
#: Block hashes remembered per engine.
HASH_CACHE_LIMIT: Final = 1024


class RememberedVerify:
    """protocol.crypto.verify, remembering the exact inputs that verified (ADR 0047).

    Verification is a pure function, so a remembered success is the answer.  One per
    validator, shared by its engine and its chain driver: the driver checks the commit
    certificate of every block before writing it, and those are votes the engine already
    checked one by one as they arrived, so that check costs no second Ed25519 verification
    (q of them per block: 11 at 16 validators).  Only successes are kept; a full memory is
    emptied (forgetting costs only a second check).
    """

    __slots__ = ("_known", "_limit", "_verifier")

    def __init__(self, verifier: Verifier = verify, limit: int = SIGNATURE_CACHE_LIMIT) -> None:
        self._verifier = verifier
        self._limit = limit
        self._known: dict[tuple[bytes, bytes, Domain, bytes, bytes], None] = {}

    def __call__(
        self, public_key: bytes, signature: bytes, domain: Domain, chain_id: bytes, payload: bytes
    ) -> bool:
        key = (public_key, signature, domain, chain_id, payload)
        if key in self._known:
            return True
        if not self._verifier(public_key, signature, domain, chain_id, payload):
            return False
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known[key] = None
        return True


class SignatureCache:
    """Checks Domain.VOTE signatures over records for one chain, remembering the good ones."""

    __slots__ = ("_chain_id", "_known", "_limit", "_verifier")

    def __init__(
        self, chain_id: bytes, verifier: Verifier = verify, limit: int = SIGNATURE_CACHE_LIMIT
    ) -> None:
        self._chain_id = chain_id
        self._verifier = verifier
        self._limit = limit
        self._known: dict[tuple[bytes, bytes], Record] = {}

    def check(self, sig: VoteSignature, signed: Record) -> bool:
        """True when ``sig`` is its validator's signature over ``signed`` on this chain."""
        key = (sig.validator, sig.signature)
        known = self._known.get(key)
        if known is not None:
            return known == signed
        payload = signed.encode()
        if not self._verifier(sig.validator, sig.signature, Domain.VOTE, self._chain_id, payload):
            return False
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known[key] = signed
        return True


def certificate_signed(
    cert: Certificate, members: Container[bytes], q: int, check: SignatureCheck
) -> bool:
    """At least ``q`` distinct members signed ``cert.vote``, and every signature included
    verifies (a certificate padded with a bad or foreign signature is refused whole)."""
    seen: dict[bytes, None] = {}
    for sig in cert.signatures:
        if sig.validator not in members or sig.validator in seen:
            return False
        if not check(sig, cert.vote):
            return False
        seen[sig.validator] = None
    return len(seen) >= q


class BlockHashes:
    """Block hashes, remembered: messages carry the same block many times over."""

    __slots__ = ("_known", "_limit")

    def __init__(self, limit: int = HASH_CACHE_LIMIT) -> None:
        self._limit = limit
        self._known: dict[BlockHeader, bytes] = {}

    def of(self, block: Block) -> bytes:
        header = block.header
        known = self._known.get(header)
        if known is None:
            if len(self._known) >= self._limit:
                self._known.clear()
            known = self._known[header] = header.hash()
        return known

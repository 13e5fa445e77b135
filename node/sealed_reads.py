"""The node's side of sealed reads (protocol/sealed_read.py): check, remember, answer sealed.

A request is answered at most once while it is valid: its id is remembered until its
``valid_until_ms`` has passed (at most MAX_READ_WINDOW_MS ahead), so a gateway or anyone
else who captured it cannot have it answered again, here.  The memory is bounded: when it is
full of live ids a new request is refused with a 503 rather than forgetting one early (which
would reopen a replay).  The answer is the JSON of the open route's model, sealed to the key
in the request, so whoever relays it sees only ciphertext.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from pydantic import BaseModel

from gridchain.api import models as m
from gridchain.api.routes import MAX_LIST
from gridchain.node.api_reply import ReadsBusyError
from gridchain.node.query import NodeQuery
from gridchain.protocol.sealed_read import (
    NotOwnerReadError,
    ReadKind,
    ReadRefusedError,
    ReadReplayedError,
    SignedRead,
    check_read,
    decode_read,
    seal_reply,
)

#: Live request ids a node remembers at most (about 100 bytes each).
DEFAULT_REPLAY_CAPACITY = 100_000


class NoSuchMeterError(ReadRefusedError):
    code = "not_found"
    http_status = 404


class ReplayCache:
    """Request ids seen and still valid, forgotten once their validity has passed."""

    def __init__(self, capacity: int = DEFAULT_REPLAY_CAPACITY) -> None:
        self._capacity = capacity
        self._live: set[bytes] = set()
        self._expiry: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._live)

    def admit(self, request_id: bytes, valid_until_ms: int, now_ms: int) -> None:
        """Remember ``request_id``, or raise ReadReplayedError if it is already live."""
        while self._expiry and self._expiry[0][0] < now_ms:
            _, gone = heapq.heappop(self._expiry)
            self._live.discard(gone)
        if request_id in self._live:
            raise ReadReplayedError("this read request was already answered")
        if len(self._live) >= self._capacity:
            raise ReadsBusyError("too many sealed reads in flight; retry shortly")
        self._live.add(request_id)
        heapq.heappush(self._expiry, (valid_until_ms, request_id))


class SealedReads:
    """Answers sealed reads for one node's API."""

    def __init__(
        self,
        query: NodeQuery,
        chain_id: bytes,
        clock: Callable[[], int],
        *,
        capacity: int = DEFAULT_REPLAY_CAPACITY,
    ) -> None:
        self._query = query
        self._chain_id = chain_id
        self._clock = clock
        self._seen = ReplayCache(capacity)

    def answer(self, raw: bytes) -> m.SealedReply:
        """The sealed answer to the encoded request ``raw``, or a typed refusal."""
        request = decode_read(raw)
        now = self._clock()
        check_read(request, self._chain_id, now)
        result = self._read(request)  # before admit: a refused read does not burn its id
        self._seen.admit(request.query.request_id, request.query.valid_until_ms, now)
        sealed = seal_reply(self._chain_id, request, result.model_dump_json().encode())
        return m.SealedReply(
            kind=ReadKind(request.query.kind).label,
            request_hash=request.request_hash().hex(),
            sealed=sealed.hex(),
        )

    def _read(self, request: SignedRead) -> BaseModel:
        q, account = request.query, request.query.account
        kind = ReadKind(q.kind)
        if kind is ReadKind.ORDERS:
            return self._query.orders(account, None, None, MAX_LIST)
        if kind is ReadKind.TRADES:
            return self._query.trades(account, None, None, MAX_LIST)
        if kind is ReadKind.RECEIPTS:
            return self._query.receipts(account, None, MAX_LIST)
        if kind is ReadKind.SEALED_OUTCOMES:
            return self._query.sealed_outcomes(account, MAX_LIST)
        owner = self._query.meter_owner(q.meter_id)
        if owner is None:
            raise NoSuchMeterError(f"no meter {q.meter_id!r}")
        if owner != account:
            raise NotOwnerReadError("the meter belongs to another account")
        return self._query.readings(q.meter_id, 0, MAX_LIST)

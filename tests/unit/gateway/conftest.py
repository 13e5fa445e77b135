"""A gateway's admission pipeline over a fake followed chain and a clock moved by hand."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gridchain.gateway.admission import Admission
from gridchain.gateway.fair_queue import FairQueue
from gridchain.gateway.filters import DedupCache, NonceWindow, TokenBuckets
from gridchain.gateway.metrics import GatewayMetrics
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.sealed import SealContext
from gridchain.protocol.tx import Transaction, Transfer, sign_tx
from tests.helpers import det_key

CHAIN_ID = bytes(range(32))


class ManualClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeChain:
    """Registered senders and their next nonces; what was submitted to the validators."""

    registered: set[bytes] = field(default_factory=set)
    nonces: dict[bytes, int] = field(default_factory=dict)
    submitted: list[bytes] = field(default_factory=list)
    height: int | None = 1

    def is_registered(self, sender: bytes) -> bool:
        return sender in self.registered

    def next_nonce(self, sender: bytes) -> int:
        return self.nonces.get(sender, 0)

    def head_height(self) -> int | None:
        return self.height

    async def submit(self, raw: bytes) -> None:
        self.submitted.append(raw)


@dataclass
class Pipeline:
    admission: Admission
    chain: FakeChain
    clock: ManualClock
    metrics: GatewayMetrics

    def refused(self, filter_name: str, code: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "gridchain_gateway_refused_total", {"filter": filter_name, "code": code}
        )
        return value or 0.0


ALICE = det_key("gateway/alice")
BOB = det_key("gateway/bob")
MALLORY = det_key("gateway/mallory")  # never registered


def transfer(
    key: SigningKey, nonce: int, amount: int = 1, chain_id: bytes = CHAIN_ID
) -> Transaction:
    return sign_tx(key, chain_id, nonce, Transfer(to=b"\x01" * 20, amount_mc=amount))


def make_pipeline(
    *,
    seal: SealContext | None = None,
    window: int = 4,
    rate: float = 2.0,
    burst: float = 3.0,
    queue_max: int = 100,
    queue_per_sender: int = 50,
) -> Pipeline:
    clock = ManualClock()
    chain = FakeChain(registered={ALICE.public_key, BOB.public_key})
    metrics = GatewayMetrics()
    admission = Admission(
        chain_id=CHAIN_ID,
        senders=chain,
        max_tx_bytes=1024,
        window=NonceWindow(window),
        dedup=DedupCache(capacity=1000, ttl_s=60.0, clock=clock),
        buckets=TokenBuckets(rate=rate, burst=burst, clock=clock, max_senders=1000),
        queue=FairQueue(max_total=queue_max, max_per_sender=queue_per_sender),
        metrics=metrics,
        seal=seal,
    )
    return Pipeline(admission, chain, clock, metrics)


@pytest.fixture
def pipeline() -> Pipeline:
    return make_pipeline()

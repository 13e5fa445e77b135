"""Hands queued transactions to the validators and settles each one's verdict.

A few forwarders run at once (``workers``), each taking the next transaction of the fair
queue, so one slow validator answer does not stall every sender; the queue never gives two of
them the same sender at once, so one sender's nonces arrive in order.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from gridchain.gateway.fair_queue import FairQueue
from gridchain.gateway.filters import DedupCache, SenderBook
from gridchain.gateway.metrics import GatewayMetrics

log = structlog.get_logger("gridchain.gateway.forwarder")


class FollowedChain(SenderBook, Protocol):
    """The gateway's view of the chain: certified blocks followed over the p2p links."""

    def head_height(self) -> int | None:
        """Height of the last certified block followed, None before the first."""
        ...

    async def submit(self, raw: bytes) -> None:
        """Hand one checked transaction to the validators over the encrypted links; return
        once one admitted it, or raise the validators' typed refusal."""
        ...


async def forward_forever(
    queue: FairQueue, chain: FollowedChain, metrics: GatewayMetrics, dedup: DedupCache
) -> None:
    """Drain ``queue`` into ``chain`` until cancelled, settling each item's verdict.

    A refused transaction is forgotten by the de-duplication cache (a later copy may pass
    once, say, the validators' pools have room again)."""
    while True:
        item = await queue.get()
        metrics.queued.set(len(queue))
        try:
            await chain.submit(item.raw)
        except asyncio.CancelledError:
            queue.release(item.sender)
            if not item.verdict.done():
                item.verdict.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - one refusal must not stop the loop
            metrics.forward_failed.inc()
            dedup.forget(item.tx_hash, item.slot)
            if not item.verdict.done():
                item.verdict.set_exception(exc)
        else:
            metrics.forwarded.inc()
            if not item.verdict.done():
                item.verdict.set_result(None)
        finally:
            queue.release(item.sender)


def start_forwarders(
    workers: int,
    queue: FairQueue,
    chain: FollowedChain,
    metrics: GatewayMetrics,
    dedup: DedupCache,
) -> list[asyncio.Task[None]]:
    return [
        asyncio.create_task(forward_forever(queue, chain, metrics, dedup), name=f"forwarder-{i}")
        for i in range(workers)
    ]

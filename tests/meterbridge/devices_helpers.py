"""Helpers of the device-controller tests: decisions as the node shows them, and waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gridchain.api import models as m

OWNER = "gc1" + "ab" * 24
OTHER = "gc1" + "cd" * 24


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def decision(
    interval: int,
    start_ms: int,
    end_ms: int,
    rates: list[tuple[str, str, int]],
    meter_ids: list[str | None] | None = None,
) -> m.Decision:
    """A committed decision with one entry per (owner, device, rate_w), naming the meter of
    the same place in ``meter_ids`` (none: no entry names a meter)."""
    meters = meter_ids if meter_ids is not None else [None] * len(rates)
    assert len(meters) == len(rates)
    return m.Decision(
        interval=interval,
        start_ms=start_ms,
        end_ms=end_ms,
        height=interval + 1,
        base_load_w=1000,
        load_w=1000 + sum(r for _, _, r in rates),
        benefit="1",
        entries=[
            m.ScheduleEntry(
                request_id=f"{i + 1:064x}",
                owner=owner,
                kind="charge" if rate >= 0 else "discharge",
                device=device,
                rate_w=rate,
                meter_id=meter_id,
            )
            for i, ((owner, device, rate), meter_id) in enumerate(zip(rates, meters, strict=True))
        ],
    )


async def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll ``condition`` until true; a generous bound so a loaded machine does not fail it."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)

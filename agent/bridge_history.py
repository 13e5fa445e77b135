"""Reading the household's meter history from its bridge's agent API (meterbridge/agent.py)."""

from __future__ import annotations

from typing import Any

import aiohttp

from gridchain.agent.config import BridgeSource
from gridchain.agent.history import HouseholdMeters, Reading, interval_energy_wh

#: The bridge serves at most this many readings per request (meterbridge.agent.MAX_LIMIT).
PAGE = 10_000
TIMEOUT_S = 10.0


class BridgeUnavailableError(Exception):
    """The bridge did not answer; the cycle goes on with the history it already has."""


async def meter_readings(
    session: aiohttp.ClientSession, url: str, meter_id: str, from_ms: int
) -> list[Reading]:
    """Every reading of one meter ending at or after ``from_ms``, oldest first."""
    out: list[Reading] = []
    since = from_ms
    while True:
        query = {"meter_id": meter_id, "from_ms": str(since), "limit": str(PAGE)}
        try:
            async with session.get(f"{url}/fetchHistoricalData", params=query) as resp:
                if resp.status != 200:
                    raise BridgeUnavailableError(f"{url}: HTTP {resp.status} for {meter_id}")
                doc: Any = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BridgeUnavailableError(f"{url}: {exc}") from None
        rows = doc.get("readings", []) if isinstance(doc, dict) else []
        page = [
            Reading(int(r["interval_end_ms"]), int(r["import_wh"]), int(r["export_wh"]))
            for r in rows
        ]
        out.extend(page)
        if len(page) < PAGE:
            return out
        since = page[-1].interval_end_ms + 1


async def household_meters(source: BridgeSource, interval_ms: int, from_ms: int) -> HouseholdMeters:
    """The household's per-interval energies by role, from every meter the config names."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def role(meters: tuple[str, ...], exported: bool) -> dict[int, float]:
            total: dict[int, float] = {}
            for meter_id in meters:
                readings = await meter_readings(session, source.url, meter_id, from_ms)
                for k, v in interval_energy_wh(readings, interval_ms, exported=exported).items():
                    total[k] = total.get(k, 0.0) + v
            return total

        return HouseholdMeters(
            net_import=await role(source.net, False),
            net_export=await role(source.net, True),
            pv_export=await role(source.pv, True),
            battery_import=await role(source.battery, False),
            battery_export=await role(source.battery, True),
            ev_import=await role(source.ev, False),
            ev_export=await role(source.ev, True),
        )

"""The C&D price of a scheduling interval, and which intervals a request's limit allows.

ADR 0030: C&D energy is priced at the genesis time-of-use retail tariff of the hour in which
the interval starts (block time, UTC), in both directions: the owner pays it for energy
charged and is paid it for energy discharged.  The price is a pure function of genesis and the
interval, so it is known when the interval is planned, which the limit price needs: a charge
request is planned only in intervals priced at or below its limit, a discharge request only in
intervals priced at or above it.  (The SDR pool price is known only after a slot clears, too
late to plan on.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gridchain.genesis.schema import Tariff

if TYPE_CHECKING:
    from gridchain.market.cd_requests import IntervalClock

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class CDPrices:
    """The genesis tariffs on the interval clock (one per chain; cheap to build)."""

    clock: IntervalClock
    tariffs: tuple[Tariff, ...]

    def price_at(self, interval: int) -> int:
        """mc/kWh of C&D energy in ``interval``: the retail tariff of its starting hour."""
        hour = self.clock.start_ms(interval) // HOUR_MS % 24
        for tariff in self.tariffs:
            if tariff.start_hour <= hour < tariff.end_hour:
                return tariff.retail_mc_per_kwh
        # Genesis validation makes the tariffs cover 0-24 h without gaps.
        raise AssertionError(f"no tariff for hour {hour}")

    def allows(self, is_charge: bool, limit_mc_per_kwh: int, interval: int) -> bool:
        """Whether a request with this limit may be planned in ``interval``."""
        price = self.price_at(interval)
        return price <= limit_mc_per_kwh if is_charge else price >= limit_mc_per_kwh

    def usable(self, is_charge: bool, limit_mc_per_kwh: int, first: int, end: int) -> int:
        """How many intervals of [first, end) the limit allows.

        The price changes only where an hour starts, so the window is counted an hour's run of
        intervals at a time: a live request's bounds ask this of the rest of its window in every
        interval, which interval by interval would be quadratic in the window's length.
        """
        count = 0
        j = first
        while j < end:
            hour_end_ms = (self.clock.start_ms(j) // HOUR_MS + 1) * HOUR_MS
            run_end = min(end, self.clock.first_starting_at(hour_end_ms))
            if self.allows(is_charge, limit_mc_per_kwh, j):
                count += run_end - j
            j = run_end
        return count

"""The two baselines without coordination: uncontrolled and conventional off-peak shifting.

Uncontrolled is what happens with no scheduler at all: each EV charges at its full rate from the
moment it plugs in until it is full, and nobody asks V2G vehicles to discharge.

Conventional off-peak shifting is what the source's ch. 3 compares against (after [AAGG14]):
every vehicle on its own moves its charging into the cheapest, i.e. lowest-load, intervals of its
window and charges there at full rate, and a V2G vehicle discharges at full rate into the
highest-load intervals of its window.  Each decision is sensible alone; because every vehicle
reads the same load forecast they all pick the same valleys, which is the herding a coordinated
scheduler avoids.  Unlike the source's conventional strategy, ours always delivers the full
charge (the source notes its version left demand unmet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridchain.market.scheduling.base import caps, fill_in_order, to_schedule, zero_rates
from gridchain.market.scheduling.model import Kind, Scenario, Schedule


@dataclass(frozen=True, slots=True)
class Uncontrolled:
    name: str = "uncontrolled"

    def schedule(self, scenario: Scenario) -> Schedule:
        rates = zero_rates(scenario)
        for i, (request, units) in enumerate(zip(scenario.requests, caps(scenario), strict=True)):
            if request.kind is Kind.CHARGE:
                fill_in_order(rates[i], request.window, request.max_rate_w, units)
        return to_schedule(self.name, rates)


@dataclass(frozen=True, slots=True)
class Conventional:
    name: str = "conventional"

    def schedule(self, scenario: Scenario) -> Schedule:
        rates = zero_rates(scenario)
        base = np.asarray(scenario.base_load_w, dtype=np.int64)
        for i, (request, units) in enumerate(zip(scenario.requests, caps(scenario), strict=True)):
            window = np.arange(request.arrival, request.departure)
            load = base[window]
            if request.kind is Kind.CHARGE:
                order = window[np.lexsort((window, load))]
            else:
                order = window[np.lexsort((window, -load))]
            fill_in_order(rates[i], order, request.max_rate_w, units)
        return to_schedule(self.name, rates)

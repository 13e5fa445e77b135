"""The data every scheduler and validator shares: requests, scenarios and schedules.

Everything here is an integer in the units the ledger uses (W, Wh, interval indices), because
the same objects are what a block carries and what validators recompute.  Time inside the
library is an interval index counted from the start of the scheduling horizon; the runtime maps
block timestamps to indices.  A rate is a non-negative magnitude: whether it charges or
discharges is given by the request's kind, so a validator never has to reason about signs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gridchain.market.scheduling.errors import ScenarioError


class Kind(enum.IntEnum):
    """Direction of a request.  Integer values so that they encode canonically."""

    CHARGE = 1
    DISCHARGE = 2


def _is_int(value: object) -> bool:
    # bool is an int subclass but never a power or an index; refusing it catches mix-ups early.
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class CDRequest:
    """One EV charge or discharge request with its connection window.

    ``arrival`` is the first interval in which the vehicle is connected and ``departure`` the
    first interval in which it is gone, so the window is ``range(arrival, departure)``.  For a
    charge request ``energy_wh`` must be delivered by departure; for a discharge request it is the
    most the owner allows to be taken (down to the discharge floor), and taking less is allowed.
    """

    request_id: int
    kind: Kind
    arrival: int
    departure: int
    energy_wh: int
    max_rate_w: int

    def __post_init__(self) -> None:
        for name in ("request_id", "arrival", "departure", "energy_wh", "max_rate_w"):
            if not _is_int(getattr(self, name)):
                raise ScenarioError(f"request field {name} must be an int")
        if not isinstance(self.kind, Kind):
            raise ScenarioError("request kind must be a Kind")
        if self.arrival < 0 or self.departure <= self.arrival:
            raise ScenarioError(
                f"request {self.request_id}: window [{self.arrival}, {self.departure}) is empty"
            )
        if self.energy_wh < 0:
            raise ScenarioError(f"request {self.request_id}: negative energy")
        if self.max_rate_w <= 0:
            raise ScenarioError(f"request {self.request_id}: maximum rate must be positive")

    @property
    def window(self) -> range:
        return range(self.arrival, self.departure)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A day to schedule: the base load without EVs and the requests that arrive in it.

    ``start_minute`` is the clock time of interval 0 in minutes after midnight; it only labels
    plots.  ``transformer_limit_w`` is the substation capacity of the source's constraint (3.16);
    only the optimising schedulers enforce it, the others report what they cause.
    """

    name: str
    interval_min: int
    base_load_w: tuple[int, ...]
    requests: tuple[CDRequest, ...]
    start_minute: int = 0
    transformer_limit_w: int | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.interval_min) or self.interval_min <= 0:
            raise ScenarioError("interval_min must be a positive int")
        if not self.base_load_w:
            raise ScenarioError("base load is empty")
        if not all(_is_int(v) for v in self.base_load_w):
            raise ScenarioError("base load must be integer W")
        ids = [r.request_id for r in self.requests]
        if len(set(ids)) != len(ids):
            raise ScenarioError("request ids are not unique")
        horizon = len(self.base_load_w)
        for r in self.requests:
            if r.departure > horizon:
                raise ScenarioError(
                    f"request {r.request_id} departs at {r.departure}, after the horizon {horizon}"
                )

    @property
    def n_intervals(self) -> int:
        return len(self.base_load_w)

    def with_requests(self, requests: tuple[CDRequest, ...], name: str | None = None) -> Scenario:
        """The same day with other requests (used to build sub-problems and test cases)."""
        return Scenario(
            name=self.name if name is None else name,
            interval_min=self.interval_min,
            base_load_w=self.base_load_w,
            requests=requests,
            start_minute=self.start_minute,
            transformer_limit_w=self.transformer_limit_w,
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """Integer rates in W: one row per request of the scenario (same order), one column per
    interval of the horizon.  This is the form a proposer rounds to and a validator checks."""

    algorithm: str
    rates_w: tuple[tuple[int, ...], ...]

"""GA charging (source ch. 3, Table 3-A): a genetic search over when each EV charges.

The source runs a GA whose fitness is the PFL of eq. 3.11 and whose variables are how many EVs
charge in each time frame, subject to each EV's connection window; it ran 1000 generations.
Our encoding gives each request one gene: the interval at which it starts a single block at its
full rate (the block holds as many full-rate intervals as its energy needs, plus one interval
for the remainder), drawn from the starts that finish inside the window, so every individual
meets every deadline by construction.  A V2G request has a second gene, whether it discharges
at all, since the source's GA schedules charging only and V2G is where a request allows it.

Operators: tournament selection of size 3, uniform crossover, per-gene mutation to a random
feasible start (or a flipped V2G gene), and the two best individuals carried over unchanged.
The population is scored in one vectorised pass per generation.  Randomness comes only from
the seed given to the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridchain.market.scheduling.base import caps, to_schedule, zero_rates
from gridchain.market.scheduling.model import Kind, Scenario, Schedule

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

FITNESS: dict[str, Callable[[FloatArray], FloatArray]] = {}


def _rows_3_11(load: FloatArray) -> FloatArray:
    spread = load.max(axis=1) - load.min(axis=1)
    mean = load.mean(axis=1)
    with np.errstate(divide="ignore"):
        return np.asarray(np.log(np.maximum(spread, 1e-9) / mean), dtype=np.float64)


def _rows_4_4(load: FloatArray) -> FloatArray:
    return np.asarray(np.abs(np.diff(load, axis=1)).sum(axis=1), dtype=np.float64)


def _rows_5_7(load: FloatArray) -> FloatArray:
    return np.asarray(np.diff(load, axis=1).var(axis=1), dtype=np.float64)


def _rows_6_4(load: FloatArray) -> FloatArray:
    return np.asarray(np.square(np.diff(load, axis=1)).sum(axis=1), dtype=np.float64)


FITNESS.update({"eq3_11": _rows_3_11, "eq4_4": _rows_4_4, "eq5_7": _rows_5_7, "eq6_4": _rows_6_4})


@dataclass(frozen=True, slots=True)
class _Blocks:
    """Per request: earliest and latest start, full-rate intervals, rate and remainder."""

    earliest: IntArray
    latest: IntArray
    full: IntArray
    rate: IntArray
    rest: IntArray
    sign: IntArray
    v2g: npt.NDArray[np.bool_]


def _blocks(scenario: Scenario) -> _Blocks:
    n = len(scenario.requests)
    earliest = np.zeros(n, dtype=np.int64)
    latest = np.zeros(n, dtype=np.int64)
    full = np.zeros(n, dtype=np.int64)
    rate = np.zeros(n, dtype=np.int64)
    rest = np.zeros(n, dtype=np.int64)
    sign = np.zeros(n, dtype=np.int64)
    v2g = np.zeros(n, dtype=np.bool_)
    for i, (r, units) in enumerate(zip(scenario.requests, caps(scenario), strict=True)):
        f, rem = divmod(units, r.max_rate_w)
        length = f + (1 if rem else 0)
        earliest[i] = r.arrival
        latest[i] = max(r.arrival, r.departure - length)
        full[i], rate[i], rest[i] = f, r.max_rate_w, rem
        sign[i] = 1 if r.kind is Kind.CHARGE else -1
        v2g[i] = r.kind is Kind.DISCHARGE
    return _Blocks(earliest, latest, full, rate, rest, sign, v2g)


def _loads(
    blocks: _Blocks, starts: IntArray, active: npt.NDArray[np.bool_], base: FloatArray
) -> FloatArray:
    """Load matrix (population x intervals) for a population of start vectors."""
    pop, n = starts.shape
    t = base.size
    diff = np.zeros((pop, t + 2), dtype=np.float64)
    on = active.astype(np.float64) * blocks.sign
    row = np.repeat(np.arange(pop), n)
    s = starts.ravel()
    f = np.tile(blocks.full, pop)
    amp = np.tile(blocks.rate * 1.0, pop) * on.ravel()
    rem = np.tile(blocks.rest * 1.0, pop) * on.ravel()
    np.add.at(diff, (row, s), amp)
    np.add.at(diff, (row, s + f), rem - amp)
    np.add.at(diff, (row, s + f + 1), -rem)
    return base + np.cumsum(diff[:, :t], axis=1)


@dataclass(frozen=True, slots=True)
class Genetic:
    """GA scheduler; ``fitness`` names the PFL equation it minimises (eq. 3.11 as in ch. 3)."""

    seed: int = 0
    population: int = 60
    generations: int = 300
    mutation: float = 0.02
    fitness: str = "eq3_11"
    name: str = "ga"

    def schedule(self, scenario: Scenario) -> Schedule:
        rng = np.random.default_rng(self.seed)
        blocks = _blocks(scenario)
        base = np.asarray(scenario.base_load_w, dtype=np.float64)
        score = FITNESS[self.fitness]
        n = len(scenario.requests)
        span = blocks.latest - blocks.earliest + 1

        def random_starts(count: int) -> IntArray:
            return blocks.earliest + (rng.random((count, n)) * span).astype(np.int64)

        starts = random_starts(self.population)
        starts[0] = blocks.earliest  # one individual is the uncontrolled schedule
        active = np.ones((self.population, n), dtype=np.bool_)
        active[:, blocks.v2g] = rng.random((self.population, int(blocks.v2g.sum()))) < 0.5
        fit = score(_loads(blocks, starts, active, base))
        for _ in range(self.generations):
            order = np.argsort(fit, kind="stable")
            elite = order[:2]
            contenders = rng.integers(0, self.population, size=(2, self.population, 3))
            winners = contenders[
                np.arange(2)[:, None],
                np.arange(self.population)[None, :],
                np.argmin(fit[contenders], axis=2),
            ]
            mask = rng.random((self.population, n)) < 0.5
            child_s = np.where(mask, starts[winners[0]], starts[winners[1]])
            child_a = np.where(mask, active[winners[0]], active[winners[1]])
            mutate = rng.random((self.population, n)) < self.mutation
            child_s = np.where(mutate, random_starts(self.population), child_s)
            flip = mutate & blocks.v2g[None, :]
            child_a = np.where(flip, ~child_a, child_a)
            child_s[:2] = starts[elite]
            child_a[:2] = active[elite]
            starts, active = child_s, child_a
            fit = score(_loads(blocks, starts, active, base))
        best = int(np.argmin(fit))
        rates = zero_rates(scenario)
        for i in range(n):
            if not active[best, i]:
                continue
            s, f = int(starts[best, i]), int(blocks.full[i])
            rates[i, s : s + f] = blocks.rate[i]
            if blocks.rest[i]:
                rates[i, s + f] = blocks.rest[i]
        return to_schedule(self.name, rates)

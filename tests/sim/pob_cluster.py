"""A deterministic simulator of whole PoB clusters: the real engine, a fake network and clock.

It reuses the PBFT simulator's machinery (tests/sim/cluster.py: one seeded RNG for delays,
drops, duplicates, partitions, crashes and Byzantine choices; the clients; the catch-up fetch;
the trace) and replaces what is engine-specific:

* :class:`PobSimNode` runs :class:`~consensus.pob.PobEngine` under the node's own chain driver
  (:class:`node.driver.ChainDriver`), which builds proposals on the committed head *or on a
  pending block* (``market.pending.PendingChain`` keeps the writes of executed, not yet final
  blocks), validates blocks on their pending parent with ``Application.execute_block``
  (schedule and claimed benefit included, so an inflated benefit is refused by the real
  application with ``benefit_mismatch``), refuses a block on a parent it does not hold with
  ``unknown_parent``, and checks committed blocks against ``engine.commit_rule`` (the
  proposer's signature on a COMMIT vote).
* Blocks carry schedules (:func:`pob_fixture`): genesis has scheduling intervals of
  SCHEDULE_INTERVAL_MS (a little more than a round) and the clients submit C&D requests
  (CD_PLAN: EVs and batteries, staggered arrivals) before their transfers, through the same
  gossip path.  So most blocks decide an interval and carry a non-zero benefit, and the
  announce ranking and the fork choice by summed benefit decide between real values.  The
  proposer's scheduler is "uncontrolled" (cheap) except in ``online-worse-schedule``, whose
  genesis names "online" (a QP per decision).
* Byzantine validators (the engine itself stays honest; the node tampers with what it builds,
  through :class:`TamperingDriver`, or sends): ``inflate-announce`` announces a higher benefit
  than its block's, ``inflate-block`` builds blocks whose header claims more benefit than the
  schedule gives (re-signed), ``withhold`` never sends its blocks, ``equivocate`` announces and
  sends two blocks per round to different halves, ``invalid`` sends blocks with a wrong state
  root, ``worse-schedule`` builds valid blocks with the least-benefit schedule the rules allow
  (:func:`worst_schedule`) and honestly announces that lower benefit.
* The outsider sends signed announces, blocks and requests from a key outside the set.

Invariants, after every event: no two honest nodes commit different blocks at one height (and
honest heads are the agreed blocks); every committed certificate verifies against
``commit_rule``; no honest node signs two announces (or two blocks) for one round, even across
restarts, and none leaves before the guard record covering it is persisted; evidence is only
ever reported against Byzantine validators; a committed block's header benefit is the one its
execution computed from its schedule (0 without one); in the scenarios without loss,
partitions or crashes (STRICT_RANKING_SCENARIOS) no honest node commits a ``worse-schedule``
block of a round in which an honest candidate on the same parent announced a higher benefit.
At the end of a run every benefit of the longest honest chain is recomputed from its block's
schedule alone (the rule written out again, :meth:`PobCluster.check_schedules`).  Liveness: once
faults stop, every honest node commits LIVENESS_BLOCKS more blocks, and at least one block
that decided an interval, within LIVENESS_BOUND_MS of simulated time.

Replay a seed: ``python -m tests.sim.pob_cluster --seed N [--scenario S] [--trace]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

from gridchain.consensus.engine import (
    ReportEvidence,
    RequestProposal,
)
from gridchain.consensus.pob import GUARD_KEY, PobEngine
from gridchain.consensus.pob.messages import (
    NO_BLOCK,
    Announce,
    BlockMessage,
    BlockRequest,
    decode_guard,
    make_announce,
    make_block_message,
)
from gridchain.genesis.schema import Genesis
from gridchain.market.app import BlockContext, Execution
from gridchain.market.base_load import base_load_at
from gridchain.market.cd_requests import IntervalClock
from gridchain.market.cd_schedule import (
    BENEFIT_SCALE,
    DueInterval,
    due_interval,
    schedule_benefit,
)
from gridchain.market.state import Overlay, StateReader
from gridchain.node.driver import ChainDriver, CommitBatch
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    ScheduleEntry,
    schedule_root,
    tx_root,
)
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.encoding import Record
from gridchain.protocol.tx import CDKind, CDRequest, Device, UpdateValidators
from tests.helpers import GENESIS_TIME_MS, cd_meter_id, small_bundle, with_cd_meters
from tests.sim.cluster import (
    BLOCK_INTERVAL_MS,
    LIVENESS_BLOCKS,
    LIVENESS_BOUND_MS,
    MAX_BLOCK_TXS,
    PARTICIPANTS,
    Cluster,
    Event,
    Fixture,
    Outcome,
    Scenario,
    SimFailure,
    SimMempool,
    SimNode,
    build_fixture,
    cached_verify,
)

ROUND_MS = 240
FINALITY_DEPTH = 3
#: How long faults last (the PBFT simulator's default is 1-3 s): PoB builds n candidates a
#: round, so the window is shorter to keep 1,000 seeds within CI's time.
CHAOS_MS = (400, 1_200)
#: Scheduling intervals of block time a little longer than a round, so that a run of a few
#: seconds decides several intervals (rounds and intervals drift against each other: some
#: rounds' blocks decide one, some do not).  An interval stands for one minute of energy.
SCHEDULE_INTERVAL_MS = 300
SCHEDULE_INTERVAL_MINUTES = 1
#: The simulated clock starts here (tests/sim/cluster.py's Cluster).
SIM_START_MS = GENESIS_TIME_MS + 1_000
#: The C&D requests each run's clients submit first (before the transfers, through the same
#: gossip path): (participant, kind, device, arrival after SIM_START_MS, max rate W, Wh).
#: The energies keep the uncontrolled scheduler's full-rate charging busy for 6-25
#: intervals, the arrivals are staggered so that loads step up during a run, and the
#: windows (CD_WINDOW_MS, 50 intervals) leave room for a request included late while keeping
#: the online scheduler's horizon, hence its QP, small.
CD_PLAN: tuple[tuple[int, CDKind, Device, int, int, int], ...] = (
    (0, CDKind.CHARGE, Device.EV, 0, 3_000, 600),
    (1, CDKind.CHARGE, Device.EV, 600, 7_000, 900),
    (2, CDKind.DISCHARGE, Device.BATTERY, 0, 4_000, 1_000),
    (3, CDKind.CHARGE, Device.EV, 1_500, 5_000, 1_700),
    (0, CDKind.CHARGE, Device.EV, 2_400, 11_000, 1_100),
    (1, CDKind.DISCHARGE, Device.BATTERY, 3_000, 2_500, 400),
    (2, CDKind.CHARGE, Device.EV, 4_000, 6_000, 2_000),
    (3, CDKind.CHARGE, Device.EV, 6_000, 3_700, 1_500),
)
CD_WINDOW_MS = 15_000
#: The scheduler genesis names for each scenario (the proposer runs it for every block that
#: decides an interval): "online" solves a QP per decision, so only one scenario pays for it.
DEFAULT_SCHEDULER = "uncontrolled"
SCENARIO_SCHEDULERS: dict[str, str] = {"online-worse-schedule": "online"}
#: Scenarios without loss, partitions or crashes: every announce arrives within the announce
#: window, so a worse schedule must lose the ranking whenever an honest candidate on the same
#: parent announced a higher benefit.
STRICT_RANKING_SCENARIOS = ("worse-schedule", "online-worse-schedule")
#: Scenarios whose validators' clocks are off the simulated time for the whole run, as in
#: tests/faults/ci-network.toml: one clock ahead and one behind by most of a round (the
#: offsets go to the first validators, in index order), at that manifest's round length.
SKEWED_ROUND_MS = 400
SCENARIO_CLOCK_SKEWS_MS: dict[str, tuple[int, ...]] = {
    "skewed-clocks": (300, -300),
    "skewed-partitions": (300, -300),
    "skewed-crashes": (300, -300),
    "skewed-n7-crashes": (-300, 300, 150),
    "loaded-skewed": (300, -300),
}
#: Scenarios with a loaded mempool (ADR 0045): the clients submit LOADED_BURST transactions
#: at a time (about 150 tx/s offered) and a block takes up to LOADED_BLOCK_TXS of them (about
#: 100 tx/s at 240 ms rounds), so the pool holds a backlog, every round's candidate is full,
#: and the next round's candidate is built (on a pending, full block) while the last round's
#: block is still on its way to finality.
LOADED_SCENARIOS = ("loaded-overlap", "loaded-skewed")
LOADED_BURST = 5
LOADED_BLOCK_TXS = 24


@cache
def pob_fixture(n: int, scheduler: str) -> Fixture:
    """Genesis (with short scheduling intervals), keys, and the C&D requests then transfers
    every run of n validators with this scheduler submits (built once per process)."""
    bundle = with_cd_meters(
        small_bundle(
            validators=n,
            participants=PARTICIPANTS,
            engine="pob",
            seed=f"sim-{n}",
            block_interval_ms=BLOCK_INTERVAL_MS,
            scheduler=scheduler,
            schedule_interval_ms=SCHEDULE_INTERVAL_MS,
            schedule_interval_minutes=SCHEDULE_INTERVAL_MINUTES,
        )
    )
    leading = [
        (
            who,
            CDRequest(
                int(kind),
                int(device),
                SIM_START_MS + arrival,
                SIM_START_MS + arrival + CD_WINDOW_MS,
                energy,
                rate,
                250_000 if kind is CDKind.CHARGE else 0,
                cd_meter_id(who, device),
            ),
        )
        for who, kind, device, arrival, rate, energy in CD_PLAN
    ]
    return build_fixture(bundle, leading)


def worst_schedule(genesis: Genesis, due: DueInterval) -> tuple[ScheduleEntry, ...]:
    """The valid schedule with the least benefit: every rate at the bound that moves the load
    furthest from the previous interval's (a Byzantine proposer's "worse schedule")."""
    records = [record for _, record in due.live]
    bounds = list(due.bounds)
    base = base_load_at(genesis, due.interval)
    options = []
    for up in (True, False):
        rates = [
            (high if up else low) if record.is_charge else -(low if up else high)
            for record, (low, high) in zip(records, bounds, strict=True)
        ]
        load, _ = schedule_benefit(base, rates, due.previous_load_w)
        options.append((abs(load - due.previous_load_w), up, rates))
    _, _, rates = max(options)
    return tuple(ScheduleEntry(rid, rate) for (rid, _), rate in zip(due.live, rates, strict=True))


POB_SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("calm", chaos_ms=CHAOS_MS),
        Scenario("lossy", chaos_ms=CHAOS_MS, drop=0.15, duplicate=0.1, delay_ms=(1, 60)),
        Scenario("slow", chaos_ms=CHAOS_MS, drop=0.05, delay_ms=(1, 150)),
        Scenario("partitions", chaos_ms=CHAOS_MS, drop=0.05, partitions=True),
        Scenario("crashes", chaos_ms=CHAOS_MS, drop=0.05, duplicate=0.05, crashes=1),
        Scenario("crash-all", chaos_ms=CHAOS_MS, drop=0.05, crash_all=True),
        Scenario("withhold", chaos_ms=CHAOS_MS, drop=0.05, byzantine=("withhold",)),
        Scenario("inflate-announce", chaos_ms=CHAOS_MS, drop=0.05, byzantine=("inflate-announce",)),
        Scenario("inflate-block", chaos_ms=CHAOS_MS, drop=0.05, byzantine=("inflate-block",)),
        Scenario(
            "equivocate", chaos_ms=CHAOS_MS, drop=0.05, duplicate=0.05, byzantine=("equivocate",)
        ),
        Scenario("invalid-blocks", chaos_ms=CHAOS_MS, drop=0.05, byzantine=("invalid",)),
        Scenario("worse-schedule", chaos_ms=CHAOS_MS, byzantine=("worse-schedule",)),
        Scenario("online-worse-schedule", chaos_ms=CHAOS_MS, byzantine=("worse-schedule",)),
        Scenario("outsider", chaos_ms=CHAOS_MS, drop=0.05, outsider=True),
        Scenario(
            "byzantine-partitions",
            chaos_ms=CHAOS_MS,
            drop=0.1,
            partitions=True,
            byzantine=("equivocate",),
        ),
        Scenario(
            "byzantine-crashes",
            chaos_ms=CHAOS_MS,
            drop=0.05,
            crashes=1,
            byzantine=("inflate-block",),
        ),
        Scenario(
            "n7-mixed",
            n=7,
            drop=0.1,
            duplicate=0.05,
            partitions=True,
            byzantine=("withhold", "inflate-block"),
            outsider=True,
        ),
        Scenario(
            "n7-crashes", chaos_ms=CHAOS_MS, n=7, drop=0.05, crashes=2, byzantine=("equivocate",)
        ),
        Scenario("skewed-clocks", chaos_ms=CHAOS_MS, drop=0.05),
        Scenario("skewed-partitions", chaos_ms=(1_000, 3_000), drop=0.05, partitions=True),
        Scenario("skewed-crashes", chaos_ms=CHAOS_MS, drop=0.05, crashes=1),
        Scenario("skewed-n7-crashes", chaos_ms=CHAOS_MS, n=7, drop=0.05, crashes=2),
        Scenario("loaded-overlap", chaos_ms=CHAOS_MS, drop=0.05, delay_ms=(1, 40)),
        Scenario("loaded-skewed", chaos_ms=CHAOS_MS, drop=0.05, crashes=1),
        Scenario(
            "n7-inflate",
            chaos_ms=CHAOS_MS,
            n=7,
            drop=0.05,
            byzantine=("inflate-announce", "invalid"),
        ),
        # The validator set changes under load (ADR 0044): a fifth validator started outside
        # the set is admitted, then a random genesis validator is removed (cluster.py's
        # govern), with loss, with a crash at a time, or with an equivocating validator
        # (which may be the one removed).
        Scenario("set-changes", chaos_ms=CHAOS_MS, drop=0.05, duplicate=0.05, set_changes=True),
        Scenario("set-changes-crashes", chaos_ms=CHAOS_MS, drop=0.05, crashes=1, set_changes=True),
        Scenario(
            "set-changes-byzantine",
            chaos_ms=CHAOS_MS,
            drop=0.05,
            byzantine=("equivocate",),
            set_changes=True,
        ),
    )
}
POB_SCENARIO_NAMES: tuple[str, ...] = tuple(POB_SCENARIOS)


def pob_scenario_for_seed(seed: int) -> str:
    return POB_SCENARIO_NAMES[seed % len(POB_SCENARIO_NAMES)]


def parent_state(base: StateReader, writes: dict[bytes, bytes | None] | None) -> StateReader:
    """The committed state under the writes of pending ancestors."""
    if not writes:
        return base
    view = Overlay(base)
    for key, value in writes.items():
        if value is None:
            view.delete(key)
        else:
            view.put(key, value)
    return view


class TamperingDriver(ChainDriver):
    """The chain driver of a Byzantine PoB validator: it tampers with the blocks it builds
    (its engine stays honest and signs what it is given).  Honest validators run the plain
    ChainDriver."""

    def __init__(self, node: PobSimNode, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node = node

    def build_proposal(self, req: RequestProposal, now_ms: int) -> Block | None:
        node = self.node
        timestamp = max(now_ms, req.min_timestamp_ms)
        made = self.build_on(
            req.prev_hash,
            req.height,
            req.round,
            timestamp,
            allow_empty=req.allow_empty,
            max_txs=req.max_txs,
            max_bytes=req.max_bytes,
        )
        if made is None:
            return None
        block, execution = made
        if node.behaviour == "worse-schedule":
            block, execution = node.worse_block(block, execution)
        rng = node.cluster.rng
        if node.behaviour == "inflate-block" and rng.random() < 0.7:
            header = dataclasses.replace(
                block.header, benefit=block.header.benefit + 1 + rng.randrange(50)
            )
            block = dataclasses.replace(block, header=header)
        elif node.behaviour == "invalid" and rng.random() < 0.7:
            header = dataclasses.replace(
                block.header, state_root=sha256(b"bad %d" % rng.randrange(1 << 30))
            )
            block = dataclasses.replace(block, header=header)
        self.remember(block, execution)
        node.built[block.hash()] = block
        while len(node.built) > 8:
            del node.built[next(iter(node.built))]
        return block


class PobSimNode(SimNode):
    """A validator running PoB: the chain driver with a fake disk, network and clock."""

    def __init__(
        self, cluster: PobCluster, index: int, key: SigningKey, behaviour: str | None
    ) -> None:
        super().__init__(cluster, index, key, behaviour)
        self.pob = cluster
        #: Byzantine equivocation: round -> the twin announce and block message
        self.twins: dict[int, tuple[Announce, BlockMessage]] = {}
        #: committed blocks that decided an interval (the ledger's, so it survives a crash)
        self.decisions = 0
        #: the blocks this node built, by hash (the last few)
        self.built: dict[bytes, Block] = {}

    def make_mempool(self) -> SimMempool:
        loaded = self.cluster.scenario.name in LOADED_SCENARIOS
        return SimMempool(self.state, limit=LOADED_BLOCK_TXS if loaded else MAX_BLOCK_TXS)

    def make_engine(self) -> PobEngine:
        fx = self.cluster.fixture
        return PobEngine(
            self.key,
            fx.chain_id,
            fx.validators,
            round_ms=self.pob.round_ms,
            genesis_time_ms=fx.bundle.genesis.genesis_time_ms,
            finality_depth=FINALITY_DEPTH,
            verifier=cached_verify,
            validators_on=self.validators_on,
        )

    def validators_on(self, parent: bytes, height: int) -> tuple[bytes, ...]:
        """The driver's set of a height on a branch (late-bound: the driver is built with
        the engine)."""
        assert self.driver is not None
        return self.driver.validators_on(parent, height)

    def driver_class(self) -> Callable[..., ChainDriver]:
        if self.behaviour is None:
            return super().driver_class()
        return functools.partial(TamperingDriver, self)

    def crash(self) -> None:
        super().crash()
        self.twins.clear()

    def worse_block(self, block: Block, execution: Execution) -> tuple[Block, Execution]:
        """The same block with the least-benefit valid schedule, executed for real (so that
        it is a valid block that honestly claims its lower benefit)."""
        assert self.driver is not None
        if not block.schedule:
            return block, execution
        genesis = self.cluster.fixture.bundle.genesis
        header = block.header
        writes = self.driver.pending.writes_after(header.prev_hash)
        due = due_interval(genesis, parent_state(self.state, writes), header.timestamp_ms)
        if due is None or not due.live:
            return block, execution
        entries = worst_schedule(genesis, due)
        if entries == block.schedule:
            return block, execution
        base = base_load_at(genesis, due.interval)
        _, benefit = schedule_benefit(base, [e.rate_w for e in entries], due.previous_load_w)
        ctx = BlockContext(header.height, header.timestamp_ms, header.proposer)
        worse = self.app.execute_block(
            self.state,
            block.txs,
            ctx,
            schedule=entries,
            benefit=benefit,
            parent_writes=writes or None,
        )
        self.pob.worse_built += 1
        worse_header = dataclasses.replace(
            header,
            benefit=benefit,
            schedule_root=schedule_root(entries),
            state_root=worse.state_root,
        )
        return Block(worse_header, block.txs, entries), worse

    def audit_commit(self, block: Block, execution: Execution, parent: StateReader) -> None:
        """A committed block's header benefit is the one its execution computed from its
        schedule (0 without one)."""
        decided = execution.decision
        expected = 0 if decided is None else decided.benefit
        if self.honest and (
            block.header.benefit != expected or bool(block.schedule) != (decided is not None)
        ):
            self.cluster.fail(
                f"{self.name()}: committed block h{block.height} claims benefit "
                f"{block.header.benefit} with {len(block.schedule)} schedule entries; its "
                f"execution gives {expected}"
            )

    def write_commit(self, batch: CommitBatch) -> None:
        self.decisions += 0 if batch.event.decision is None else 1
        super().write_commit(batch)


class PobCluster(Cluster):
    """Nodes running PoB, a network and a clock, all driven by one seeded RNG."""

    nodes: list[PobSimNode]  # type: ignore[assignment]
    node_class = PobSimNode

    def __init__(self, scenario: Scenario, seed: int, *, full_trace: bool = False) -> None:
        self.scheduler = SCENARIO_SCHEDULERS.get(scenario.name, DEFAULT_SCHEDULER)
        skews = SCENARIO_CLOCK_SKEWS_MS.get(scenario.name, ())
        self.round_ms = SKEWED_ROUND_MS if skews else ROUND_MS
        super().__init__(scenario, seed, full_trace=full_trace)
        for node, skew in zip(self.nodes, skews, strict=False):
            node.clock_offset_ms = skew
        self.announced: dict[tuple[bytes, int], bytes] = {}
        self.blocks_signed: dict[tuple[bytes, int], bytes] = {}
        #: (round, parent) -> signer -> the benefit its engine announced for its candidate
        self.candidates: dict[tuple[int, bytes], dict[bytes, int]] = {}
        #: blocks a "worse-schedule" validator built with a worse schedule than the genesis'
        self.worse_built = 0
        #: benefit_mismatch reports whose evidence names a block that carries a schedule
        self.caught_on_schedules = 0
        #: after the run: committed blocks with a schedule (as replayed), and the rounds in
        #: which a worse schedule met a better honest candidate on the same parent, with
        #: how many of those the worse one won (never, in the strict-ranking scenarios)
        self.scheduled_commits = 0
        self.contests = 0
        self.contests_lost_by_honest = 0
        #: the committed set change not in force yet (ADR 0049), modelled here on its own:
        #: (the keys it leaves, the round of the newest committed block, the run of blocks of
        #: consecutive rounds ending there, counted from the change's block on)
        self.pending_change: tuple[tuple[bytes, ...], int, int] | None = None

    @property
    def fixture(self) -> Fixture:
        """The PoB genesis with C&D scheduling (Cluster.__init__ assigns the PBFT one)."""
        return pob_fixture(self.scenario.n, self.scheduler)

    @fixture.setter
    def fixture(self, value: Fixture) -> None:
        pass  # cluster.py's PBFT fixture: this cluster always uses pob_fixture

    # --- reporting ------------------------------------------------------------------------

    def replay_command(self) -> str:
        return f"python -m tests.sim.pob_cluster --seed {self.seed} --scenario {self.scenario.name}"

    def fail(self, reason: str) -> None:
        roles = ", ".join(f"n{n.index}={n.behaviour}" for n in self.nodes if not n.honest) or "none"
        heights = " ".join(f"n{n.index}:{n.head.height}" for n in self.nodes)
        raise SimFailure(
            f"PoB simulation failed: seed={self.seed} scenario={self.scenario.name}\n"
            f"  {reason}\n"
            f"  at t={self.now - self.start_ms} ms; Byzantine: {roles}; heights: {heights}\n"
            f"  replay: {self.replay_command()}\n"
            f"last {len(self.trace)} events:\n{self.render_trace()}"
        )

    def fail_liveness(self) -> None:
        goal = (self.liveness_base or 0) + LIVENESS_BLOCKS
        lagging = [
            f"{n.name()} at h{n.head.height} with {n.decisions} decisions status "
            f"{dict(n.engine.status()) if n.engine else '-'}"
            for n in self.nodes
            if n.honest and n.is_alive() and (n.head.height < goal or not n.decisions)
        ]
        self.fail(
            f"liveness: {LIVENESS_BOUND_MS} ms after the faults stopped, honest nodes had not "
            f"all reached h{goal} and committed a block that decides an interval: "
            f"{', '.join(lagging)}"
        )

    def live(self) -> bool:
        """The base's liveness goal, and every running honest node committed a schedule."""
        return super().live() and all(n.decisions for n in self.nodes if n.honest and n.is_alive())

    def record(self, node: SimNode | None, kind: str, detail: object) -> None:
        super().record(node, kind, self.describe_pob(detail))

    def describe_pob(self, detail: object) -> object:
        """A one-line account of a PoB message for the trace (others as the base does)."""
        if isinstance(detail, Announce):
            block = "-" if not detail.has_block else detail.block_hash.hex()[:8]
            return (
                f"Announce r{detail.round} h{detail.height} on {detail.prev_hash.hex()[:8]} "
                f"block {block} benefit {detail.benefit} from {self.names(detail.signer)}"
            )
        if isinstance(detail, BlockMessage):
            h = detail.block.header
            return (
                f"Block r{h.round} h{h.height} {detail.block.hash().hex()[:8]} on "
                f"{h.prev_hash.hex()[:8]} from {self.names(detail.signer)}"
            )
        if isinstance(detail, BlockRequest):
            return f"BlockRequest {detail.block_hash.hex()[:8]}"
        return detail

    # --- the network -----------------------------------------------------------------------

    def transmit(self, sender: SimNode, to: bytes | None, message: Record) -> None:
        assert isinstance(sender, PobSimNode)
        if sender.honest:
            self.audit(sender, message)
        if (
            isinstance(message, Announce)
            and message.has_block
            and message.signer == sender.public_key
            and sender.behaviour in (None, "worse-schedule")
        ):
            key = (message.round, message.prev_hash)
            self.candidates.setdefault(key, {})[message.signer] = message.benefit
        self.recent.append(message)
        targets: list[SimNode] = (
            [n for n in self.nodes if n is not sender] if to is None else [self.by_key[to]]
        )
        if sender.behaviour is None:
            payload = message.encode()
            for target in targets:
                self.post(sender.index, sender.public_key, target, message, payload)
        else:
            misbehave(self, sender, targets, message)

    def audit(self, node: PobSimNode, message: Record) -> None:
        """An honest signature leaves only after its guard record, and never twice a round;
        an honest announce only from a member of the set of the height it builds, on the
        branch it builds on (ADR 0044)."""
        raw = node.persisted.get(GUARD_KEY)
        guard = None if raw is None else decode_guard(raw)
        if isinstance(message, Announce) and message.signer == node.public_key:
            if node.driver is not None and node.public_key not in node.driver.validators_on(
                message.prev_hash, message.height
            ):
                self.fail(f"{node.name()} announced for h{message.height} outside its set")
            claim = message.claim().encode()
            earlier = self.announced.setdefault((node.public_key, message.round), claim)
            if earlier != claim:
                self.fail(f"{node.name()} signed two announces for round {message.round}")
            if (
                guard is None
                or guard.round < message.round
                or (guard.round == message.round and guard.block_hash != message.block_hash)
            ):
                self.fail(f"{node.name()} sent an announce its guard record does not cover")
        elif isinstance(message, BlockMessage) and message.signer == node.public_key:
            r = message.block.header.round
            block_hash = message.block.hash()
            earlier_hash = self.blocks_signed.setdefault((node.public_key, r), block_hash)
            if earlier_hash != block_hash:
                self.fail(f"{node.name()} signed two blocks for round {r}")
            if (
                guard is None
                or guard.round < r
                or (guard.round == r and guard.block_hash != block_hash)
            ):
                self.fail(f"{node.name()} sent a block its guard record does not cover")

    # --- benefits and schedules ---------------------------------------------------------------

    def model_changes(self, block: Block) -> None:
        """PoB's rule (ADR 0049), written here on its own: a committed change waits until the
        committed chain holds three blocks of consecutive rounds from its own block on (a
        final run as soon as a block above is notarized); the block that completes the run
        puts the set in force two heights above it.  One change at a time: the chain refuses
        another while one waits (the wallets resubmit it, as cluster.py's govern)."""
        h = block.header
        if self.pending_change is not None:
            keys, last_round, run = self.pending_change
            run = run + 1 if h.round == last_round + 1 else 1
            self.pending_change = (keys, h.round, run)
            if run == FINALITY_DEPTH:
                self.pending_change = None
                self.enter_set(block.height + 2, keys)
        for tx in block.txs:
            body = tx.body
            if isinstance(body, UpdateValidators):
                if self.pending_change is not None:
                    self.fail(f"h{block.height} committed a second change while one waits")
                last = self.epochs[-1][1]
                keys = tuple(k for k in last if k not in body.remove) + tuple(body.add)
                self.pending_change = (keys, h.round, 1)
                self.record(None, "set-change", f"h{block.height} carries {len(keys)} validators")

    def enter_set(self, first: int, keys: tuple[bytes, ...]) -> None:
        before = self.epochs[-1][1]
        self.epochs.append((first, keys))
        joiner = None if self.joiner is None else self.joiner.public_key
        if joiner is not None and joiner in keys and joiner not in before:
            self.joined_at = first
        removed = [k for k in before if k not in keys]
        if removed:
            self.removed, self.removed_at = removed[0], first
        self.record(None, "set-change", f"from h{first}: {len(keys)} validators")

    def expected_signers(self, block: Block) -> tuple[tuple[bytes, ...], int]:
        """PoB's certificate is its proposer's signature (ADR 0013), by a member of the
        modelled set of its height (ADR 0044: a removed validator never makes a committed
        block again, a joiner only from its activation)."""
        return self.set_at(block.height), 1

    def on_commit(self, node: SimNode, block: Block) -> None:
        super().on_commit(node, block)
        proposer = self.by_key.get(block.header.proposer)
        if not node.honest or proposer is None or proposer.behaviour != "worse-schedule":
            return
        if self.scenario.name not in STRICT_RANKING_SCENARIOS:
            return
        h = block.header
        better = [
            benefit
            for signer, benefit in self.candidates.get((h.round, h.prev_hash), {}).items()
            if self.by_key[signer].honest and benefit > h.benefit
        ]
        if better:
            self.fail(
                f"{node.name()} committed h{h.height} of round {h.round} with the worse "
                f"schedule of {proposer.name()} (benefit {h.benefit}) although an honest "
                f"candidate on the same parent announced {max(better)}"
            )

    def on_evidence(self, node: SimNode, action: ReportEvidence) -> None:
        super().on_evidence(node, action)
        if action.kind == "benefit_mismatch" and any(
            isinstance(item, BlockMessage) and item.block.schedule for item in action.evidence
        ):
            self.caught_on_schedules += 1

    def check_schedules(self) -> None:
        """At the end of a run: recompute every committed block's benefit from its schedule
        alone, by the rule of market/cd_schedule.py written out again (a block at time t
        decides interval j = interval_at(t) + 1; its benefit is BENEFIT_SCALE // (1 + step^2)
        with step = base_load(j) + its rates - the load decided for j - 1, or base_load(j - 1)
        when no block decided j - 1; no schedule, benefit 0), independently of the
        application, its state and the simulator's caches; check that blocks decided
        intervals; and account for the rounds in which a worse schedule met a better honest
        candidate."""
        genesis = self.fixture.bundle.genesis
        clock = IntervalClock.of(genesis)
        node = max((n for n in self.nodes if n.honest), key=lambda n: n.head.height)
        scheduled = 0
        last: tuple[int, int] | None = None  # (interval, load) of the last decision
        for committed in node.chain:
            h = committed.block.header
            entries = committed.block.schedule
            if not entries:
                expected = 0
            else:
                j = clock.interval_at(h.timestamp_ms) + 1
                if last is not None and last[0] >= j:
                    self.fail(f"h{h.height} decides interval {j} again (after {last[0]})")
                if last is not None and last[0] == j - 1:
                    previous = last[1]
                else:
                    previous = base_load_at(genesis, max(j - 1, 0))
                load = base_load_at(genesis, j) + sum(e.rate_w for e in entries)
                expected = BENEFIT_SCALE // (1 + (load - previous) ** 2)
                last = (j, load)
                scheduled += 1
            if h.benefit != expected:
                self.fail(
                    f"{node.name()} committed h{h.height} with benefit {h.benefit}; its "
                    f"schedule of {len(entries)} entries gives {expected}"
                )
        self.scheduled_commits = scheduled
        if scheduled != node.decisions or not scheduled:
            self.fail(
                f"{node.name()} counted {node.decisions} committed decisions, its chain {scheduled}"
            )
        committed_at = {cb.block.header.prev_hash: cb.block for cb in node.chain}
        worse = {n.public_key for n in self.nodes if n.behaviour == "worse-schedule"}
        for (r, prev), offers in sorted(self.candidates.items()):
            honest = [b for signer, b in offers.items() if self.by_key[signer].honest]
            bad = [b for signer, b in offers.items() if signer in worse]
            if not honest or not bad or max(bad) >= max(honest):
                continue
            self.contests += 1
            winner = committed_at.get(prev)
            if winner is not None and winner.header.round == r and winner.header.proposer in worse:
                self.contests_lost_by_honest += 1

    def outcome(self) -> Outcome:
        self.check_schedules()
        return super().outcome()

    # --- the clients -----------------------------------------------------------------------

    def submit_next_tx(self) -> None:
        """As the base's clients, but LOADED_BURST transactions at a time in the loaded
        scenarios (one next "client" event either way)."""
        if self.scenario.name not in LOADED_SCENARIOS:
            super().submit_next_tx()
            return
        txs = self.fixture.txs
        for tx in txs[self.next_tx : self.next_tx + LOADED_BURST]:
            for node in self.nodes:
                delay = self.rng.randint(*self.scenario.delay_ms)
                self.schedule(self.now + delay, Event("tx", node.index, detail=tx))
        self.next_tx = min(len(txs), self.next_tx + LOADED_BURST)
        if self.next_tx < len(txs):
            self.schedule(self.now + self.rng.randint(5, 60), Event("client"))

    def full_blocks_on_full_parents(self) -> int:
        """Blocks of the longest honest chain that carry a full LOADED_BLOCK_TXS whose
        parent, of the round before, carries a full block too: candidates built on a pending
        parent that took new transactions, not the parent's again."""
        node = max((n for n in self.nodes if n.honest), key=lambda n: n.head.height)
        blocks = [committed.block for committed in node.chain]
        return sum(
            1
            for parent, child in itertools.pairwise(blocks)
            if len(child.txs) == len(parent.txs) == LOADED_BLOCK_TXS
            and child.header.round == parent.header.round + 1
        )

    # --- the outsider ----------------------------------------------------------------------

    def outsider_act(self) -> None:
        """A key outside the validator set sends messages that look right; all are ignored."""
        assert self.outsider is not None
        key = self.outsider
        fx = self.fixture
        rng = self.rng
        honest = [n for n in self.nodes if n.honest]
        top = max(honest, key=lambda n: n.head.height)
        r = (self.now - fx.bundle.genesis.genesis_time_ms) // self.round_ms
        fake = sha256(b"outsider %d" % rng.randrange(1 << 30))
        choice = rng.randrange(3)
        message: Record
        if choice == 0:
            message = make_announce(
                key,
                fx.chain_id,
                height=top.head.height + 1,
                round_=r,
                prev_hash=top.head.block_hash,
                block_hash=fake,
                benefit=rng.randrange(1 << 40),
                final_height=top.head.height + rng.randrange(5),
            )
        elif choice == 1:
            header = BlockHeader(
                fx.chain_id,
                top.head.height + 1,
                top.head.block_hash,
                self.now,
                key.public_key,
                r,
                rng.randrange(1 << 40),
                tx_root(()),
                schedule_root(()),
                fake,
            )
            message = make_block_message(key, fx.chain_id, Block(header, (), ()))
        else:
            message = BlockRequest(fake)
        for target in self.nodes:
            self.post(-1, key.public_key, target, message)
        if self.recent and rng.random() < 0.5:
            relayed = rng.choice(list(self.recent))
            self.post(-1, key.public_key, rng.choice(self.nodes), relayed)
        self.schedule(self.now + rng.randint(20, 150), Event("outsider"))


# --- Byzantine behaviours ---------------------------------------------------------------------


def misbehave(
    cluster: PobCluster, node: PobSimNode, targets: list[SimNode], message: Record
) -> None:
    """Send ``message`` the way ``node.behaviour`` dictates (the engine itself stays honest)."""
    rng = cluster.rng
    chain_id = cluster.fixture.chain_id
    mine = getattr(message, "signer", None) == node.public_key

    def send_all(msg: Record, to: list[SimNode]) -> None:
        for target in to:
            cluster.post(node.index, node.public_key, target, msg)

    behaviour = node.behaviour
    if behaviour == "withhold" and isinstance(message, BlockMessage) and mine:
        return
    if (
        behaviour == "inflate-announce"
        and isinstance(message, Announce)
        and mine
        and message.has_block
    ):
        liar = make_announce(
            node.key,
            chain_id,
            height=message.height,
            round_=message.round,
            prev_hash=message.prev_hash,
            block_hash=message.block_hash,
            benefit=message.benefit + 1 + rng.randrange(1000),
            final_height=message.final_height,
        )
        send_all(liar, targets)
        own = node.built.get(message.block_hash)
        if own is not None:  # show the block early: the lie becomes provable
            send_all(make_block_message(node.key, chain_id, own), targets)
        return
    if behaviour == "equivocate" and isinstance(message, Announce) and mine:
        twin = make_twin(cluster, node, message)
        if twin is not None and len(targets) > 1:
            shuffled = list(targets)
            rng.shuffle(shuffled)
            half = len(shuffled) // 2
            send_all(message, shuffled[:half])
            send_all(twin[0], shuffled[half:])
            if rng.random() < 0.5:
                send_all(twin[0] if rng.random() < 0.5 else message, [rng.choice(shuffled)])
            return
    if behaviour == "equivocate" and isinstance(message, BlockMessage) and mine:
        pair = node.twins.get(message.block.header.round)
        if pair is not None and len(targets) > 1:
            for target in targets:
                send_all(message if rng.random() < 0.5 else pair[1], [target])
            return
    send_all(message, targets)


def make_twin(
    cluster: PobCluster, node: PobSimNode, announce: Announce
) -> tuple[Announce, BlockMessage] | None:
    """A second block and announce for the same round, on the same parent."""
    if announce.block_hash == NO_BLOCK:
        return None
    chain_id = cluster.fixture.chain_id
    timestamp = cluster.now + 1 + cluster.rng.randrange(5)
    if node.driver is None:
        return None
    made = node.driver.build_on(
        announce.prev_hash, announce.height, announce.round, timestamp, allow_empty=True
    )
    if made is None:
        return None
    block, execution = made
    if block.hash() == announce.block_hash:
        return None
    node.driver.remember(block, execution)
    twin_announce = make_announce(
        node.key,
        chain_id,
        height=announce.height,
        round_=announce.round,
        prev_hash=announce.prev_hash,
        block_hash=block.hash(),
        benefit=block.header.benefit,
        final_height=announce.final_height,
    )
    pair = (twin_announce, make_block_message(node.key, chain_id, block))
    node.twins[announce.round] = pair
    for old in [r for r in node.twins if r < announce.round - 4]:
        del node.twins[old]
    return pair


def run_pob_seed(seed: int, scenario: str | None = None, *, full_trace: bool = False) -> Outcome:
    """Run one seeded simulation; raises SimFailure with the replay command on a violation."""
    name = pob_scenario_for_seed(seed) if scenario is None else scenario
    return PobCluster(POB_SCENARIOS[name], seed, full_trace=full_trace).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.pob_cluster")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--scenario", choices=POB_SCENARIO_NAMES)
    parser.add_argument("--trace", action="store_true", help="print every event of the run")
    args = parser.parse_args(argv)
    name = args.scenario or pob_scenario_for_seed(args.seed)
    cluster = PobCluster(POB_SCENARIOS[name], args.seed, full_trace=args.trace)
    try:
        outcome = cluster.run()
    except SimFailure as failure:
        print(failure)
        return 1
    if args.trace:
        print(cluster.render_trace())
    print(
        f"seed {outcome.seed} scenario {outcome.scenario}: ok after {outcome.sim_time_ms} ms "
        f"simulated, {outcome.events} events; heights {outcome.heights}; "
        f"evidence {outcome.evidence}; {cluster.scheduled_commits} committed blocks decided "
        f"an interval; worse schedules built {cluster.worse_built}, lost "
        f"{cluster.contests - cluster.contests_lost_by_honest} of {cluster.contests} contests"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

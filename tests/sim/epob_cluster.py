"""The cluster simulator of tests/sim/cluster.py, running ePoB instead of PBFT.

Everything cluster.py describes holds here (one seeded RNG, the real engine and application, a
fake network, clock and disks, invariants after every event, liveness once faults stop); what
changes is the engine (:class:`consensus.epob.EpobEngine`) and the Byzantine behaviours.
Blocks are built and checked by the node's own chain driver (:class:`node.driver.ChainDriver`):
they take their schedule and benefit from :meth:`market.app.Application.build_block`, and
validation executes them with ``execute_block(..., schedule=block.schedule,
benefit=block.header.benefit)``, so the refusal code (``benefit_mismatch``) reaches the engine
by the code path a validator runs.  The simulated mempool takes C&D requests first
(:class:`tests.sim.cluster.SimMempool` with ``cd_first``).

C&D requests: the genesis of these clusters has a short scheduling interval
(``SCHEDULE_INTERVAL_MS``, a few intervals per seed) and the scheduler the scenario names
("uncontrolled", cheap, in the seeded rotation; "online", the Clarabel QP, in
``SCHEDULER_SCENARIOS``, run by a test of its own).  The first transactions the
clients submit (through the normal tx path, before the transfers) are C&D requests of three
participants: two EVs charging, one battery offering to discharge, connected for the whole run.
Once they are admitted, the first block in each interval decides the next one and carries a
schedule and a non-zero benefit; the driver makes a validator with an empty mempool still
propose (and ask for a height) when an interval decision is due, re-checked at every interval
boundary (its ArmBoundary effect).

Byzantine behaviours (the engine of a Byzantine node runs honestly; its messages are rewritten
on the way out):

``inflate``
    its fresh proposals claim a higher benefit than the schedule gives (header replaced, the
    proposal re-signed); honest validators must refuse the block and report
    ``benefit_mismatch`` against it;
``worse``
    its fresh proposals that decide an interval carry another *valid* schedule with a lower
    benefit (each live request at its least or most allowed rate, the combination that scores
    lowest; header and proposal re-signed, the same rewrite on every retransmission); honest
    validators must still prevote the best valid candidate;
``withhold``
    sends each proposal to a random strict subset only (the winner announced to some);
``equivocate``
    two different proposals in a round, and two different prevotes and precommits in a round,
    each to part of the validators;
``bad-votes``
    votes (and sometimes precommits) for blocks that do not exist or are invalid, and
    proposals of blocks that do not execute;
``mirror``
    for the majority-quorum demonstration: sends nothing of its own, but signs a copy of the
    first vote it sees from each partition group for each (height, round, step) and sends it
    to that group, so it votes for two blocks whenever the groups differ.

Invariants (on top of cluster.py's agreement and certificate checks): no honest validator signs
two different proposals, prevotes or precommits for one (height, round), even across restarts,
and none leaves before the record that guards it is persisted; evidence is only ever reported
against Byzantine validators; an honest prevote in a round without polkas, locks or leader
(even rounds) is for the valid proposal of that round with the highest benefit (checked when the
prevote first leaves).  Every block an honest validator commits has the benefit recomputed here
from the parent state (base load, planned load of the previous interval, the schedule's rates),
and at the end of a run the committed chain must hold blocks with schedules.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgpack

from gridchain.consensus.epob import EpobEngine, quorum_size
from gridchain.consensus.epob.guard import LOCK_KEY, PREVOTE_KEY, PROPOSAL_KEY
from gridchain.consensus.epob.messages import (
    LockRecord,
    Precommit,
    Prevote,
    Proposal,
    ProposalClaim,
    decode_record,
    make_precommit,
    make_prevote,
    make_proposal,
)
from gridchain.consensus.kernel.messages import Decision
from gridchain.consensus.kernel.validators import Quorum
from gridchain.genesis.schema import ChainScheduler
from gridchain.market.app import BlockContext, Execution
from gridchain.market.base_load import base_load_at
from gridchain.market.cd_schedule import BENEFIT_SCALE, due_interval
from gridchain.market.errors import BenefitMismatchError
from gridchain.market.state import MerkleState, StateReader
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    ScheduleEntry,
    Vote,
    VoteSignature,
    VoteStep,
    schedule_root,
    tx_root,
)
from gridchain.protocol.crypto import Domain, sha256
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.tx import CDKind, CDRequest, Device
from tests.helpers import GENESIS_TIME_MS, cd_meter_id, small_bundle, with_cd_meters
from tests.sim.cluster import (
    BLOCK_INTERVAL_MS,
    DESCRIBERS,
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

ROUND_MS = 300
#: ePoB heights are slower than PBFT ones (a proposal window, two vote steps); fewer of them
#: per simulated second keeps 1,000 seeds within the CI budget without shortening the faults.
EPOB_BLOCK_INTERVAL_MS = 600
#: signed-vote audit keys: proposals are step 0, prevotes PREPARE, precommits COMMIT
PROPOSAL_STEP = 0
#: Scheduling intervals of half a second: a seed's run (a few simulated seconds) spans several.
SCHEDULE_INTERVAL_MS = 500
SCHEDULE_INTERVAL_MINUTES = 10
#: (participant, kind, device, energy Wh, max rate W) of the C&D requests each run submits
#: first; connected from genesis until far past any run, so a late admission still fits, and
#: with enough energy for about a dozen intervals at full rate.
CD_REQUESTS: tuple[tuple[int, CDKind, Device, int, int], ...] = (
    (0, CDKind.CHARGE, Device.EV, 14_000, 7_000),
    (1, CDKind.CHARGE, Device.EV, 22_000, 11_000),
    (2, CDKind.DISCHARGE, Device.BATTERY, 10_000, 5_000),
)
CD_DEPARTURE_MS = GENESIS_TIME_MS + 200 * SCHEDULE_INTERVAL_MS
CD_LIMIT_PRICE = 250_000


@dataclass(frozen=True, slots=True)
class EpobScenario(Scenario):
    quorum: Quorum = "bft"
    scheduler: ChainScheduler = "uncontrolled"


@cache
def epob_fixture(n: int, scheduler: ChainScheduler) -> Fixture:
    """cluster.py's fixture with C&D scheduling: short intervals, the scenario's scheduler, and
    the C&D requests first in the clients' submission order (nonce 0 of their senders)."""
    bundle = with_cd_meters(
        small_bundle(
            validators=n,
            participants=PARTICIPANTS,
            engine="pbft",
            seed=f"sim-{n}",
            block_interval_ms=BLOCK_INTERVAL_MS,
            schedule_interval_ms=SCHEDULE_INTERVAL_MS,
            schedule_interval_minutes=SCHEDULE_INTERVAL_MINUTES,
            scheduler=scheduler,
        )
    )
    leading = [
        (
            who,
            CDRequest(
                int(kind),
                int(device),
                GENESIS_TIME_MS,
                CD_DEPARTURE_MS,
                energy_wh,
                max_rate_w,
                CD_LIMIT_PRICE if kind is CDKind.CHARGE else 0,
                cd_meter_id(who, device),
            ),
        )
        for who, kind, device, energy_wh, max_rate_w in CD_REQUESTS
    ]
    return build_fixture(bundle, leading)


EPOB_SCENARIOS: dict[str, EpobScenario] = {
    s.name: s
    for s in (
        EpobScenario("calm"),
        EpobScenario("lossy", drop=0.15, duplicate=0.1, delay_ms=(1, 80)),
        EpobScenario("lost-precommits", drop=0.05, drop_commits=0.5, delay_ms=(1, 150)),
        EpobScenario("partitions", drop=0.05, partitions=True),
        EpobScenario("crashes", drop=0.05, duplicate=0.05, crashes=1),
        EpobScenario("crash-all", drop=0.05, crash_all=True),
        EpobScenario("inflated-benefit", drop=0.05, byzantine=("inflate",)),
        EpobScenario("worse-schedule", drop=0.05, byzantine=("worse",)),
        EpobScenario("withholding", drop=0.05, byzantine=("withhold",)),
        EpobScenario("equivocating", drop=0.05, duplicate=0.05, byzantine=("equivocate",)),
        EpobScenario("bad-votes", drop=0.05, byzantine=("bad-votes",)),
        EpobScenario("outsider", drop=0.05, outsider=True),
        EpobScenario("byzantine-partitions", drop=0.1, partitions=True, byzantine=("equivocate",)),
        EpobScenario("byzantine-crashes", drop=0.05, crashes=1, byzantine=("withhold",)),
        EpobScenario(
            "n7-mixed",
            n=7,
            drop=0.1,
            duplicate=0.05,
            partitions=True,
            byzantine=("inflate", "equivocate"),
            outsider=True,
        ),
        EpobScenario("n7-crashes", n=7, drop=0.05, crashes=2, byzantine=("withhold",)),
        EpobScenario("majority-crashes", n=5, quorum="majority", drop=0.05, crashes=2),
        EpobScenario("majority-partitions", n=4, quorum="majority", drop=0.05, partitions=True),
        # A Byzantine peer serves catch-up with blocks certified by a quorum of prevotes.
        EpobScenario(
            "forged-catch-up",
            drop=0.05,
            drop_commits=0.3,
            partitions=True,
            crashes=1,
            byzantine=("forge-catchup",),
        ),
        # The validator set changes under load (a fifth validator joins, then one leaves),
        # with a crash at a time and an equivocating validator (which may be the one removed).
        EpobScenario(
            "set-changes",
            drop=0.05,
            duplicate=0.05,
            crashes=1,
            byzantine=("equivocate",),
            set_changes=True,
        ),
    )
}
EPOB_SCENARIO_NAMES: tuple[str, ...] = tuple(EPOB_SCENARIOS)

#: The demonstration of why "majority" is crash-safe only: n = 5, honest validators split
#: 2 | 2 by a partition for 3 s, and one validator that reaches both halves and votes twice.
SPLIT_SCENARIOS: dict[str, EpobScenario] = {
    s.name: s
    for s in (
        EpobScenario(
            "split-majority", n=5, quorum="majority", byzantine=("mirror",), chaos_ms=(3000, 3000)
        ),
        EpobScenario("split-bft", n=5, quorum="bft", byzantine=("mirror",), chaos_ms=(3000, 3000)),
    )
}
#: The "online" scheduler (a Clarabel QP per block built) costs about three times a run of the
#: "uncontrolled" one, so it runs in a test of its own rather than in the 1,000-seed rotation.
SCHEDULER_SCENARIOS: dict[str, EpobScenario] = {
    s.name: s for s in (EpobScenario("online-schedule", drop=0.05, scheduler="online"),)
}
ALL_SCENARIOS: dict[str, EpobScenario] = {
    **EPOB_SCENARIOS,
    **SPLIT_SCENARIOS,
    **SCHEDULER_SCENARIOS,
}


def scenario_for_seed(seed: int) -> str:
    return EPOB_SCENARIO_NAMES[seed % len(EPOB_SCENARIO_NAMES)]


def describe_epob(detail: Any, names: Callable[[bytes], str]) -> str | None:
    if isinstance(detail, Proposal):
        polka = "" if detail.polka is None else f" polka r{detail.polka.vote.round}"
        return (
            f"Proposal r{detail.round} h{detail.block.height} {detail.block.hash().hex()[:8]} "
            f"benefit {detail.block.header.benefit}{polka} from {names(detail.signer)}"
        )
    if isinstance(detail, Prevote | Precommit):
        v = detail.vote
        return (
            f"{type(detail).__name__} r{v.round} h{v.height} {v.block_hash.hex()[:8]} "
            f"from {names(detail.signer)}"
        )
    if isinstance(detail, Decision):
        v = detail.certificate.vote
        return f"Decision h{v.height} r{v.round} {v.block_hash.hex()[:8]}"
    return None


if describe_epob not in DESCRIBERS:
    DESCRIBERS.append(describe_epob)


def signed_epob_votes(signer: bytes, message: Record) -> list[tuple[int, int, int, bytes]]:
    """(step, height, round, block hash) of what ``signer`` signed in ``message``."""
    if isinstance(message, Proposal) and message.signer == signer:
        return [(PROPOSAL_STEP, message.block.height, message.round, message.block.hash())]
    if isinstance(message, Prevote | Precommit) and message.signer == signer:
        v = message.vote
        return [(v.step, v.height, v.round, v.block_hash)]
    return []


class EpobPersistedGuard:
    """What a node's persisted ePoB records say it signed last (read from the records)."""

    KEYS: tuple[bytes, ...] = (PROPOSAL_KEY, PREVOTE_KEY, LOCK_KEY)

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, int, bytes]] = {}

    def note(self, key: bytes, value: bytes) -> None:
        if key == PROPOSAL_KEY:
            claim = decode_record(value, ProposalClaim)
            self._last[PROPOSAL_STEP] = (claim.height, claim.round, claim.block_hash)
        elif key == PREVOTE_KEY:
            vote = decode_record(value, Vote)
            self._last[VoteStep.PREPARE] = (vote.height, vote.round, vote.block_hash)
        else:
            # The lock's polka guards the precommit for the same round and block; read only
            # the polka's vote (structurally) to keep the audit cheap.
            fields = msgpack.unpackb(value, raw=False)  # [tag, version, polka, block]
            polka = fields[2]  # [tag, version, vote, signatures]
            if fields[0] != LockRecord.TYPE_TAG or polka[0] != Certificate.TYPE_TAG:
                raise SimFailure("a persisted lock record has the wrong type")
            vote = Vote(*polka[2][2:])
            self._last[VoteStep.COMMIT] = (vote.height, vote.round, vote.block_hash)

    def covers(self, step: int, height: int, round_: int, block_hash: bytes) -> bool:
        last = self._last.get(step)
        if last is None:
            return False
        if (last[0], last[1]) != (height, round_):
            return (last[0], last[1]) > (height, round_)
        return last[2] == block_hash


class SharedRootState(MerkleState):
    """A node's ledger whose would-be roots are shared by every node at the same head.

    ``root_with(writes)`` is a pure function of the state, which the committed head's hash
    names, and the writes; ePoB builds a block per validator per round and many of them write
    the same (the same transfers at the same height), so the cluster computes each root once.
    """

    def __init__(self, entries: dict[bytes, bytes], node: EpobNode) -> None:
        super().__init__(entries)
        self._node = node

    def root_with(self, writes: Mapping[bytes, bytes | None]) -> bytes:
        memo = self._node.cluster.roots
        key = (self._node.head.block_hash, frozenset(writes.items()))
        root = memo.get(key)
        if root is None:
            if len(memo) > 20_000:
                memo.clear()
            root = memo[key] = super().root_with(writes)
        return root


class EpobNode(SimNode):
    """A validator's runtime for ePoB: blocks carry the application's schedule and benefit."""

    cluster: EpobCluster

    def __init__(self, cluster: Cluster, index: int, key: Any, behaviour: str | None) -> None:
        super().__init__(cluster, index, key, behaviour)
        self.epob_guard = EpobPersistedGuard()
        self.guard = self.epob_guard  # type: ignore[assignment]

    def make_state(self) -> MerkleState:
        return SharedRootState(dict(self.cluster.fixture.genesis_items), self)

    def make_mempool(self) -> SimMempool:
        return SimMempool(self.state, cd_first=True)

    def make_engine(self) -> EpobEngine:
        fx = self.cluster.fixture
        return EpobEngine(
            self.key,
            fx.chain_id,
            fx.validators,
            round_ms=ROUND_MS,
            block_interval_ms=EPOB_BLOCK_INTERVAL_MS,
            quorum=self.cluster.epob_scenario.quorum,
            verifier=cached_verify,
        )

    def audit_commit(self, block: Block, execution: Execution, parent: StateReader) -> None:
        """The first honest commit at a height: recompute the benefit independently."""
        if self.honest and block.height not in self.cluster.canonical:
            expected = self.recomputed_benefit(block, parent)
            self.cluster.check_committed_benefit(self, block, expected)

    def recomputed_benefit(self, block: Block, parent: StateReader) -> int:
        """The benefit of ``block`` on this (parent) state, computed independently of
        market/cd_schedule.py's apply path: 10**18 // (1 + (L_j - L_prev)^2), 0 if it decides
        nothing."""
        due = due_interval(self.app.genesis, parent, block.header.timestamp_ms)
        if due is None or not due.live:
            return 0
        load = base_load_at(self.app.genesis, due.interval) + sum(e.rate_w for e in block.schedule)
        step = load - due.previous_load_w
        return int(BENEFIT_SCALE // (1 + step * step))

    def make_worse_block(self, block: Block) -> Block | None:
        """A valid block like ``block`` whose schedule scores lower, or None if none does."""
        if not block.schedule or block.header.prev_hash != self.head.block_hash:
            return None
        genesis = self.app.genesis
        header = block.header
        due = due_interval(genesis, self.state, header.timestamp_ms)
        if due is None or not due.live:
            return None
        base = base_load_at(genesis, due.interval)
        options = []
        for (_, record), (low, high) in zip(due.live, due.bounds, strict=True):
            sign = 1 if record.is_charge else -1
            options.append(sorted({sign * low, sign * high}))
        worst: tuple[int, tuple[int, ...]] | None = None
        for rates in itertools.product(*options):
            step = base + sum(rates) - due.previous_load_w
            benefit = BENEFIT_SCALE // (1 + step * step)
            if worst is None or benefit < worst[0]:
                worst = (benefit, rates)
        if worst is None or worst[0] >= header.benefit:
            return None
        benefit, rates = worst
        schedule = tuple(
            ScheduleEntry(rid, rate) for (rid, _), rate in zip(due.live, rates, strict=True)
        )
        ctx = BlockContext(header.height, header.timestamp_ms, header.proposer)
        try:
            execution = self.app.execute_block(
                self.state, block.txs, ctx, schedule=schedule, benefit=benefit
            )
        except GridchainError as exc:
            self.cluster.fail(f"the worse schedule of {self.name()} does not execute: {exc}")
            return None
        worse_header = dataclasses.replace(
            header,
            benefit=benefit,
            schedule_root=schedule_root(schedule),
            state_root=execution.state_root,
        )
        return Block(worse_header, block.txs, schedule)


class EpobCluster(Cluster):
    """Nodes running ePoB, a network and a clock, all driven by one seeded RNG."""

    node_class = EpobNode
    label = "ePoB"

    def __init__(self, scenario: EpobScenario, seed: int, *, full_trace: bool = False) -> None:
        self.epob_scenario = scenario
        self.roots: dict[tuple[bytes, frozenset[tuple[bytes, bytes | None]]], bytes] = {}
        #: (group, step, height, round) -> the block the mirror signed for that group
        self.mirrored: dict[tuple[int, int, int, int], bytes] = {}
        #: (node, height, round) -> the invalid block a "bad-votes" node proposed there
        self.broken: dict[tuple[int, int, int], bytes] = {}
        #: (node, height, round) -> the proposal a "worse" node sends there (or the honest one)
        self.worse: dict[tuple[int, int, int], Record] = {}
        #: hashes of the valid lower-benefit blocks "worse" nodes proposed
        self.worse_blocks: set[bytes] = set()
        #: honest prevotes whose round also had a worse block, checked to go to a better one
        self.worse_outvoted = 0
        #: honest prevotes checked against the round's best benefit
        self.choices_checked = 0
        #: distinct blocks with a schedule refused for claiming the wrong benefit
        self.schedule_claims_refused = 0
        #: committed blocks (canonical chain) with a schedule, and their benefits
        self.scheduled_commits = 0
        self.committed_benefits: dict[int, int] = {}
        super().__init__(scenario, seed, full_trace=full_trace)
        self.quorum = quorum_size(self.n, scenario.quorum)

    def on_refusal(self, block: Block, exc: GridchainError) -> None:
        if isinstance(exc, BenefitMismatchError) and block.schedule:
            self.schedule_claims_refused += 1

    @property
    def fixture(self) -> Fixture:
        """The ePoB genesis with C&D scheduling (Cluster.__init__ assigns the PBFT one)."""
        return epob_fixture(self.epob_scenario.n, self.epob_scenario.scheduler)

    @fixture.setter
    def fixture(self, value: Fixture) -> None:
        pass  # cluster.py's PBFT fixture: this cluster always uses epob_fixture

    def replay_command(self) -> str:
        return (
            f"python -m tests.sim.replay --engine epob --seed {self.seed} "
            f"--scenario {self.scenario.name}"
        )

    def position(self, node: SimNode) -> str:
        engine = node.engine
        return f"round {engine.round if isinstance(engine, EpobEngine) else '-'}"

    def commit_like(self, message: Record) -> bool:
        return isinstance(message, Precommit | Decision)

    # --- partitions that a mirror reaches across --------------------------------------------

    def reachable(self, a: int, b: int) -> bool:
        groups = self.groups
        return groups is None or groups[a] == groups[b] or groups[a] < 0 or groups[b] < 0

    def plan_faults(self) -> None:
        mirrors = [n.index for n in self.nodes if n.behaviour == "mirror"]
        if mirrors:
            # A fixed split of the honest validators in two halves; the mirror reaches both.
            honest = [n.index for n in self.nodes if n.honest]
            groups = [0] * self.n
            for i in honest[len(honest) // 2 :]:
                groups[i] = 1
            for i in mirrors:
                groups[i] = -1
            self.groups = groups
            self.record(None, "partition", f"groups {groups}")
        super().plan_faults()

    def check_committed_benefit(self, node: EpobNode, block: Block, expected: int) -> None:
        """The first honest commit at a height: the header's benefit is the recomputed one."""
        header = block.header
        if header.benefit != expected:
            self.fail(
                f"{node.name()} committed h{block.height} with benefit {header.benefit}, "
                f"recomputed {expected}"
            )
        if (expected > 0) != bool(block.schedule):
            self.fail(f"h{block.height}: benefit {expected} with {len(block.schedule)} entries")
        self.committed_benefits[block.height] = expected
        if block.schedule:
            self.scheduled_commits += 1

    def live(self) -> bool:
        """cluster.py's liveness, and a committed decision block (the deadline bounds both)."""
        return self.scheduled_commits > 0 and super().live()

    def fail_liveness(self) -> None:
        if self.scheduled_commits == 0:
            self.fail("no committed block carries a schedule by the liveness deadline")
        super().fail_liveness()

    def outcome(self) -> Outcome:
        if self.scheduled_commits == 0:
            self.fail("no committed block carries a schedule (C&D requests were submitted)")
        return super().outcome()

    # --- audits ---------------------------------------------------------------------------

    def quorum_of(self, n: int) -> int:
        return quorum_size(n, self.epob_scenario.quorum)

    def audit_outgoing(self, node: SimNode, message: Record) -> None:
        """An honest signature leaves only when its guard record is persisted, and never twice,
        and only from a member of the set of its height."""
        assert isinstance(node, EpobNode)
        guard = node.epob_guard
        for step, height, round_, block_hash in signed_epob_votes(node.public_key, message):
            self.audit_member(node, height)
            key = (node.public_key, step, height, round_)
            if step == VoteStep.PREPARE and key not in self.signed:
                self.audit_choice(node, height, round_, block_hash)
            earlier = self.signed.setdefault(key, block_hash)
            what = "proposal" if step == PROPOSAL_STEP else VoteStep(step).name
            if earlier != block_hash:
                self.fail(
                    f"{node.name()} signed two blocks for {what} at height {height} round "
                    f"{round_}: {earlier.hex()[:8]} and {block_hash.hex()[:8]}"
                )
            if not guard.covers(step, height, round_, block_hash):
                self.fail(f"{node.name()} sent a {what} its guard record does not cover")

    def audit_choice(self, node: EpobNode, height: int, round_: int, block_hash: bytes) -> None:
        """A first prevote in a round that has no leader, polka or lock (where only benefit and
        the tie-break decide) is for a valid proposal of the round with the highest benefit."""
        engine = node.engine
        if engine is None or round_ % 2 == 1 or engine.locked is not None:
            return
        if height != node.head.height + 1 or round_ != engine.round:
            return
        if any(r <= round_ for r, _ in engine._prevotes.quorums()):
            return
        candidates: list[Block] = []
        for (r, _), proposal in engine._proposals.items():
            if r != round_:
                continue
            if proposal.polka is not None:
                return
            if engine._validated.get(engine._hash(proposal.block)):
                candidates.append(proposal.block)
        chosen = [b for b in candidates if engine._hash(b) == block_hash]
        if not chosen:
            self.fail(f"{node.name()} prevoted {block_hash.hex()[:8]}, not a valid proposal")
        best = max(b.header.benefit for b in candidates)
        if chosen[0].header.benefit != best:
            self.fail(
                f"{node.name()} prevoted benefit {chosen[0].header.benefit} in h{height} "
                f"r{round_} while a valid proposal there had {best}"
            )
        self.choices_checked += 1
        worse = [b for b in candidates if engine._hash(b) in self.worse_blocks]
        if worse and any(b.header.benefit > worse[0].header.benefit for b in candidates):
            self.worse_outvoted += 1

    # --- Byzantine behaviours ---------------------------------------------------------------

    def transmit(self, sender: SimNode, to: bytes | None, message: Record) -> None:
        super().transmit(sender, to, message)
        if sender.honest and isinstance(message, Prevote | Precommit):
            for node in self.nodes:
                if node.behaviour == "mirror" and node.is_alive():
                    self.mirror(node, sender, message)

    def mirror(self, node: SimNode, sender: SimNode, message: Prevote | Precommit) -> None:
        group = 0 if self.groups is None else self.groups[sender.index]
        v = message.vote
        key = (group, v.step, v.height, v.round)
        if key in self.mirrored:
            return
        self.mirrored[key] = v.block_hash
        chain_id = self.fixture.chain_id
        copy: Record = (
            make_prevote(node.key, chain_id, v)
            if isinstance(message, Prevote)
            else make_precommit(node.key, chain_id, v)
        )
        for target in self.nodes:
            if target is not node and (self.groups is None or self.groups[target.index] == group):
                self.post(node.index, node.public_key, target, copy)

    def misbehave(self, node: SimNode, targets: list[SimNode], message: Record) -> None:
        rng = self.rng
        behaviour = node.behaviour
        chain_id = self.fixture.chain_id
        assert isinstance(node, EpobNode)

        def send(msg: Record, to: list[SimNode]) -> None:
            for target in to:
                self.post(node.index, node.public_key, target, msg)

        fresh = isinstance(message, Proposal) and message.polka is None
        if behaviour == "mirror":
            return
        if behaviour == "inflate" and isinstance(message, Proposal) and fresh:
            block = message.block
            header = dataclasses.replace(
                block.header, benefit=block.header.benefit + 1 + rng.randrange(1000)
            )
            inflated = dataclasses.replace(block, header=header)
            send(make_proposal(node.key, chain_id, message.round, inflated), targets)
            return
        if behaviour == "worse" and isinstance(message, Proposal) and fresh:
            key = (node.index, message.block.height, message.round)
            rewritten = self.worse.get(key)
            if rewritten is None:
                worse = node.make_worse_block(message.block)
                rewritten = message
                if worse is not None:
                    rewritten = make_proposal(node.key, chain_id, message.round, worse)
                    self.worse_blocks.add(worse.hash())
                    self.record(node, "worse", f"benefit {worse.header.benefit}")
                self.worse[key] = rewritten
            send(rewritten, targets)
            return
        if behaviour == "withhold" and isinstance(message, Proposal) and len(targets) > 1:
            shuffled = list(targets)
            rng.shuffle(shuffled)
            send(message, shuffled[: rng.randint(1, len(shuffled) - 1)])
            return
        if behaviour == "equivocate" and len(targets) > 1:
            twin: Record | None = None
            if isinstance(message, Proposal) and fresh:
                block = message.block
                other = node.make_block(
                    block.height,
                    block.header.round,
                    list(block.txs),
                    block.header.timestamp_ms + 1 + rng.randrange(5),
                )
                twin = make_proposal(node.key, chain_id, message.round, other)
            elif isinstance(message, Prevote | Precommit):
                v = message.vote
                other_hash = self.other_block(node, v) or sha256(b"eq %d" % rng.randrange(1 << 30))
                vote = Vote(v.height, v.round, other_hash, v.step)
                twin = (
                    make_prevote(node.key, chain_id, vote)
                    if isinstance(message, Prevote)
                    else make_precommit(node.key, chain_id, vote)
                )
            if twin is not None:
                for target in targets:
                    send(message if rng.random() < 0.5 else twin, [target])
                return
        if behaviour == "bad-votes":
            if isinstance(message, Prevote | Precommit) and rng.random() < 0.5:
                # For the invalid block it proposed in this round, or for no block at all.
                v = message.vote
                fake = self.broken.get((node.index, v.height, v.round)) or sha256(
                    b"bad %d" % rng.randrange(1 << 30)
                )
                vote = Vote(v.height, v.round, fake, v.step)
                bad = (
                    make_prevote(node.key, chain_id, vote)
                    if isinstance(message, Prevote)
                    else make_precommit(node.key, chain_id, vote)
                )
                send(bad, targets)
                return
            if isinstance(message, Proposal) and fresh and rng.random() < 0.5:
                block = message.block
                header = dataclasses.replace(block.header, state_root=sha256(b"not executed"))
                broken = dataclasses.replace(block, header=header)
                self.broken[(node.index, block.height, message.round)] = broken.hash()
                send(make_proposal(node.key, chain_id, message.round, broken), targets)
                return
        send(message, targets)

    def proposed_block(self, message: Record) -> Block | None:
        return message.block if isinstance(message, Proposal) else None

    def prepare_signatures(self, message: Record) -> list[tuple[Vote, VoteSignature]]:
        """Prevotes are ePoB's PREPARE-step votes."""
        return [(message.vote, message.signature)] if isinstance(message, Prevote) else []

    def other_block(self, node: SimNode, vote: Vote) -> bytes | None:
        """Another block proposed at the vote's height and round, as seen on the wire."""
        for message in reversed(self.recent):
            if (
                isinstance(message, Proposal)
                and message.round == vote.round
                and message.block.height == vote.height
            ):
                block_hash = message.block.hash()
                if block_hash != vote.block_hash:
                    return block_hash
        return None

    def outsider_act(self) -> None:
        """A key outside the validator set sends messages that look right; all must be ignored."""
        assert self.outsider is not None
        key = self.outsider
        fx = self.fixture
        honest = [n for n in self.nodes if n.honest]
        top = max(honest, key=lambda n: n.head.height)
        height = top.head.height + 1
        rng = self.rng
        choice = rng.randrange(4)
        fake_hash = sha256(b"outsider %d" % rng.randrange(1 << 30))
        message: Record
        if choice == 0:
            block = Block(
                BlockHeader(
                    fx.chain_id,
                    height,
                    top.head.block_hash,
                    self.now,
                    key.public_key,
                    0,
                    0,
                    tx_root(()),
                    schedule_root(()),
                    fake_hash,
                ),
                (),
                (),
            )
            message = make_proposal(key, fx.chain_id, 0, block)
        elif choice == 1:
            message = make_prevote(
                key, fx.chain_id, Vote(height, rng.randrange(3), fake_hash, int(VoteStep.PREPARE))
            )
        elif choice == 2:
            message = make_precommit(
                key, fx.chain_id, Vote(height, rng.randrange(3), fake_hash, int(VoteStep.COMMIT))
            )
        else:
            vote = Vote(height + rng.randrange(3), 0, fake_hash, int(VoteStep.COMMIT))
            sig = VoteSignature(key.public_key, key.sign(Domain.VOTE, fx.chain_id, vote.encode()))
            message = Decision(Certificate(vote, (sig,)))
        for target in self.nodes:
            self.post(-1, key.public_key, target, message)
        if self.recent and rng.random() < 0.5:
            relayed = rng.choice(list(self.recent))  # replaying others' messages is harmless too
            self.post(-1, key.public_key, rng.choice(self.nodes), relayed)
        self.schedule(self.now + rng.randint(20, 150), Event("outsider"))


def run_epob_seed(seed: int, scenario: str | None = None, *, full_trace: bool = False) -> Outcome:
    """Run one seeded ePoB simulation; raises SimFailure with the replay command on a violation."""
    name = scenario_for_seed(seed) if scenario is None else scenario
    return EpobCluster(ALL_SCENARIOS[name], seed, full_trace=full_trace).run()

"""Scripted adversaries against PoB validator-set changes, on the shipped path (ADR 0049).

The seeded PoB simulator (tests/sim/pob_cluster.py) draws its faults from a seed; the attacks
here need one exact schedule, so they are scripts on the same machinery: every honest validator
is a :class:`~tests.sim.pob_cluster.PobSimNode` (the node's :class:`node.driver.ChainDriver`
around the real :class:`~consensus.pob.PobEngine`, on the real application and state, with the
simulator's mempool, disk and clock), builds its own blocks (from the clients' transfers, or
empty ones above a pending block that carries something, as the driver does so that it can
become final), and reads the set of every height on every branch from its driver
(``validators_on``, the pending-change path of ``market.validators``).  The set changes are
governance transactions (``UpdateValidators`` signed by the governance key, as the simulator's
``govern``); nothing in the scripts computes a set.

What a script controls, as an adversary may:

* **the network**: from the script's round 0 on, every message between honest validators passes
  :meth:`ScriptedCluster.post`, where the attack (``Attack.link``) delivers it (1 ms later, the
  simulator's delay), holds it until just before a later round, or loses it (a delay past the
  end of the run): asynchrony allows all three.  An attack may also lose every request for a
  missing block, its answer and the catch-up fetches (``drop_requests``);
* **the clients**: which validators get the set changes (all, or the Byzantine ones only) and
  whether transfers flow;
* **the Byzantine validators** (at most f): they run no engine.  A quarter into each round
  (after the honest announces of the round arrived) they sign what the attack says: announces
  to chosen validators, now or held (:meth:`ScriptedCluster.vote`, or :func:`echo`: a copy of a
  group's vote), and blocks that one of them builds on a chosen parent with its own driver,
  carrying chosen changes (:meth:`ScriptedCluster.propose`: a real block, valid on its branch,
  refusals noted as an honest proposer's are).  They may sign for two branches in one round.

The outcome (:class:`AttackOutcome`): every honest validator's commits, the first height at which
two of them committed different blocks, the refusals the shipped code gave the changes (the
drivers' "left out" notes), and for each block the script built the set its branch names two
heights above it and the change pending there, as the honest drivers read them.  A *forced* run
bypasses one rule for its duration, in the script only (the shipped code has no flag):
:func:`bypassed` replaces one function of ``market.validators`` while the run lasts, and says
which and why in its docstring.  The scripts: tests/sim/pob_set_fork.py (rule 1),
tests/sim/pob_stacked_fork.py (rules 2 and 3), tests/sim/pob_sibling_fork.py (rule 3).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from unittest import mock

import gridchain.market.validators as validator_rules
from gridchain.consensus.pob.messages import (
    NO_BLOCK,
    Announce,
    BlockMessage,
    make_announce,
    make_block_message,
)
from gridchain.market.validators import pending_change, validators_at
from gridchain.node.driver import ChainDriver, Effect, Note
from gridchain.protocol.block import Block, CommittedBlock
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.tx import Transaction, UpdateValidators, sign_tx
from tests.helpers import small_bundle
from tests.sim.cluster import (
    BLOCK_INTERVAL_MS,
    PARTICIPANTS,
    Cluster,
    Event,
    Fixture,
    Outcome,
    Scenario,
    SimFailure,
    SimNode,
    build_fixture,
)
from tests.sim.pob_cluster import PobCluster, PobSimNode, parent_state

#: A Byzantine validator's announce for a group: a vote with the group, or no vote.
VOTE = "vote"
ABSTAIN = "abstain"
#: Rounds played from the script's round 0 on, unless the attack says (enough for either
#: side to finalize, with room to spare).
ROUNDS_AFTER_SPLIT = 8
#: How long before a round starts a held message arrives (after the round before's blocks).
RELEASE_LEAD_MS = 20


@cache
def scripted_fixture(n: int) -> Fixture:
    """A PoB genesis of n validators without C&D scheduling (benefits are all 0, so the fork
    choice among blocks of one height is the announce ranking alone), and the clients'
    transfers."""
    bundle = small_bundle(
        validators=n,
        participants=PARTICIPANTS,
        engine="pob",
        seed=f"scripted-{n}",
        block_interval_ms=BLOCK_INTERVAL_MS,
    )
    return build_fixture(bundle)


# --- bypassing one rule, in the script only ------------------------------------------------------


BYPASSES = ("overlap", "pending", "final-run")


@contextlib.contextmanager
def bypassed(rule: str | None) -> Iterator[None]:
    """Run with one of ADR 0049's rules taken out of ``market.validators``, for the script's
    run only (the patch is undone on exit; shipped code has no switch for it):

    * ``overlap`` (rule 1): ``honest_overlap`` answers 1, so ``schedule_change`` never refuses
      with ``validator_quorum_overlap``; everything else (the third rule, the pending change,
      its run) stays.
    * ``pending`` (rule 2): ``pob_pending_change`` is called as if no change were pending, so it
      never refuses with ``validator_change_pending``; the new change is then measured against
      the schedule and written over the pending record, as the shipped code would without the
      check.
    * ``final-run`` (rule 3): ``activation_run`` answers 1, so the block after a change brings
      it into force two heights above itself whatever the rounds: a fixed distance (H + 3)
      instead of a final run.  Rules 1 and 2 stay (a change is pending until that block).
    """
    if rule is None:
        yield
        return
    if rule == "overlap":
        patch: Any = mock.patch.object(validator_rules, "honest_overlap", return_value=1)
    elif rule == "pending":
        original = validator_rules.pob_pending_change

        def without_rule_2(
            epochs: Sequence[validator_rules.ValidatorEpoch],
            pending: validator_rules.PendingValidatorChange | None,
            genesis: Any,
            body: UpdateValidators,
            **where: int,
        ) -> validator_rules.PendingValidatorChange:
            return original(epochs, None, genesis, body, **where)

        patch = mock.patch.object(validator_rules, "pob_pending_change", without_rule_2)
    elif rule == "final-run":
        patch = mock.patch.object(validator_rules, "activation_run", return_value=1)
    else:
        raise ValueError(f"no rule {rule!r} to bypass (one of {', '.join(BYPASSES)})")
    with patch:
        yield


# --- what an attack says -------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A governance change: its label, the names it adds and removes, and its nonce (two
    changes with one nonce are siblings: a chain can take only one of them)."""

    label: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    nonce: int | None = None


#: (cluster, round relative to the script's round 0 or None before it, absolute round)
Act = Callable[["ScriptedCluster", int | None, int], None]
#: (cluster, sender, receiver, message, relative round) -> delivered now (True), lost
#: (False), or held until just before relative round k starts (k)
Link = Callable[["ScriptedCluster", str, str, Record, int], bool | int]


@dataclass(frozen=True)
class Attack:
    """One scripted attack: the cluster, the changes governance submits, and the adversary.

    ``honest`` names the honest genesis validators in key order, ``byzantine`` the Byzantine
    ones (at most f), ``joiner`` a validator started outside the set (or None).  ``changes``
    are submitted at once, each with its own nonce or the next one, to every validator
    (``changes_to_all``) or to the Byzantine ones only; ``transfers`` says whether the clients
    also send transfers (so that honest validators build blocks of their own).  The script's
    round 0 is ``split_after`` rounds after the first round with a block, or (None) the first
    round after start.  ``link`` decides the delivery of each honest message from round 0 on
    (``drop_requests``: every directed message, a block request or its answer, and every
    catch-up fetch is lost), ``act``
    is what the Byzantine validators do a quarter into each round; ``groups`` names the sides.
    """

    name: str
    honest: tuple[str, ...]
    byzantine: tuple[str, ...]
    joiner: str | None
    changes: tuple[Change, ...]
    groups: Mapping[str, tuple[str, ...]]
    link: Link
    act: Act
    split_after: int | None = None
    changes_to_all: bool = True
    transfers: bool = True
    drop_requests: bool = False
    #: rounds played from round 0 on
    rounds: int = ROUNDS_AFTER_SPLIT


@dataclass
class AttackOutcome:
    """What a scripted run did."""

    attack: str
    bypassed: str | None
    #: each honest validator's committed blocks, height -> hash
    commits: dict[str, dict[int, bytes]] = field(default_factory=dict)
    #: the first height at which two honest validators committed different blocks
    conflict: int | None = None
    #: change label -> the refusal codes the drivers noted when they left it out
    refusals: dict[str, list[str]] = field(default_factory=dict)
    #: change label -> the heights of the committed blocks that carry it, per validator
    carried: dict[str, dict[str, int]] = field(default_factory=dict)
    #: block label -> the set its branch names for the height two above it, as the drivers
    #: of the validators that hold it read it (the script's own blocks), by name
    sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: block label -> the set the change pending on its branch would leave (none pending: absent)
    pending: dict[str, tuple[str, ...]] = field(default_factory=dict)
    trace: str = ""

    @property
    def safe(self) -> bool:
        return self.conflict is None

    def refused(self, label: str) -> str | None:
        """The code the shipped code refused change ``label`` with, if it never committed."""
        codes = self.refusals.get(label, [])
        return codes[0] if codes and not self.carried.get(label) else None

    def set_of(self, label: str) -> str:
        """The set read above block ``label``, as names, and the one its pending change would
        leave."""
        names = self.sets.get(label)
        text = "?" if names is None else "{" + ", ".join(names) + "}"
        waiting = self.pending.get(label)
        return text if waiting is None else f"{text} (pending: {{{', '.join(waiting)}}})"

    def heights(self) -> dict[str, int]:
        return {name: max(c, default=0) for name, c in sorted(self.commits.items())}


# --- the cluster ----------------------------------------------------------------------------------


class ScriptedNode(PobSimNode):
    """An honest validator as the simulator runs it; a Byzantine one never boots (the script
    signs and builds for it)."""

    cluster: ScriptedCluster

    def boot(self) -> None:
        if self.honest:
            super().boot()

    def perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Note) and effect.event == "transaction left out":
                self.cluster.note_left_out(str(effect.fields["tx"]), str(effect.fields["reason"]))
        super().perform(effects)


class ScriptedCluster(PobCluster):
    """The PoB simulator with the attack's network and Byzantine validators instead of a seed's
    faults, stopped a fixed number of rounds after the script's round 0; a conflict is the
    outcome, not a failure."""

    node_class = ScriptedNode
    nodes: list[ScriptedNode]  # type: ignore[assignment]

    def __init__(self, attack: Attack, *, rule: str | None = None) -> None:
        self.attack = attack
        self.rule = rule
        n = len(attack.honest) + len(attack.byzantine)
        scenario = Scenario(
            attack.name,
            n=n,
            delay_ms=(1, 1),
            byzantine=("scripted",) * len(attack.byzantine),
            set_changes=attack.joiner is not None,
            chaos_ms=(1, 1),
        )
        super().__init__(scenario, 0, full_trace=True)
        honest = iter(attack.honest)
        byzantine = iter(attack.byzantine)
        self.role: dict[bytes, str] = {}
        for node in self.nodes[:n]:
            self.role[node.public_key] = next(honest) if node.honest else next(byzantine)
        if attack.joiner is not None:
            self.role[self.nodes[n].public_key] = attack.joiner
        self.named: dict[str, ScriptedNode] = {self.role[x.public_key]: x for x in self.nodes}
        self.group_of = {name: g for g, names in attack.groups.items() for name in names}
        self.genesis = self.fixture.bundle.genesis
        self.change_txs: dict[bytes, str] = {}
        self.change_tx: dict[str, Transaction] = {}
        for change in attack.changes:
            body = UpdateValidators(
                add=tuple(self.named[a].public_key for a in change.add),
                remove=tuple(self.named[r].public_key for r in change.remove),
            )
            nonce = len(self.change_txs) if change.nonce is None else change.nonce
            tx = sign_tx(self.fixture.bundle.governance.key, self.chain_id, nonce, body)
            self.change_txs[tx.hash()] = change.label
            self.change_tx[change.label] = tx
        if attack.changes_to_all:
            self.set_txs.extend(self.change_tx.values())  # the wallets resubmit them
        self.first_block_round: int | None = None
        self.start_round: int | None = None
        #: every block on the wire, and the script's own by label
        self.blocks_seen: dict[bytes, Block] = {}
        self.labelled: dict[str, Block] = {}
        #: (round, honest name) -> its announce
        self.announces: dict[tuple[int, str], Announce] = {}
        #: the Byzantine validators' drivers, for building only (never started)
        self.builders: dict[str, ChainDriver] = {}
        self.result = AttackOutcome(attack.name, rule)

    @property
    def fixture(self) -> Fixture:
        return scripted_fixture(self.scenario.n)

    @fixture.setter
    def fixture(self, value: Fixture) -> None:
        pass  # the base classes' fixtures: this cluster always uses scripted_fixture

    @property
    def chain_id(self) -> bytes:
        return self.fixture.chain_id

    # --- rounds ---------------------------------------------------------------------------

    def round_at(self, now_ms: int) -> int:
        return (now_ms - self.genesis.genesis_time_ms) // self.round_ms

    def round_start(self, r: int) -> int:
        return self.genesis.genesis_time_ms + r * self.round_ms

    @property
    def origin(self) -> int | None:
        """The absolute round of the script's round 0 (None: not known yet)."""
        if self.attack.split_after is None:
            return self.start_round
        if self.first_block_round is None:
            return None
        return self.first_block_round + self.attack.split_after

    def relative(self, r: int) -> int | None:
        origin = self.origin
        return None if origin is None else r - origin

    def release_at(self, relative: int) -> int:
        """When a message held until relative round k arrives: late in the round before it,
        after the round's blocks, so the validators hold it when round k starts."""
        assert self.origin is not None
        return max(self.now + 1, self.round_start(self.origin + relative) - RELEASE_LEAD_MS)

    # --- the run ----------------------------------------------------------------------------

    def plan_faults(self) -> None:
        """No seeded faults: the clients submit the set changes at once, and the Byzantine
        validators act a quarter into every round."""
        targets = self.nodes if self.attack.changes_to_all else []
        for tx in self.change_tx.values():
            for node in targets:
                self.schedule(self.now + 1, Event("tx", node.index, detail=tx))
        first = self.round_at(self.now) + 1
        self.start_round = first
        for r in range(first, first + 200):
            self.schedule(self.round_start(r) + self.round_ms // 4, Event("script", detail=r))

    def submit_next_tx(self) -> None:
        if self.attack.transfers:
            super().submit_next_tx()

    def resubmit(self) -> None:
        if self.attack.transfers or self.attack.changes_to_all:
            super().resubmit()

    def dispatch(self, event: Event) -> None:
        if event.kind == "script":
            r = int(event.detail)
            self.attack.act(self, self.relative(r), r)
        else:
            super().dispatch(event)

    def live(self) -> bool:
        """Done (not "live": the script ends) once the rounds after round 0 are played."""
        origin = self.origin
        return origin is not None and self.round_at(self.now) >= origin + self.attack.rounds

    def outcome(self) -> Outcome:
        return Cluster.outcome(self)  # no schedules to recompute: the fixture decides none

    def play(self) -> AttackOutcome:
        with bypassed(self.rule):
            self.run()
            self.read_sets()
        self.result.trace = self.render_trace()
        return self.result

    # --- the network ------------------------------------------------------------------------

    def transmit(self, sender: SimNode, to: bytes | None, message: Record) -> None:
        """An honest validator's message: audited as in every simulation, remembered for the
        script, then posted through the attack's network."""
        name = self.role[sender.public_key]
        if isinstance(message, BlockMessage):
            block = message.block
            self.blocks_seen[block.hash()] = block
            if self.first_block_round is None:
                self.first_block_round = block.header.round
                self.record(None, "script", f"first block in round {block.header.round}")
        elif isinstance(message, Announce) and message.signer == sender.public_key:
            self.announces.setdefault((message.round, name), message)
        relative = self.relative(self.round_at(self.now))
        if to is not None and self.attack.drop_requests and relative is not None and relative >= 0:
            assert isinstance(sender, PobSimNode)
            self.audit(sender, message)  # audited all the same: it was signed and sent
            self.record(sender, "lost", message)
            return
        super().transmit(sender, to, message)

    def catch_up_sources(self, node: SimNode) -> list[SimNode]:
        """A fetch is a request and its answer: lost with the other requests."""
        relative = self.relative(self.round_at(self.now))
        if self.attack.drop_requests and relative is not None and relative >= 0:
            return []
        return super().catch_up_sources(node)

    def post(
        self,
        src: int,
        sender_key: bytes,
        target: SimNode,
        message: Record,
        payload: bytes | None = None,
    ) -> None:
        sender = self.role[sender_key]
        receiver = self.role[target.public_key]
        relative = self.relative(self.round_at(self.now))
        at = self.now + 1
        honest = self.by_key[sender_key].honest and target.honest
        if relative is not None and relative >= 0 and honest:
            verdict = self.attack.link(self, sender, receiver, message, relative)
            if verdict is False:
                self.record(target, "lost", message)
                return
            if verdict is not True:
                at = self.release_at(int(verdict))
        self.deliver(target, sender_key, message, at, payload)

    def deliver(
        self, target: SimNode, sender_key: bytes, message: Record, at: int, payload: bytes | None
    ) -> None:
        data = message.encode() if payload is None else payload
        self.schedule(at, Event("deliver", target.index, sender_key, data))

    # --- the Byzantine validators ---------------------------------------------------------------

    def byzantine_send(self, z: str, message: Record, to: Mapping[str, int | None]) -> None:
        """Send a Byzantine validator's message to the named validators: now (None) or held
        until just before relative round k (k)."""
        node = self.named[z]
        for name, hold in to.items():
            at = self.now + 1 if hold is None else self.release_at(hold)
            self.deliver(self.named[name], node.public_key, message, at, None)

    def block_of(self, label: str | None) -> tuple[bytes, int]:
        """The hash and height of a block the script names (None: the genesis head)."""
        if label is None:
            return self.fixture.chain_id, 0
        block = self.labelled[label]
        return block.hash(), block.height

    def propose(
        self,
        z: str,
        label: str,
        parent: str | None,
        r: int,
        *,
        to: Mapping[str, int | None],
        changes: Sequence[str] = (),
    ) -> Block:
        """A Byzantine validator builds a real block of round ``r`` on ``parent`` with its own
        driver (the block path every validator runs), carrying the named changes, and sends
        it."""
        node = self.named[z]
        builder = self.builders.get(z)
        if builder is None:
            builder = self.builders[z] = node.make_driver()
        prev, height = self.block_of(parent)
        node.mempool.clear()
        for change in changes:
            # with the changes of lower nonces (the pool offers consecutive nonces; those in
            # the block's pending ancestors are skipped)
            tx = self.change_tx[change]
            for other in self.change_tx.values():
                if other.nonce < tx.nonce:
                    node.mempool.add(other)
            node.mempool.add(tx)
        made = builder.build_on(prev, height + 1, r, self.now, allow_empty=True)
        # build_on is called outside the driver's input loop here: what it would have
        # emitted (a note per transaction left out, with the refusal's code) is in its buffer
        for effect in builder._out:
            if isinstance(effect, Note) and effect.event == "transaction left out":
                self.note_left_out(str(effect.fields["tx"]), str(effect.fields["reason"]))
        builder._out = []
        if made is None:
            raise SimFailure(f"{z} could not build {label} on {parent}")
        block, execution = made
        builder.remember(block, execution)
        self.labelled[label] = block
        self.blocks_seen[block.hash()] = block
        self.record(node, "script", f"{z} proposes {label}: {self.describe_pob(block)}")
        self.byzantine_send(z, make_block_message(node.key, self.chain_id, block), to)
        return block

    def vote(self, z: str, r: int, parent: str | None, to: Mapping[str, int | None]) -> None:
        """A Byzantine validator announces in round ``r`` on ``parent`` without a block (a
        vote for it when it is a block of round r - 1)."""
        prev, height = self.block_of(parent)
        self.announce(z, r, prev, height + 1, to)

    def announce(
        self, z: str, r: int, prev: bytes, height: int, to: Mapping[str, int | None]
    ) -> None:
        node = self.named[z]
        announce = make_announce(
            node.key,
            self.chain_id,
            height=height,
            round_=r,
            prev_hash=prev,
            block_hash=NO_BLOCK,
            benefit=0,
            final_height=0,
        )
        self.record(node, "byzantine", announce)
        self.byzantine_send(z, announce, to)

    # --- outcomes ---------------------------------------------------------------------------

    def note_left_out(self, tx_hex: str, reason: str) -> None:
        label = self.change_txs.get(bytes.fromhex(tx_hex))
        if label is not None:
            codes = self.result.refusals.setdefault(label, [])
            if reason not in codes:
                codes.append(reason)

    def read_sets(self) -> None:
        """For each block the script built, the size of the set of the height two above it
        on its branch (the furthest its state fixes), as an honest driver that holds it reads
        it: pending, from its branch; committed, from the validator's state (every validator
        reads the same: it is a function of the branch)."""
        for label, block in self.labelled.items():
            height = block.height + 2
            for node in self.nodes:
                driver = node.driver
                if not node.honest or driver is None:
                    continue
                if block.hash() in driver.pending:
                    keys = driver.validators_on(block.hash(), height)
                    view = parent_state(node.state, driver.pending.writes_after(block.hash()))
                    waiting = pending_change(view)
                    if waiting is not None:
                        self.result.pending[label] = tuple(
                            sorted(self.role[k] for k in waiting.keys)
                        )
                elif any(c.block.hash() == block.hash() for c in node.chain):
                    keys = validators_at(node.state, self.genesis, height)
                else:
                    continue
                self.result.sets[label] = tuple(sorted(self.role[k] for k in keys))
                break

    def on_commit(self, node: SimNode, block: Block) -> None:
        name = self.role[node.public_key]
        mine = self.result.commits.setdefault(name, {})
        mine[block.height] = block.hash()
        for tx in block.txs:
            label = self.change_txs.get(tx.hash())
            if label is not None:
                self.result.carried.setdefault(label, {})[name] = block.height
        if self.result.conflict is None:
            for other, theirs in self.result.commits.items():
                known = theirs.get(block.height)
                if other != name and known is not None and known != block.hash():
                    self.result.conflict = block.height
                    self.record(node, "CONFLICT", f"h{block.height} differs from {other}'s")

    def check_invariants(self) -> None:
        """Agreement is the outcome here (on_commit), not a failure."""

    def audit_certificate(self, node: SimNode, committed: CommittedBlock) -> None:
        """A committed block carries its proposer's signature (PoB's certificate), by a member
        of the set of its height as the committing validator's own state names it."""
        block = committed.block
        signers = validators_at(node.state, self.genesis, block.height)
        try:
            committed.certificate.verify(self.chain_id, signers, 1)
        except GridchainError as exc:
            self.fail(f"{node.name()} committed h{block.height} with a bad certificate: {exc}")

    def describe_pob(self, detail: object) -> object:
        if isinstance(detail, Block):
            h = detail.header
            return f"h{h.height} r{h.round} {detail.hash().hex()[:8]} on {h.prev_hash.hex()[:8]}"
        return super().describe_pob(detail)

    def names(self, key: bytes) -> str:
        return self.role.get(key, key.hex()[:8])

    def fail(self, reason: str) -> None:
        raise SimFailure(
            f"scripted attack {self.attack.name} failed: {reason}\n"
            f"last {len(self.trace)} events:\n{self.render_trace()}"
        )


# --- the adversary's building blocks -----------------------------------------------------------


def branch_of(cluster: ScriptedCluster, block_hash: bytes, roots: Sequence[str]) -> str | None:
    """Which of the script's branches (named by their first blocks) a block is on, or None
    below all of them (or unknown)."""
    first = {cluster.labelled[k].hash(): k for k in roots if k in cluster.labelled}
    current: bytes | None = block_hash
    while current is not None:
        root = first.get(current)
        if root is not None:
            return root
        block = cluster.blocks_seen.get(current)
        current = None if block is None else block.header.prev_hash
    return None


def branch_link(sides: Callable[[str, int], tuple[str, ...]], roots: Sequence[str]) -> Link:
    """The network of an attack on branches: a message about a block of one branch (a block
    message, or an announce on it) reaches only ``sides(branch, relative round)``; one about
    the blocks below all branches reaches everyone."""

    def link(cluster: ScriptedCluster, sender: str, receiver: str, message: Record, r: int) -> bool:
        if isinstance(message, BlockMessage):
            branch = branch_of(cluster, message.block.hash(), roots)
        elif isinstance(message, Announce):
            branch = branch_of(cluster, message.prev_hash, roots)
        else:
            branch = None
        return branch is None or receiver in sides(branch, r)

    return link


#: (round -> (label, parent, changes it carries, who gets it)); a Byzantine proposer's script
Proposals = Mapping[int, tuple[str, str | None, tuple[str, ...], tuple[str, ...]]]
#: (round -> (the block voted for, who gets the vote: None now, k before round k))
Votes = Mapping[int, tuple[str, Mapping[str, int | None]]]


def scripted(
    proposer: str, proposals: Proposals, votes: Votes, echo_from: int, then: Act | None
) -> Act:
    """Byzantine validators that follow a script: ``proposer`` builds and sends the blocks of
    ``proposals``, every Byzantine validator sends the votes of ``votes``, and from round
    ``echo_from`` on they act as ``then`` (an echo of each side)."""

    def act(cluster: ScriptedCluster, relative: int | None, r: int) -> None:
        if relative is None or relative < 0:
            return
        proposal = proposals.get(relative)
        if proposal is not None:
            label, parent, changes, to = proposal
            cluster.propose(proposer, label, parent, r, to=dict.fromkeys(to), changes=changes)
        vote = votes.get(relative)
        if vote is not None:
            block, receivers = vote
            for z in cluster.attack.byzantine:
                cluster.vote(z, r, block, receivers)
        if relative >= echo_from and then is not None:
            then(cluster, relative, r)

    return act


# --- a Byzantine strategy -----------------------------------------------------------------------


def echo(modes: Callable[[int, str], str | None]) -> Act:
    """Byzantine validators that copy each group's votes: in every round, to each group (all
    honest validators before round 0), an announce on the block the group's first honest
    member announced on (a vote with it when that announce is one: VOTE), or on that block's
    parent (no vote, it only keeps the group's rounds going: ABSTAIN), as ``modes(relative
    round, group)`` says (None: nothing)."""

    def act(cluster: ScriptedCluster, relative: int | None, r: int) -> None:
        attack = cluster.attack
        groups: Mapping[str, tuple[str, ...]]
        if relative is None or relative < 0:
            groups = {"all": tuple(n for names in attack.groups.values() for n in names)}
        else:
            groups = attack.groups
        for group, members in groups.items():
            mode = VOTE if group == "all" else modes(int(relative or 0), group)
            if mode is None:
                continue
            source = next(
                (cluster.announces[(r, m)] for m in members if (r, m) in cluster.announces),
                None,
            )
            if source is None:
                continue
            prev, height = source.prev_hash, source.height
            if mode == ABSTAIN:
                parent = cluster.blocks_seen.get(prev)
                if parent is None:
                    continue
                prev, height = parent.header.prev_hash, height - 1
            for z in attack.byzantine:
                cluster.announce(z, r, prev, height, dict.fromkeys(members))

    return act

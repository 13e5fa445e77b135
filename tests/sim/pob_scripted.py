"""Scripted adversaries against PoB validator-set changes, on the shipped path (ADR 0049).

The seeded PoB simulator (tests/sim/pob_cluster.py) draws its faults from a seed; the attacks
here need one exact schedule, so they are scripts on the same machinery: every honest validator
is a :class:`~tests.sim.pob_cluster.PobSimNode` (the node's :class:`node.driver.ChainDriver`
around the real :class:`~consensus.pob.PobEngine`, on the real application and state, with
the simulator's mempool, disk and clock), builds its own blocks from the clients' transfers,
and reads the set of every height on every branch from its driver (``validators_on``, the
pending-change path of ``market.validators``).  The set changes are governance transactions
(``UpdateValidators`` signed by the governance key, as the simulator's ``govern``) that the
clients submit to every validator and resubmit until they commit; nothing in the script
computes a set.

What the script controls, as an adversary may:

* **the network**: every message an honest validator sends passes :meth:`ScriptedCluster.post`,
  where the attack decides whether it is delivered (1 ms later, the simulator's delay) or lost
  (a delay past the end of the run, which asynchrony allows);
* **the Byzantine validators** (at most f): they run no engine.  Each round, a quarter in (after
  the honest announces of the round arrived), each of them signs an announce per group of
  honest validators: a copy of the announce of the group's first honest member (a *vote* for
  the same block when that announce is one) or an announce on the grandparent of that block
  (no vote: it only keeps the group's rounds going).  They may so vote on two branches in
  one round, to two groups that never hear of each other; they never propose.

The outcome: every honest validator's commits, the first height at which two of them committed
different blocks, and the refusals the shipped code gave the set changes (the drivers' "left
out" notes).  A *forced* run bypasses one rule for its duration, in the script only (the shipped
code has no flag): :func:`bypassed` replaces one function of ``market.validators`` while the run
lasts, and says which and why in its docstring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from unittest import mock

import gridchain.market.validators as validator_rules
from gridchain.consensus.pob.messages import NO_BLOCK, Announce, BlockMessage, make_announce
from gridchain.market.validators import validators_at
from gridchain.node.driver import Effect, Note
from gridchain.protocol.block import Block, CommittedBlock
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.tx import UpdateValidators, sign_tx
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
from tests.sim.pob_cluster import PobCluster, PobSimNode

#: A Byzantine validator's announce for a group: a vote with the group, or no vote.
VOTE = "vote"
ABSTAIN = "abstain"
#: Rounds played after the split (enough for either side to finalize, with room to spare).
ROUNDS_AFTER_SPLIT = 8


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
class Attack:
    """One scripted attack: the cluster, the changes governance submits, and the adversary.

    ``honest`` names the honest genesis validators in key order, ``byzantine`` the Byzantine
    ones (at most f), ``joiner`` a validator started outside the set (or None).  ``changes``
    are (label, names added, names removed), submitted in order with consecutive nonces.
    ``groups`` splits the honest validators (joiner included) from the split round on;
    ``split_after`` is how many rounds after the first round with a block the split starts.
    ``link(cluster, sender, receiver, round)`` says whether an honest message sent in ``round``
    (relative to the split: 0 is the split round) from one group to another is delivered;
    ``byzantine_mode(round, group)`` what the Byzantine validators announce to that group
    (VOTE, ABSTAIN or None for nothing).
    """

    name: str
    honest: tuple[str, ...]
    byzantine: tuple[str, ...]
    joiner: str | None
    changes: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]
    groups: Mapping[str, tuple[str, ...]]
    split_after: int
    link: Callable[[ScriptedCluster, str, str, Record, int], bool]
    byzantine_mode: Callable[[int, str], str | None]


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
    trace: str = ""

    @property
    def safe(self) -> bool:
        return self.conflict is None

    def refused(self, label: str) -> str | None:
        """The code the shipped code refused change ``label`` with, if it never committed."""
        codes = self.refusals.get(label, [])
        return codes[0] if codes and not self.carried.get(label) else None

    def heights(self) -> dict[str, int]:
        return {name: max(c, default=0) for name, c in sorted(self.commits.items())}


# --- the cluster ----------------------------------------------------------------------------------


class ScriptedNode(PobSimNode):
    """An honest validator as the simulator runs it; a Byzantine one never boots (the script
    signs its announces)."""

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
    faults, stopped a fixed number of rounds after the split; a conflict is the outcome, not a
    failure."""

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
        for label, added, removed in attack.changes:
            body = UpdateValidators(
                add=tuple(self.named[a].public_key for a in added),
                remove=tuple(self.named[r].public_key for r in removed),
            )
            tx = sign_tx(self.fixture.bundle.governance.key, self.chain_id, len(self.set_txs), body)
            self.set_txs.append(tx)
            self.change_txs[tx.hash()] = label
        self.first_block_round: int | None = None
        self.blocks_seen: dict[bytes, Block] = {}
        #: (round, honest name) -> its announce
        self.announces: dict[tuple[int, str], Announce] = {}
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

    @property
    def split_round(self) -> int | None:
        if self.first_block_round is None:
            return None
        return self.first_block_round + self.attack.split_after

    def relative_round(self) -> int | None:
        """The current round counted from the split (0: the split round), None before the
        first block."""
        split = self.split_round
        return None if split is None else self.round_at(self.now) - split

    # --- the run ----------------------------------------------------------------------------

    def plan_faults(self) -> None:
        """No seeded faults: the clients submit the set changes at once, and the Byzantine
        validators act a quarter into every round."""
        for tx in self.set_txs:
            for node in self.nodes:
                self.schedule(self.now + 1, Event("tx", node.index, detail=tx))
        first = self.round_at(self.now) + 1
        for r in range(first, first + 200):
            at = self.genesis.genesis_time_ms + r * self.round_ms + self.round_ms // 4
            self.schedule(at, Event("script", detail=r))

    def dispatch(self, event: Event) -> None:
        if event.kind == "script":
            self.byzantine_round(int(event.detail))
        else:
            super().dispatch(event)

    def live(self) -> bool:
        """Done (not "live": the script ends) once the rounds after the split are played."""
        split = self.split_round
        return split is not None and self.round_at(self.now) >= split + ROUNDS_AFTER_SPLIT

    def outcome(self) -> Outcome:
        return Cluster.outcome(self)  # no schedules to recompute: the fixture decides none

    def play(self) -> AttackOutcome:
        with bypassed(self.rule):
            self.run()
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
        super().transmit(sender, to, message)

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
        relative = self.relative_round()
        scripted = relative is not None and relative >= 0
        if scripted and {sender, receiver} <= self.group_of.keys():
            assert relative is not None
            if not self.attack.link(self, sender, receiver, message, relative):
                self.record(target, "lost", message)
                return
        data = message.encode() if payload is None else payload
        self.schedule(self.now + 1, Event("deliver", target.index, sender_key, data))

    # --- the Byzantine validators ---------------------------------------------------------------

    def byzantine_round(self, r: int) -> None:
        """Each Byzantine validator announces to each group what the attack says."""
        split = self.split_round
        groups: Mapping[str, tuple[str, ...]]
        if split is None or r < split:
            every = tuple(n for names in self.attack.groups.values() for n in names)
            groups, relative = {"all": every}, None
        else:
            groups, relative = self.attack.groups, r - split
        for group, members in groups.items():
            mode = VOTE if relative is None else self.attack.byzantine_mode(relative, group)
            if mode is None:
                continue
            source = next(
                (self.announces[(r, m)] for m in members if (r, m) in self.announces), None
            )
            if source is None:
                continue
            prev, height = source.prev_hash, source.height
            if mode == ABSTAIN:
                parent = self.blocks_seen.get(prev)
                if parent is None:
                    continue
                prev, height = parent.header.prev_hash, height - 1
            for z in self.attack.byzantine:
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
                self.record(node, "byzantine", f"to {group} ({mode})")
                for member in members:
                    self.post(node.index, node.public_key, self.named[member], announce)

    # --- outcomes ---------------------------------------------------------------------------

    def note_left_out(self, tx_hex: str, reason: str) -> None:
        label = self.change_txs.get(bytes.fromhex(tx_hex))
        if label is not None:
            codes = self.result.refusals.setdefault(label, [])
            if reason not in codes:
                codes.append(reason)

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

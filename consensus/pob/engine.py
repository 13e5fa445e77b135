"""Proof-of-Benefit (source ch. 5) as a pure state machine, made safe with Streamlet's votes.

Rounds
    Round r covers ``[genesis_time_ms + r * round_ms, + round_ms)`` (the source's ROUNDTIME).
    At its start a validator chooses the block to build on (below) and asks the runtime for a
    candidate there (``RequestProposal``); the runtime answers with a block whose header
    carries the ``benefit`` the application computed from its C&D schedule (higher is better),
    or None.  The validator then signs and broadcasts ``Announce(height, round, prev_hash,
    block_hash, benefit, final_height)`` (``block_hash`` all zeros when it has no candidate).
    Only the winner sends its whole block: after the announce window (``round_ms // 3``) each
    validator ranks the announces of the round that build on the same parent as its own by
    highest benefit, then lowest ``sha256(prev_hash + proposer)`` (which the proposer cannot
    grind, unlike a block hash); rank 0 broadcasts its ``BlockMessage`` at the window's end.
    Withheld blocks: rank k (k = 1..3) broadcasts its own block at ``window + k * round_ms //
    6`` unless it already holds a valid block of a better rank, so a winner that withholds (or
    sends an invalid block) costs one slot, not the round.  Validators that proved to lie about
    a benefit are left out of the ranking from then on.

Rounds in step (ADR 0033)
    Clocks of peer devices disagree, by most of a round in the fault manifests, so the clock
    only proposes when a round starts; the others' announces keep the rounds in step.  A
    validator holding announces of f + 1 others in higher rounds jumps to the highest round
    f + 1 of them are in (one of them is honest).  A round ends only once f + 1 others have
    reached it, and not before the later of the clock's next round start and round_ms less
    the announce window after they did (so rounds grow while announces are slow, and come
    back to the clock after; a round is never skipped for the clock).  So a clock behind is
    pulled forward, a clock ahead held back (it would vote before the last round's block
    exists), and clocks that agree keep the clock's rounds.  A round entered off the clock
    counts its window and slots from its entry; a validator waiting for f + 1 others sends
    its announce again every round_ms.

Votes and fork choice
    An announce of round r whose ``prev_hash`` names a block of round r - 1 is its signer's
    *vote* for that block; a block with votes from q = n - f distinct validators is
    *notarized* (the committed head counts as notarized).  At the start of round r an honest
    validator votes (builds on) the best block B of round r - 1 it validated such that B's
    parent is notarized and at least as high as the parent of every block it voted for before
    (its *lock height*, persisted).  "Best" is the highest parent, then the largest summed
    benefit from the committed head (the source's fork choice), then the announce ranking.
    Without such a block it builds on the highest notarized block of an earlier round (the
    heaviest, then the lowest hash, among equals), which is no vote.  So fork choice is by
    summed benefit among the longest notarized branches: a branch that is notarized further
    wins whatever its benefit, because finality could not be safe otherwise.

Finality
    A block is final, with its ancestors, when it is the second-to-last of ``finality_depth``
    (at least 3) notarized blocks of consecutive rounds, each the parent of the next
    (Streamlet's rule for 3; a larger depth only asks for a longer run).  So that content
    does become final, a request on a pending branch that carries transactions or a schedule
    sets ``allow_empty``: the runtime then builds a block even with nothing to put in it,
    until the content is final.  Final blocks are committed in height order with
    ``CommitBlock(block, Certificate(Vote(h, round, hash, COMMIT), (proposer's signature,)))``:
    the certificate proves who made the block
    (``commit_rule``), not that it is final.

What is guaranteed
    *Safety* (no two honest validators commit different blocks at one height) under any
    network behaviour (loss, delay, partitions, reordering) and crashes with restart, with at
    most f = (n - 1) // 3 Byzantine validators.  This is Streamlet's argument (Chan and Shi,
    2020) with its epoch-e votes cast in round e + 1: an honest validator votes at most once
    per round (the persisted guard), only for a block whose parent it saw notarized, and never
    for a block whose parent is lower than that of a block it voted for before (the persisted
    lock height); two q-sets share an honest validator, so at most one block per round is
    notarized, and a final block's run excludes every conflicting notarized block at its
    height, hence every conflicting final block.  The minority side of a partition cannot
    notarize, so it cannot finalize.  *Liveness* needs partial synchrony: once messages arrive
    within a slot (``round_ms // 6``), every round whose best announcer is honest notarizes a
    block, and three such rounds in a row finalize one; each clock may be off by most of a
    round (Rounds in step), not only by a slot.
    A Byzantine best announcer can spoil the rounds it wins (by showing its block to some
    validators only); benefit ties are broken by a key that changes with the parent, so it
    wins about one round in n.
    Catch-up (``SyncTo``) trusts what peers serve for finality: a fetched block's certificate
    is its proposer's signature only, not proof that the block is final.

Misbehaviour reported (``ReportEvidence``)
    ``benefit_mismatch``: an announce and a block message of one proposer for one round name
    the same block with different benefits (both signed statements), or the runtime
    recomputed another benefit than the header's (the signed block message).
    ``equivocating-announce``: two different announces of one validator for one round.
    ``equivocating-block``: a block message that differs from its proposer's announce or from
    an earlier block message of the same proposer and round.

Restart safety
    Before an announce leaves, ``pob/guard`` stores its round and block and the lock height
    (:class:`~consensus.pob.messages.GuardRecord`): a restarted validator never announces
    again in a round at or below it and never votes below the lock.  When the lock height
    rises, ``pob/lock`` stores the notarized block at that height, its pending ancestors and
    its votes, which the engine revalidates (``ValidateBlock``) at start and shows to peers
    that ask for the block (``BlockRequest``), so that even a cluster that restarted as a
    whole can vote again.

Validator-set changes (ADR 0044, 0049)
    A change is in force two heights above the block that completes a final run after it (a
    run of consecutive-round blocks from the change's own block on, the chain's record of it:
    market/validators.py), so every set a notarized block is counted with is one that block
    proves final; the set of a pending height comes from its own branch (``validators_on``,
    the driver's).  A round that
    builds height h on block P signs, ranks candidates and paces with the set of h on P's
    branch, and the votes for a block B count from the set of the height after B on B's
    branch.  A key outside that set follows without signing.

Nothing here reads a clock, draws randomness or iterates over a set: time comes in as
``now_ms`` and every choice is made by sorting on deterministic keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from gridchain.consensus.certificates import CommitRule
from gridchain.consensus.engine import (
    Action,
    Broadcast,
    ChainHead,
    CommitBlock,
    Persist,
    ReportEvidence,
    RequestProposal,
    Send,
    SyncTo,
    ValidateBlock,
)
from gridchain.consensus.kernel.alarm import Alarm
from gridchain.consensus.kernel.guard import DoubleSignError, read_record
from gridchain.consensus.kernel.validators import ConsensusConfigError, quorum_size
from gridchain.consensus.kernel.verify import SignatureCache, Verifier
from gridchain.consensus.pob.budget import MIN_BLOCK_TXS, round_budget
from gridchain.consensus.pob.messages import (
    NO_BLOCK,
    Announce,
    BlockMessage,
    BlockRequest,
    GuardRecord,
    LockRecord,
    check_shape,
    decode_guard,
    decode_lock,
    decode_message,
    make_announce,
    make_block_message,
)
from gridchain.consensus.pob.tree import MIN_FINALITY_DEPTH, BlockTree, TreeBlock, tie_key
from gridchain.protocol.block import Block, VoteStep
from gridchain.protocol.crypto import SigningKey, verify
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import DecodeError

GUARD_KEY: Final = b"pob/guard"
LOCK_KEY: Final = b"pob/lock"
#: Announces and block messages are kept for this many rounds back.
KEEP_ROUNDS: Final = 16
#: Ranks 1..MAX_FALLBACK_RANK send their block when the better ones did not (slots of
#: round_ms // 6 after the announce window of round_ms // 3).
MAX_FALLBACK_RANK: Final = 3
ORPHAN_LIMIT: Final = 256
INVALID_LIMIT: Final = 1024

#: ``(parent_hash, height) -> the set that certifies height on the branch ending at
#: parent_hash`` (the chain driver's ``validators_on``): the set of a pending height is read
#: from the state its own branch leaves (ADR 0044)
BranchValidators = Callable[[bytes, int], Sequence[bytes]]


class PobConfigError(ConsensusConfigError):
    code = "pob_config"
    http_status = 500


@dataclass(frozen=True, slots=True)
class _Awaiting:
    """An outstanding RequestProposal."""

    round: int
    prev_hash: bytes
    height: int
    #: the block voted for (prev_hash itself) when the announce is a vote
    vote: TreeBlock | None
    #: a candidate built ahead, for the next round (ADR 0045): kept, not announced
    ahead: bool = False

    @property
    def place(self) -> tuple[int, bytes, int]:
        """Where the candidate goes: (round, parent, height)."""
        return (self.round, self.prev_hash, self.height)


class PobEngine:
    """The PoB engine of one validator (see the module docstring for the protocol)."""

    name = "pob"

    def __init__(
        self,
        key: SigningKey,
        chain_id: bytes,
        validators: Sequence[bytes],
        *,
        round_ms: int,
        genesis_time_ms: int,
        finality_depth: int,
        verifier: Verifier = verify,
        validators_on: BranchValidators | None = None,
    ) -> None:
        """``validators`` is the genesis set; ``validators_on`` tells the set of each height on
        each branch (without it, ``validators`` is the set of every height).  ``key`` may be
        outside the set: this validator then follows without signing (ADR 0035, 0044)."""
        vals = tuple(validators)
        if not vals or len(set(vals)) != len(vals):
            raise PobConfigError("the validators must be distinct and at least one")
        if round_ms < 6:
            raise PobConfigError("round_ms must be at least 6")
        if finality_depth < 1:
            raise PobConfigError("finality_depth must be positive")
        self._key = key
        self._me = key.public_key
        self._chain_id = chain_id
        self._vals = vals
        self._validators_on = validators_on
        #: every key of a set this validator used lately: messages of others are dropped
        self._members = frozenset(vals)
        self._q = quorum_size(len(vals), "bft")
        self._f1 = 0
        #: the set of the current round (the set of the height it builds, on its branch)
        self._round_set = frozenset(vals)
        self._use_round_set(vals)
        self._round_ms = round_ms
        self._genesis_ms = genesis_time_ms
        self._window_ms = round_ms // 3
        self._slot_ms = max(1, round_ms // 6)
        self._depth = max(MIN_FINALITY_DEPTH, finality_depth)
        #: what a block may carry (a proposer's limit and a validator's check, ADR 0045)
        self._budget = round_budget(round_ms)
        #: how many transactions this validator's candidates take (at most the budget): halved
        #: after a round that lasted longer than round_ms and a slot (down to _min_fill),
        #: raised by an eighth of the budget after one that did not (see _adapt_fill)
        self._fill = self._budget.max_txs
        #: never below a quarter of the budget: rounds also run long for reasons a smaller
        #: block does not cure (signature checks at admission, a partition), and a fill that
        #: kept halving would then cap throughput far below what the rounds carry
        self._min_fill = max(min(MIN_BLOCK_TXS, self._fill), self._fill // 4)
        self._check = SignatureCache(chain_id, verifier).check
        self._head = ChainHead(0, b"\x00" * 32, 0)
        self._tree = BlockTree(self._q, self._head.block_hash, 0, 0, None)
        self._guard_round = -1
        self._lock_height = 0
        self._round = -1
        #: when this validator entered the current round (its slots count from there)
        self._round_start_ms = 0
        #: when f + 1 other validators' announces of the current round (or a later one) were
        #: here (None: not yet; the round does not end before, see _round_end)
        self._quorum_ms: int | None = None
        #: while waiting for that quorum: when to send this round's announce again
        self._resend_ms = 0
        self._my_announce: Announce | None = None
        #: the highest round each other validator announced in (for the catch-up)
        self._top_rounds: dict[bytes, int] = {}
        #: the highest announce of each validator beyond the next round, with its sender:
        #: handled once a catch-up brings this validator near its round
        self._ahead: dict[bytes, tuple[bytes, Announce]] = {}
        self._round_jumps = 0
        self._rounds_waited = 0
        self._tip_height = 0
        self._awaiting: _Awaiting | None = None
        self._my_block: BlockMessage | None = None
        self._my_prev = b""
        self._block_done = True
        #: Rounds that overlap (ADR 0045): once a block of the current round is in the tree,
        #: from ``_ahead_due`` on (``_ahead_wanted`` after it) the candidate of the next round
        #: is built on the block this validator would vote for, and announced at once when the
        #: next round starts on that block (``_prebuilt``: its (round, parent, height) and it).
        self._ahead_due: int | None = None
        self._ahead_wanted = False
        self._ahead_round = -1
        self._prebuilt: tuple[tuple[int, bytes, int], Block] | None = None
        self._candidates_ahead = 0
        #: round -> signer -> its first announce of that round
        self._announces: dict[int, dict[bytes, Announce]] = {}
        #: (proposer, round) -> block messages seen (at most two: the second is evidence)
        self._blocks_by: dict[tuple[bytes, int], list[BlockMessage]] = {}
        self._validating: dict[bytes, BlockMessage] = {}
        #: blocks whose parent is missing, with who sent them (to ask for the parent)
        self._orphans: dict[bytes, tuple[BlockMessage, bytes]] = {}
        self._invalid: dict[bytes, None] = {}
        self._requested: dict[bytes, int] = {}
        self._answered: dict[tuple[bytes, bytes], int] = {}
        self._offenders: dict[bytes, None] = {}
        self._reported: dict[tuple[bytes, str, int], None] = {}
        self._emitted_height = 0
        self._sync_requested = (0, -1)
        self._alarm = Alarm()
        self._slot_memo: tuple[tuple[int, int, int], int | None] = ((-1, 0, 0), None)

    # --- the validator set (ADR 0044) --------------------------------------------------------

    def _set_on(self, parent: bytes, height: int) -> tuple[bytes, ...]:
        """The set that certifies ``height`` on the branch ending at ``parent``."""
        if self._validators_on is None:
            return self._vals
        return tuple(self._validators_on(parent, height))

    def _use_round_set(self, keys: Sequence[bytes]) -> None:
        """Pace rounds, rank announces and sign with the set of the height the round builds."""
        self._round_set = frozenset(keys)
        self._members = self._members | self._round_set
        n = len(keys)
        #: f + 1 other validators (all others in a cluster of fewer than four): at least one
        #: of them is honest, so their rounds are rounds an honest validator is in
        self._f1 = min(n - quorum_size(n, "bft") + 1, n - 1)

    def _voters_of(self, block: Block, block_hash: bytes) -> frozenset[bytes]:
        """Who may vote for ``block``: the set of the round that votes for it, the set of the
        height after it on its own branch."""
        keys = frozenset(self._set_on(block_hash, block.height + 1))
        self._members = self._members | keys
        return keys

    # --- Engine interface -----------------------------------------------------------------

    def start(self, head: ChainHead, persisted: Mapping[bytes, bytes], now_ms: int) -> list[Action]:
        guard = read_record(persisted, GUARD_KEY, decode_guard)
        lock = read_record(persisted, LOCK_KEY, decode_lock)
        if guard is not None:
            self._guard_round = guard.round
            self._lock_height = guard.notarized_height
        self._head = head
        self._emitted_height = head.height
        self._tree = BlockTree(self._q, head.block_hash, head.height, head.timestamp_ms, None)
        actions: list[Action] = []
        if lock is not None:
            for announce in lock.votes:
                self._tree.add_vote(announce)
            for message in lock.chain:
                if message.block.height > head.height:
                    self._orphans[message.block.hash()] = (message, self._me)
            actions.extend(self._adopt_orphans(head.block_hash))
        actions.extend(self._advance(now_ms))
        return self._finish(actions)

    def decode_message(self, data: bytes) -> Record:
        return decode_message(data)

    def on_tick(self, now_ms: int) -> list[Action]:
        self._alarm.fired()
        return self._finish(self._advance(now_ms))

    def on_message(self, sender: bytes, message: Record, now_ms: int) -> list[Action]:
        """Handle a peer's message.  ``sender`` is not trusted: messages are signed."""
        try:
            check_shape(message)
        except DecodeError:
            return []
        actions: list[Action] = []
        if isinstance(message, Announce):
            actions.extend(self._on_announce(sender, message, now_ms))
        elif isinstance(message, BlockMessage):
            actions.extend(self._on_block(sender, message))
        elif isinstance(message, BlockRequest):
            actions.extend(self._on_request(sender, message))
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_proposal(self, block: Block | None, now_ms: int) -> list[Action]:
        awaiting, self._awaiting = self._awaiting, None
        if awaiting is not None and awaiting.ahead:
            if awaiting.round == self._round + 1 and self._fits(block, awaiting):
                assert block is not None
                self._prebuilt = (awaiting.place, block)
            return self._finish([])
        if awaiting is None or awaiting.round != self._round:
            return self._finish([])  # the round ended before the runtime answered
        return self._finish(self._announce(awaiting, block, now_ms))

    def _fits(self, block: Block | None, awaiting: _Awaiting) -> bool:
        """Whether the runtime's answer is a candidate of this validator for ``awaiting``
        within the round's budget."""
        return block is not None and self._is_own(block, awaiting) and self._budget.admits(block)

    def _announce(self, awaiting: _Awaiting, block: Block | None, now_ms: int) -> list[Action]:
        """Sign and send this round's announce for ``block`` (None: no candidate), after
        the guard (and the lock, when the announce raises it) is persisted."""
        r = awaiting.round
        if r <= self._guard_round:
            raise DoubleSignError(
                f"refusing a second announce in round {r}: already announced in round "
                f"{self._guard_round}",
                evidence={"round": str(r), "signed_round": str(self._guard_round)},
            )
        candidate = block if self._fits(block, awaiting) else None
        actions: list[Action] = []
        vote = awaiting.vote
        if vote is not None and vote.height - 1 > self._lock_height:
            # Voting raises the lock: store the notarized parent, its ancestors and votes.
            self._lock_height = vote.height - 1
            # (a parent no longer in the tree was committed meanwhile: the head covers it)
            pending = vote.parent in self._tree.blocks
            chain = self._tree.chain_to(vote.parent) if pending else []
            record = LockRecord(
                tuple(node.message for node in chain), self._tree.notarization(vote.parent)
            )
            actions.append(Persist(LOCK_KEY, record.encode()))
        block_hash = NO_BLOCK if candidate is None else candidate.hash()
        benefit = 0 if candidate is None else candidate.header.benefit
        announce = make_announce(
            self._key,
            self._chain_id,
            height=awaiting.height,
            round_=r,
            prev_hash=awaiting.prev_hash,
            block_hash=block_hash,
            benefit=benefit,
            final_height=self._head.height,
        )
        self._guard_round = r
        guard = GuardRecord(r, block_hash, self._lock_height)
        actions.append(Persist(GUARD_KEY, guard.encode()))
        actions.append(Broadcast(announce))
        self._my_announce = announce
        self._store_announce(announce)
        if candidate is not None:
            message = make_block_message(self._key, self._chain_id, candidate)
            self._blocks_by[(self._me, r)] = [message]
            if self._tree.knows(awaiting.prev_hash):
                # the runtime built it: it holds it
                self._tree.add(message, block_hash, self._voters_of(candidate, block_hash))
                self._note_round_block(r)
            self._my_block = message
            self._my_prev = awaiting.prev_hash
            self._block_done = False
        actions.extend(self._progress(now_ms))
        return actions

    def on_block_validated(
        self, block_hash: bytes, valid: bool, now_ms: int, reason: str = ""
    ) -> list[Action]:
        message = self._validating.pop(block_hash, None)
        if message is None:
            return []
        actions: list[Action] = []
        block = message.block
        if not valid:
            if reason == "unknown_parent":
                return []  # the runtime lost the parent (a restart): ask again if it comes up
            self._remember_invalid(block_hash)
            if reason == "benefit_mismatch":
                actions.extend(
                    self._report(
                        block.header.proposer, "benefit_mismatch", block.header.round, (message,)
                    )
                )
            return self._finish(actions)
        if block.height <= self._head.height or not self._tree.knows(block.header.prev_hash):
            return self._finish(actions)  # its branch was pruned meanwhile
        if block_hash not in self._tree:
            self._tree.add(message, block_hash, self._voters_of(block, block_hash))
            self._note_round_block(block.header.round)
        actions.extend(self._adopt_orphans(block_hash))
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_block_committed(self, head: ChainHead, now_ms: int) -> list[Action]:
        self._head = head
        # Forget keys of sets no block above the head uses (a removed validator's).
        self._members = self._round_set.union(
            *(voters for voters, _ in self._tree.voters.values()),
            self._set_on(head.block_hash, head.height + 1),
        )
        if self._tree.knows(head.block_hash):
            self._tree.reroot(head.block_hash, head.height, head.timestamp_ms)
        else:
            votes = self._tree.votes
            self._tree = BlockTree(self._q, head.block_hash, head.height, head.timestamp_ms, None)
            self._tree.votes = votes
        self._emitted_height = max(self._emitted_height, head.height)
        self._orphans = {h: o for h, o in self._orphans.items() if o[0].block.height > head.height}
        actions = self._adopt_orphans(head.block_hash)
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_pending_work(self, pending: bool, now_ms: int) -> list[Action]:
        return []  # rounds are driven by the clock, not by the mempool

    def commit_rule(self, block: Block) -> CommitRule:
        """The proposer's own COMMIT-step signature: finality is by notarized depth, the
        certificate proves who made the block (notarization votes are announces, not votes)."""
        return CommitRule(frozenset((block.header.proposer,)), 1, VoteStep.COMMIT)

    def status(self) -> Mapping[str, int | str]:
        return {
            "engine": self.name,
            "height": self._head.height,
            "round": max(self._round, 0),
            "tip_height": self._tip_height,
            # How the rounds keep in step (a stall's first clue, see _advance): rounds this
            # validator skipped to catch up with f + 1 others, and rounds at whose end it
            # still waited for f + 1 others' announces.
            "round_jumps": self._round_jumps,
            "rounds_waited": self._rounds_waited,
            # Rounds that overlap (ADR 0045): announces whose candidate was built during the
            # round before.
            "candidates_ahead": self._candidates_ahead,
            # and how many transactions its candidates take now (at most the round's budget)
            "fill_txs": self._fill,
        }

    # --- rounds ---------------------------------------------------------------------------

    def _round_at(self, now_ms: int) -> int:
        if now_ms < self._genesis_ms:
            return -1
        return (now_ms - self._genesis_ms) // self._round_ms

    def _round_start(self, r: int) -> int:
        return self._genesis_ms + r * self._round_ms

    def _advance(self, now_ms: int) -> list[Action]:
        """Start the first round when the clock reaches it, then each next round when the
        current one ends (:meth:`_round_end`); until f + 1 others announced in the current
        round it does not end, and this validator's announce goes out again each round_ms
        (it may have been lost).  Catch-up (:meth:`_catch_up`) is driven by announces."""
        actions: list[Action] = []
        if self._round < 0:
            r = self._round_at(now_ms)
            if r >= 0:
                actions.extend(self._start_round(r, now_ms))
        else:
            self._note_quorum(now_ms)
            if self._quorum_ms is None:
                actions.extend(self._resend(now_ms))
            elif now_ms >= self._round_end():
                # The next round, never a skip: finality needs notarized blocks of
                # consecutive rounds (catch-up skips only to where f + 1 others are).
                actions.extend(self._start_round(self._round + 1, now_ms))
        actions.extend(self._progress(now_ms))
        return actions

    def _round_end(self) -> int:
        """When the current round ends (once f + 1 others reached it): at the next round's
        start on this validator's clock, but never before round_ms less the announce window
        after they reached it.  So a validator whose clock is ahead lets the others' rounds
        pace its own instead of voting before the last round's block exists; validators whose
        clocks agree keep the clock's rounds (the others' announces arrive within the
        window); and while announces take longer than the window (a loaded machine) rounds
        grow longer instead of cutting the others' short, and come back to the clock once
        announces are quick again."""
        assert self._quorum_ms is not None
        return max(
            self._round_start(self._round + 1),
            self._quorum_ms + self._round_ms - self._window_ms,
        )

    def _note_quorum(self, now_ms: int) -> None:
        """Remember when f + 1 other validators have announced in the current round or a
        later one (a validator in a later round went through this one or jumped over it:
        the announces it sent before may have been lost, and it sends only its current
        round's again)."""
        if self._quorum_ms is not None or self._round < 0:
            return
        there = sum(
            1
            for signer, top in self._top_rounds.items()
            if top >= self._round and signer in self._round_set
        )
        if there >= self._f1:
            self._quorum_ms = now_ms

    def _resend(self, now_ms: int) -> list[Action]:
        """The round is over on the clock but f + 1 others have not announced in it: send
        this validator's announce again (the same signed message), once per round_ms."""
        if now_ms < self._resend_ms:
            return []
        if self._resend_ms == self._round_start_ms + self._round_ms:
            self._rounds_waited += 1
        self._resend_ms = now_ms + self._round_ms
        if self._my_announce is None or self._my_announce.round != self._round:
            return []
        return [Broadcast(self._my_announce)]

    def _catch_up(self, now_ms: int) -> list[Action]:
        """Jump to the highest round that f + 1 other validators announced in, if it is
        above this validator's: at least one honest validator is there, so the jump is never
        led by Byzantine validators alone, and a validator whose clock is behind (or that
        was cut off, paused or restarted) joins the others' round at once instead of
        announcing after their announce window."""
        tops = [top for signer, top in self._top_rounds.items() if signer in self._round_set]
        if self._f1 < 1 or len(tops) < self._f1:
            return []
        target = sorted(tops, reverse=True)[self._f1 - 1]
        if target <= self._round:
            return []
        self._round_jumps += 1
        actions = self._start_round(target, now_ms)
        due = [held for held in self._ahead.values() if held[1].round <= target + 1]
        for signer in [s for s, held in self._ahead.items() if held[1].round <= target + 1]:
            del self._ahead[signer]
        for sender, announce in due:
            actions.extend(self._on_announce(sender, announce, now_ms))
        return actions

    def _note_round(self, signer: bytes, r: int) -> None:
        if r > self._top_rounds.get(signer, -1):
            self._top_rounds[signer] = r

    def _adapt_fill(self, r: int, now_ms: int) -> None:
        """Fill candidates to what the rounds actually carry (ADR 0045).  The budget is what a
        validator with a core of its own carries; a loaded one (or many validators sharing a
        machine, as in the benchmarks) takes longer, and ADR 0033 then lets its rounds grow.
        So a round that lasted longer than round_ms and a slot halves this validator's fill,
        and a round on time raises it again by an eighth of the budget: a proposer's choice,
        below the budget that validity checks.  Jumps (catch-up) change nothing."""
        if self._round < 0 or r != self._round + 1:
            return
        budget = self._budget.max_txs
        if now_ms - self._round_start_ms > self._round_ms + self._slot_ms:
            self._fill = max(self._min_fill, self._fill // 2)
        else:
            self._fill = min(budget, self._fill + max(1, budget // 8))

    def _start_round(self, r: int, now_ms: int) -> list[Action]:
        self._adapt_fill(r, now_ms)
        start = self._round_start(r)
        # On time (within a slot of the clock's start), the round keeps the clock's timing;
        # entered late or early (a catch-up, a clock ahead), its slots count from now.
        self._round_start_ms = start if start <= now_ms < start + self._slot_ms else now_ms
        # A round this validator announced in before a restart (it never announces there
        # again) ends on its clock: it has no announce for f + 1 others to answer.
        self._quorum_ms = self._round_start_ms if r <= self._guard_round else None
        self._resend_ms = self._round_start_ms + self._round_ms
        self._my_announce = None
        self._round = r
        self._awaiting = None
        self._my_block = None
        self._block_done = True
        prebuilt, self._prebuilt = self._prebuilt, None
        self._ahead_due = None
        self._ahead_wanted = False
        self._prune(r)
        target = self._vote_target(r)
        prev = target.block_hash if target is not None else self._fallback_tip(r)
        height = self._tree.height_of(prev) + 1
        self._tip_height = height - 1
        self._use_round_set(self._set_on(prev, height))
        actions = self._retry_orphans()
        if any(node.round == r for node in self._tree.blocks.values()):
            self._note_round_block(r)  # a block of this round came before the round did
        if r <= self._guard_round:
            return actions  # announced in this round before a restart: never again
        if self._me not in self._round_set:
            return actions  # not in the set of that height: follow without signing
        awaiting = _Awaiting(r, prev, height, target)
        if prebuilt is not None and prebuilt[0] == awaiting.place:
            # Built during the last round on the block this round votes for: announce now.
            self._candidates_ahead += 1
            actions.extend(self._announce(awaiting, prebuilt[1], now_ms))
            return actions
        self._awaiting = awaiting
        actions.append(self._proposal_request(awaiting))
        return actions

    def _proposal_request(self, awaiting: _Awaiting) -> RequestProposal:
        """Ask the runtime for a candidate on ``awaiting.prev_hash``, within the budget."""
        prev = awaiting.prev_hash
        return RequestProposal(
            awaiting.height,
            awaiting.round,
            prev,
            self._tree.timestamp_of(prev) + 1,
            allow_empty=self._carries_content(prev),
            max_txs=self._fill,
            max_bytes=self._budget.max_bytes,
        )

    def _note_round_block(self, r: int) -> None:
        """A block of round ``r`` entered the tree: if ``r`` is the current round, the next
        round's candidate is due to be built ahead (:meth:`_build_ahead`) half a round in,
        after the winner's and the first fallback's slots, so it builds on the block this
        validator will most likely vote for and misses as little of the mempool as it can."""
        if r != self._round or self._ahead_round > r or self._ahead_due is not None:
            return
        if self._ahead_wanted:
            return
        self._ahead_due = self._round_start_ms + self._window_ms + self._slot_ms

    def _build_ahead(self, now_ms: int) -> list[Action]:
        """Rounds that overlap (ADR 0045): build the next round's candidate now, on the block
        this validator would vote for in it, so that the next round announces at its start
        instead of building first (a candidate sized to the round takes a while to execute,
        and every validator builds one).  Nothing is signed: the announce still leaves only
        in its round, after its guard."""
        if self._ahead_due is not None and now_ms >= self._ahead_due:
            self._ahead_due = None
            self._ahead_wanted = True
        nxt = self._round + 1
        if (
            not self._ahead_wanted
            or self._awaiting is not None
            or not self._block_done
            or nxt <= self._guard_round
        ):
            return []
        target = self._vote_target(nxt)
        if target is None:
            return []  # no votable block yet (its parent's votes may still come)
        if self._me not in self._set_on(target.block_hash, target.height + 1):
            return []  # not in the set of that height: that round follows without signing
        self._ahead_wanted = False
        self._ahead_round = nxt
        self._awaiting = _Awaiting(nxt, target.block_hash, target.height + 1, target, ahead=True)
        return [self._proposal_request(self._awaiting)]

    def _carries_content(self, prev: bytes) -> bool:
        """Whether a pending block up to ``prev`` has transactions or a schedule: then the
        runtime must build even an empty block, or that content could never become final
        (finality needs notarized blocks in consecutive rounds after it)."""
        if prev == self._tree.root_hash:
            return False
        return any(
            node.message.block.txs or node.message.block.schedule
            for node in self._tree.chain_to(prev)
        )

    def _vote_target(self, r: int) -> TreeBlock | None:
        """The best block of round r - 1 this validator may vote for (module docstring)."""
        best: TreeBlock | None = None
        best_key: tuple[int, int, int, bytes] | None = None
        for node in self._tree.blocks.values():
            if node.round + 1 != r or not self._tree.notarized(node.parent):
                continue
            parent_height = node.height - 1
            if parent_height < self._lock_height:
                continue
            weight, benefit, tie = node.rank_key()
            key = (-parent_height, weight, benefit, tie)
            if best_key is None or key < best_key:
                best, best_key = node, key
        return best

    def _fallback_tip(self, r: int) -> bytes:
        """The highest notarized block of a round before r - 1 (heaviest, lowest hash)."""
        tree = self._tree
        best = tree.root_hash
        best_key = (-tree.root_height, 0, tree.root_hash)
        for block_hash, node in tree.blocks.items():
            if node.round + 1 >= r or not tree.notarized(block_hash):
                continue
            key = (-node.height, -node.weight, block_hash)
            if key < best_key:
                best, best_key = block_hash, key
        return best

    def _ranking(self, r: int, prev_hash: bytes) -> list[Announce]:
        """Announces of round r with a candidate on ``prev_hash``, best first."""
        announces = [
            a
            for a in self._announces.get(r, {}).values()
            if a.prev_hash == prev_hash
            and a.has_block
            and a.signer in self._round_set
            and (a.signer == self._me or a.signer not in self._offenders)
        ]
        announces.sort(key=lambda a: (-a.benefit, tie_key(a.prev_hash, a.signer)))
        return announces

    def _send_slot(self) -> int | None:
        """When this validator's block is due to leave (None: never this round)."""
        if self._my_block is None or self._block_done:
            return None
        stamp = (self._round, len(self._announces.get(self._round, ())), len(self._offenders))
        if self._slot_memo[0] == stamp:
            return self._slot_memo[1]
        ranking = self._ranking(self._round, self._my_prev)
        rank = next((i for i, a in enumerate(ranking) if a.signer == self._me), None)
        slot = None
        if rank is not None and rank <= MAX_FALLBACK_RANK:
            slot = self._round_start_ms + self._window_ms + rank * self._slot_ms
        self._slot_memo = (stamp, slot)
        return slot

    def _maybe_send_block(self, now_ms: int) -> list[Action]:
        slot = self._send_slot()
        if slot is None:
            self._block_done = True
            return []
        if now_ms < slot:
            return []
        self._block_done = True
        assert self._my_block is not None
        ranking = self._ranking(self._round, self._my_prev)
        for better in ranking:
            if better.signer == self._me:
                break
            if better.block_hash in self._tree:
                return []  # a better block is here and valid: mine is not needed
        return [Broadcast(self._my_block)]

    def _progress(self, now_ms: int) -> list[Action]:
        self._note_quorum(now_ms)
        actions = self._commit_final()
        if self._my_block is not None and not self._block_done:
            actions.extend(self._maybe_send_block(now_ms))
        if self._ahead_due is not None or self._ahead_wanted:
            actions.extend(self._build_ahead(now_ms))
        return actions

    def _commit_final(self) -> list[Action]:
        if not self._tree.changed:
            return []
        self._tree.changed = False
        final = self._tree.final_block(self._depth)
        if final is None or final.height <= max(self._head.height, self._emitted_height):
            return []
        actions: list[Action] = []
        for node in self._tree.chain_to(final.block_hash):
            if node.height > self._emitted_height:
                actions.append(CommitBlock(node.message.block, node.message.certificate()))
        self._emitted_height = final.height
        return actions

    def _finish(self, actions: list[Action]) -> list[Action]:
        """Arm the timer for the next thing due: a send slot or the next round."""
        if self._round < 0:
            wake = self._genesis_ms
        else:
            wake = self._resend_ms if self._quorum_ms is None else self._round_end()
            slot = self._send_slot()
            if slot is not None:
                wake = min(wake, slot)
            if self._ahead_due is not None:
                wake = min(wake, self._ahead_due)
        return self._alarm.arm(actions, (wake,))

    def _prune(self, r: int) -> None:
        low = r - KEEP_ROUNDS
        self._announces = {k: v for k, v in self._announces.items() if k >= low}
        self._blocks_by = {k: v for k, v in self._blocks_by.items() if k[1] >= low}
        self._requested = {k: v for k, v in self._requested.items() if v >= r - 2}
        self._answered = {k: v for k, v in self._answered.items() if v >= r - 2}
        keep = {**self._orphans, **self._validating}
        self._tree.prune_votes(low, keep)

    # --- messages -------------------------------------------------------------------------

    def _is_own(self, block: Block, awaiting: _Awaiting) -> bool:
        h = block.header
        return (
            h.chain_id == self._chain_id
            and h.height == awaiting.height
            and h.round == awaiting.round
            and h.prev_hash == awaiting.prev_hash
            and h.proposer == self._me
        )

    def _store_announce(self, announce: Announce) -> None:
        self._announces.setdefault(announce.round, {})[announce.signer] = announce
        self._tree.add_vote(announce)

    def _on_announce(self, sender: bytes, announce: Announce, now_ms: int) -> list[Action]:
        signer = announce.signer
        r = announce.round
        if signer not in self._members:
            return []
        if r > self._round + 1 and signer != self._me:
            return self._on_announce_ahead(sender, announce, now_ms)
        if r > self._round + 1:
            return []
        if signer == self._me:
            # My own vote, relayed back (a peer shows me a notarization after my restart).
            if self._check(announce.signature, announce.claim()):
                self._tree.add_vote(announce)
            return []
        prev = announce.prev_hash
        wanted = (
            self._tree.knows(prev)
            or prev in self._orphans
            or prev in self._validating
            or prev in self._requested
        )
        if r < self._round - KEEP_ROUNDS and not wanted:
            return []
        earlier = self._announces.get(r, {}).get(signer)
        if earlier == announce:
            return []
        if not self._check(announce.signature, announce.claim()):
            return []
        actions: list[Action] = []
        if earlier is not None:
            return self._report(signer, "equivocating-announce", r, (earlier, announce))
        if r >= self._round - KEEP_ROUNDS:
            self._announces.setdefault(r, {})[signer] = announce
        self._tree.add_vote(announce)
        self._note_round(signer, r)
        for message in self._blocks_by.get((signer, r), ())[:1]:
            actions.extend(self._compare(announce, message))
        actions.extend(self._maybe_sync(announce.final_height))
        if not wanted and r >= self._round - 2:
            actions.extend(self._request(sender, prev))
        elif prev in self._tree and r >= self._round - 2:
            # The signer says a block is notarized (the parent of the block it votes for, or
            # the block it falls back to): if its votes never reached us, ask for them.
            node = self._tree.blocks[prev]
            claimed = node.parent if node.round + 1 == r else prev
            if not self._tree.notarized(claimed):
                actions.extend(self._request(sender, claimed))
        actions.extend(self._catch_up(now_ms))
        return actions

    def _on_announce_ahead(self, sender: bytes, announce: Announce, now_ms: int) -> list[Action]:
        """An announce beyond the next round: kept (the highest per validator, so memory
        stays bounded) for when this validator gets there, and counted for the catch-up."""
        signer = announce.signer
        held = self._ahead.get(signer)
        if held is not None and held[1].round >= announce.round:
            return []
        if not self._check(announce.signature, announce.claim()):
            return []
        self._ahead[signer] = (sender, announce)
        self._note_round(signer, announce.round)
        return self._catch_up(now_ms)

    def _compare(self, announce: Announce, message: BlockMessage) -> list[Action]:
        """An announce and a block message of one proposer and round must name one block."""
        header = message.block.header
        r = announce.round
        if announce.block_hash != message.block.hash():
            return self._report(announce.signer, "equivocating-block", r, (announce, message))
        if announce.benefit != header.benefit:
            return self._report(announce.signer, "benefit_mismatch", r, (announce, message))
        return []

    def _on_block(self, sender: bytes, message: BlockMessage) -> list[Action]:
        block = message.block
        header = block.header
        proposer = header.proposer
        if (
            proposer not in self._members
            or header.chain_id != self._chain_id
            or header.round > self._round + 1
            or block.height <= self._head.height
        ):
            return []
        block_hash = block.hash()
        if (
            block_hash in self._tree
            or block_hash in self._validating
            or block_hash in self._orphans
            or block_hash in self._invalid
        ):
            return []
        if not self._budget.admits(block):
            self._remember_invalid(block_hash)  # more than a round can carry (ADR 0045)
            return []
        if not self._check(message.signature, message.vote()):
            return []
        requested = block_hash in self._requested
        if header.round < self._round - KEEP_ROUNDS and not requested:
            return []
        actions: list[Action] = []
        key = (proposer, header.round)
        seen = self._blocks_by.setdefault(key, [])
        if all(m.block.hash() != block_hash for m in seen):
            if seen:
                if len(seen) >= 2 and not requested:
                    return []  # one equivocation is proof enough; do not store more
                evidence = (seen[0], message)
                actions.extend(self._report(proposer, "equivocating-block", header.round, evidence))
            seen.append(message)
        announce = self._announces.get(header.round, {}).get(proposer)
        if announce is not None:
            actions.extend(self._compare(announce, message))
        parent = header.prev_hash
        if self._tree.knows(parent):
            parent_round = self._tree.round_of(parent)
            if parent_round is not None and parent_round >= header.round:
                return actions  # rounds grow along a chain
            self._validating[block_hash] = message
            actions.append(ValidateBlock(block))
            return actions
        if block.height - 1 <= self._head.height:
            return actions  # on a branch below the committed head
        if len(self._orphans) >= ORPHAN_LIMIT:
            del self._orphans[next(iter(self._orphans))]
        self._orphans[block_hash] = (message, sender)
        actions.extend(self._request(sender, parent))
        return actions

    def _adopt_orphans(self, parent_hash: bytes) -> list[Action]:
        """Validate the waiting children of a block that just entered the tree."""
        actions: list[Action] = []
        parent_round = self._tree.round_of(parent_hash)
        for block_hash, (message, _) in list(self._orphans.items()):
            header = message.block.header
            if header.prev_hash != parent_hash:
                continue
            del self._orphans[block_hash]
            if parent_round is not None and parent_round >= header.round:
                continue
            self._validating[block_hash] = message
            actions.append(ValidateBlock(message.block))
        return actions

    def _retry_orphans(self) -> list[Action]:
        """Ask again for missing parents (a request or its answer may have been lost)."""
        actions: list[Action] = []
        for message, sender in self._orphans.values():
            parent = message.block.header.prev_hash
            if parent not in self._orphans and parent not in self._validating:
                actions.extend(self._request(sender, parent))
        return actions

    def _request(self, sender: bytes, block_hash: bytes) -> list[Action]:
        if block_hash in self._requested or sender not in self._members or sender == self._me:
            return []
        self._requested[block_hash] = self._round
        return [Send(sender, BlockRequest(block_hash))]

    def _on_request(self, sender: bytes, request: BlockRequest) -> list[Action]:
        node = self._tree.blocks.get(request.block_hash)
        if node is None or sender not in self._members or sender == self._me:
            return []
        key = (sender, request.block_hash)
        if key in self._answered:
            return []
        self._answered[key] = self._round
        actions: list[Action] = [Send(sender, node.message)]
        actions.extend(Send(sender, vote) for vote in self._tree.notarization(node.block_hash))
        return actions

    def _maybe_sync(self, claimed: int) -> list[Action]:
        """A validator says it committed ``claimed``: fetch, at most once per two rounds."""
        if claimed <= self._head.height:
            return []
        height, at_round = self._sync_requested
        if claimed <= height and self._round < at_round + 2:
            return []
        self._sync_requested = (max(claimed, height), self._round)
        return [SyncTo(claimed)]

    def _remember_invalid(self, block_hash: bytes) -> None:
        if len(self._invalid) >= INVALID_LIMIT:
            del self._invalid[next(iter(self._invalid))]
        self._invalid[block_hash] = None

    def _report(
        self, offender: bytes, kind: str, r: int, evidence: tuple[Record, ...]
    ) -> list[Action]:
        if kind == "benefit_mismatch":
            self._offenders[offender] = None
        key = (offender, kind, r)
        if key in self._reported:
            return []
        if len(self._reported) >= INVALID_LIMIT:
            del self._reported[next(iter(self._reported))]
        self._reported[key] = None
        return [ReportEvidence(offender, kind, evidence)]

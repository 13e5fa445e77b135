"""Enhanced Proof-of-Benefit (source ch. 6) as a pure state machine with Tendermint-style locks.

The source's ePoB: each round every validator runs the online scheduler on its own view of the
C&D requests, proposes a block carrying the schedule and its *benefit* (an integer, higher when
the community load is flatter), verifies the proposals it receives, and votes for the valid one
with the highest benefit; a proposal with enough votes is final.  Here, one height at a time on
the committed head (no forks), with n validators in genesis order:

**Rounds.**  Round r of height h lasts ``round_ms * (2 + min(r, 14)) / 2`` (it grows with the
round, up to 8 times the base) from the moment this validator entered it.  On entering it, a
validator proposes: its locked block (with the polka that locked it), else the valid block with
the highest-round polka it knows (with that polka), else a fresh block it asks the runtime for
(``RequestProposal(h, r, head hash, head timestamp + 1)``; the runtime runs the scheduler and
puts the schedule and its benefit in the header).  A proposal is broadcast whole and signed
(:class:`~consensus.epob.messages.Proposal`).  Every proposal that extends the head is handed
to the runtime (``ValidateBlock``), which re-executes it and recomputes its benefit; one refused
with reason ``benefit_mismatch`` is reported (``ReportEvidence(kind="benefit_mismatch")``)
against the validator that signed the proposal.

**Choosing.**  The proposal window closes ``2/5`` into the round, or earlier once every
validator's proposal for the round has been validated (or, in a leader round, the leader's), or
once the round has a polka.  Then the validator *prevotes* (``Vote(h, r, hash, PREPARE)``) the
best valid candidate: the one with the highest-round polka, then the highest benefit, then the
lowest ``sha256(prev_hash + proposer)`` (which a proposer cannot grind: both are fixed before
it builds), then the lowest block hash.  Candidates are the round's proposals, blocks with a
polka and the validator's locked block.  Odd rounds are *leader rounds*: only the fresh
proposal of ``validators[(h + r) % n]`` competes there (polkas and locks still count), so a
Byzantine validator that keeps showing its winning block to some validators only (splitting
the votes, round after round) cannot stall the chain: an honest leader's round ends it.

**Locking and deciding (why two vote steps).**  Single-phase voting is not safe across rounds:
a block can reach q votes at some validators while the others time out and vote for another
block in the next round.  So, as in Tendermint (Buchman, Kwon, Milosevic 2018): with q
prevotes for a valid block X in its current round (a *polka*), and its proposal window closed,
a validator locks X (records the polka and the block) and *precommits* it
(``Vote(h, r, X, COMMIT)``).  q precommits for X in one round decide X: ``CommitBlock(X,
Certificate(Vote(h, r, X, COMMIT), q signatures))``.  A locked validator prevotes only its
locked block, unless it knows a polka for another block from a round later than its lock.  If
X was decided in round r, at least q - f honest validators locked X in r, and no polka for
another block can form in r (two q-sets share an honest validator, who prevotes once per
round) nor, by induction, in any later round (the locked honest validators prevote only X
until such a polka exists, and without them no q-set remains), so every later decision is X.

A polka that arrives as a certificate (in a re-proposal) counts as it is, even when this
validator heard a different prevote first from one of its signers (a double voter, reported as
evidence): the certificate proves q signatures whatever arrived first locally.

**Round change.**  A round changes when its time is up: the winner withheld its block (the
validators who did not get it voted for others, or not at all), or the votes fell short.  f + 1
validators (``n - q + 1``) seen in a higher round make a validator jump to the lowest of those
rounds.  While a height is open a validator re-sends its proposal and votes of the current
round every ``round_ms / 2`` (links may lose messages).

**Quorums.**  ``quorum="bft"`` (default): q = n - f with f = (n - 1) // 3, 2f + 1 of 3f + 1.
Two q-sets share at least f + 1 validators, so an honest one, which is what the argument above
needs.  ``quorum="majority"``: the source's "more than Np/2", q = n // 2 + 1.  **It is safe
against crashes only.**  Two sets of n // 2 + 1 validators may share a single validator; if
that one signs two different votes (one to each half, e.g. across a partition) both halves
gather q votes for different blocks and both blocks become final: one equivocating validator
forks the chain, whatever its honest peers do.  The source's proof ("legitimate validators will
not sign the invalid block") covers invalid blocks, not two valid blocks, and assumes nobody
votes twice.  Use it only where every validator is trusted to run unmodified software and only
crashes or network faults are expected; tests/sim/test_epob_sim.py demonstrates the fork.

**Starting a height and catching up.**  A height starts (round 0) ``block_interval_ms`` after the
last commit once the validator has pending work (``on_pending_work(True)``), or at once when a
validly signed proposal or vote for it arrives, so validators with an empty mempool still vote.
Signed messages for higher heights count as claims: f + 1 validators ahead make the engine ask
the runtime to fetch certified blocks (``SyncTo``); a valid commit certificate (``Decision``, which
validators send to anyone still working on a height they committed) decides directly.

**Persistence.**  Every proposal, prevote and precommit is covered by a record persisted before
it leaves (see guard.py); a restarted validator resumes in the last round it signed in, keeps
its lock, and can never sign two different proposals, prevotes or precommits for one
(height, round).

Nothing here reads a clock, draws randomness or iterates over a set: time comes in as
``now_ms`` and every choice among validators is made in genesis order.  The scheduling, the
benefit and "a request waits at most two rounds" are the application's (market/) job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    run_steps,
)
from gridchain.consensus.epob.guard import (
    LAST_COMMIT_KEY,
    LOCK_KEY,
    PREVOTE_KEY,
    PROPOSAL_KEY,
    Kind,
    restore,
)
from gridchain.consensus.epob.messages import (
    LockRecord,
    Precommit,
    Prevote,
    Proposal,
    check_shape,
    decode_message,
    make_precommit,
    make_prevote,
    make_proposal,
)
from gridchain.consensus.kernel.alarm import Alarm
from gridchain.consensus.kernel.claims import HeadClaims
from gridchain.consensus.kernel.guard import SigningGuard
from gridchain.consensus.kernel.messages import Decision
from gridchain.consensus.kernel.tally import Tally
from gridchain.consensus.kernel.validators import ConsensusConfigError, Quorum, ValidatorSet
from gridchain.consensus.kernel.verify import (
    BlockHashes,
    SignatureCache,
    Verifier,
    certificate_signed,
)
from gridchain.protocol.block import Block, Certificate, Vote, VoteSignature, VoteStep
from gridchain.protocol.crypto import SigningKey, sha256, verify
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import DecodeError

#: Messages are kept for rounds up to this far above the validator's own.
ROUND_WINDOW: Final = 16
#: Round durations grow by half the base per round, up to this many half-steps.
MAX_ROUND_GROWTH: Final = 14
BENEFIT_MISMATCH: Final = "benefit_mismatch"


class EpobConfigError(ConsensusConfigError):
    """The engine was configured with values it cannot run with."""

    code = "epob_config"


def tie_break(block: Block) -> bytes:
    """Lower wins among equal benefits: fixed before the proposer builds, so not grindable."""
    return sha256(block.header.prev_hash + block.header.proposer)


class EpobEngine:
    """The ePoB engine of one validator (see the module docstring for the protocol)."""

    name = "epob"

    def __init__(
        self,
        key: SigningKey,
        chain_id: bytes,
        validators: Sequence[bytes],
        *,
        round_ms: int,
        block_interval_ms: int,
        quorum: Quorum = "bft",
        verifier: Verifier = verify,
    ) -> None:
        if round_ms < 1 or block_interval_ms < 0:
            raise EpobConfigError("round_ms must be positive, block_interval_ms not negative")
        self.quorum: Quorum = quorum
        self._use_set(ValidatorSet(validators, quorum, error=EpobConfigError))
        self._key = key
        self._me = key.public_key
        self._chain_id = chain_id
        self._round_ms = round_ms
        self._interval = block_interval_ms
        self._retransmit_ms = max(1, round_ms // 2)
        self._check = SignatureCache(chain_id, verifier).check
        #: block hashes, remembered: messages carry the same block many times over
        self._hash = BlockHashes().of
        self._guard = SigningGuard[Kind]()
        self._head = ChainHead(0, b"\x00" * 32, 0)
        self._last_cert: Certificate | None = None
        #: the highest commit certificate seen above the head
        self._hint: Certificate | None = None
        #: validator -> the highest head height its signed messages prove it reached
        self._claims = HeadClaims()
        self._sync_requested = 0
        #: validator -> (height of the certificate sent to it, when it may be sent again)
        self._replied: dict[bytes, tuple[int, int]] = {}
        self._reported: dict[tuple[bytes, str, int, int], None] = {}
        self._pending_work = False
        self._earliest_start = 0
        self._start_at: int | None = None
        self._alarm = Alarm()
        self._reset_height()

    def _use_set(self, vals: ValidatorSet) -> None:
        self._vals = vals
        #: the validators in the set's order
        self._keys = vals.keys
        self.n = vals.n
        self.q = vals.q
        #: the fewest validators that must include one that is not faulty
        self.skip = self.n - self.q + 1

    @property
    def _member(self) -> bool:
        """This validator is in the set of the height in flight: it proposes and votes.
        Outside it (admitted for a later height, or removed) it follows without signing."""
        return self._me in self._vals

    def _adopt_set(self, head: ChainHead) -> None:
        """Switch to the set the driver names for ``head.height + 1`` (ADR 0035); claims and
        a hint were checked against the old set and are dropped."""
        if not head.validators or head.validators == self._keys:
            return
        self._use_set(ValidatorSet(head.validators, self.quorum, error=EpobConfigError))
        self._claims = HeadClaims()
        if self._hint is not None and self._hint.vote.height > head.height:
            self._hint = None

    # --- per-height state -----------------------------------------------------------------

    def _reset_height(self) -> None:
        self._active = False
        self._round = 0
        self._round_start = 0
        self._closed = False
        self._window_end: int | None = None
        self._round_end: int | None = None
        self._retransmit_at: int | None = None
        #: (round, signer) -> the first valid proposal of that signer in that round
        self._proposals: dict[tuple[int, bytes], Proposal] = {}
        self._blocks: dict[bytes, Block] = {}
        self._prevotes = Tally(self.q)
        self._precommits = Tally(self.q)
        self._validated: dict[bytes, bool] = {}
        self._invalid_reason: dict[bytes, str] = {}
        self._validating: dict[bytes, None] = {}
        #: the polka (q prevotes) of the last precommit and its block
        self._lock: tuple[Certificate, Block] | None = None
        self._my_proposal: dict[int, Proposal | None] = {}
        self._my_prevote: dict[int, Prevote | None] = {}
        self._my_precommit: dict[int, Precommit | None] = {}
        self._awaiting: int | None = None
        self._decided: Certificate | None = None
        self._committing = False
        #: signer -> the highest round its signed messages at this height show
        self._rounds_seen: dict[bytes, int] = {}

    @property
    def _h(self) -> int:
        """The height being decided."""
        return self._head.height + 1

    def _duration(self, round_: int) -> int:
        return self._round_ms * (2 + min(round_, MAX_ROUND_GROWTH)) // 2

    def leader(self, height: int, round_: int) -> bytes:
        """Whose fresh proposal alone competes in an odd (leader) round."""
        return self._keys[(height + round_) % self.n]

    # --- Engine interface -----------------------------------------------------------------

    def start(self, head: ChainHead, persisted: Mapping[bytes, bytes], now_ms: int) -> list[Action]:
        records = restore(persisted)
        self._guard = records.guard()
        self._head = head
        self._adopt_set(head)
        self._reset_height()
        self._earliest_start = now_ms + self._interval
        cert = records.last_commit
        if cert is not None and cert.vote.height <= head.height:
            self._last_cert = cert
        lock = records.lock
        if lock is not None and lock.polka.vote.height == self._h:
            block_hash = lock.polka.vote.block_hash
            self._lock = (lock.polka, lock.block)
            self._blocks[block_hash] = lock.block
            self._validated[block_hash] = True  # it was validated before it was locked
            for sig in lock.polka.signatures:
                self._prevotes.add(
                    lock.polka.vote.round,
                    block_hash,
                    sig,
                    Prevote(lock.polka.vote, sig),
                    certified=True,
                )
        actions: list[Action] = []
        last_round = records.last_round(self._h)
        if last_round is not None:
            # It was working on this height: resume in the last round it signed anything in.
            actions.extend(self._start_round(last_round, now_ms))
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def decode_message(self, data: bytes) -> Record:
        return decode_message(data)

    def on_tick(self, now_ms: int) -> list[Action]:
        self._alarm.fired()
        actions: list[Action] = []
        if self._start_at is not None and now_ms >= self._start_at:
            self._start_at = None
            if not self._active and self._pending_work and not self._committing:
                actions.extend(self._start_round(0, now_ms))
        if self._active and self._round_end is not None and now_ms >= self._round_end:
            # The round is over; also retry a fetch that found no source (liveness only).
            self._sync_requested = self._head.height
            self._claims.dirty = bool(self._claims)
            actions.extend(self._start_round(self._round + 1, now_ms))
        if self._window_end is not None and now_ms >= self._window_end:
            self._window_end = None
            self._closed = True
        if self._retransmit_at is not None and now_ms >= self._retransmit_at:
            actions.extend(self._retransmit(now_ms))
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_message(self, sender: bytes, message: Record, now_ms: int) -> list[Action]:
        """Handle a peer's message.  ``sender`` is not trusted: every message is signed."""
        try:
            check_shape(message)
        except DecodeError:
            return self._finish([])
        actions: list[Action] = []
        if isinstance(message, Decision):
            actions = self._on_decision(message.certificate)
        elif isinstance(message, Proposal | Prevote | Precommit):
            actions = self._on_height_message(message, now_ms)
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_proposal(self, block: Block | None, now_ms: int) -> list[Action]:
        awaiting, self._awaiting = self._awaiting, None
        if (
            block is None
            or awaiting is None
            or awaiting != self._round
            or not self._active
            or not self._fits(block)
            or block.header.round != awaiting
            or block.header.proposer != self._me
        ):
            return self._finish(self._progress(now_ms))
        block_hash = self._hash(block)
        self._validated[block_hash] = True  # the runtime executed it to build it
        actions = self._propose(block, None, now_ms)
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_block_validated(
        self, block_hash: bytes, valid: bool, now_ms: int, reason: str = ""
    ) -> list[Action]:
        if block_hash not in self._validating:
            return self._finish([])  # an answer for a height that is over
        del self._validating[block_hash]
        self._validated[block_hash] = valid
        actions: list[Action] = []
        if not valid and reason:
            self._invalid_reason[block_hash] = reason
            for proposal in list(self._proposals.values()):
                if self._hash(proposal.block) == block_hash:
                    actions.extend(self._benefit_evidence(proposal))
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_block_committed(self, head: ChainHead, now_ms: int) -> list[Action]:
        if head.height <= self._head.height:
            return self._finish([])
        decided = self._decided
        if decided is not None and decided.vote.height == head.height:
            self._last_cert = decided
        elif self._hint is not None and self._hint.vote.height == head.height:
            self._last_cert = self._hint
        if self._hint is not None and self._hint.vote.height <= head.height:
            self._hint = None
        self._head = head
        self._adopt_set(head)
        self._reset_height()
        self._claims.forget_up_to(head.height)
        for key in [k for k in self._reported if k[2] <= head.height]:
            del self._reported[key]
        self._earliest_start = now_ms + self._interval
        self._start_at = self._earliest_start if self._pending_work else None
        return self._finish(self._progress(now_ms))

    def on_pending_work(self, pending: bool, now_ms: int) -> list[Action]:
        self._pending_work = pending
        if pending and not self._active:
            self._start_at = max(now_ms, self._earliest_start)
        return self._finish([])

    def commit_rule(self, block: Block) -> CommitRule:
        """The quorum's precommits (COMMIT votes) certify a block."""
        return CommitRule(frozenset(self._keys), self.q, VoteStep.COMMIT)

    def status(self) -> Mapping[str, int | str]:
        return {"engine": self.name, "height": self._head.height, "round": self._round}

    # --- introspection for tests and operators ----------------------------------------------

    @property
    def round(self) -> int:
        return self._round

    @property
    def active(self) -> bool:
        return self._active

    @property
    def locked(self) -> tuple[int, bytes] | None:
        """(round, block hash) of the lock, if any."""
        if self._lock is None:
            return None
        vote = self._lock[0].vote
        return vote.round, vote.block_hash

    def prevoted(self, round_: int) -> bytes | None:
        """The block this validator prevoted in ``round_`` at the current height."""
        p = self._my_prevote.get(round_)
        return None if p is None else p.vote.block_hash

    # --- helpers ------------------------------------------------------------------------------

    def _finish(self, actions: list[Action]) -> list[Action]:
        """Append SetTimer when the earliest deadline is not the one the runtime has armed."""
        deadlines = (self._start_at, self._window_end, self._round_end, self._retransmit_at)
        return self._alarm.arm(actions, deadlines)

    def _certificate_ok(self, cert: Certificate) -> bool:
        """q distinct validators signed the certificate's vote (checked with our verifier)."""
        return certificate_signed(cert, self._vals, self.q, self._check)

    def _fits(self, block: Block) -> bool:
        """The block extends this validator's head (the runtime checks the rest)."""
        header = block.header
        return (
            header.height == self._h
            and header.prev_hash == self._head.block_hash
            and header.chain_id == self._chain_id
            and header.proposer in self._vals
        )

    def _polka_round(self, block_hash: bytes, up_to: int) -> int:
        """The highest round <= ``up_to`` in which ``block_hash`` got q prevotes, or -1."""
        for round_, h in self._prevotes.quorums():
            if h == block_hash and round_ <= up_to:
                return round_
        return -1

    def _evidence(
        self, offender: bytes, kind: str, round_: int, records: tuple[Record, ...]
    ) -> list[Action]:
        """Report ``offender`` once per (kind, height, round)."""
        key = (offender, kind, self._h, round_)
        if key in self._reported:
            return []
        self._reported[key] = None
        return [ReportEvidence(offender, kind, records)]

    def _benefit_evidence(self, proposal: Proposal) -> list[Action]:
        block_hash = self._hash(proposal.block)
        if self._invalid_reason.get(block_hash) != BENEFIT_MISMATCH:
            return []
        return self._evidence(proposal.signer, BENEFIT_MISMATCH, proposal.round, (proposal,))

    # --- rounds -------------------------------------------------------------------------------

    def _start_round(self, round_: int, now_ms: int) -> list[Action]:
        """Enter ``round_`` of the current height and propose in it."""
        self._active = True
        self._start_at = None
        self._round = round_
        self._round_start = now_ms
        self._closed = False
        duration = self._duration(round_)
        self._window_end = now_ms + duration * 2 // 5
        self._round_end = now_ms + duration
        self._retransmit_at = now_ms + self._retransmit_ms
        self._awaiting = None
        if self._decided is not None or self._committing or round_ in self._my_proposal:
            return []
        best = self._best_polka(round_)
        if self._lock is not None and (
            best is None or best[1].vote.round <= self._lock[0].vote.round
        ):
            # Locked: the locked block is the one to offer (with the polka that locked it, which
            # must be from an earlier round; after a restart in the lock's round, none), unless
            # a later polka is known: offering that one spreads what frees the locked.
            polka, block = self._lock
            return self._propose(block, polka, now_ms) if polka.vote.round < round_ else []
        if best is not None:
            return self._propose(*best, now_ms)
        last = self._guard.last("proposal")
        if last is not None and (last.height, last.round) >= (self._h, round_):
            return []  # proposed in this round before a restart: a new block would be refused
        if not self._member:
            return []  # outside the set: it proposes nothing
        self._awaiting = round_
        return [
            RequestProposal(
                height=self._h,
                round=round_,
                prev_hash=self._head.block_hash,
                min_timestamp_ms=self._head.timestamp_ms + 1,
            )
        ]

    def _best_polka(self, before: int) -> tuple[Block, Certificate] | None:
        """The valid block with the highest-round polka before ``before``, with the polka."""
        for round_, block_hash in self._prevotes.quorums():
            if round_ >= before or not self._validated.get(block_hash):
                continue
            block = self._blocks.get(block_hash)
            cert = self._prevotes.certificate(
                Vote(self._h, round_, block_hash, int(VoteStep.PREPARE)), self._vals
            )
            if block is not None and cert is not None:
                return block, cert
        return None

    def _propose(self, block: Block, polka: Certificate | None, now_ms: int) -> list[Action]:
        round_ = self._round
        block_hash = self._hash(block)
        if not self._member or not self._guard.permits("proposal", self._h, round_, block_hash):
            self._my_proposal[round_] = None
            return []
        self._guard.record("proposal", self._h, round_, block_hash)
        proposal = make_proposal(self._key, self._chain_id, round_, block, polka)
        self._my_proposal[round_] = proposal
        self._proposals.setdefault((round_, self._me), proposal)
        self._blocks.setdefault(block_hash, block)
        claim = proposal.claim(block_hash)
        return [Persist(PROPOSAL_KEY, claim.encode()), Broadcast(proposal)]

    def _retransmit(self, now_ms: int) -> list[Action]:
        """Re-send this validator's messages for the height in flight (links may lose them)."""
        self._retransmit_at = None
        if not self._active or self._committing:
            return []
        self._retransmit_at = now_ms + self._retransmit_ms
        actions: list[Action] = []
        proposal = self._my_proposal.get(self._round)
        if proposal is not None:
            actions.append(Broadcast(proposal))
        prevote = self._my_prevote.get(self._round)
        if prevote is not None:
            actions.append(Broadcast(prevote))
        precommits = [p for p in self._my_precommit.values() if p is not None]
        if precommits:
            actions.append(Broadcast(precommits[-1]))
        return actions

    # --- incoming messages --------------------------------------------------------------------

    def _on_height_message(
        self, message: Proposal | Prevote | Precommit, now_ms: int
    ) -> list[Action]:
        signer = message.signer
        if signer not in self._vals:
            return []
        if isinstance(message, Proposal):
            height, round_ = message.block.height, message.round
        else:
            height, round_ = message.vote.height, message.vote.round
        if height <= self._head.height:
            return self._reply_stale(signer, height, now_ms)
        if height > self._h:
            if height - 1 > self._claims.of(signer) and self._signature_ok(message):
                self._claims.claim(signer, height - 1, self._head.height)
            return []
        if round_ > self._round + ROUND_WINDOW:
            # Too far ahead to keep, but a verified one still shows where its signer is, which
            # lets f + 1 of them pull this validator up (one per signer: its highest round).
            if round_ > self._rounds_seen.get(signer, -1) and self._signature_ok(message):
                self._rounds_seen[signer] = round_
            return []
        if isinstance(message, Proposal):
            actions = self._store_proposal(message)
        else:
            actions = self._store_vote(message)
        if self._in_log(message, signer, round_):
            if not self._active and not self._committing and self._decided is None:
                actions.extend(self._start_round(0, now_ms))
            if round_ > self._rounds_seen.get(signer, -1):
                self._rounds_seen[signer] = round_
        return actions

    def _in_log(self, message: Proposal | Prevote | Precommit, signer: bytes, r: int) -> bool:
        """Whether a verified message of ``signer`` for round ``r`` is now in the log."""
        if isinstance(message, Proposal):
            return (r, signer) in self._proposals
        tally = self._prevotes if isinstance(message, Prevote) else self._precommits
        return tally.voted(r, signer) is not None

    def _signature_ok(self, message: Proposal | Prevote | Precommit) -> bool:
        if isinstance(message, Proposal):
            return self._check(message.signature, message.claim(self._hash(message.block)))
        return self._check(message.signature, message.vote)

    def _reply_stale(self, signer: bytes, height: int, now_ms: int) -> list[Action]:
        """``signer`` works on a height this validator committed: show it the certificate."""
        cert = self._last_cert
        if cert is None or signer == self._me or cert.vote.height < height:
            return []
        replied = self._replied.get(signer)
        if replied is not None and replied[0] >= cert.vote.height and now_ms < replied[1]:
            return []  # once per validator and certificate, or per round if it stays behind
        self._replied[signer] = (cert.vote.height, now_ms + self._round_ms)
        return [Send(signer, Decision(cert))]

    def _store_proposal(self, proposal: Proposal) -> list[Action]:
        round_, signer = proposal.round, proposal.signer
        block = proposal.block
        block_hash = self._hash(block)
        known = self._proposals.get((round_, signer))
        if known is not None and self._hash(known.block) == block_hash:
            return []  # a copy
        if not self._check(proposal.signature, proposal.claim(block_hash)):
            return []
        if known is not None:
            return self._evidence(signer, "equivocating-proposal", round_, (known, proposal))
        actions: list[Action] = []
        if proposal.polka is not None:
            if not self._certificate_ok(proposal.polka):
                return []
            vote = proposal.polka.vote
            for sig in proposal.polka.signatures:
                actions.extend(
                    self._count(self._prevotes, vote, sig, Prevote(vote, sig), certified=True)
                )
        if not self._fits(block):
            return actions
        self._proposals[(round_, signer)] = proposal
        self._blocks.setdefault(block_hash, block)
        if block_hash in self._validated:
            if not self._validated[block_hash]:
                actions.extend(self._benefit_evidence(proposal))
        elif block_hash not in self._validating:
            self._validating[block_hash] = None
            actions.append(ValidateBlock(block))
        return actions

    def _store_vote(self, message: Prevote | Precommit) -> list[Action]:
        vote = message.vote
        tally = self._prevotes if isinstance(message, Prevote) else self._precommits
        if tally.voted(vote.round, message.signer) == vote.block_hash:
            return []  # a copy
        if not self._check(message.signature, vote):
            return []
        return self._count(tally, vote, message.signature, message)

    def _count(
        self,
        tally: Tally,
        vote: Vote,
        signature: VoteSignature,
        message: Record,
        *,
        certified: bool = False,
    ) -> list[Action]:
        earlier = tally.add(vote.round, vote.block_hash, signature, message, certified=certified)
        if earlier is None:
            return []
        kind = "conflicting-prevote" if tally is self._prevotes else "conflicting-precommit"
        return self._evidence(signature.validator, kind, vote.round, (earlier, message))

    def _on_decision(self, cert: Certificate) -> list[Action]:
        height = cert.vote.height
        if height < self._h:
            return []
        if height == self._h and self._decided is not None:
            return []
        if self._hint is not None and self._hint.vote.height >= height and height != self._h:
            return []
        if not self._certificate_ok(cert):
            return []
        if height == self._h:
            self._decided = cert
            return []
        self._hint = cert
        if height > self._sync_requested:
            self._sync_requested = height
            return [SyncTo(height)]
        return []

    # --- the progress loop ----------------------------------------------------------------------

    def _progress(self, now_ms: int) -> list[Action]:
        """Take every step the state now allows, most decisive first, until none applies."""
        steps = (
            self._step_decide,
            self._step_sync,
            self._step_skip,
            self._step_prevote,
            self._step_precommit,
        )
        return run_steps(steps, now_ms)

    def _step_decide(self, now_ms: int) -> list[Action] | None:
        h = self._h
        if self._decided is None:
            found = self._precommits.quorums()
            if found:
                round_, block_hash = found[0]
                vote = Vote(h, round_, block_hash, int(VoteStep.COMMIT))
                self._decided = self._precommits.certificate(vote, self._vals)
            elif self._hint is not None and self._hint.vote.height == h:
                self._decided = self._hint
            return None if self._decided is None else []
        if self._committing:
            return None
        cert = self._decided
        block_hash = cert.vote.block_hash
        block = self._blocks.get(block_hash)
        valid = None if block is None else self._validated.get(block_hash)
        if block is not None and valid is None:
            if block_hash in self._validating:
                return None
            self._validating[block_hash] = None
            return [ValidateBlock(block)]
        if block is None or not valid:
            # Decided, but this validator lacks the block (or cannot execute it): fetch it.
            if self._sync_requested >= h:
                return None
            self._sync_requested = h
            return [SyncTo(h)]
        self._committing = True
        self._last_cert = cert
        self._window_end = self._round_end = self._retransmit_at = None
        return [Persist(LAST_COMMIT_KEY, cert.encode()), CommitBlock(block, cert)]

    def _step_sync(self, now_ms: int) -> list[Action] | None:
        if not self._claims.dirty:
            return None
        target = self._claims.reached_by(self.skip)  # enough validators that one is not faulty
        if target is None:
            return []
        if target > self._head.height and target > self._sync_requested:
            self._sync_requested = target
            return [SyncTo(target)]
        return []

    def _step_skip(self, now_ms: int) -> list[Action] | None:
        if self._committing or self._decided is not None:
            return None
        rounds = sorted(
            (r for s, r in self._rounds_seen.items() if s != self._me and r > self._round),
            reverse=True,
        )
        if len(rounds) < self.skip or not self._active:
            return None
        return self._start_round(rounds[self.skip - 1], now_ms)

    def _window_over(self) -> bool:
        """The proposal window of the current round is closed (by time or early)."""
        if self._closed:
            return True
        r = self._round
        if any(round_ == r for round_, _ in self._prevotes.quorums()):
            self._closed = True
        elif r % 2 == 1:
            leader = self.leader(self._h, r)
            p = self._proposals.get((r, leader))
            self._closed = p is not None and self._hash(p.block) in self._validated
        else:
            self._closed = all(
                (p := self._proposals.get((r, k))) is not None
                and self._hash(p.block) in self._validated
                for k in self._keys
            )
        return self._closed

    def _choose(self, r: int) -> bytes | None:
        """The block to prevote in round ``r``, by the rules in the module docstring."""
        candidates: dict[bytes, None] = {}
        leader = self.leader(self._h, r) if r % 2 == 1 else None
        for (round_, signer), proposal in self._proposals.items():
            if round_ == r and (leader is None or signer == leader or proposal.polka is not None):
                candidates[self._hash(proposal.block)] = None
        for round_, block_hash in self._prevotes.quorums():
            if round_ <= r:
                candidates[block_hash] = None
        lock_round, lock_hash = -1, b""
        if self._lock is not None:
            lock_round, lock_hash = self._lock[0].vote.round, self._lock[0].vote.block_hash
            candidates[lock_hash] = None
        best: tuple[int, int, bytes, bytes] | None = None
        for block_hash in candidates:
            block = self._blocks.get(block_hash)
            if block is None or not self._validated.get(block_hash):
                continue
            polka = self._polka_round(block_hash, r)
            if self._lock is not None and block_hash != lock_hash and polka <= lock_round:
                continue  # locked: only a later polka frees this validator from its lock
            key = (-polka, -block.header.benefit, tie_break(block), block_hash)
            if best is None or key < best:
                best = key
        return None if best is None else best[3]

    def _step_prevote(self, now_ms: int) -> list[Action] | None:
        r = self._round
        if not self._member or not self._active or self._committing or r in self._my_prevote:
            return None
        if not self._window_over():
            return None
        block_hash = self._choose(r)
        if block_hash is None:
            return None  # nothing valid yet: a late validation may still give a candidate
        if not self._guard.permits("prevote", self._h, r, block_hash):
            self._my_prevote[r] = None  # signed another prevote here before a restart
            return []
        self._guard.record("prevote", self._h, r, block_hash)
        vote = Vote(self._h, r, block_hash, int(VoteStep.PREPARE))
        prevote = make_prevote(self._key, self._chain_id, vote)
        self._my_prevote[r] = prevote
        actions: list[Action] = [Persist(PREVOTE_KEY, vote.encode()), Broadcast(prevote)]
        actions.extend(self._count(self._prevotes, vote, prevote.signature, prevote))
        return actions

    def _step_precommit(self, now_ms: int) -> list[Action] | None:
        r = self._round
        if not self._member or not self._active or self._committing or r in self._my_precommit:
            return None
        if not self._window_over():
            return None
        for round_, block_hash in self._prevotes.quorums():
            if round_ != r:
                continue
            block = self._blocks.get(block_hash)
            if block is None or not self._validated.get(block_hash):
                continue
            if not self._guard.permits("precommit", self._h, r, block_hash):
                self._my_precommit[r] = None
                return []
            polka = self._prevotes.certificate(
                Vote(self._h, r, block_hash, int(VoteStep.PREPARE)), self._vals
            )
            assert polka is not None  # quorums() found q prevotes
            self._guard.record("precommit", self._h, r, block_hash)
            self._lock = (polka, block)
            vote = Vote(self._h, r, block_hash, int(VoteStep.COMMIT))
            precommit = make_precommit(self._key, self._chain_id, vote)
            self._my_precommit[r] = precommit
            actions: list[Action] = [
                Persist(LOCK_KEY, LockRecord(polka, block).encode()),
                Broadcast(precommit),
            ]
            actions.extend(self._count(self._precommits, vote, precommit.signature, precommit))
            return actions
        return None

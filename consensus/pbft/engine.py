"""PBFT as a pure state machine: messages, ticks and runtime answers in, actions out.

One height is decided at a time (the sequence number *is* the block height), so the log of a
height is the whole PBFT log for that sequence number and a commit certificate finishes it:

* The primary of the view (``validators[view % n]``) asks the runtime for a block
  (``RequestProposal``) at most every ``block_interval_ms`` after the head was committed and
  broadcasts a signed ``PrePrepare``; its signature is its prepare vote.  After a decided
  block that carried ``max_block_txs`` transactions it asks at once: a full block says more
  are waiting, and the interval only exists to gather a block's worth (ADR 0047).
* A replica accepts a pre-prepare that extends its head, asks the runtime to execute it
  (``ValidateBlock``) and only then broadcasts a ``Prepare``.  With q matching prepares it is
  *prepared*: it persists the prepared certificate with the block (its lock) and broadcasts a
  ``Commit``.  With q matching commits (of any view) the block is decided: ``CommitBlock``
  with the commit certificate, which the runtime verifies and stores with the block.
* If a replica has work pending or an accepted block that does not commit within the view
  timeout, it sends a ``ViewChange`` carrying its lock; the timeout doubles with each view
  change at one height.  f + 1 view changes for higher views make a replica join the smallest
  of them.  The new primary, with q view changes, sends a ``NewView`` that re-proposes the
  block of the highest prepared certificate *unchanged* (or a fresh block when there is none);
  replicas recompute that choice before they enter the view (see viewchange.py).
* Every ``checkpoint_interval`` heights replicas sign a ``Checkpoint``; q matching ones make it
  stable, logs at or below it are dropped, and only messages for heights in
  (stable, stable + watermark_window] are kept.
* A replica that is behind catches up through the runtime (``SyncTo``) when f + 1 validators
  show higher heights, when it sees a valid commit certificate (``Decision``, or q commits)
  or a stable checkpoint above its head.  Validators answer a message for a height they have
  already committed with the commit certificate of their head.

Nothing here reads a clock, draws randomness or iterates over a set: time comes in as
``now_ms`` and every choice among validators is made in genesis order.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    run_steps,
)
from gridchain.consensus.kernel.alarm import Alarm
from gridchain.consensus.kernel.claims import HeadClaims
from gridchain.consensus.kernel.guard import SigningGuard
from gridchain.consensus.kernel.messages import Decision
from gridchain.consensus.kernel.tally import Tally
from gridchain.consensus.kernel.validators import ConsensusConfigError, ValidatorSet
from gridchain.consensus.kernel.verify import BlockHashes, SignatureCache, Verifier
from gridchain.consensus.pbft.guard import (
    LAST_COMMIT_KEY,
    PREPARE_KEY,
    PREPARED_KEY,
    VIEW_KEY,
    prepared_record,
    restore,
    view_record,
)
from gridchain.consensus.pbft.log import HeightLog
from gridchain.consensus.pbft.messages import (
    Checkpoint,
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    check_shape,
    decode_message,
    make_checkpoint,
    make_commit,
    make_pre_prepare,
    make_prepare,
    make_view_change,
)
from gridchain.consensus.pbft.viewchange import (
    NewViewError,
    certificate_valid,
    check_new_view,
    highest_prepared,
    view_change_valid,
)
from gridchain.protocol.block import Block, Certificate, Vote, VoteSignature, VoteStep
from gridchain.protocol.crypto import SigningKey, verify
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import DecodeError

#: How many views above the current one (and, for commits, below it) a log keeps messages for.
VIEW_WINDOW: Final = 16
#: The view-change timeout doubles with each view change at one height, at most this often.
MAX_BACKOFF_EXPONENT: Final = 4


class PbftConfigError(ConsensusConfigError):
    """The engine was configured with values it cannot run with."""

    code = "pbft_config"


@dataclass(frozen=True, slots=True)
class _Awaiting:
    """An outstanding RequestProposal: for a plain pre-prepare, or for a new view's."""

    view: int
    height: int
    view_changes: tuple[ViewChange, ...] | None


class PbftEngine:
    """The PBFT engine of one validator (see the module docstring for the protocol)."""

    name = "pbft"

    def __init__(
        self,
        key: SigningKey,
        chain_id: bytes,
        validators: tuple[bytes, ...],
        *,
        block_interval_ms: int,
        view_timeout_ms: int,
        checkpoint_interval: int = 10,
        watermark_window: int = 20,
        verifier: Verifier = verify,
        max_block_txs: int | None = None,
    ) -> None:
        self._vals = ValidatorSet(validators, error=PbftConfigError)
        if block_interval_ms < 1 or view_timeout_ms < 1:
            raise PbftConfigError("block_interval_ms and view_timeout_ms must be positive")
        if checkpoint_interval < 1:
            raise PbftConfigError("checkpoint_interval must be positive")
        if watermark_window < checkpoint_interval:
            # The window must reach the next checkpoint or the chain stops below it.
            raise PbftConfigError("watermark_window must be at least checkpoint_interval")
        self._key = key
        self._me = key.public_key
        self._chain_id = chain_id
        self._interval = block_interval_ms
        #: a decided block this full is followed by the next proposal without the interval
        self._full_block_txs = max_block_txs
        self._timeout_base = view_timeout_ms
        self._retransmit_ms = max(1, view_timeout_ms // 2)
        self._cp_interval = checkpoint_interval
        self._window = watermark_window
        #: signatures checked once each (a NewView repeats signatures replicas already checked)
        self._check = SignatureCache(chain_id, verifier).check
        #: block hashes, remembered: messages carry the same block many times over
        self._hash = BlockHashes().of
        self._guard = SigningGuard[VoteStep]()
        self._head = ChainHead(0, b"\x00" * 32, 0)
        self._view = 0
        #: the last view this replica was in (not merely asking for)
        self._active_view = 0
        self._stable = 0
        self._logs: dict[int, HeightLog] = {}
        self._checkpoints: dict[int, dict[bytes, Checkpoint]] = {}
        self._my_checkpoint: Checkpoint | None = None
        #: validator -> the highest head height its signed messages prove it reached
        self._claims = HeadClaims()
        self._sync_requested = 0
        self._last_cert: Certificate | None = None
        #: the highest commit certificate seen above the head
        self._hint: Certificate | None = None
        self._replied: dict[bytes, int] = {}
        self._reported: dict[tuple[bytes, str, int, int], None] = {}
        self._pending_work = False
        self._alarm = Alarm()
        self._reset_instance()

    # --- per-height state -----------------------------------------------------------------

    def _reset_instance(self) -> None:
        """Forget everything about the height in flight (called when the head moves)."""
        self._changing = False
        self._nv: NewView | None = None
        #: view -> hash of the pre-prepare accepted in that view (b"" when refused)
        self._accepted: dict[int, bytes] = {}
        self._validated: dict[bytes, bool] = {}
        self._validating: dict[bytes, None] = {}
        self._lock: Certificate | None = None
        self._lock_block: Block | None = None
        self._prepare_sent: dict[int, Prepare | None] = {}
        self._commit_sent: dict[int, Commit | None] = {}
        self._my_pp: PrePrepare | None = None
        self._my_nv: NewView | None = None
        self._my_vc: ViewChange | None = None
        self._nv_sent: dict[tuple[bytes, int], None] = {}
        self._decided: Certificate | None = None
        self._committing = False
        self._awaiting: _Awaiting | None = None
        self._vc_count = 0
        self._propose_at: int | None = None
        self._view_deadline: int | None = None
        self._retransmit_at: int | None = None

    def _begin_instance(self, now_ms: int, *, backlog: bool = False) -> None:
        """Start the next height; ``backlog`` (the last block was full) proposes at once."""
        self._reset_instance()
        self._active_view = self._view
        if self._vals.primary(self._view) == self._me:
            self._propose_at = now_ms if backlog else now_ms + self._interval
        if self._pending_work:
            self._arm_view_timer(now_ms, extra=self._interval)

    @property
    def _h(self) -> int:
        """The height being decided."""
        return self._head.height + 1

    @property
    def _member(self) -> bool:
        """This replica is in the set of the height in flight: it votes.  Outside it (a
        validator admitted for a later height, or one removed) it follows without signing."""
        return self._me in self._vals

    def _adopt_set(self, head: ChainHead) -> None:
        """Switch to the set the driver names for ``head.height + 1`` (ADR 0035).

        What was counted for later heights was counted with the old set (its members, its
        quorum): it is dropped, and the members re-send what matters (they retransmit).
        """
        if not head.validators or head.validators == self._vals.keys:
            return
        self._vals = ValidatorSet(head.validators, error=PbftConfigError)
        self._logs = {h: log for h, log in self._logs.items() if h <= head.height}
        self._checkpoints = {h: c for h, c in self._checkpoints.items() if h <= head.height}
        if self._hint is not None and self._hint.vote.height > head.height:
            self._hint = None
        self._claims = HeadClaims()

    def _timeout(self) -> int:
        return self._timeout_base << min(self._vc_count, MAX_BACKOFF_EXPONENT)

    def _arm_view_timer(self, now_ms: int, *, extra: int = 0) -> None:
        if self._view_deadline is None:
            self._view_deadline = now_ms + extra + self._timeout()
        if self._retransmit_at is None:
            self._retransmit_at = now_ms + extra + self._retransmit_ms

    def _outstanding(self) -> bool:
        """An accepted block, a lock or a decision at this height waits to be committed."""
        return any(self._accepted.values()) or self._lock is not None or self._decided is not None

    # --- Engine interface -----------------------------------------------------------------

    def start(self, head: ChainHead, persisted: Mapping[bytes, bytes], now_ms: int) -> list[Action]:
        records = restore(persisted)
        self._guard = records.guard()
        self._head = head
        self._adopt_set(head)
        self._stable = head.height - head.height % self._cp_interval
        h = head.height + 1
        view = 0
        changing = False
        if records.view is not None:
            view = records.view.view
        cert = records.last_commit
        if cert is not None and cert.vote.height <= head.height:
            self._last_cert = cert
            if cert.vote.height == head.height and (
                records.view is None or records.view.height <= head.height
            ):
                view = cert.vote.round  # the view that committed the head
        if records.view is not None and records.view.height == h:
            view, changing = records.view.view, records.view.changing
        # A vote signed in a view means the replica was in that view, not still asking for it
        # (entering a view through a new view persists nothing before the first vote).
        prepare = records.prepare
        if prepare is not None and prepare.height == h and prepare.round >= view:
            view, changing = prepare.round, False
        lock = records.prepared
        if lock is not None and lock.certificate.vote.height == h:
            if lock.certificate.vote.round >= view:
                view, changing = lock.certificate.vote.round, False
        else:
            lock = None
        self._view = view
        self._begin_instance(now_ms)
        actions: list[Action] = []
        if lock is not None:
            self._lock, self._lock_block = lock.certificate, lock.block
            log = self._log_at(h)
            if log is not None:
                log.blocks.setdefault(self._hash(lock.block), lock.block)
            self._arm_view_timer(now_ms)
        if changing:
            # Re-send the view change this replica had sent: it is rebuilt from the same lock,
            # and Ed25519 signatures are deterministic, so it is the same message.
            self._changing = True
            self._propose_at = None
            actions.extend(self._send_view_change(now_ms))
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def decode_message(self, data: bytes) -> Record:
        return decode_message(data)

    def on_tick(self, now_ms: int) -> list[Action]:
        self._alarm.fired()
        actions: list[Action] = []
        if self._propose_at is not None and now_ms >= self._propose_at:
            actions.extend(self._maybe_propose(now_ms))
        if self._view_deadline is not None and now_ms >= self._view_deadline:
            actions.extend(self._on_view_timeout(now_ms))
        if self._retransmit_at is not None and now_ms >= self._retransmit_at:
            actions.extend(self._retransmit(now_ms))
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_message(self, sender: bytes, message: Record, now_ms: int) -> list[Action]:
        """Handle a peer's message.  ``sender`` is not trusted: every message is signed.

        Consensus messages may be relayed, so the signer named in the message, checked against
        its signature and the validator set, is who it is from.
        """
        try:
            check_shape(message)
        except DecodeError:
            return self._finish([])
        actions: list[Action] = []
        if isinstance(message, Checkpoint):
            actions = self._on_checkpoint(message, trusted=False)
        elif isinstance(message, Decision):
            actions = self._on_decision(message)
        elif isinstance(message, PrePrepare | Prepare | Commit | ViewChange | NewView):
            actions = self._on_height_message(message, now_ms)
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_proposal(self, block: Block | None, now_ms: int) -> list[Action]:
        awaiting, self._awaiting = self._awaiting, None
        actions: list[Action] = []
        if awaiting is None or awaiting.height != self._h or awaiting.view != self._view:
            return self._finish(actions)
        if block is not None and not (
            self._block_fits(block)
            and block.header.round == awaiting.view
            and block.header.proposer == self._me
        ):
            block = None  # not a block this engine asked for: treat as nothing to propose
        if awaiting.view_changes is None:
            if self._changing or self._view in self._accepted:
                return self._finish(actions)
            if block is None:
                self._propose_at = now_ms + self._interval
            else:
                actions.extend(self._propose(block, built_here=True))
        elif self._changing:
            actions.extend(self._send_new_view(awaiting.view_changes, block, now_ms))
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_block_validated(
        self, block_hash: bytes, valid: bool, now_ms: int, reason: str = ""
    ) -> list[Action]:
        if block_hash not in self._validating:
            return self._finish([])  # an answer for a height that is over
        del self._validating[block_hash]
        self._validated[block_hash] = valid
        return self._finish(self._progress(now_ms))

    def on_block_committed(self, head: ChainHead, now_ms: int) -> list[Action]:
        if head.height <= self._head.height:
            return self._finish([])
        view_hint: int | None = None
        decided = self._decided
        backlog = False
        if decided is not None and decided.vote.height == head.height:
            view_hint = decided.vote.round
            backlog = self._was_full(decided.vote.block_hash)
        elif self._hint is not None and self._hint.vote.height == head.height:
            view_hint = self._hint.vote.round
            self._last_cert = self._hint
        if self._hint is not None and self._hint.vote.height <= head.height:
            self._hint = None
        self._head = head
        if view_hint is not None:
            # Start the next height in the view that decided this one: the others are there.
            self._view = view_hint
        elif self._changing:
            # Caught up while asking for a view nobody granted: go back to the last view this
            # replica was in (safe at a new height, see the ADR), from where the f + 1 rule can
            # take it up to wherever the others go; a view it asked for alone could only wait.
            self._view = self._active_view
        self._claims.forget_up_to(head.height)
        self._adopt_set(head)
        actions: list[Action] = []
        if head.height % self._cp_interval == 0 and head.height > self._stable and self._member:
            checkpoint = make_checkpoint(self._key, self._chain_id, head.height, head.block_hash)
            self._my_checkpoint = checkpoint
            actions.append(Broadcast(checkpoint))
            actions.extend(self._on_checkpoint(checkpoint, trusted=True))
        self._begin_instance(now_ms, backlog=backlog)
        if self._propose_at is not None and now_ms >= self._propose_at:
            # A full block: ask for the next one in this same batch of actions, not at a timer
            # in a later turn of the event loop, so the pre-prepare's vote record joins the
            # committed block's synced write (ADR 0053); on_tick would take the same step.
            actions.extend(self._maybe_propose(now_ms))
        actions.extend(self._progress(now_ms))
        return self._finish(actions)

    def on_pending_work(self, pending: bool, now_ms: int) -> list[Action]:
        self._pending_work = pending
        if pending:
            self._arm_view_timer(now_ms, extra=self._interval)
        elif not self._changing and not self._outstanding():
            self._view_deadline = None
            self._retransmit_at = None
        return self._finish([])

    def commit_rule(self, block: Block) -> CommitRule:
        """2f + 1 commit votes certify a block; a prepare quorum does not."""
        return CommitRule(frozenset(self._vals.keys), self._vals.q, VoteStep.COMMIT)

    def status(self) -> Mapping[str, int | str]:
        return {
            "engine": self.name,
            "view": self._view,
            "height": self._head.height,
            "round": self._view,
            "primary": self._vals.primary(self._view).hex(),
        }

    # --- introspection for tests and operators ----------------------------------------------

    @property
    def view(self) -> int:
        return self._view

    @property
    def changing_view(self) -> bool:
        return self._changing

    @property
    def stable_checkpoint(self) -> int:
        return self._stable

    @property
    def watermarks(self) -> tuple[int, int]:
        """Messages are kept for heights in (low, high]."""
        return self._stable, self._stable + self._window

    def log_heights(self) -> list[int]:
        return sorted(self._logs)

    def log_size(self) -> int:
        """Messages held in all logs (checkpoints included)."""
        return sum(log.message_count() for log in self._logs.values()) + sum(
            len(c) for c in self._checkpoints.values()
        )

    # --- helpers ------------------------------------------------------------------------------

    def _finish(self, actions: list[Action]) -> list[Action]:
        """Append SetTimer when the earliest deadline is not the one the runtime has armed."""
        deadlines = (self._propose_at, self._view_deadline, self._retransmit_at)
        return self._alarm.arm(actions, deadlines)

    def _pp_vote(self, pp: PrePrepare) -> Vote:
        return Vote(pp.height, pp.view, self._hash(pp.block), int(VoteStep.PREPARE))

    def _log_at(self, height: int) -> HeightLog | None:
        """The log of ``height`` if it lies between the watermarks (created on first use)."""
        log = self._logs.get(height)
        if log is None and self._stable < height <= self._stable + self._window:
            log = self._logs[height] = HeightLog(height, Tally(self._vals.q), Tally(self._vals.q))
        return log

    def _view_ok(self, view: int, *, commit: bool = False) -> bool:
        low = self._view - VIEW_WINDOW if commit else self._view
        return low <= view <= self._view + VIEW_WINDOW

    def _block_fits(self, block: Block) -> bool:
        """The block extends this replica's head (the runtime checks the rest by executing it)."""
        header = block.header
        return (
            header.height == self._h
            and header.prev_hash == self._head.block_hash
            and header.chain_id == self._chain_id
            and header.proposer in self._vals
            and header.round <= self._view
        )

    def _was_full(self, block_hash: bytes) -> bool:
        """The decided block at the height in flight carried ``max_block_txs`` transactions."""
        if self._full_block_txs is None:
            return False
        block = self._find_block(block_hash)
        return block is not None and len(block.txs) >= self._full_block_txs

    def _find_block(self, block_hash: bytes) -> Block | None:
        log = self._logs.get(self._h)
        if log is not None and block_hash in log.blocks:
            return log.blocks[block_hash]
        if self._lock_block is not None and self._hash(self._lock_block) == block_hash:
            return self._lock_block
        return None

    def _evidence(
        self, offender: bytes, kind: str, at: tuple[int, int], first: Record, second: Record
    ) -> list[Action]:
        """Report ``offender`` once per (kind, view, height): ``at`` is (view, height)."""
        key = (offender, kind, *at)
        if key in self._reported:
            return []
        self._reported[key] = None
        return [ReportEvidence(offender, kind, (first, second))]

    # --- incoming messages --------------------------------------------------------------------

    def _on_height_message(
        self, message: PrePrepare | Prepare | Commit | ViewChange | NewView, now_ms: int
    ) -> list[Action]:
        height = message.vote.height if isinstance(message, Prepare | Commit) else message.height
        signer = None if isinstance(message, NewView) else message.signer
        if signer is not None and signer not in self._vals:
            return []  # not a member: nothing it signs counts
        if height <= self._head.height:
            # A view change for a committed height means its sender is stuck there; other late
            # messages are normal unless they are more than one height behind.
            stuck = isinstance(message, ViewChange) or height < self._head.height
            return self._reply_stale(signer, height) if signer and stuck else []
        log = self._log_at(height)
        if log is None:
            # Outside the watermarks: not stored, but a verified one still shows how far the
            # chain has gone, which is what a replica that is behind needs to know.
            if (
                not isinstance(message, NewView)
                and height - 1 > self._claims.of(message.signer)
                and self._message_signature_ok(message)
            ):
                self._claims.claim(message.signer, height - 1, self._head.height)
            return []
        if isinstance(message, PrePrepare):
            return self._store_pre_prepare(log, message)
        if isinstance(message, Prepare):
            return self._store_vote(log, message, VoteStep.PREPARE)
        if isinstance(message, Commit):
            return self._store_vote(log, message, VoteStep.COMMIT)
        if isinstance(message, ViewChange):
            return self._store_view_change(log, message)
        return self._store_new_view(log, message)

    def _message_signature_ok(self, message: PrePrepare | Prepare | Commit | ViewChange) -> bool:
        if isinstance(message, PrePrepare):
            return self._check(message.signature, self._pp_vote(message))
        if isinstance(message, Prepare | Commit):
            return self._check(message.signature, message.vote)
        return self._check(message.signature, message.claim())

    def _reply_stale(self, signer: bytes, height: int) -> list[Action]:
        """``signer`` works on a height this replica committed: show it our latest certificate."""
        cert = self._last_cert
        if cert is None or signer == self._me or cert.vote.height < height:
            return []
        if self._replied.get(signer, 0) >= cert.vote.height:
            return []  # once per validator and certificate: bounded, however much it sends
        self._replied[signer] = cert.vote.height
        return [Send(signer, Decision(cert))]

    def _store_pre_prepare(self, log: HeightLog, pp: PrePrepare) -> list[Action]:
        if pp.signer != self._vals.primary(pp.view) or not self._view_ok(pp.view):
            return []
        vote = self._pp_vote(pp)
        block_hash = vote.block_hash
        known = log.pre_prepares.get(pp.view)
        if known is not None and self._hash(known.block) == block_hash:
            return []  # a copy
        if not self._check(pp.signature, vote):
            return []
        if known is not None:
            return self._evidence(
                pp.signer, "equivocating-pre-prepare", (pp.view, log.height), known, pp
            )
        log.pre_prepares[pp.view] = pp
        log.blocks.setdefault(block_hash, pp.block)
        self._claims.claim(pp.signer, log.height - 1, self._head.height)
        return self._count(log, vote, pp.signature, pp)

    def _store_vote(
        self, log: HeightLog, message: Prepare | Commit, step: VoteStep
    ) -> list[Action]:
        vote = message.vote
        if not self._view_ok(vote.round, commit=step == VoteStep.COMMIT):
            return []
        tally = log.prepares if step == VoteStep.PREPARE else log.commits
        if tally.voted(vote.round, message.signer) == vote.block_hash:
            return []  # a copy
        if not self._check(message.signature, vote):
            return []
        self._claims.claim(message.signer, log.height - 1, self._head.height)
        return self._count(log, vote, message.signature, message)

    def _count(
        self, log: HeightLog, vote: Vote, signature: VoteSignature, message: Record
    ) -> list[Action]:
        """Count a verified vote (a pre-prepare is its primary's prepare); report equivocation."""
        step, view, block_hash = VoteStep(vote.step), vote.round, vote.block_hash
        tally = log.prepares if step == VoteStep.PREPARE else log.commits
        earlier = tally.add(view, block_hash, signature, message)
        if earlier is not None:
            kind = "conflicting-prepare" if step == VoteStep.PREPARE else "conflicting-commit"
            return self._evidence(signature.validator, kind, (view, log.height), earlier, message)
        if step == VoteStep.COMMIT and log.height > self._h:
            cert = tally.certificate(
                Vote(log.height, view, block_hash, int(VoteStep.COMMIT)), self._vals
            )
            if cert is not None:
                return self._note_certificate(cert)
        return []

    def _store_view_change(self, log: HeightLog, vc: ViewChange) -> list[Action]:
        target = vc.new_view
        if log.height == self._h and (
            target < self._view or (target == self._view and not self._changing)
        ):
            return self._resend_new_view(vc.signer, target)
        if not self._view_ok(target):
            return []
        senders = log.view_changes.setdefault(target, {})
        known = senders.get(vc.signer)
        if known is not None:
            if known.prepared == vc.prepared:
                self._keep_block(log, vc)
                return []
            if view_change_valid(vc, self._vals, self._check):
                return self._evidence(
                    vc.signer, "conflicting-view-change", (target, log.height), known, vc
                )
            return []
        if not view_change_valid(vc, self._vals, self._check):
            return []
        senders[vc.signer] = vc.without_block()
        self._keep_block(log, vc)
        self._claims.claim(vc.signer, log.height - 1, self._head.height)
        return []

    def _keep_block(self, log: HeightLog, vc: ViewChange) -> None:
        if vc.block is not None and vc.prepared is not None:
            block_hash = self._hash(vc.block)
            if block_hash == vc.prepared.vote.block_hash:
                log.blocks.setdefault(block_hash, vc.block)

    def _resend_new_view(self, signer: bytes, target: int) -> list[Action]:
        """A replica still asks for a view this one entered: give it the proof (once)."""
        nv = self._nv
        if nv is None or nv.view != self._view or signer == self._me:
            return []
        if (signer, nv.view) in self._nv_sent:
            return []
        self._nv_sent[(signer, nv.view)] = None
        return [Send(signer, nv)]

    def _store_new_view(self, log: HeightLog, nv: NewView) -> list[Action]:
        if nv.view in log.new_views:
            return []
        if log.height == self._h and not self._may_enter(nv.view):
            return []  # this replica is in that view or beyond
        try:
            check_new_view(nv, self._vals, self._check)
        except NewViewError:
            return []
        log.new_views[nv.view] = nv
        for vc in nv.view_changes:
            self._claims.claim(vc.signer, log.height - 1, self._head.height)
        actions: list[Action] = []
        pp = nv.pre_prepare
        if pp is not None:
            vote = self._pp_vote(pp)
            block_hash = vote.block_hash
            log.blocks.setdefault(block_hash, pp.block)
            known = log.pre_prepares.get(pp.view)
            if known is not None and self._hash(known.block) != block_hash:
                actions.extend(
                    self._evidence(
                        pp.signer, "equivocating-pre-prepare", (pp.view, log.height), known, pp
                    )
                )
            actions.extend(self._count(log, vote, pp.signature, pp))
        return actions

    def _on_decision(self, decision: Decision) -> list[Action]:
        cert = decision.certificate
        height = cert.vote.height
        if height <= self._head.height:
            return []
        if self._hint is not None and self._hint.vote.height >= height and height != self._h:
            return []
        if not certificate_valid(cert, VoteStep.COMMIT, height, self._vals, self._check):
            return []
        return self._note_certificate(cert)

    def _note_certificate(self, cert: Certificate) -> list[Action]:
        """A valid commit certificate for a height above the head: commit it or catch up."""
        height = cert.vote.height
        if height == self._h:
            if self._decided is None:
                self._decided = cert
            return []
        if self._hint is None or self._hint.vote.height < height:
            self._hint = cert
        if height > self._sync_requested:
            self._sync_requested = height
            return [SyncTo(height)]
        return []

    def _on_checkpoint(self, cp: Checkpoint, *, trusted: bool) -> list[Action]:
        height = cp.height
        if height <= self._stable or height % self._cp_interval != 0:
            return []
        if height > max(self._stable, self._head.height) + self._window:
            return []
        if cp.signer not in self._vals:
            return []
        at = self._checkpoints.setdefault(height, {})
        known = at.get(cp.signer)
        if known is not None and known.block_hash == cp.block_hash:
            return []
        if not trusted and not self._check(cp.signature, cp.claim()):
            return []
        if known is not None:
            return self._evidence(cp.signer, "conflicting-checkpoint", (0, height), known, cp)
        at[cp.signer] = cp
        self._claims.claim(cp.signer, height, self._head.height)
        matching = sum(1 for c in at.values() if c.block_hash == cp.block_hash)
        if matching >= self._vals.q:
            return self._stabilize(height)
        return []

    def _stabilize(self, height: int) -> list[Action]:
        """q validators signed the same block at ``height``: drop everything at or below it."""
        self._stable = height
        for old in [h for h in self._logs if h <= height]:
            del self._logs[old]
        for old in [h for h in self._checkpoints if h <= height]:
            del self._checkpoints[old]
        for key in [k for k in self._reported if k[3] <= height]:
            del self._reported[key]
        if height > self._head.height and height > self._sync_requested:
            self._sync_requested = height
            return [SyncTo(height)]
        return []

    # --- timers ---------------------------------------------------------------------------------

    def _maybe_propose(self, now_ms: int) -> list[Action]:
        self._propose_at = None
        view = self._view
        if (
            self._changing
            or self._vals.primary(view) != self._me
            or self._committing
            or self._decided is not None
            or view in self._accepted
            or self._awaiting is not None
            or (self._nv is not None and self._nv.pre_prepare is not None)
        ):
            return []
        if self._h > self._stable + self._window:
            self._propose_at = now_ms + self._interval  # above the high watermark: wait
            return []
        if self._lock_block is not None:
            # Locked on a block at this height (after a restart): it is the only one to offer.
            return self._propose(self._lock_block, built_here=False)
        self._awaiting = _Awaiting(view, self._h, None)
        return [
            RequestProposal(
                height=self._h,
                round=view,
                prev_hash=self._head.block_hash,
                min_timestamp_ms=self._head.timestamp_ms + 1,
            )
        ]

    def _propose(self, block: Block, *, built_here: bool) -> list[Action]:
        view = self._view
        block_hash = self._hash(block)
        if not self._guard.permits(VoteStep.PREPARE, self._h, view, block_hash):
            return []
        log = self._log_at(self._h)
        if log is None:
            return []
        self._guard.record(VoteStep.PREPARE, self._h, view, block_hash)
        pp = make_pre_prepare(self._key, self._chain_id, view, block)
        self._my_pp = pp
        if built_here:
            self._validated[block_hash] = True  # the runtime executed it to build it
        log.pre_prepares.setdefault(view, pp)
        log.blocks.setdefault(block_hash, block)
        vote = self._pp_vote(pp)
        self._count(log, vote, pp.signature, pp)
        return [Persist(PREPARE_KEY, vote.encode()), Broadcast(pp)]

    def _on_view_timeout(self, now_ms: int) -> list[Action]:
        self._view_deadline = None
        if self._committing:
            self._arm_view_timer(now_ms)
            return []
        actions: list[Action] = []
        # Stuck: if anyone showed a higher head, ask the runtime to look, even on one claim
        # (a fetch only accepts certified blocks, so a lie costs a request, never safety).
        best = self._claims.best()
        if self._hint is not None:
            best = max(best, self._hint.vote.height)
        if best > self._head.height:
            self._sync_requested = max(self._sync_requested, best)
            actions.append(SyncTo(best))
        if self._member and (self._pending_work or self._changing or self._outstanding()):
            actions.extend(self._start_view_change(self._view + 1, now_ms))
        elif not self._member:
            self._arm_view_timer(now_ms)  # keep looking for a higher head to fetch
        return actions

    def _retransmit(self, now_ms: int) -> list[Action]:
        """Re-send this replica's messages for the height in flight (links may lose them)."""
        self._retransmit_at = None
        if self._committing:
            return []
        actions: list[Action] = []
        if self._changing:
            if self._my_vc is not None:
                actions.append(Broadcast(self._my_vc))
        else:
            view = self._view
            if self._my_nv is not None and self._my_nv.view == view:
                actions.append(Broadcast(self._my_nv))
            elif self._my_pp is not None and self._my_pp.view == view:
                actions.append(Broadcast(self._my_pp))
            prepare = self._prepare_sent.get(view)
            if prepare is not None:
                actions.append(Broadcast(prepare))
        commits = [c for c in self._commit_sent.values() if c is not None]
        if commits:
            actions.append(Broadcast(commits[-1]))
        checkpoint = self._my_checkpoint
        if checkpoint is not None and checkpoint.height > self._stable:
            actions.append(Broadcast(checkpoint))
        if self._view_deadline is not None or self._changing or self._outstanding():
            self._retransmit_at = now_ms + self._retransmit_ms
        return actions

    # --- view changes ---------------------------------------------------------------------------

    def _start_view_change(self, target: int, now_ms: int) -> list[Action]:
        self._vc_count += 1
        self._view = target
        self._changing = True
        self._nv = None
        self._awaiting = None
        self._propose_at = None
        self._view_deadline = None
        self._retransmit_at = None
        return [
            Persist(VIEW_KEY, view_record(self._h, target, True)),
            *self._send_view_change(now_ms),
        ]

    def _send_view_change(self, now_ms: int) -> list[Action]:
        if not self._member:
            return []  # a replica outside the set signs nothing
        vc = make_view_change(
            self._key,
            self._chain_id,
            self._view,
            self._h,
            prepared=self._lock,
            block=self._lock_block,
        )
        self._my_vc = vc
        log = self._log_at(self._h)
        if log is not None:
            log.view_changes.setdefault(self._view, {})[self._me] = vc.without_block()
            self._keep_block(log, vc)
        self._arm_view_timer(now_ms)
        return [Broadcast(vc)]

    def _send_new_view(
        self, view_changes: tuple[ViewChange, ...], block: Block | None, now_ms: int
    ) -> list[Action]:
        """Send the new view for a fresh block (or none): no view change reported a lock."""
        actions: list[Action] = []
        pp = None
        if block is not None:
            block_hash = self._hash(block)
            if self._guard.permits(VoteStep.PREPARE, self._h, self._view, block_hash):
                self._guard.record(VoteStep.PREPARE, self._h, self._view, block_hash)
                pp = make_pre_prepare(self._key, self._chain_id, self._view, block)
                self._validated[block_hash] = True
                actions.append(Persist(PREPARE_KEY, self._pp_vote(pp).encode()))
        nv = NewView(self._view, self._h, view_changes, pp)
        actions.append(Broadcast(nv))
        self._my_nv = nv
        if pp is not None:
            self._my_pp = pp
        log = self._log_at(self._h)
        if log is not None:
            log.new_views[nv.view] = nv
            if pp is not None:
                log.blocks.setdefault(self._hash(pp.block), pp.block)
                self._count(log, self._pp_vote(pp), pp.signature, pp)
        actions.extend(self._enter_view(nv, now_ms))
        return actions

    def _enter_view(self, nv: NewView, now_ms: int) -> list[Action]:
        self._view = self._active_view = nv.view
        self._changing = False
        self._nv = nv
        self._awaiting = None
        self._view_deadline = None
        self._retransmit_at = None
        self._arm_view_timer(now_ms)
        mine = self._vals.primary(nv.view) == self._me
        self._propose_at = now_ms + self._interval if mine and nv.pre_prepare is None else None
        return []

    # --- the progress loop ----------------------------------------------------------------------

    def _progress(self, now_ms: int) -> list[Action]:
        """Take every step the state now allows, most decisive first, until none applies.

        Each step returns None when it cannot act, or its actions after changing the state so
        that it will not take the same step again.
        """
        steps = (
            self._step_decide,
            self._step_sync,
            self._step_new_view,
            self._step_join,
            self._step_build_new_view,
            self._step_accept,
            self._step_prepare,
            self._step_commit_vote,
        )
        return run_steps(steps, now_ms)

    def _step_decide(self, now_ms: int) -> list[Action] | None:
        h = self._h
        if self._decided is None:
            log = self._logs.get(h)
            found = log.commits.quorums() if log is not None else []
            if log is not None and found:
                view, block_hash = found[0]
                vote = Vote(h, view, block_hash, int(VoteStep.COMMIT))
                self._decided = log.commits.certificate(vote, self._vals)
            elif self._hint is not None and self._hint.vote.height == h:
                self._decided = self._hint
            return None if self._decided is None else []
        if self._committing:
            return None
        cert = self._decided
        block = self._find_block(cert.vote.block_hash)
        valid = None if block is None else self._validated.get(cert.vote.block_hash)
        if block is not None and valid is None:
            if cert.vote.block_hash in self._validating:
                return None
            self._validating[cert.vote.block_hash] = None
            return [ValidateBlock(block)]
        if block is None or not valid:
            # Decided, but this replica lacks the block (or cannot execute it): fetch it.
            if self._sync_requested >= h:
                return None
            self._sync_requested = h
            return [SyncTo(h)]
        self._committing = True
        self._last_cert = cert
        return [Persist(LAST_COMMIT_KEY, cert.encode()), CommitBlock(block, cert)]

    def _step_sync(self, now_ms: int) -> list[Action] | None:
        if not self._claims.dirty:
            return None
        # at least f + 1 validators, so one honest one, are this far
        target = self._claims.reached_by(self._vals.f + 1)
        if target is None:
            return []
        if target > self._head.height and target > self._sync_requested:
            self._sync_requested = target
            return [SyncTo(target)]
        return []

    def _step_new_view(self, now_ms: int) -> list[Action] | None:
        log = self._logs.get(self._h)
        if log is None:
            return None
        views = [v for v in log.new_views if self._may_enter(v)]
        if not views:
            return None
        return self._enter_view(log.new_views[max(views)], now_ms)

    def _may_enter(self, view: int) -> bool:
        """Whether a verified new view for ``view`` would move this replica.

        Also true for the current view when the replica is in it without a new view and has
        accepted nothing there yet (it started the height in that view): the new view carries
        the only pre-prepare the view's primary will send.
        """
        if view != self._view:
            return view > self._view
        return self._changing or (self._nv is None and view not in self._accepted)

    def _step_join(self, now_ms: int) -> list[Action] | None:
        log = self._logs.get(self._h)
        if log is None or not self._member:
            return None
        targets = sorted(
            (t for t in log.highest_targets().values() if t > self._view), reverse=True
        )
        if len(targets) <= self._vals.f:
            return None
        # f + 1 validators (one of them honest) want views above ours: join the smallest.
        return self._start_view_change(targets[self._vals.f], now_ms)

    def _step_build_new_view(self, now_ms: int) -> list[Action] | None:
        view = self._view
        if (
            not self._changing
            or self._vals.primary(view) != self._me
            or self._awaiting is not None
            or (self._my_nv is not None and self._my_nv.view == view)
        ):
            return None
        log = self._logs.get(self._h)
        senders = {} if log is None else log.view_changes.get(view, {})
        if log is None or len(senders) < self._vals.q:
            return None
        ordered = [senders[k] for k in self._vals.ordered(list(senders))]
        chosen = highest_prepared(ordered)
        if chosen is None:
            self._awaiting = _Awaiting(view, self._h, tuple(ordered[: self._vals.q]))
            return [
                RequestProposal(
                    height=self._h,
                    round=view,
                    prev_hash=self._head.block_hash,
                    min_timestamp_ms=self._head.timestamp_ms + 1,
                )
            ]
        block_hash = chosen.vote.block_hash
        block = self._find_block(block_hash)
        if block is None or not self._guard.permits(VoteStep.PREPARE, self._h, view, block_hash):
            return None  # wait for a view change that brings the block
        holder = next(vc for vc in ordered if vc.prepared == chosen)
        others = [vc for vc in ordered if vc is not holder][: self._vals.q - 1]
        chosen_vcs = self._vals.ordered([vc.signer for vc in [holder, *others]])
        by_signer = {vc.signer: vc for vc in ordered}
        view_changes = tuple(by_signer[s] for s in chosen_vcs)
        self._guard.record(VoteStep.PREPARE, self._h, view, block_hash)
        pp = make_pre_prepare(self._key, self._chain_id, view, block)
        nv = NewView(view, self._h, view_changes, pp)
        self._my_nv = nv
        self._my_pp = pp
        log.new_views[view] = nv
        vote = self._pp_vote(pp)
        self._count(log, vote, pp.signature, pp)
        return [
            Persist(PREPARE_KEY, vote.encode()),
            Broadcast(nv),
            *self._enter_view(nv, now_ms),
        ]

    def _step_accept(self, now_ms: int) -> list[Action] | None:
        view = self._view
        if self._changing or view in self._accepted:
            return None
        nv = self._nv
        if nv is not None and nv.pre_prepare is not None:
            pp: PrePrepare | None = nv.pre_prepare
        else:
            log = self._logs.get(self._h)
            pp = None if log is None else log.pre_prepares.get(view)
        if pp is None:
            return None
        block_hash = self._hash(pp.block)
        # Outside a new view, a replica locked on a block at this height (possible after a
        # restart) accepts only that block; a verified new view may override the lock.
        lock_ok = nv is not None or self._lock is None or self._lock.vote.block_hash == block_hash
        if not (lock_ok and self._block_fits(pp.block)):
            self._accepted[view] = b""
            return []
        self._accepted[view] = block_hash
        log = self._log_at(self._h)
        if log is not None:
            log.blocks.setdefault(block_hash, pp.block)
        self._arm_view_timer(now_ms)
        if block_hash in self._validated or block_hash in self._validating:
            return []
        self._validating[block_hash] = None
        return [ValidateBlock(pp.block)]

    def _step_prepare(self, now_ms: int) -> list[Action] | None:
        view = self._view
        if self._changing or view in self._prepare_sent:
            return None
        block_hash = self._accepted.get(view)
        if not block_hash or not self._validated.get(block_hash):
            return None
        if self._vals.primary(view) == self._me or not self._member:
            # the pre-prepare was this replica's prepare, or it is not a member: no prepare
            self._prepare_sent[view] = None
            return []
        log = self._log_at(self._h)
        if log is None or not self._guard.permits(VoteStep.PREPARE, self._h, view, block_hash):
            self._prepare_sent[view] = None  # refuse: it signed another block here before
            return []
        self._guard.record(VoteStep.PREPARE, self._h, view, block_hash)
        vote = Vote(self._h, view, block_hash, int(VoteStep.PREPARE))
        prepare = make_prepare(self._key, self._chain_id, vote)
        self._prepare_sent[view] = prepare
        actions: list[Action] = [Persist(PREPARE_KEY, vote.encode()), Broadcast(prepare)]
        actions.extend(self._count(log, vote, prepare.signature, prepare))
        return actions

    def _step_commit_vote(self, now_ms: int) -> list[Action] | None:
        view = self._view
        if self._changing or view in self._commit_sent:
            return None
        block_hash = self._accepted.get(view)
        if not block_hash or not self._validated.get(block_hash):
            return None
        log = self._logs.get(self._h)
        if log is None:
            return None
        prepared = log.prepares.certificate(
            Vote(self._h, view, block_hash, int(VoteStep.PREPARE)), self._vals
        )
        if prepared is None:
            return None
        if not self._member or not self._guard.permits(VoteStep.COMMIT, self._h, view, block_hash):
            self._commit_sent[view] = None
            return []
        self._guard.record(VoteStep.COMMIT, self._h, view, block_hash)
        block = log.blocks[block_hash]
        self._lock, self._lock_block = prepared, block
        vote = Vote(self._h, view, block_hash, int(VoteStep.COMMIT))
        commit = make_commit(self._key, self._chain_id, vote)
        self._commit_sent[view] = commit
        actions: list[Action] = [
            Persist(PREPARED_KEY, prepared_record(prepared, block)),
            Broadcast(commit),
        ]
        actions.extend(self._count(log, vote, commit.signature, commit))
        return actions

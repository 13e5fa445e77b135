"""The chain driver: everything a validator decides about its chain, with no I/O.

Why: the node's runtime and the cluster simulators in tests/sim once each wrote the block path
(validate, build, commit, certificate checks, catch-up) and the copies drifted, so the seeds
the simulators ran proved the copy, not the node.  Following etcd's raft ``Ready`` loop and
TigerBeetle's one code path, this module owns those decisions and nothing else: it takes inputs
(a tick with the time, a peer's consensus message, a change of the mempool, fetched certified
blocks) and returns *effects*, in the order they must be performed: persist an engine record
(synced, before anything after it), send or broadcast a message, write a committed block with
its state writes in one batch, arm a timer, fetch blocks, report evidence, halt.  node/runtime.py
performs them with LevelDB, sockets and asyncio timers; the simulators perform them with a fake
disk, network and clock.  Both drive this same class.

The driver owns the committed head, the in-memory committed state (the one the shell loaded
from its store), the pending branch of executed, not yet final blocks (pob), the executions it
keeps for the commit, the catch-up target and the ``halted`` flag.  It never reads a clock:
every input carries ``now_ms``.

Invariant violations (:class:`~protocol.errors.InvariantViolation`: a double-sign attempt, a
state this node cannot reproduce, an engine contradicting itself) end in a :class:`Halt`
effect whichever input raised them; after it the driver ignores every input, so the node casts
no vote, proposes nothing and commits nothing.  A peer's message that does not decode is a
refusal (:class:`~protocol.errors.GridchainError`) and propagates to the caller, which scores
the peer; once decoded, nothing inside raises a refusal on purpose (engines ignore or report bad
votes, the driver answers bad blocks with a verdict), so a GridchainError that escapes an engine
is the engine contradicting itself and halts too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gridchain.consensus.certificates import check_certificate
from gridchain.consensus.engine import (
    Action,
    Broadcast,
    ChainHead,
    CommitBlock,
    Engine,
    Persist,
    ReportEvidence,
    RequestProposal,
    Send,
    SetTimer,
    SyncTo,
    ValidateBlock,
)
from gridchain.consensus.kernel.verify import Verifier
from gridchain.genesis.schema import Genesis
from gridchain.market.app import Application, BlockBuild, BlockContext, Execution
from gridchain.market.cd_schedule import Decision
from gridchain.market.errors import BlockRejectedError
from gridchain.market.orders import MarketEvent, OrderEvent
from gridchain.market.pending import PendingChain
from gridchain.market.state import MerkleState, StateReader
from gridchain.market.tx_effects import TxEffect
from gridchain.market.validators import validators_after, validators_at
from gridchain.protocol.block import (
    MAX_BLOCK_BYTES,
    Block,
    BlockHeader,
    Certificate,
    CommittedBlock,
    check_block_structure,
    schedule_root,
    tx_root,
)
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import GridchainError, InvariantViolation
from gridchain.protocol.tx import Transaction

#: How far ahead of this node's clock a block's timestamp may be (clocks of peer devices drift).
MAX_FUTURE_DRIFT_MS = 10_000
#: Blocks asked for in one catch-up request.
SYNC_BATCH = 64


class UnknownParentError(BlockRejectedError):
    """A block on a parent this node has neither committed nor validated."""

    code = "unknown_parent"


class StateDivergenceError(InvariantViolation):
    """This node computed another state than the block certifies: stop rather than diverge."""

    code = "state_divergence"


class EngineContradictionError(InvariantViolation):
    """The engine did what it must never do (committed a block it cannot prove, failed on a
    tick that carries no input to refuse)."""

    code = "engine_contradiction"


@dataclass(frozen=True, slots=True)
class CommitEvent:
    height: int
    block_hash: bytes
    tx_hashes: tuple[bytes, ...]
    timestamp_ms: int
    #: Trades and order changes of the block, in execution order.
    market_events: tuple[MarketEvent, ...] = ()
    #: The C&D setpoints this block decided, if it decided an interval.
    decision: Decision | None = None


# --- effects -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommitBatch:
    """Write ``committed`` and its state ``writes`` in one synced batch, then publish ``event``.

    The driver's head and state already include the block; anything after this effect in the
    list (the engine's reaction to the commit) assumes the batch was written.
    """

    committed: CommittedBlock
    writes: Mapping[bytes, bytes | None]
    event: CommitEvent
    #: transactions the mempool dropped because the block made them fail
    dropped: int
    #: whether the block came from a peer while catching up (not decided here)
    fetched: bool
    #: the state tree's node writes (``MerkleState.apply``), stored in the same batch
    tree_writes: Mapping[bytes, bytes | None]
    #: the entries the block pruned, for the archive index (``Execution.archived``)
    archived: Mapping[bytes, bytes]


@dataclass(frozen=True, slots=True)
class FetchBlocks:
    """Catch up: fetch certified blocks up to ``target`` (ask :meth:`ChainDriver.next_fetch`
    what to fetch next and hand the answer to :meth:`ChainDriver.on_fetched`)."""

    target: int


@dataclass(frozen=True, slots=True)
class ArmBoundary:
    """Call :meth:`ChainDriver.on_boundary` at ``at_ms``: the next scheduling interval starts
    and vehicles may then need a decision block."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop taking part: the node must not vote, propose or commit again until restarted."""

    reason: str
    evidence: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Note:
    """Something an operator should read (the shell logs it at ``level``)."""

    level: str  # "info" | "warning" | "error"
    event: str
    fields: Mapping[str, str | int] = field(default_factory=dict)


Effect = (
    Persist
    | Broadcast
    | Send
    | SetTimer
    | ReportEvidence
    | CommitBatch
    | FetchBlocks
    | ArmBoundary
    | Halt
    | Note
)

#: Effects that write what is already true (a record the engine holds, a block this node
#: verified): kept when an invariant violation cuts a batch short, unlike messages and timers.
_DURABLE = (Persist, CommitBatch)


# --- what the driver is handed -----------------------------------------------------------------


class MempoolPort(Protocol):
    """What the driver needs from a mempool (node.mempool.Mempool; the simulators' own)."""

    def __len__(self) -> int: ...

    def __contains__(self, tx_hash: object) -> bool: ...

    def reap(
        self, max_txs: int, max_bytes: int, exclude: Collection[bytes] = ()
    ) -> list[Transaction]:
        """The next block's transactions; those whose hash is in ``exclude`` (already in a
        pending ancestor of the block) are skipped and do not count against the limits."""
        ...

    def evict(self, tx_hashes: list[bytes]) -> list[tuple[bytes, str]]: ...

    def update_after_commit(
        self, committed: list[Transaction], *, recheck: bool = False
    ) -> list[tuple[bytes, str]]: ...


class ExecutionCache(Protocol):
    """Results of pure functions the driver may look up instead of computing again.

    Executing a block is a function of its parent (whose hash commits to the parent state) and
    the block; building one is a function of the parent state, the candidates and the block
    context.  A validator computes each once anyway (:class:`NoCache`); the simulator shares
    them between its simulated validators, which changes nothing but the run time.
    """

    def execution(self, parent_hash: bytes, block_hash: bytes) -> Execution | GridchainError | None:
        """A known result of executing the block on the parent: the execution or the refusal."""
        ...

    def remember(
        self, parent_hash: bytes, block: Block, result: Execution | GridchainError
    ) -> None: ...

    def build(
        self,
        parent_hash: bytes,
        ctx: BlockContext,
        txs: Sequence[Transaction],
        make: Callable[[], BlockBuild],
    ) -> BlockBuild: ...


class NoCache:
    """Compute everything (what a validator does)."""

    def execution(self, parent_hash: bytes, block_hash: bytes) -> Execution | GridchainError | None:
        return None

    def remember(
        self, parent_hash: bytes, block: Block, result: Execution | GridchainError
    ) -> None:
        return None

    def build(
        self,
        parent_hash: bytes,
        ctx: BlockContext,
        txs: Sequence[Transaction],
        make: Callable[[], BlockBuild],
    ) -> BlockBuild:
        return make()


#: Called with a block about to be committed and its parent (committed) state, before the
#: block's writes are applied: the simulator's independent audits plug in here.
CommitAudit = Callable[[Block, Execution, StateReader], None]


def needs_recheck(execution: Execution) -> bool:
    """Whether a block did something at its time that the mempool's simulation could not:
    expired or rejected orders, or any write before its transactions (settlement, pruning,
    a schedule)."""
    return execution.wrote_before_txs or any(
        isinstance(e, OrderEvent) and e.kind in ("expired", "rejected") for e in execution.events
    )


def head_of(block: Block) -> ChainHead:
    return ChainHead(block.height, block.hash(), block.header.timestamp_ms)


class ChainDriver:
    """One validator's chain decisions: inputs in, an ordered list of effects out."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        app: Application,
        engine: Engine,
        state: MerkleState,
        head: ChainHead,
        mempool: MempoolPort,
        proposer: bytes,
        cache: ExecutionCache | None = None,
        audit: CommitAudit | None = None,
        known_effects: Callable[[Transaction], TxEffect | None] | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.app = app
        self.engine = engine
        self.state = state
        self.head = self._with_set(head)
        self.mempool = mempool
        self.proposer = proposer
        self.cache: ExecutionCache = NoCache() if cache is None else cache
        self.audit = audit
        #: a pending transaction's remembered effect (node.mempool.Mempool.effect_of): a
        #: block built (ADR 0040) or executed (ADR 0046) here takes its writes instead of
        #: applying it again
        self.known_effects = known_effects
        #: the signature check of commit certificates (None: protocol.crypto.verify); the
        #: runtime passes the one its engine checks votes with, which remembers them (ADR 0047)
        self.verifier = verifier
        self.pending = PendingChain(head.block_hash, head.height)
        self.executions: dict[bytes, Execution] = {}
        self.halted: str | None = None
        self.sync_target = 0
        self._pending_notified = False
        self._mempool_dirty = False
        self._due_cache: tuple[tuple[bytes, int], bool] | None = None
        self._out: list[Effect] = []

    # --- inputs ------------------------------------------------------------------------------

    def start(self, persisted: Mapping[bytes, bytes], now_ms: int) -> list[Effect]:
        """Resume the engine from its persisted records; arm the interval boundary.

        Damaged records (the engine's PersistedStateError) raise: the node does not start."""
        return self._input("start", lambda: self._start(persisted, now_ms), halt_on_refusal=False)

    def on_tick(self, now_ms: int) -> list[Effect]:
        """The engine's timer fired (it asked with SetTimer)."""
        return self._input("tick", lambda: self._run(self.engine.on_tick(now_ms), now_ms))

    def on_consensus(self, sender: bytes, payload: bytes, now_ms: int) -> list[Effect]:
        """A consensus message from an authenticated validator; bad input raises a refusal."""
        if self.halted is not None:
            return []
        message = self.engine.decode_message(payload)
        return self.on_message(sender, message, now_ms)

    def on_message(self, sender: bytes, message: Record, now_ms: int) -> list[Effect]:
        """An already decoded consensus message (the simulator decodes each payload once)."""
        return self._input(
            "message", lambda: self._run(self.engine.on_message(sender, message, now_ms), now_ms)
        )

    def on_mempool_changed(self, now_ms: int) -> list[Effect]:
        """A transaction was admitted (or the pool otherwise changed): tell the engine whether
        there is work to propose."""
        if self._pending_notified and self.halted is None and len(self.mempool) > 0:
            # The engine already knows there is work, and a non-empty pool means there still
            # is: nothing to tell it (the common case, once per admitted transaction).
            return []
        return self._input("mempool", lambda: self._mempool_changed(now_ms))

    def on_boundary(self, now_ms: int) -> list[Effect]:
        """A scheduling interval started: a decision block may be due."""

        def boundary() -> None:
            self._mempool_changed(now_ms)
            self._emit(ArmBoundary(self.next_boundary_ms(now_ms)))

        return self._input("boundary", boundary)

    def on_peer_height(self, height: int) -> list[Effect]:
        """A peer says it has committed up to ``height``."""
        return self._input("peer height", lambda: self._request_sync(height))

    def next_fetch(self) -> tuple[int, int] | None:
        """(first height, count) to fetch next while catching up, or None when done."""
        if self.halted is not None or self.head.height >= self.sync_target:
            return None
        return self.head.height + 1, min(SYNC_BATCH, self.sync_target - self.head.height)

    def on_fetched(
        self, blocks: Sequence[CommittedBlock], now_ms: int
    ) -> tuple[list[Effect], bool]:
        """Certified blocks a peer served; commit those that follow the head, in order.
        Returns the effects and whether the head advanced."""
        progressed = False

        def commit_fetched() -> None:
            nonlocal progressed
            for committed in blocks:
                height = committed.block.height
                if height <= self.head.height:
                    continue  # committed meanwhile by consensus
                if height != self.head.height + 1:
                    break
                if not self._commit(committed.block, committed.certificate, now_ms, fetched=True):
                    break
                progressed = True
                self._run(self.engine.on_block_committed(self.head, now_ms), now_ms)

        return self._input("fetched blocks", commit_fetched), progressed

    # --- what the node reads -----------------------------------------------------------------

    def next_context(self, now_ms: int) -> BlockContext:
        """The context a transaction admitted now would run in (the mempool's simulation)."""
        return BlockContext(self.head.height + 1, max(now_ms, self.head.timestamp_ms + 1), b"")

    def next_boundary_ms(self, now_ms: int) -> int:
        """One millisecond into the next scheduling interval."""
        clock = self.app.interval_clock
        return clock.start_ms(clock.interval_at(now_ms) + 1) + 1

    def schedule_due(self, now_ms: int) -> bool:
        """Whether vehicles wait for a decision block now (cached per head and interval,
        because the mempool's changes ask on every transaction)."""
        key = (self.head.block_hash, self.app.interval_clock.interval_at(now_ms))
        if self._due_cache is None or self._due_cache[0] != key:
            self._due_cache = (key, self.app.schedule_due(self.state, now_ms))
        return self._due_cache[1]

    def validators_for(self, height: int) -> tuple[bytes, ...]:
        """The set that certifies ``height`` (known for up to two heights past the head)."""
        return validators_at(self.state, self.genesis, height)

    def validators_on(self, parent_hash: bytes, height: int) -> tuple[bytes, ...]:
        """The set that certifies ``height`` on the branch ending at ``parent_hash``: the
        committed head's, or a pending block's (pob), whose own branch may have changed the
        set (ADR 0044).  A parent this driver does not hold reads the committed state."""
        pending = self.pending
        writes = []
        for ancestor in pending.ancestors(parent_hash):
            block = pending.get(ancestor)
            assert block is not None
            writes.append(block.writes)
        return validators_after(self.state, self.genesis, writes, height)

    def _with_set(self, head: ChainHead) -> ChainHead:
        """``head`` carrying the set of the next height, which the engine votes with."""
        return ChainHead(
            head.height, head.block_hash, head.timestamp_ms, self.validators_for(head.height + 1)
        )

    # --- the loop ----------------------------------------------------------------------------

    def _input(
        self, name: str, step: Callable[[], None], *, halt_on_refusal: bool = True
    ) -> list[Effect]:
        """Run one input; turn an invariant violation into a halt, whatever raised it.

        Bad input is refused before this (a message that does not decode); inside, the engines
        refuse nothing by raising (a bad vote is ignored or reported as evidence) and the
        driver answers a bad block with a verdict, so a GridchainError that escapes is the
        engine or the driver contradicting itself and halts like any violation (an engine's
        DoubleSignError, its guard refusing a signature, is an InvariantViolation itself).
        ``halt_on_refusal=False`` lets either propagate instead (start-up: the caller fails to
        start, e.g. on an engine record it cannot read back).
        """
        if self.halted is not None:
            return []
        out: list[Effect] = []
        self._out = out
        try:
            try:
                step()
            except GridchainError as exc:
                if not halt_on_refusal:
                    raise
                raise EngineContradictionError(
                    f"{exc.code}: {exc.message}", evidence={"refusal": type(exc).__name__}
                ) from exc
        except InvariantViolation as exc:
            if not halt_on_refusal:
                raise  # start-up: a damaged record stops the process, it does not run halted
            return self._halted_by(name, out, exc)
        finally:
            self._out = []
        return out

    def _halted_by(self, name: str, out: list[Effect], exc: InvariantViolation) -> list[Effect]:
        self.halted = f"{exc.code}: {exc.message}"
        kept: list[Effect] = [e for e in out if isinstance(e, _DURABLE)]
        # Which input raised what, beside the violation's own evidence, for every violation.
        evidence = {"input": name, "error": type(exc).__name__, **exc.evidence}
        kept.append(Halt(self.halted, evidence))
        return kept

    def _emit(self, effect: Effect) -> None:
        self._out.append(effect)

    def _start(self, persisted: Mapping[bytes, bytes], now_ms: int) -> None:
        self._run(self.engine.start(self.head, persisted, now_ms), now_ms)
        self._emit(ArmBoundary(self.next_boundary_ms(now_ms)))

    def _run(self, actions: list[Action], now_ms: int) -> None:
        """Apply an engine's batch in order; answers to requests join the queue."""
        queue = list(actions)
        engine = self.engine
        while queue:
            action = queue.pop(0)
            if isinstance(action, Persist | Broadcast | Send | SetTimer | ReportEvidence):
                self._emit(action)
            elif isinstance(action, RequestProposal):
                queue.extend(engine.on_proposal(self.build_proposal(action, now_ms), now_ms))
            elif isinstance(action, ValidateBlock):
                reason = self._check_proposal(action.block, now_ms)
                queue.extend(
                    engine.on_block_validated(
                        action.block.hash(), reason is None, now_ms, reason or ""
                    )
                )
            elif isinstance(action, CommitBlock):
                if self._commit(action.block, action.certificate, now_ms, fetched=False):
                    queue.extend(engine.on_block_committed(self.head, now_ms))
            elif isinstance(action, SyncTo):
                self._request_sync(action.height)
        if self._mempool_dirty:
            # A proposal evicted transactions: tell the engine once its batch is done.
            self._mempool_dirty = False
            self._mempool_changed(now_ms)

    def _mempool_changed(self, now_ms: int) -> None:
        pending = len(self.mempool) > 0 or self.schedule_due(now_ms)
        if pending != self._pending_notified:
            self._pending_notified = pending
            self._run(self.engine.on_pending_work(pending, now_ms), now_ms)

    # --- proposals ---------------------------------------------------------------------------

    def build_proposal(self, req: RequestProposal, now_ms: int) -> Block | None:
        """Answer a RequestProposal: a block on the committed head or on a pending block
        (pob), whose execution is kept for the commit; None when there is nothing to carry
        (and neither genesis nor the engine asks for empty blocks) or no such parent."""
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
        self.remember(block, execution)
        return block

    def build_on(
        self,
        prev_hash: bytes,
        height: int,
        round_: int,
        timestamp: int,
        *,
        allow_empty: bool,
        max_txs: int | None = None,
        max_bytes: int | None = None,
    ) -> tuple[Block, Execution] | None:
        """Build a block from the mempool on ``prev_hash`` (not remembered): up to the
        engine's budget (``max_txs``, ``max_bytes``) or else the chain's ``max_block_txs``,
        of transactions that are not already in a pending ancestor."""
        on_head = prev_hash == self.head.block_hash
        if on_head:
            if height != self.head.height + 1:
                return None
            parent_writes: dict[bytes, bytes | None] | None = None
            excluded: Collection[bytes] = ()
        else:
            parent = self.pending.get(prev_hash)
            if parent is None or height != parent.height + 1:
                return None
            parent_writes = self.pending.writes_after(prev_hash)
            excluded = self.pending.included_txs(prev_hash)
        params = self.genesis.params
        candidates = self.mempool.reap(
            params.max_block_txs if max_txs is None else max_txs,
            MAX_BLOCK_BYTES // 2 if max_bytes is None else min(max_bytes, MAX_BLOCK_BYTES // 2),
            excluded,
        )
        ctx = BlockContext(height, timestamp, self.proposer, round_)
        built = self.cache.build(
            prev_hash,
            ctx,
            candidates,
            lambda: self.app.build_block(
                self.state,
                candidates,
                ctx,
                parent_writes=parent_writes,
                known=self.known_effects,
            ),
        )
        if built.left_out:
            for tx, exc in built.left_out:
                self._emit(
                    Note(
                        "info", "transaction left out", {"tx": tx.hash().hex(), "reason": exc.code}
                    )
                )
            if on_head:  # on a pending branch a left-out tx may only wait for its turn
                self.mempool.evict([tx.hash() for tx, _ in built.left_out])
                self._mempool_dirty = True
        txs = tuple(built.txs)
        if not txs and not built.schedule and not params.empty_blocks and not allow_empty:
            return None
        header = BlockHeader(
            chain_id=self.chain_id,
            height=height,
            prev_hash=prev_hash,
            timestamp_ms=timestamp,
            proposer=self.proposer,
            round=round_,
            benefit=built.benefit,
            tx_root=tx_root(txs),
            schedule_root=schedule_root(built.schedule),
            state_root=built.execution.state_root,
        )
        return Block(header, txs, built.schedule), built.execution

    def remember(self, block: Block, execution: Execution) -> None:
        """Keep a valid block's execution: for its commit, and as a parent for pob's forks."""
        block_hash = block.hash()
        self.executions[block_hash] = execution
        if block_hash not in self.pending and self.pending.knows_parent(block.header.prev_hash):
            self.pending.add(
                block_hash,
                block.header.prev_hash,
                block.height,
                execution.writes,
                timestamp_ms=block.header.timestamp_ms,
                tx_hashes=frozenset(tx.hash() for tx in block.txs),
            )

    # --- block validity ----------------------------------------------------------------------

    def validate_block(self, block: Block, now_ms: int) -> Execution:
        """Everything a validator checks before it accepts a block on its parent: place in
        the chain, time, proposer, structure and signatures, execution and state root.

        The parent is the committed head, or for pob a pending block this node validated.
        Raises the refusal (a GridchainError); changes nothing.
        """
        header = block.header
        if header.prev_hash == self.head.block_hash:
            parent_height, parent_ms = self.head.height, self.head.timestamp_ms
            parent_writes: dict[bytes, bytes | None] | None = None
        else:
            parent = self.pending.get(header.prev_hash)
            if parent is None:
                raise UnknownParentError("block does not extend the committed head")
            parent_height, parent_ms = parent.height, parent.timestamp_ms
            parent_writes = self.pending.writes_after(header.prev_hash)
        if header.height != parent_height + 1:
            raise BlockRejectedError(f"block {header.height} does not follow {parent_height}")
        if header.timestamp_ms <= parent_ms:
            raise BlockRejectedError("block timestamp does not advance")
        if header.timestamp_ms > now_ms + MAX_FUTURE_DRIFT_MS and header.height > 0:
            raise BlockRejectedError("block timestamp is too far in the future")
        if header.proposer not in self.validators_on(header.prev_hash, header.height):
            raise BlockRejectedError("block proposer is not a validator")
        block_hash = block.hash()
        cached = self.executions.get(block_hash)
        if cached is not None:
            return cached  # built or validated here before
        known = self.cache.execution(header.prev_hash, block_hash)
        if isinstance(known, GridchainError):
            raise known
        if known is not None:
            return known
        try:
            execution = self._execute(block, parent_writes)
        except GridchainError as exc:
            self.cache.remember(header.prev_hash, block, exc)
            raise
        self.cache.remember(header.prev_hash, block, execution)
        return execution

    def _execute(self, block: Block, parent_writes: dict[bytes, bytes | None] | None) -> Execution:
        header = block.header
        check_block_structure(block, self.chain_id, self.mempool, self.app.signatures)
        ctx = BlockContext(header.height, header.timestamp_ms, header.proposer, header.round)
        execution = self.app.execute_block(
            self.state,
            block.txs,
            ctx,
            schedule=block.schedule,
            benefit=header.benefit,
            parent_writes=parent_writes,
            known=self.known_effects,
        )
        if execution.state_root != header.state_root:
            raise BlockRejectedError("block state root differs from the executed state")
        return execution

    def _check_proposal(self, block: Block, now_ms: int) -> str | None:
        """Answer an engine's ValidateBlock: None if valid, else the refusal's error code."""
        try:
            execution = self.validate_block(block, now_ms)
        except GridchainError as exc:
            self._emit(
                Note(
                    "warning",
                    "proposal rejected",
                    {"height": block.height, "code": exc.code, "reason": exc.message},
                )
            )
            return exc.code
        self.remember(block, execution)
        return None

    # --- commits -----------------------------------------------------------------------------

    def _commit(
        self, block: Block, certificate: Certificate, now_ms: int, *, fetched: bool
    ) -> bool:
        """Verify, execute and commit a certified block (the CommitBatch effect writes it).

        A block the engine decided must commit: failing is an engine contradiction or a state
        divergence and halts the node.  A fetched block with a certificate that does not prove
        it under the engine's rule, or that does not extend the head, is only a lying (or
        behind) peer: it is dropped.  A fetched block whose certificate is valid but whose
        execution differs halts the node: a quorum certified a state it cannot reproduce.
        """
        evidence = {"height": str(block.height), "block": block.hash().hex()}
        try:
            rule = self.engine.commit_rule(block)
            if not rule.signers <= frozenset(self.validators_for(block.height)):
                raise EngineContradictionError(
                    f"the engine counts signers outside the set of height {block.height}",
                    evidence=evidence,
                )
            check_certificate(certificate, block, rule, self.chain_id, self.verifier)
            if fetched and block.header.prev_hash != self.head.block_hash:
                raise BlockRejectedError("fetched block does not extend the committed head")
        except GridchainError as exc:
            if fetched:
                self._emit(
                    Note(
                        "warning",
                        "fetched block refused",
                        {"height": block.height, "reason": exc.message},
                    )
                )
                return False
            raise EngineContradictionError(
                f"the engine committed block {block.height} with a bad certificate: {exc.message}",
                evidence=evidence,
            ) from exc
        try:
            execution = self.validate_block(block, now_ms)
        except GridchainError as exc:
            raise StateDivergenceError(
                f"certified block {block.height}: {exc.message}",
                evidence={**evidence, "code": exc.code},
            ) from exc
        if block.header.prev_hash != self.head.block_hash:
            raise StateDivergenceError(
                f"block {block.height} does not extend the head", evidence=evidence
            )
        if self.audit is not None:
            self.audit(block, execution, self.state)
        tree_writes = self.state.apply(execution.writes)
        self.head = self._with_set(head_of(block))
        self.pending.committed(self.head.block_hash, self.head.height)
        self.executions = {h: e for h, e in self.executions.items() if h in self.pending}
        dropped = self.mempool.update_after_commit(
            list(block.txs), recheck=needs_recheck(execution)
        )
        event = CommitEvent(
            block.height,
            self.head.block_hash,
            tuple(tx.hash() for tx in block.txs),
            block.header.timestamp_ms,
            execution.events,
            execution.decision,
        )
        self._emit(
            CommitBatch(
                CommittedBlock(block, certificate),
                execution.writes,
                event,
                len(dropped),
                fetched,
                tree_writes,
                execution.archived,
            )
        )
        self._mempool_changed(now_ms)
        return True

    # --- catching up -------------------------------------------------------------------------

    def _request_sync(self, height: int) -> None:
        if height <= self.head.height:
            return
        self.sync_target = max(self.sync_target, height)
        self._emit(FetchBlocks(self.sync_target))

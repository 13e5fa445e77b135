"""A deterministic simulator of whole PBFT clusters: the real engine, a fake network and clock.

Why: consensus bugs live in interleavings (a message late here, a crash there) that tests with
fixed sequences never reach, and that real clusters reach once a month.  Following TigerBeetle,
every run is driven by one seeded RNG: message delays, drops, duplicates, partitions, crashes
and the Byzantine validators' choices are all drawn from it, so a seed names one exact history
and a failure replays (``python -m tests.sim.replay --seed N --scenario NAME``).

What is real: :class:`~consensus.pbft.PbftEngine` (every byte a node sends is encoded and
decoded with the engine's codec) and, around it, the node's own chain driver
(:class:`node.driver.ChainDriver`): block building, validation (structure, signatures,
execution, state root), the one certificate check
(:func:`consensus.certificates.check_certificate`), commits and the catch-up decisions are the
code a validator runs, on the real application (:class:`market.app.Application` on an in-memory
:class:`market.state.MerkleState`) with real signed transfer transactions. :class:`SimNode` is
only the shell: it performs the driver's effects as node/runtime.py does, in order, with a fake
disk, network and clock. What is simulated: time, the network, the mempool (:class:`SimMempool`:
transactions reach every node by gossip; it keeps them by sender and nonce and offers
consecutive nonces), and disks (a node's persisted records and committed chain survive a crash,
its driver and mempool do not).

Three pure functions are computed once and shared, which changes nothing but the run time
(1,000 seeds must fit in CI): Ed25519 verification, by its exact inputs
(:func:`cached_signatures`); decoding a payload, by its exact bytes (with the engine's own
decoder); and executing or building a block (:class:`SharedExecutions`, the driver's
ExecutionCache), by (parent hash, block hash), the parent hash committing to the parent state.

Invariants, checked after every event: no two honest nodes commit different blocks at one
height; every committed block carries a certificate that verifies with quorum q; no honest
node signs two different blocks for one (view, height, step), even across restarts; an honest
node's vote never leaves before the record that guards it is persisted; evidence is only ever
reported against Byzantine validators.  Liveness, checked at the end: once faults stop (the
network heals, crashed nodes restart; at most f validators stay Byzantine), every honest node
commits new blocks within a bounded simulated time.

Simulators of other engines reuse this machinery by subclassing (tests/sim/epob_cluster.py):
``Cluster.node_class`` and ``SimNode.make_engine`` choose the engine, ``SimNode.audit_commit``
(which the driver calls before a block's writes apply) holds their independent audits,
``Cluster.misbehave``, ``commit_like``, ``audit_outgoing``, ``outsider_act`` and ``position``
the engine-specific parts, and ``DESCRIBERS`` lets the trace describe their messages.  A
"forge-catchup" Byzantine validator serves catch-up with blocks certified by a quorum of
prepare votes it overheard (scenario ``forged-catch-up``); the driver must refuse them.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import msgpack

import gridchain.protocol.block
import gridchain.protocol.crypto
from gridchain.consensus.engine import (
    Broadcast,
    ChainHead,
    CommitBlock,
    Engine,
    Persist,
    ReportEvidence,
    Send,
    SetTimer,
)
from gridchain.consensus.kernel.messages import Decision
from gridchain.consensus.pbft import PbftEngine
from gridchain.consensus.pbft.guard import PREPARE_KEY, PREPARED_KEY, VIEW_KEY
from gridchain.consensus.pbft.messages import (
    Checkpoint,
    Commit,
    NewView,
    Prepare,
    PreparedRecord,
    PrePrepare,
    ViewChange,
    ViewRecord,
    decode_record,
    make_checkpoint,
    make_commit,
    make_pre_prepare,
    make_prepare,
    make_view_change,
)
from gridchain.genesis.builder import GenesisBundle
from gridchain.market.accounts import get_account
from gridchain.market.app import Application, BlockBuild, BlockContext, Execution
from gridchain.market.state import MerkleState, StateReader
from gridchain.market.validators import validators_at
from gridchain.node.driver import (
    ArmBoundary,
    ChainDriver,
    CommitBatch,
    Effect,
    FetchBlocks,
    Halt,
    head_of,
)
from gridchain.protocol.address import address_of
from gridchain.protocol.block import (
    Block,
    BlockHeader,
    Certificate,
    CommittedBlock,
    Vote,
    VoteSignature,
    VoteStep,
    schedule_root,
    tx_root,
)
from gridchain.protocol.crypto import Domain, SigningKey, sha256
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import DecodeError, GridchainError
from gridchain.protocol.sealed import ValidatorOpener, seal_tx
from gridchain.protocol.tx import (
    CDRequest,
    Transaction,
    Transfer,
    TxBody,
    UpdateValidators,
    sign_tx,
)
from tests.helpers import GENESIS_TIME_MS, det_key, sealing_bundle, small_bundle

BLOCK_INTERVAL_MS = 100
VIEW_TIMEOUT_MS = 500
CHECKPOINT_INTERVAL = 5
WATERMARK_WINDOW = 10
MAX_BLOCK_TXS = 8
PARTICIPANTS = 4
TXS_PER_PARTICIPANT = 400
#: The PBFT simulator seals one transfer in this many (each validator opens it with its key).
SEALED_EVERY = 16
#: After the faults stop, every honest node must commit this many blocks beyond the highest
#: height any honest node had then ...
LIVENESS_BLOCKS = 3
#: ... within this much simulated time.
LIVENESS_BOUND_MS = 60_000
TRACE_EVENTS = 400


class SimFailure(AssertionError):  # noqa: N818 - it is a test failure, named as one
    """An invariant broke; the message names the seed and how to replay it."""


# --- signature cache --------------------------------------------------------------------------

_real_verify = gridchain.protocol.crypto.verify
_verified: dict[tuple[bytes, bytes, Domain, bytes, bytes], bool] = {}


def cached_verify(
    public_key: bytes, signature: bytes, domain: Domain, chain_id: bytes, payload: bytes
) -> bool:
    """gridchain.protocol.crypto.verify, remembered by its exact inputs (it is a pure function)."""
    key = (public_key, signature, domain, chain_id, payload)
    known = _verified.get(key)
    if known is None:
        known = _real_verify(public_key, signature, domain, chain_id, payload)
        if len(_verified) > 500_000:
            _verified.clear()
        _verified[key] = known
    return known


@contextmanager
def cached_signatures() -> Iterator[None]:
    """Route protocol's signature checks (transactions, certificates) through the cache."""
    saved = (gridchain.protocol.crypto.verify, gridchain.protocol.block.verify)  # type: ignore[attr-defined]
    gridchain.protocol.crypto.verify = cached_verify
    gridchain.protocol.block.verify = cached_verify  # type: ignore[attr-defined]
    try:
        yield
    finally:
        gridchain.protocol.crypto.verify, gridchain.protocol.block.verify = saved  # type: ignore[attr-defined]


# --- scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """A fault mix; the seed decides when and where the faults strike."""

    name: str
    n: int = 4
    drop: float = 0.0
    #: extra loss for commit votes and decisions: blocks get prepared (and locked) by many,
    #: committed by few, which is what view changes must then get right
    drop_commits: float = 0.0
    duplicate: float = 0.0
    delay_ms: tuple[int, int] = (1, 30)
    partitions: bool = False
    #: honest validators that may be down at the same time (crash and restart)
    crashes: int = 0
    #: crash every validator at once at some point, then restart them all
    crash_all: bool = False
    #: misbehaviours of Byzantine validators (one validator each)
    byzantine: tuple[str, ...] = ()
    #: a key outside the validator set that sends well-formed, signed messages
    outsider: bool = False
    #: governance admits a validator started from genesis outside the set, then removes one
    #: of the genesis validators (ADR 0035); the chain does not seal (see market/validators.py)
    set_changes: bool = False
    chaos_ms: tuple[int, int] = (1_000, 3_000)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("calm"),
        Scenario("lost-commits", drop=0.05, drop_commits=0.5, delay_ms=(1, 150)),
        Scenario(
            "lost-commits-byzantine",
            drop=0.05,
            drop_commits=0.4,
            delay_ms=(1, 120),
            crashes=1,
            byzantine=("equivocate",),
        ),
        Scenario("lossy", drop=0.15, duplicate=0.1, delay_ms=(1, 80)),
        Scenario("partitions", drop=0.05, partitions=True),
        Scenario("crashes", drop=0.05, duplicate=0.05, crashes=1),
        Scenario("crash-all", drop=0.05, crash_all=True),
        Scenario("equivocating-primary", drop=0.05, byzantine=("equivocate",)),
        Scenario("silent-primary", drop=0.05, byzantine=("silent",)),
        Scenario("bad-signatures", drop=0.05, byzantine=("bad-signatures",)),
        Scenario("conflicting-votes", drop=0.05, duplicate=0.05, byzantine=("conflicting",)),
        Scenario("outsider", drop=0.05, outsider=True),
        Scenario("byzantine-partitions", drop=0.1, partitions=True, byzantine=("equivocate",)),
        Scenario("byzantine-crashes", drop=0.05, crashes=1, byzantine=("conflicting",)),
        Scenario(
            "n7-mixed",
            n=7,
            drop=0.1,
            duplicate=0.05,
            partitions=True,
            byzantine=("equivocate", "conflicting"),
            outsider=True,
        ),
        Scenario("n7-crashes", n=7, drop=0.05, crashes=2, byzantine=("silent",)),
        Scenario("n7-lost-commits", n=7, drop=0.05, drop_commits=0.5, delay_ms=(1, 150)),
        # A Byzantine peer serves catch-up with blocks certified by a quorum of prepare votes.
        Scenario(
            "forged-catch-up",
            drop=0.05,
            drop_commits=0.3,
            partitions=True,
            crashes=1,
            byzantine=("forge-catchup",),
        ),
        # The validator set changes under load: a fifth validator joins, then one leaves.
        Scenario("set-changes", drop=0.05, duplicate=0.05, set_changes=True),
        Scenario("set-changes-crashes", drop=0.05, crashes=1, set_changes=True),
        Scenario(
            "set-changes-byzantine",
            drop=0.05,
            partitions=True,
            byzantine=("equivocate",),
            set_changes=True,
        ),
    )
}
SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)


def scenario_for_seed(seed: int) -> str:
    return SCENARIO_NAMES[seed % len(SCENARIO_NAMES)]


# --- the chain every simulated cluster of one size shares -------------------------------------


@dataclass(frozen=True, slots=True)
class Fixture:
    bundle: GenesisBundle
    chain_id: bytes
    keys: tuple[SigningKey, ...]
    validators: tuple[bytes, ...]
    genesis_items: tuple[tuple[bytes, bytes], ...]
    #: signed transfers in submission order (nonces in order per sender)
    txs: tuple[Transaction, ...]


@cache
def fixture(n: int) -> Fixture:
    """Genesis, keys and a pool of signed transfers for n validators (built once per process)."""
    bundle = sealing_bundle(
        validators=n,
        participants=PARTICIPANTS,
        engine="pbft",
        seed=f"sim-{n}",
        block_interval_ms=BLOCK_INTERVAL_MS,
    )
    return build_fixture(bundle, sealed_every=SEALED_EVERY)


@cache
def plain_fixture(n: int) -> Fixture:
    """The fixture without sealing: a chain that seals adds no validator (ADR 0035)."""
    bundle = small_bundle(
        validators=n,
        participants=PARTICIPANTS,
        engine="pbft",
        seed=f"sim-{n}",
        block_interval_ms=BLOCK_INTERVAL_MS,
    )
    return build_fixture(bundle)


def build_fixture(
    bundle: GenesisBundle, leading: Sequence[tuple[int, TxBody]] = (), *, sealed_every: int = 0
) -> Fixture:
    """Keys, genesis state and the clients' transactions of a bundle.

    ``leading`` (participant index, body) are signed first, each with its sender's next nonce
    (the PoB and ePoB simulators' C&D requests); then TXS_PER_PARTICIPANT rounds of transfers
    around the ring of participants.  With ``sealed_every`` = k > 0 every k-th transfer is
    sealed to the validators (docs/sealed.md), its content key derived from its position so
    the fixture stays a function of the bundle.
    """
    chain_id = bundle.genesis.chain_id
    people = bundle.participants
    nonces = [0] * len(people)
    txs: list[Transaction] = []
    for who, body in leading:
        txs.append(sign_tx(people[who].key, chain_id, nonces[who], body))
        nonces[who] += 1
    for step in range(TXS_PER_PARTICIPANT):
        for i, sender in enumerate(people):
            to = people[(i + 1) % len(people)]
            transfer = Transfer(address_of(to.key.public_key), 1 + step % 7)
            if sealed_every and len(txs) % sealed_every == 0:
                content_key = sha256(b"sim-content-key/%d" % len(txs))
                sealed_to = bundle.genesis.encryption_keys()
                txs.append(
                    seal_tx(
                        sender.key,
                        chain_id,
                        nonces[i],
                        transfer,
                        sealed_to,
                        content_key=content_key,
                    )
                )
            else:
                txs.append(sign_tx(sender.key, chain_id, nonces[i], transfer))
            nonces[i] += 1
    state = Application(bundle.genesis).genesis_state()
    keys = tuple(v.key for v in bundle.validators)
    return Fixture(
        bundle,
        chain_id,
        keys,
        tuple(k.public_key for k in keys),
        tuple(state.items()),
        tuple(txs),
    )


# --- events ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    kind: str
    node: int = -1
    sender: bytes = b""
    payload: bytes = b""
    generation: int = 0
    detail: Any = None


@dataclass(slots=True)
class TraceEntry:
    time: int
    kind: str
    node: int
    detail: Any

    def render(self, names: Callable[[bytes], str]) -> str:
        return f"{self.time:>8} ms  n{self.node:<2} {self.kind:<10} {describe(self.detail, names)}"


#: Extra describers for other engines' messages (tried first; None means "not mine").
DESCRIBERS: list[Callable[[Any, Callable[[bytes], str]], str | None]] = []


def describe(detail: Any, names: Callable[[bytes], str]) -> str:
    """A one-line account of a message or action for the trace."""
    for describer in DESCRIBERS:
        text = describer(detail, names)
        if text is not None:
            return text
    if isinstance(detail, PrePrepare):
        return (
            f"PrePrepare v{detail.view} h{detail.height} {detail.block.hash().hex()[:8]} "
            f"from {names(detail.signer)}"
        )
    if isinstance(detail, Prepare | Commit):
        v = detail.vote
        return (
            f"{type(detail).__name__} v{v.round} h{v.height} {v.block_hash.hex()[:8]} "
            f"from {names(detail.signer)}"
        )
    if isinstance(detail, ViewChange):
        prepared = detail.prepared
        lock = (
            "-"
            if prepared is None
            else f"v{prepared.vote.round}:{prepared.vote.block_hash.hex()[:8]}"
        )
        who = names(detail.signer)
        return f"ViewChange to v{detail.new_view} h{detail.height} lock {lock} from {who}"
    if isinstance(detail, NewView):
        pp = detail.pre_prepare
        block = "-" if pp is None else pp.block.hash().hex()[:8]
        return f"NewView v{detail.view} h{detail.height} block {block}"
    if isinstance(detail, Checkpoint):
        return (
            f"Checkpoint h{detail.height} {detail.block_hash.hex()[:8]} from {names(detail.signer)}"
        )
    if isinstance(detail, Decision):
        v = detail.certificate.vote
        return f"Decision h{v.height} v{v.round} {v.block_hash.hex()[:8]}"
    if isinstance(detail, CommitBlock):
        return f"COMMIT h{detail.block.height} {detail.block.hash().hex()[:8]}"
    if isinstance(detail, Record):
        return type(detail).__name__
    return "" if detail is None else str(detail)


# --- one simulated validator ------------------------------------------------------------------


class PersistedGuard:
    """What a node's persisted records say it signed last, for the outgoing-vote audit.

    It reads the records the engine persisted (not the engine's memory), so a vote that leaves
    before its record is stored fails the audit.  The prepared record carries a whole block;
    only its certificate's vote is read (with msgpack, structurally) to keep the audit cheap.
    """

    #: the persisted records this audit reads (an engine's other records are not votes)
    KEYS: tuple[bytes, ...] = (PREPARE_KEY, PREPARED_KEY)

    def __init__(self) -> None:
        self._last: dict[VoteStep, tuple[int, int, bytes]] = {}

    def note(self, key: bytes, value: bytes) -> None:
        if key == PREPARE_KEY:
            vote = decode_record(value, Vote)
            step = VoteStep.PREPARE
        else:
            # The prepared certificate guards the commit vote for the same view and block.
            step = VoteStep.COMMIT
            fields = msgpack.unpackb(value, raw=False)  # [tag, version, certificate, block]
            cert = fields[2]  # [tag, version, vote, signatures]
            if fields[0] != PreparedRecord.TYPE_TAG or cert[0] != Certificate.TYPE_TAG:
                raise SimFailure("a persisted prepared record has the wrong type")
            vote = Vote(*cert[2][2:])
        self._last[step] = (vote.height, vote.round, vote.block_hash)

    def covers(self, step: VoteStep, vote: Vote) -> bool:
        """After a crash now, the restarted engine would refuse to contradict ``vote``."""
        last = self._last.get(step)
        if last is None:
            return False
        if (last[0], last[1]) != (vote.height, vote.round):
            return (last[0], last[1]) > (vote.height, vote.round)
        return last[2] == vote.block_hash


class SimMempool:
    """The simulated validators' mempool, behind the driver's MempoolPort.

    Transactions reach every node by gossip, possibly out of order, so the pool keeps them by
    (sender, nonce) and offers what applies in order: each sender's consecutive nonces from
    its committed one (what node/mempool.py holds, which admits only transactions that apply
    on its pending state).  It checks no signatures at admission, so it claims none as
    verified (``__contains__``) and the driver verifies every signature of a block (through
    the simulator's cache).  Blocks carry at most MAX_BLOCK_TXS transactions, so heights
    advance quickly.  ``cd_first``: a sender whose next transaction is a C&D request has it
    taken first (the real pool reaps in arrival order and the C&D requests are submitted
    first, so they are not starved by a sender whose key sorts first).

    Why not node/mempool.py itself: it re-simulates every admitted transaction on a pending
    overlay (and again after each commit); the simulators deliver every transaction to every
    node, several times (resubmissions), across 3,000 seeded runs per CI run, and what they
    test is consensus and the block path, which this pool feeds the same kind of input.
    """

    def __init__(
        self, state: StateReader, *, cd_first: bool = False, limit: int = MAX_BLOCK_TXS
    ) -> None:
        self.state = state
        self.cd_first = cd_first
        #: the most transactions one block takes from this pool (a loaded scenario raises it)
        self.limit = limit
        self.txs: dict[tuple[bytes, int], Transaction] = {}
        self.nonces: dict[bytes, int] = {}
        #: transactions held per sender, and ``len(self)`` until the pool or a nonce changes:
        #: the driver asks for the length after every admitted transaction
        self._held: dict[bytes, int] = {}
        self._ready: int | None = None

    def nonce(self, sender: bytes) -> int:
        """The sender's next nonce in the committed state (cached until the next commit)."""
        nonce = self.nonces.get(sender)
        if nonce is None:
            nonce = self.nonces[sender] = get_account(self.state, address_of(sender)).nonce
        return nonce

    def add(self, tx: Transaction) -> None:
        key = (tx.sender, tx.nonce)
        if tx.nonce >= self.nonce(tx.sender) and key not in self.txs:
            self.txs[key] = tx
            self._held[tx.sender] = self._held.get(tx.sender, 0) + 1
            self._ready = None

    def _drop(self, key: tuple[bytes, int]) -> None:
        del self.txs[key]
        left = self._held[key[0]] - 1
        if left:
            self._held[key[0]] = left
        else:
            del self._held[key[0]]
        self._ready = None

    def clear(self) -> None:
        self.txs.clear()
        self.nonces.clear()
        self._held.clear()
        self._ready = None

    def __len__(self) -> int:
        """The transactions of every sender whose next nonce is held (so ``> 0`` says a block
        could take one)."""
        if self._ready is None:
            self._ready = sum(
                held
                for sender, held in self._held.items()
                if (sender, self.nonce(sender)) in self.txs
            )
        return self._ready

    def __contains__(self, tx_hash: object) -> bool:
        return False

    def reap(
        self, max_txs: int, max_bytes: int, exclude: Collection[bytes] = ()
    ) -> list[Transaction]:
        limit = min(max_txs, self.limit)
        senders = sorted({sender for sender, _ in self.txs})
        nonces = {sender: self.nonce(sender) for sender in senders}
        out: list[Transaction] = []
        # Governance's set changes first: the clients' backlog (reaped by sender order) would
        # otherwise starve a sender that sorts last, as a FIFO pool would not.
        first: tuple[type[TxBody], ...] = (
            (UpdateValidators, CDRequest) if self.cd_first else (UpdateValidators,)
        )
        # Transactions in the pending ancestors (``exclude``) are skipped, not counted: the
        # sender's next nonces follow them on that branch.
        for sender in senders:
            while (tx := self.txs.get((sender, nonces[sender]))) is not None and (
                tx.hash() in exclude
            ):
                nonces[sender] += 1
            if tx is not None and isinstance(tx.body, first) and len(out) < limit:
                out.append(tx)
                nonces[sender] += 1
        for sender in senders:
            nonce = nonces[sender]
            while (sender, nonce) in self.txs and len(out) < limit:
                tx = self.txs[(sender, nonce)]
                if tx.hash() not in exclude:
                    out.append(tx)
                nonce += 1
        return out

    def evict(self, tx_hashes: list[bytes]) -> list[tuple[bytes, str]]:
        gone = set(tx_hashes)
        for key in [k for k, tx in self.txs.items() if tx.hash() in gone]:
            self._drop(key)
        return []

    def update_after_commit(
        self, committed: list[Transaction], *, recheck: bool = False
    ) -> list[tuple[bytes, str]]:
        self.nonces.clear()
        self._ready = None
        for key in [k for k in self.txs if k[1] < self.nonce(k[0])]:
            self._drop(key)
        return []


class SharedExecutions:
    """The cluster's cache of pure results, which the driver consults (ExecutionCache).

    Executing a block is a function of its parent (whose hash commits to the parent state) and
    the block, so nodes share the result or the refusal.  Validators start a round at the same
    simulated instant and build on the same parent from the same mempool, so their builds
    differ only in the proposer, which execution does not read: one build serves all.  A build
    is never passed off as a checked execution: whoever validates the block executes it, so a
    build that did depend on the proposer would be caught as a state root mismatch.
    """

    def __init__(self, on_refusal: Callable[[Block, GridchainError], None]) -> None:
        self.on_refusal = on_refusal
        self.results: dict[tuple[bytes, bytes], Execution | GridchainError] = {}
        self.builds: dict[tuple[bytes, int, int, tuple[bytes, ...]], BlockBuild] = {}

    def execution(self, parent_hash: bytes, block_hash: bytes) -> Execution | GridchainError | None:
        return self.results.get((parent_hash, block_hash))

    def remember(
        self, parent_hash: bytes, block: Block, result: Execution | GridchainError
    ) -> None:
        key = (parent_hash, block.hash())
        if key in self.results:
            return
        if len(self.results) > 50_000:
            self.results.clear()
        self.results[key] = result
        if isinstance(result, GridchainError):
            self.on_refusal(block, result)

    def build(
        self,
        parent_hash: bytes,
        ctx: BlockContext,
        txs: Sequence[Transaction],
        make: Callable[[], BlockBuild],
    ) -> BlockBuild:
        key = (parent_hash, ctx.height, ctx.timestamp_ms, tuple(tx.hash() for tx in txs))
        built = self.builds.get(key)
        if built is None:
            if len(self.builds) > 4096:
                self.builds.clear()
            built = self.builds[key] = make()
        return built


class SimNode:
    """A validator: the chain driver (node/driver.py) with a fake disk, network and clock.

    The disk is ``persisted`` (the engine's records), ``chain`` (committed blocks with their
    certificates) and ``state`` (the committed state); a crash loses the driver (with the
    engine, the pending blocks and the executions) and the mempool, never the disk.  The node
    performs the driver's effects as node/runtime.py does, in order.
    """

    def __init__(
        self, cluster: Cluster, index: int, key: SigningKey, behaviour: str | None
    ) -> None:
        self.cluster = cluster
        self.index = index
        self.key = key
        self.public_key = key.public_key
        self.behaviour = behaviour
        self.honest = behaviour is None
        fx = cluster.fixture
        encryption = fx.bundle.encryption
        opener = ValidatorOpener(encryption[index], index) if encryption else None
        self.app = Application(fx.bundle.genesis, opener, cached_verify)
        self.state = self.make_state()
        self.chain: list[CommittedBlock] = []
        self.genesis_head = ChainHead(0, fx.chain_id, fx.bundle.genesis.genesis_time_ms)
        self.persisted: dict[bytes, bytes] = {}
        self.guard = PersistedGuard()
        self.driver: ChainDriver | None = None
        self.mempool = self.make_mempool()
        self.timer_generation = 0
        #: how many times the node crashed: events of an earlier life are ignored
        self.lives = 0
        self.halted: str | None = None
        self.syncing = False
        #: how far this node's clock is off the simulated time (a scenario may skew clocks)
        self.clock_offset_ms = 0

    @property
    def engine(self) -> Any:
        """The running engine, None while crashed."""
        return None if self.driver is None else self.driver.engine

    @property
    def head(self) -> ChainHead:
        """The committed head (on the disk: the last block of the chain)."""
        if self.driver is not None:
            return self.driver.head
        return head_of(self.chain[-1].block) if self.chain else self.genesis_head

    def clock(self) -> int:
        """This node's clock: the simulated time plus its offset (a skewed device clock; the
        timers it asks for are in its own time)."""
        return self.cluster.now + self.clock_offset_ms

    def is_alive(self) -> bool:
        """Running: not crashed, not halted (a method, so type narrowing never caches it)."""
        return self.driver is not None and self.halted is None

    def name(self) -> str:
        return f"n{self.index}"

    def app_nonce(self, sender: bytes) -> int:
        return self.mempool.nonce(sender)

    # --- lifecycle ---------------------------------------------------------------------

    def make_engine(self) -> Engine:
        """A fresh engine for this validator (a simulator of another engine overrides this)."""
        fx = self.cluster.fixture
        return PbftEngine(
            self.key,
            fx.chain_id,
            fx.validators,
            block_interval_ms=BLOCK_INTERVAL_MS,
            view_timeout_ms=VIEW_TIMEOUT_MS,
            checkpoint_interval=CHECKPOINT_INTERVAL,
            watermark_window=WATERMARK_WINDOW,
            verifier=cached_verify,
            max_block_txs=MAX_BLOCK_TXS,
        )

    def make_state(self) -> MerkleState:
        """The committed state of the disk (the driver of each life works on this object)."""
        return MerkleState(dict(self.cluster.fixture.genesis_items))

    def make_mempool(self) -> SimMempool:
        return SimMempool(self.state)

    def driver_class(self) -> Callable[..., ChainDriver]:
        """The class of this node's chain driver (a simulator's Byzantine node may use a
        subclass)."""
        return ChainDriver

    def make_driver(self) -> ChainDriver:
        """The node's chain driver, on this node's state, mempool, cache and audit."""
        return self.driver_class()(
            genesis=self.app.genesis,
            app=self.app,
            engine=self.make_engine(),
            state=self.state,
            head=self.head,
            mempool=self.mempool,
            proposer=self.public_key,
            cache=self.cluster.shared,
            audit=self.audit_commit,
        )

    def boot(self) -> None:
        self.driver = self.make_driver()
        self.perform(self.driver.start(dict(self.persisted), self.clock()))

    def crash(self) -> None:
        """Lose everything in memory; the ledger and persisted records survive."""
        self.driver = None
        self.mempool.clear()
        self.timer_generation += 1
        self.lives += 1
        self.syncing = False

    # --- performing the driver's effects (as node/runtime.py) ------------------------------

    def perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            if self.driver is None:
                return
            now = self.cluster.now
            if isinstance(effect, Persist):
                self.persisted[effect.key] = effect.value
                if effect.key in self.guard.KEYS:
                    self.guard.note(effect.key, effect.value)
            elif isinstance(effect, Broadcast):
                self.cluster.transmit(self, None, effect.message)
            elif isinstance(effect, Send):
                self.cluster.transmit(self, effect.to, effect.message)
            elif isinstance(effect, CommitBatch):
                self.write_commit(effect)
            elif isinstance(effect, SetTimer):
                self.timer_generation += 1
                self.cluster.schedule(
                    max(effect.at_ms - self.clock_offset_ms, now),
                    Event("timer", self.index, generation=self.timer_generation),
                )
            elif isinstance(effect, ArmBoundary):
                self.cluster.schedule(
                    max(effect.at_ms - self.clock_offset_ms, now),
                    Event("boundary", self.index, generation=self.lives),
                )
            elif isinstance(effect, FetchBlocks):
                if not self.syncing:
                    self.syncing = True
                    self.cluster.schedule_sync(self, attempt=0)
            elif isinstance(effect, ReportEvidence):
                self.cluster.on_evidence(self, effect)
            elif isinstance(effect, Halt):
                self.fail_or_halt(effect.reason)

    def write_commit(self, batch: CommitBatch) -> None:
        """The disk write: the chain (the state object is shared with the driver)."""
        self.cluster.record(self, "commit", batch.committed.block)
        self.chain.append(batch.committed)
        self.cluster.audit_certificate(self, batch.committed)
        self.cluster.on_commit(self, batch.committed.block)

    def audit_commit(self, block: Block, execution: Execution, parent: StateReader) -> None:
        """Called by the driver before a block's writes apply (simulators audit here)."""

    def fail_or_halt(self, reason: str) -> None:
        if self.honest:
            self.cluster.fail(f"{self.name()}: {reason}")
        self.halted = reason

    # --- inputs ---------------------------------------------------------------------------

    def receive_tx(self, tx: Transaction) -> None:
        if not self.is_alive():
            return
        assert self.driver is not None
        self.mempool.add(tx)
        self.perform(self.driver.on_mempool_changed(self.clock()))

    def make_block(self, height: int, round_: int, txs: list[Transaction], timestamp: int) -> Block:
        """A block on the head as an honest proposer would build it (Byzantine behaviours send
        such blocks beside the engine's own); its execution is shared like a validation's."""
        assert self.driver is not None
        head = self.head
        ctx = BlockContext(height, timestamp, self.public_key)
        built = self.app.build_block(self.state, txs, ctx)
        header = BlockHeader(
            chain_id=self.cluster.fixture.chain_id,
            height=height,
            prev_hash=head.block_hash,
            timestamp_ms=timestamp,
            proposer=self.public_key,
            round=round_,
            benefit=built.benefit,
            tx_root=tx_root(built.txs),
            schedule_root=schedule_root(built.schedule),
            state_root=built.execution.state_root,
        )
        block = Block(header, built.txs, built.schedule)
        self.cluster.shared.remember(head.block_hash, block, built.execution)
        return block

    # --- catching up ----------------------------------------------------------------------

    def run_sync(self, attempt: int) -> None:
        """Fetch what the driver asks for from the peers, as node/runtime.py's _sync."""
        self.syncing = False
        if not self.is_alive():
            return
        assert self.driver is not None
        request = self.driver.next_fetch()
        if request is None:
            return
        start, count = request
        progressed = False
        for source in self.cluster.catch_up_sources(self):
            served = self.cluster.serve_catch_up(source, start, count)
            effects, progressed = self.driver.on_fetched(served, self.clock())
            self.perform(effects)
            if not self.is_alive():
                return
            if progressed:
                break  # a peer that served nothing acceptable is followed by the next one
        if self.driver.next_fetch() is not None and attempt < 20:
            self.syncing = True
            self.cluster.schedule_sync(self, attempt=0 if progressed else attempt + 1)


# --- the cluster ----------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    seed: int
    scenario: str
    heights: dict[str, int]
    sim_time_ms: int
    events: int
    view_changes: int
    evidence: dict[str, int] = field(default_factory=dict)


class Cluster:
    """Nodes, a network and a clock, all driven by one seeded RNG."""

    #: the node (runtime) class and the engine's name in failure reports: a simulator of
    #: another engine subclasses both
    node_class: type[SimNode] = SimNode
    label = "PBFT"

    def __init__(self, scenario: Scenario, seed: int, *, full_trace: bool = False) -> None:
        self.scenario = scenario
        self.seed = seed
        self.rng = random.Random(f"{scenario.name}/{seed}")
        self.fixture = plain_fixture(scenario.n) if scenario.set_changes else fixture(scenario.n)
        self.n = scenario.n
        self.f = (self.n - 1) // 3
        self.quorum = self.n - self.f
        self.now = GENESIS_TIME_MS + 1_000
        self.start_ms = self.now
        self._queue: list[tuple[int, int, Event]] = []
        self._seq = 0
        self.trace: deque[TraceEntry] = deque(maxlen=None if full_trace else TRACE_EVENTS)
        self.events = 0
        byzantine = list(scenario.byzantine)
        if len(byzantine) > self.f:
            raise ValueError(f"{scenario.name}: more Byzantine validators than f = {self.f}")
        chosen = self.rng.sample(range(self.n), len(byzantine))
        roles: dict[int, str] = dict(zip(chosen, byzantine, strict=True))
        #: a validator started from genesis outside the set, admitted by governance later
        self.joiner = det_key(f"joiner/{seed}") if scenario.set_changes else None
        keys = (*self.fixture.keys, *(() if self.joiner is None else (self.joiner,)))
        self.nodes = [self.node_class(self, i, k, roles.get(i)) for i, k in enumerate(keys)]
        #: every node, the joiner included (``n`` is the genesis set's size)
        self.size = len(self.nodes)
        #: the validator set's epochs (first height, keys), modelled here from the committed
        #: UpdateValidators independently of market/validators.py, which is checked against it
        self.epochs: list[tuple[int, tuple[bytes, ...]]] = [(0, self.fixture.validators)]
        #: governance's set changes submitted so far (wallets resubmit them like transfers)
        self.set_txs: list[Transaction] = []
        self.joined_at: int | None = None
        self.removed_at: int | None = None
        self.removed: bytes | None = None
        #: the joiner signed a certificate that an honest node committed
        self.joiner_signed = False
        self.by_key = {node.public_key: node for node in self.nodes}
        self.outsider = det_key(f"outsider/{seed}") if scenario.outsider else None
        self.canonical: dict[int, bytes] = {}
        self.signed: dict[tuple[bytes, int, int, int], bytes] = {}
        self.evidence: dict[str, int] = {}
        self.view_changes = 0
        self.groups: list[int] | None = None  # partition group of each node, or None
        self.faulty_network = True
        chaos = self.rng.randint(*scenario.chaos_ms)
        self.heal_at = self.now + chaos
        self.liveness_base: int | None = None
        self.deadline = self.heal_at + LIVENESS_BOUND_MS
        self.next_tx = 0
        self.recent: deque[Record] = deque(maxlen=32)  # what the outsider has overheard
        self.decoded: dict[bytes, Record] = {}
        #: executions, refusals and builds every node's driver may look up
        self.shared = SharedExecutions(self.on_refusal)
        #: what a "forge-catchup" liar overheard: (height, view, block) -> signer -> signature
        self.overheard: dict[tuple[int, int, bytes], dict[bytes, VoteSignature]] = {}
        self.overheard_blocks: dict[bytes, Block] = {}
        #: forged certificates the liar served (the scenario checks some were)
        self.forged_served = 0

    # --- reporting ------------------------------------------------------------------------

    def names(self, key: bytes) -> str:
        node = self.by_key.get(key)
        if node is not None:
            return node.name() + ("*" if not node.honest else "")
        return "outsider" if self.outsider and key == self.outsider.public_key else key.hex()[:8]

    def record(self, node: SimNode | None, kind: str, detail: Any) -> None:
        self.trace.append(
            TraceEntry(self.now - self.start_ms, kind, -1 if node is None else node.index, detail)
        )

    def render_trace(self) -> str:
        return "\n".join(entry.render(self.names) for entry in self.trace)

    def replay_command(self) -> str:
        return f"python -m tests.sim.replay --seed {self.seed} --scenario {self.scenario.name}"

    def fail(self, reason: str) -> None:
        roles = ", ".join(f"n{n.index}={n.behaviour}" for n in self.nodes if not n.honest) or "none"
        heights = " ".join(f"n{n.index}:{n.head.height}" for n in self.nodes)
        raise SimFailure(
            f"{self.label} simulation failed: seed={self.seed} scenario={self.scenario.name}\n"
            f"  {reason}\n"
            f"  at t={self.now - self.start_ms} ms; Byzantine: {roles}; heights: {heights}\n"
            f"  replay: {self.replay_command()}\n"
            f"last {len(self.trace)} events:\n{self.render_trace()}"
        )

    # --- scheduling ----------------------------------------------------------------------

    def schedule(self, at: int, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, event))

    def schedule_sync(self, node: SimNode, *, attempt: int) -> None:
        delay = self.rng.randint(*self.scenario.delay_ms) * 2 + 50 * attempt
        self.schedule(self.now + delay, Event("sync", node.index, generation=attempt))

    # --- the network -----------------------------------------------------------------------

    def reachable(self, a: int, b: int) -> bool:
        return self.groups is None or self.groups[a] == self.groups[b]

    def transmit(self, sender: SimNode, to: bytes | None, message: Record) -> None:
        """Send a node's message to one validator or all others, through its behaviour."""
        if sender.honest:
            self.audit_outgoing(sender, message)
        elif sender.behaviour == "forge-catchup":
            self.overhear(sender, message)  # its own votes count towards its forgeries
        self.recent.append(message)
        targets = [n for n in self.nodes if n is not sender] if to is None else [self.by_key[to]]
        if sender.behaviour is None:
            payload = message.encode()
            for target in targets:
                self.post(sender.index, sender.public_key, target, message, payload)
        else:
            self.misbehave(sender, targets, message)

    def misbehave(self, node: SimNode, targets: list[SimNode], message: Record) -> None:
        """Send a Byzantine node's message the way its behaviour dictates."""
        misbehave(self, node, targets, message)

    def commit_like(self, message: Record) -> bool:
        """Messages the scenario's ``drop_commits`` extra loss applies to."""
        return isinstance(message, Commit | Decision)

    def post(
        self,
        src: int,
        sender_key: bytes,
        target: SimNode,
        message: Record,
        payload: bytes | None = None,
    ) -> None:
        """Put one message on the wire: maybe dropped, delayed, duplicated."""
        if src >= 0 and not self.reachable(src, target.index):
            return
        rng = self.rng
        if self.faulty_network:
            loss = self.scenario.drop
            if self.commit_like(message):
                loss += self.scenario.drop_commits
            if rng.random() < loss:
                return
        if payload is None:
            payload = message.encode()
        copies = 2 if self.faulty_network and rng.random() < self.scenario.duplicate else 1
        for _ in range(copies):
            delay = rng.randint(*self.scenario.delay_ms)
            self.schedule(self.now + delay, Event("deliver", target.index, sender_key, payload))

    def audit_outgoing(self, node: SimNode, message: Record) -> None:
        """An honest vote leaves only when the record guarding it is persisted, and never twice,
        and only from a member of the set of its height."""
        if isinstance(message, ViewChange) and message.signer == node.public_key:
            self.audit_member(node, message.height)
        for step, vote in signed_votes(node.public_key, message):
            self.audit_member(node, vote.height)
            key = (node.public_key, int(step), vote.height, vote.round)
            earlier = self.signed.setdefault(key, vote.block_hash)
            if earlier != vote.block_hash:
                self.fail(
                    f"{node.name()} signed two blocks for {step.name} at height {vote.height} "
                    f"view {vote.round}: {earlier.hex()[:8]} and {vote.block_hash.hex()[:8]}"
                )
            if not node.guard.covers(step, vote):
                self.fail(f"{node.name()} sent a {step.name} vote its guard record does not cover")
        if isinstance(message, ViewChange) and message.signer == node.public_key:
            raw = node.persisted.get(VIEW_KEY)
            record = None if raw is None else decode_record(raw, ViewRecord)
            if record is None or (record.height, record.view) < (message.height, message.new_view):
                self.fail(f"{node.name()} sent a view change before persisting its view")

    def audit_member(self, node: SimNode, height: int) -> None:
        """An honest node signs for a height only as a member of that height's set."""
        if node.public_key not in self.set_at(height):
            self.fail(f"{node.name()} signed for h{height} outside that height's validator set")

    # --- the validator set ----------------------------------------------------------------

    def set_at(self, height: int) -> tuple[bytes, ...]:
        """The modelled set of ``height``."""
        keys = self.epochs[0][1]
        for first, epoch_keys in self.epochs:
            if first <= height:
                keys = epoch_keys
        return keys

    def quorum_of(self, n: int) -> int:
        """The certificate quorum of a set of n validators (PBFT: n - f)."""
        return n - (n - 1) // 3

    def model_changes(self, block: Block) -> None:
        """The first honest commit of a height: each UpdateValidators in it takes effect two
        blocks later (the rule of ADR 0035, written here on its own)."""
        for tx in block.txs:
            body = tx.body
            if not isinstance(body, UpdateValidators):
                continue
            first = block.height + 2
            last_first, last = self.epochs[-1]
            keys = tuple(k for k in last if k not in body.remove) + tuple(body.add)
            if last_first == first:
                self.epochs[-1] = (first, keys)
            else:
                self.epochs.append((first, keys))
            if self.joiner is not None and self.joiner.public_key in body.add:
                self.joined_at = first
            if body.remove:
                self.removed, self.removed_at = body.remove[0], first
            self.record(None, "set-change", f"from h{first}: {len(keys)} validators")

    def audit_set(self, node: SimNode, committed: int) -> None:
        """The node's chain state names the modelled sets for the two heights after the block
        it committed at ``committed`` (a batch may commit several blocks, PoB's finality or a
        catch-up: the state may be past it already, but later blocks change only later
        heights)."""
        genesis = self.fixture.bundle.genesis
        for height in (committed + 1, committed + 2):
            if validators_at(node.state, genesis, height) != self.set_at(height):
                self.fail(f"{node.name()}'s state names another set for h{height} than the model")

    def govern(self, change: str) -> None:
        """Governance submits a set change: admit the joiner, or remove a genesis validator."""
        assert self.joiner is not None
        fx = self.fixture
        if change == "add":
            body = UpdateValidators(add=(self.joiner.public_key,))
        else:
            body = UpdateValidators(remove=(self.rng.choice(fx.validators),))
        tx = sign_tx(fx.bundle.governance.key, fx.chain_id, len(self.set_txs), body)
        self.set_txs.append(tx)
        self.record(None, "govern", change)
        for node in self.nodes:
            delay = self.rng.randint(*self.scenario.delay_ms)
            self.schedule(self.now + delay, Event("tx", node.index, detail=tx))

    def set_changes_done(self) -> bool:
        """The joiner signed a committed certificate and the removal took effect."""
        top = max(self.canonical, default=0)
        return self.joiner_signed and self.removed_at is not None and top >= self.removed_at

    # --- callbacks from nodes ---------------------------------------------------------------

    def on_refusal(self, block: Block, exc: GridchainError) -> None:
        """A block was refused on its parent for the first time (simulators count kinds)."""

    def on_commit(self, node: SimNode, block: Block) -> None:
        if not node.honest:
            return
        block_hash = block.hash()
        if block.height not in self.canonical:
            self.model_changes(block)
        known = self.canonical.setdefault(block.height, block_hash)
        if self.scenario.set_changes:
            self.audit_set(node, block.height)
        if known != block_hash:
            self.fail(
                f"agreement violated at height {block.height}: {node.name()} committed "
                f"{block_hash.hex()[:8]}, another honest node {known.hex()[:8]}"
            )

    def on_evidence(self, node: SimNode, action: ReportEvidence) -> None:
        self.record(node, "evidence", f"{action.kind} against {self.names(action.offender)}")
        offender = self.by_key.get(action.offender)
        if node.honest and offender is not None and offender.honest:
            self.fail(f"{node.name()} reported {action.kind} against honest {offender.name()}")
        self.evidence[action.kind] = self.evidence.get(action.kind, 0) + 1

    def catch_up_sources(self, node: SimNode) -> list[SimNode]:
        """The peers a node behind asks, in order: a reachable "forge-catchup" liar first
        (so that its forgeries are really offered), then the best honest source."""
        liars = [
            other
            for other in self.nodes
            if other is not node
            and other.behaviour == "forge-catchup"
            and other.is_alive()
            and self.reachable(node.index, other.index)
        ]
        honest = self.sync_source(node)
        return liars + ([] if honest is None else [honest])

    def serve_catch_up(self, source: SimNode, start: int, count: int) -> list[CommittedBlock]:
        """What ``source`` answers to a fetch of ``count`` blocks from height ``start``.

        An honest node serves its chain.  A "forge-catchup" liar serves, for the first height
        asked, a block that a quorum prepared (never mind that it may never have been
        committed) with a certificate made of those prepare signatures, which it overheard:
        preferring a block that is not the agreed one at that height.
        """
        if source.behaviour != "forge-catchup":
            return source.chain[start - 1 : start - 1 + count]
        height = start
        agreed = self.canonical.get(height)
        best: CommittedBlock | None = None
        for (h, round_, block_hash), sigs in self.overheard.items():
            block = self.overheard_blocks.get(block_hash)
            if h != height or block is None or len(sigs) < self.quorum:
                continue
            vote = Vote(h, round_, block_hash, int(VoteStep.PREPARE))
            forged = CommittedBlock(block, Certificate(vote, tuple(sigs.values())[: self.quorum]))
            if best is None or block_hash != agreed:
                best = forged
        if best is None:
            return []
        self.forged_served += 1
        self.record(source, "forge", f"h{height} {best.block.hash().hex()[:8]} prepare-quorum")
        return [best]

    def overhear(self, node: SimNode, message: Record) -> None:
        """A "forge-catchup" liar keeps the prepare signatures and blocks it receives."""
        block = self.proposed_block(message)
        if block is not None:
            self.overheard_blocks[block.hash()] = block
        for vote, signature in self.prepare_signatures(message):
            key = (vote.height, vote.round, vote.block_hash)
            self.overheard.setdefault(key, {})[signature.validator] = signature
        if len(self.overheard) > 4096:
            self.overheard.clear()
        if len(self.overheard_blocks) > 4096:
            self.overheard_blocks.clear()

    def proposed_block(self, message: Record) -> Block | None:
        """The block a message proposes, if it does (PBFT: a pre-prepare)."""
        return message.block if isinstance(message, PrePrepare) else None

    def prepare_signatures(self, message: Record) -> list[tuple[Vote, VoteSignature]]:
        """The PREPARE-step votes signed in a message (a pre-prepare is its primary's)."""
        if isinstance(message, PrePrepare):
            return [(message.vote(), message.signature)]
        if isinstance(message, Prepare):
            return [(message.vote, message.signature)]
        return []

    def audit_certificate(self, node: SimNode, committed: CommittedBlock) -> None:
        """What an honest node commits carries a quorum of *commit* votes for that block
        (checked here independently of the driver's check)."""
        cert, block = committed.certificate, committed.block
        if not node.honest:
            return
        vote = cert.vote
        if (
            vote.step != VoteStep.COMMIT
            or vote.block_hash != block.hash()
            or vote.height != block.height
        ):
            self.fail(
                f"{node.name()} committed h{block.height} with a certificate of "
                f"{VoteStep(vote.step).name} votes for {vote.block_hash.hex()[:8]}"
            )
        signers, quorum = self.expected_signers(block)
        try:
            cert.verify(self.fixture.chain_id, signers, quorum)
        except GridchainError as exc:
            self.fail(f"{node.name()} committed h{block.height} with a bad certificate: {exc}")
        if self.joiner is not None and any(
            sig.validator == self.joiner.public_key for sig in cert.signatures
        ):
            self.joiner_signed = True

    def expected_signers(self, block: Block) -> tuple[tuple[bytes, ...], int]:
        """Who may sign a committed block's certificate (the set of its height: a removed
        validator's signature never counts again, a joiner's only from its first height), and
        how many of them must."""
        signers = self.set_at(block.height)
        return signers, self.quorum_of(len(signers))

    def sync_source(self, node: SimNode) -> SimNode | None:
        sources = [
            other
            for other in self.nodes
            if other is not node
            and other.honest
            and other.halted is None
            and self.reachable(node.index, other.index)
            and other.head.height > node.head.height
        ]
        if not sources:
            return None
        return max(sources, key=lambda other: (other.head.height, -other.index))

    # --- faults ------------------------------------------------------------------------------

    def plan_faults(self) -> None:
        s = self.scenario
        rng = self.rng
        span = self.heal_at - self.now
        if s.partitions:
            t = self.now + rng.randint(100, 600)
            while t < self.heal_at:
                self.schedule(t, Event("partition"))
                t += rng.randint(200, 900)
                self.schedule(min(t, self.heal_at), Event("heal"))
                t += rng.randint(100, 700)
        if s.crashes:
            t = self.now + rng.randint(100, 500)
            while t < self.heal_at:
                self.schedule(t, Event("crash", rng.randrange(self.size)))
                t += rng.randint(150, 800)
        if s.crash_all:
            t = self.now + rng.randint(span // 4, span // 2)
            for node in self.nodes:
                self.schedule(t, Event("crash", node.index, detail="all"))
                self.schedule(t + rng.randint(50, 400), Event("restart", node.index))
        if s.set_changes:
            added = self.now + rng.randint(100, span // 2)
            self.schedule(added, Event("govern", detail="add"))
            self.schedule(added + rng.randint(200, 2_000), Event("govern", detail="remove"))
        self.schedule(self.heal_at, Event("faults-end"))

    def partition(self) -> None:
        ids = list(range(self.size))
        self.rng.shuffle(ids)
        cut = self.rng.randint(1, self.size - 1)
        groups = [0] * self.size
        for i in ids[cut:]:
            groups[i] = 1
        self.groups = groups
        self.record(
            None,
            "partition",
            " | ".join(
                ",".join(f"n{i}" for i in range(self.size) if groups[i] == g) for g in (0, 1)
            ),
        )

    def crash(self, index: int, *, everyone: bool) -> None:
        node = self.nodes[index]
        if node.engine is None:
            return
        if not everyone:
            down = sum(1 for n in self.nodes if n.honest and n.engine is None)
            if not node.honest or down >= self.scenario.crashes:
                return
            self.schedule(self.now + self.rng.randint(100, 1_200), Event("restart", index))
        self.record(node, "crash", None)
        node.crash()

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        if node.engine is not None or node.halted is not None:
            return
        self.record(node, "restart", f"head h{node.head.height}")
        node.boot()

    def end_faults(self) -> None:
        """The network heals and crashed validators come back; Byzantine ones stay."""
        self.faulty_network = False
        self.groups = None
        self.record(None, "heal-all", None)
        for node in self.nodes:
            if node.engine is None:
                self.restart(node.index)
        self.liveness_base = max(n.head.height for n in self.nodes if n.honest)

    # --- clients ---------------------------------------------------------------------------

    def submit_next_tx(self) -> None:
        txs = self.fixture.txs
        if self.next_tx >= len(txs):
            return
        tx = txs[self.next_tx]
        self.next_tx += 1
        for node in self.nodes:
            delay = self.rng.randint(*self.scenario.delay_ms)
            self.schedule(self.now + delay, Event("tx", node.index, detail=tx))
        self.schedule(self.now + self.rng.randint(5, 60), Event("client"))

    def resubmit(self) -> None:
        """Wallets retry what has not committed (crashed nodes lost their mempools)."""
        committed = max((n for n in self.nodes if n.honest), key=lambda n: n.head.height)
        seen: dict[bytes, int] = {}
        for tx in (*self.fixture.txs[: self.next_tx], *self.set_txs):
            sender = tx.sender
            if sender not in seen:
                seen[sender] = committed.app_nonce(sender)
            if seen[sender] <= tx.nonce < seen[sender] + MAX_BLOCK_TXS:
                for node in self.nodes:
                    delay = self.rng.randint(*self.scenario.delay_ms)
                    self.schedule(self.now + delay, Event("tx", node.index, detail=tx))
        self.schedule(self.now + 500, Event("resubmit"))

    def outsider_act(self) -> None:
        """A key outside the validator set sends messages that look right; all must be ignored."""
        assert self.outsider is not None
        key = self.outsider
        fx = self.fixture
        honest = [n for n in self.nodes if n.honest]
        top = max(honest, key=lambda n: n.head.height)
        height = top.head.height + 1
        rng = self.rng
        choice = rng.randrange(6)
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
            message = make_pre_prepare(key, fx.chain_id, rng.randrange(4), block)
        elif choice == 1:
            message = make_prepare(
                key, fx.chain_id, Vote(height, 0, fake_hash, int(VoteStep.PREPARE))
            )
        elif choice == 2:
            message = make_commit(
                key, fx.chain_id, Vote(height, 0, fake_hash, int(VoteStep.COMMIT))
            )
        elif choice == 3:
            message = make_view_change(
                key, fx.chain_id, rng.randrange(1, 50), height, prepared=None, block=None
            )
        elif choice == 4:
            message = make_checkpoint(
                key,
                fx.chain_id,
                CHECKPOINT_INTERVAL * (1 + height // CHECKPOINT_INTERVAL),
                fake_hash,
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

    # --- the main loop -------------------------------------------------------------------------

    def run(self) -> Outcome:
        with cached_signatures():
            return self._run()

    def _run(self) -> Outcome:
        for node in self.nodes:
            node.boot()
        self.plan_faults()
        self.schedule(self.now + 1, Event("client"))
        self.schedule(self.now + 500, Event("resubmit"))
        if self.outsider is not None:
            self.schedule(self.now + 10, Event("outsider"))
        while self._queue:
            at, _, event = heapq.heappop(self._queue)
            if at > self.deadline:
                self.fail_liveness()
            self.now = at
            self.events += 1
            self.dispatch(event)
            self.check_invariants()
            if self.live():
                return self.outcome()
        self.fail_liveness()
        raise AssertionError("unreachable")

    def dispatch(self, event: Event) -> None:
        kind = event.kind
        if kind == "deliver":
            node = self.nodes[event.node]
            if not node.is_alive() or node.engine is None:
                return
            message = self.decoded.get(event.payload)
            if message is None:
                # Decoding is a pure function of the bytes: each distinct payload is decoded
                # once, by the engine's own decoder, and the (immutable) result shared.
                try:
                    message = node.engine.decode_message(event.payload)
                except DecodeError as exc:
                    sender = self.by_key.get(event.sender)
                    if sender is not None and sender.honest:
                        self.fail(f"{node.name()} could not decode an honest message: {exc}")
                    return
                if len(self.decoded) > 50_000:
                    self.decoded.clear()
                self.decoded[event.payload] = message
            self.record(node, "deliver", message)
            if node.behaviour == "forge-catchup":
                self.overhear(node, message)
            if isinstance(message, ViewChange):
                self.view_changes += 1
            assert node.driver is not None
            node.perform(node.driver.on_message(event.sender, message, node.clock()))
        elif kind == "timer":
            node = self.nodes[event.node]
            if (
                node.is_alive()
                and node.engine is not None
                and event.generation == node.timer_generation
            ):
                assert node.driver is not None
                node.perform(node.driver.on_tick(node.clock()))
        elif kind == "boundary":
            node = self.nodes[event.node]
            if node.is_alive() and event.generation == node.lives:
                assert node.driver is not None
                node.perform(node.driver.on_boundary(node.clock()))
        elif kind == "tx":
            self.nodes[event.node].receive_tx(event.detail)
        elif kind == "client":
            self.submit_next_tx()
        elif kind == "resubmit":
            self.resubmit()
        elif kind == "outsider":
            self.outsider_act()
        elif kind == "sync":
            node = self.nodes[event.node]
            if node.is_alive():
                node.run_sync(event.generation)
        elif kind == "partition":
            self.partition()
        elif kind == "heal":
            self.groups = None
            self.record(None, "heal", None)
        elif kind == "crash":
            self.crash(event.node, everyone=event.detail == "all")
        elif kind == "restart":
            self.restart(event.node)
        elif kind == "faults-end":
            self.end_faults()
        elif kind == "govern":
            self.govern(event.detail)

    def check_invariants(self) -> None:
        """After every event: honest heads agree with what the others committed there."""
        canonical = self.canonical
        for node in self.nodes:
            head = node.head
            if node.honest and head.height and canonical.get(head.height) != head.block_hash:
                self.fail(f"{node.name()}'s head h{head.height} is not the agreed block")

    def live(self) -> bool:
        if self.liveness_base is None:
            return False
        if self.scenario.set_changes and not self.set_changes_done():
            return False
        goal = self.liveness_base + LIVENESS_BLOCKS
        return all(n.head.height >= goal for n in self.nodes if n.honest and n.is_alive())

    def fail_liveness(self) -> None:
        goal = (self.liveness_base or 0) + LIVENESS_BLOCKS
        lagging = [
            f"{n.name()} at h{n.head.height} {self.position(n)}"
            for n in self.nodes
            if n.honest and n.is_alive() and n.head.height < goal
        ]
        changes = ""
        if self.scenario.set_changes:
            changes = (
                f"; joiner from h{self.joined_at} signed: {self.joiner_signed}, "
                f"removal from h{self.removed_at}"
            )
        self.fail(
            f"liveness: {LIVENESS_BOUND_MS} ms after the faults stopped, honest nodes had not "
            f"all reached h{goal}: {', '.join(lagging)}{changes}"
        )

    def position(self, node: SimNode) -> str:
        """Where a node's engine is within the height, for the liveness report."""
        return f"view {node.engine.view if node.engine else '-'}"

    def outcome(self) -> Outcome:
        return Outcome(
            self.seed,
            self.scenario.name,
            {n.name(): n.head.height for n in self.nodes},
            self.now - self.start_ms,
            self.events,
            self.view_changes,
            dict(sorted(self.evidence.items())),
        )


def signed_votes(signer: bytes, message: Record) -> list[tuple[VoteStep, Vote]]:
    """The votes ``signer`` signed in ``message`` (a pre-prepare is its primary's prepare)."""
    out: list[tuple[VoteStep, Vote]] = []
    if isinstance(message, PrePrepare) and message.signer == signer:
        out.append((VoteStep.PREPARE, message.vote()))
    elif isinstance(message, Prepare | Commit) and message.signer == signer:
        out.append((VoteStep(message.vote.step), message.vote))
    elif isinstance(message, NewView) and message.pre_prepare is not None:
        out.extend(signed_votes(signer, message.pre_prepare))
    return out


# --- Byzantine behaviours ---------------------------------------------------------------------


def misbehave(cluster: Cluster, node: SimNode, targets: list[SimNode], message: Record) -> None:
    """Send ``message`` the way ``node.behaviour`` dictates (the engine itself stays honest)."""
    rng = cluster.rng
    behaviour = node.behaviour
    chain_id = cluster.fixture.chain_id
    post = cluster.post

    def send_all(msg: Record, to: list[SimNode]) -> None:
        for target in to:
            post(node.index, node.public_key, target, msg)

    if behaviour == "silent" and isinstance(message, PrePrepare | NewView):
        return  # a primary that never proposes nor completes a view change
    if behaviour == "equivocate" and isinstance(message, PrePrepare) and len(targets) > 1:
        block = message.block
        other = node.make_block(
            block.height,
            block.header.round,
            list(block.txs),
            block.header.timestamp_ms + 1 + rng.randrange(5),
        )
        twin = make_pre_prepare(node.key, chain_id, message.view, other)
        shuffled = list(targets)
        rng.shuffle(shuffled)
        half = len(shuffled) // 2
        send_all(message, shuffled[:half])
        send_all(twin, shuffled[half:])
        if rng.random() < 0.5:
            send_all(twin if rng.random() < 0.5 else message, [rng.choice(shuffled)])
        return
    if (
        behaviour == "equivocate"
        and isinstance(message, NewView)
        and message.pre_prepare is not None
        and len(targets) > 1
    ):
        # Half the replicas get a new view proposing another block: where a block was
        # prepared, honest replicas must see that it is the wrong one.
        pp = message.pre_prepare
        other = node.make_block(
            pp.block.height, pp.view, list(pp.block.txs), pp.block.header.timestamp_ms + 7
        )
        twin_nv = NewView(
            message.view,
            message.height,
            message.view_changes,
            make_pre_prepare(node.key, chain_id, pp.view, other),
        )
        for target in targets:
            post(node.index, node.public_key, target, message if rng.random() < 0.5 else twin_nv)
        return
    if behaviour == "conflicting" and isinstance(message, ViewChange) and message.prepared:
        # Lie about the lock to some replicas (a Byzantine validator may; it is signed).
        liar = make_view_change(
            node.key, chain_id, message.new_view, message.height, prepared=None, block=None
        )
        for target in targets:
            post(node.index, node.public_key, target, message if rng.random() < 0.5 else liar)
        return
    if behaviour == "conflicting" and isinstance(message, Prepare | Commit | Checkpoint):
        fake = sha256(b"conflict %d" % rng.randrange(1 << 30))
        conflicting: Record
        if isinstance(message, Checkpoint):
            conflicting = make_checkpoint(node.key, chain_id, message.height, fake)
        elif isinstance(message, Prepare):
            vote = Vote(message.vote.height, message.vote.round, fake, message.vote.step)
            conflicting = make_prepare(node.key, chain_id, vote)
        else:
            vote = Vote(message.vote.height, message.vote.round, fake, message.vote.step)
            conflicting = make_commit(node.key, chain_id, vote)
        for target in targets:
            post(
                node.index, node.public_key, target, message if rng.random() < 0.5 else conflicting
            )
        return
    if behaviour == "bad-signatures" and rng.random() < 0.6:
        send_all(corrupt(message, rng), targets)
        return
    send_all(message, targets)


def corrupt(message: Record, rng: random.Random) -> Record:
    """The same message with its signature damaged (or, for a new view, its proposal's)."""

    def bad(sig: VoteSignature) -> VoteSignature:
        raw = bytearray(sig.signature)
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        return VoteSignature(sig.validator, bytes(raw))

    if isinstance(message, PrePrepare):
        return PrePrepare(message.view, message.height, message.block, bad(message.signature))
    if isinstance(message, Prepare):
        return Prepare(message.vote, bad(message.signature))
    if isinstance(message, Commit):
        return Commit(message.vote, bad(message.signature))
    if isinstance(message, ViewChange):
        return ViewChange(
            message.new_view,
            message.height,
            message.prepared,
            message.block,
            bad(message.signature),
        )
    if isinstance(message, Checkpoint):
        return Checkpoint(message.height, message.block_hash, bad(message.signature))
    if isinstance(message, NewView) and message.pre_prepare is not None:
        pp = message.pre_prepare
        return NewView(
            message.view,
            message.height,
            message.view_changes,
            PrePrepare(pp.view, pp.height, pp.block, bad(pp.signature)),
        )
    return message


def run_seed(seed: int, scenario: str | None = None, *, full_trace: bool = False) -> Outcome:
    """Run one seeded simulation; raises SimFailure with the replay command on a violation."""
    name = scenario_for_seed(seed) if scenario is None else scenario
    return Cluster(SCENARIOS[name], seed, full_trace=full_trace).run()

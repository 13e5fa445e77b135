"""The peer network every consensus engine uses: encrypted links, gossip, block fetching.

One :class:`PeerNetwork` per node.  It listens for and dials the other genesis validators,
authenticates and encrypts each TCP connection (node.p2p.handshake, ADR 0024; scoring and the
rest as in ADR 0008), keeps exactly one link per peer, and moves four kinds of traffic: engine
messages (opaque bytes, point to point or to all), transactions (gossiped in batches with
de-duplication, one hop in a full mesh: ADR 0047),
block ranges (request/response) and head heights (periodic pings).  Everything it receives
goes to a :class:`NetworkHandler` with the *authenticated* public key of the sender, so the
runtime never has to trust a claim inside a payload about who sent it.

Gateways (issue 13, ADR 0024) are the other role a genesis key may have.  A validator admits a
genesis gateway's link beside its validators' but treats it as an observer: it never sends it
engine messages or gossip, never counts it anywhere, never asks it for blocks and ignores its
height; it pushes it every block it commits (``NewBlock``: block + certificate), serves it block
ranges, and admits the transactions it forwards (``SubmitTx``) as client submissions, answering
each with a ``TxVerdict``.  A gateway runs a PeerNetwork of its own in the gateway role: it
only dials the validators (it does not listen) and hands what it receives to a
:class:`FollowerHandler`.  A frame that does not belong on a link of that kind is a protocol
violation and ends the link.

Peers that break the protocol are scored: a malformed or oversize frame ends the link at once
and costs many points; a handler that refuses a payload as undecodable, badly signed or
structurally invalid costs fewer.  A peer whose score reaches zero is disconnected and banned
for a while.  Refusals that depend on ledger state (a stale nonce, a full mempool) are not
misbehaviour: honest peers send those all the time under load, so they cost nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import itertools
import random
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog

from gridchain.node.config import ConfigError, PeerEntry
from gridchain.node.p2p.errors import (
    BannedPeerError,
    FrameAuthError,
    FrameTooLargeError,
    HandshakeError,
    LinkClosedError,
    NoValidatorLinkError,
    PeerRefusedError,
    ProtocolViolationError,
    StateFetchError,
    UnknownPeerError,
)
from gridchain.node.p2p.frames import (
    BLOCKS_FRAME_OVERHEAD,
    LENGTH_PREFIX_BYTES,
    MAX_BLOCKS_PER_REQUEST,
    MIN_FRAME_BYTES,
    STATE_CHUNK_OVERHEAD,
    Blocks,
    ConsensusFrame,
    Frame,
    GetBlocks,
    GetState,
    Hello,
    HelloAuth,
    NewBlock,
    Ping,
    PlaintextHello,
    Refuse,
    StateChunk,
    SubmitTx,
    TxGossip,
    TxVerdict,
    encode_frame,
    gossip_batches,
)
from gridchain.node.p2p.handshake import Authenticated, handshake, linger_close
from gridchain.node.p2p.lru import RepeatFilter, SeenSet
from gridchain.node.p2p.secure import SecureChannel
from gridchain.protocol.block import MAX_BLOCK_BYTES, decode_committed
from gridchain.protocol.crypto import PUBLIC_KEY_BYTES, SigningKey, sha256
from gridchain.protocol.errors import (
    BadKeyError,
    DecodeError,
    GridchainError,
    SignatureError,
    ValidationError,
)
from gridchain.protocol.tx import MAX_TX_BYTES

#: Handler refusals that only a faulty or malicious peer causes: the bytes themselves are bad,
#: so an honest peer (which checks before it forwards) never sends them.
MISBEHAVIOUR_ERRORS: Final[tuple[type[GridchainError], ...]] = (
    DecodeError,
    SignatureError,
    ValidationError,
)

#: Frames coalesced into one socket write.
WRITE_BATCH_BYTES: Final = 256 * 1024
#: How long a graceful close may take to flush before the connection is cut.
CLOSE_GRACE_S: Final = 2.0

_log = structlog.get_logger("gridchain.p2p")


def _short(key: bytes) -> str:
    return key.hex()[:16]


class NetworkHandler(Protocol):
    """What the runtime does with traffic; every ``sender`` is an authenticated public key.

    Callbacks run on the event loop in the order frames arrive on a link.  Raising one of
    :data:`MISBEHAVIOUR_ERRORS` scores the sender; raising another GridchainError is a benign
    refusal (not scored, a transaction is then not forwarded).
    """

    def on_consensus(self, sender: bytes, payload: bytes) -> None: ...

    def on_tx(self, sender: bytes, tx_bytes: bytes) -> None: ...

    def get_blocks(self, from_height: int, count: int) -> list[bytes]: ...

    def on_peer_height(self, sender: bytes, height: int) -> None: ...

    def on_client_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        """A transaction a genesis gateway forwards: admit it as a client submission.

        A refusal is raised as a GridchainError; its code goes back to the gateway.  The
        network gossips an admitted transaction to the validators.
        """


class FollowerHandler(Protocol):
    """What a gateway does with what its validators send (node.follower.Follower)."""

    def on_new_block(self, sender: bytes, committed: bytes) -> None:
        """A CommittedBlock a validator just committed; raise a MISBEHAVIOUR_ERRORS type for
        bytes that cannot be one (the validator is scored)."""

    def on_peer_height(self, sender: bytes, height: int) -> None: ...


class SnapshotService(Protocol):
    """What serves state snapshots to joining validators (node.state_sync, ADR 0039)."""

    def state_chunk(
        self, height: int, after: bytes, budget: int
    ) -> tuple[int, list[tuple[bytes, bytes]], bool]:
        """(snapshot height, entries after ``after`` in key order within ``budget`` bytes,
        whether they are the last); height 0 when no snapshot at ``height`` is held."""


class NetworkObserver(Protocol):
    """Optional metrics hook (the runtime maps it onto Prometheus)."""

    def peers_changed(self, connected: int) -> None: ...

    def misbehaviour(self, peer: bytes, code: str) -> None: ...

    def connection_refused(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """A validator this node dials: its name, public key and listen address."""

    name: str
    public_key: bytes
    host: str
    port: int

    @classmethod
    def from_config(cls, entry: PeerEntry) -> PeerAddress:
        try:
            key = bytes.fromhex(entry.public_key)
        except ValueError:
            raise BadKeyError(f"peer {entry.name}: public_key is not hex") from None
        if len(key) != PUBLIC_KEY_BYTES:
            raise BadKeyError(f"peer {entry.name}: public_key must be {PUBLIC_KEY_BYTES} bytes")
        return cls(entry.name, key, entry.host, entry.port)


@dataclass(frozen=True, slots=True)
class NetworkTuning:
    """Timeouts, bounds and scoring.  Defaults suit a LAN; tests shorten the timers."""

    ping_interval_s: float = 1.0
    #: A link on which nothing arrived for this long is closed (pings keep healthy links busy).
    idle_timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    handshake_timeout_s: float = 5.0
    fetch_timeout_s: float = 5.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    #: How long a link that lost the duplicate tie-break may drain before it is closed.
    retire_grace_s: float = 2.0
    max_queue_frames: int = 20_000
    max_queue_bytes: int = 64 * 1024 * 1024
    #: Handshakes in progress from strangers (sources that are no configured peer's address).
    max_pending_handshakes: int = 64
    #: Handshakes in progress from one source address (times the configured peers there).
    max_pending_per_source: int = 4
    #: Hashes of transactions already handled, so echoes are dropped without decoding.  It
    #: only saves work (an echo is refused as a duplicate or a used nonce and never forwarded
    #: again), so it covers seconds of traffic: 20,000 hashes are 22 s at 900 tx/s and about
    #: 3 MiB; the former 100,000 held 16 MiB, most of what `bench soak` saw as growth.
    seen_tx_capacity: int = 20_000
    seen_consensus_capacity: int = 4096
    #: An identical consensus frame from one peer is passed on again only after this long:
    #: engines retransmit (PBFT every view_timeout/2), a tight loop of repeats is dropped.
    consensus_repeat_s: float = 0.25
    score_max: float = 100.0
    #: Points a score regains per ping interval, so old, rare faults are forgiven.
    score_recovery: float = 1.0
    penalty_malformed: float = 40.0
    penalty_misbehaviour: float = 10.0
    ban_s: float = 60.0


@dataclass(eq=False)
class PeerLink:
    """One authenticated connection: a bounded write queue drained by its own task.

    Frames are queued encoded in the clear (one encoding serves every link a broadcast goes
    to) and sealed by the link's channel as the write task takes them, in queue order, which
    is the order of the channel's counter.
    """

    peer: bytes
    #: The head height the peer announced in the handshake.
    first_height: int
    #: The largest frame the peer accepts (from its Hello); larger frames are not sent to it.
    peer_max_frame_bytes: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    channel: SecureChannel
    outbound: bool
    seq: int
    max_queue_frames: int
    max_queue_bytes: int
    last_received: float
    retired: bool = False
    closing: bool = False
    close_reason: str = ""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    pending: dict[int, asyncio.Future[tuple[bytes, ...]]] = field(default_factory=dict)
    #: SubmitTx requests of a gateway waiting for the validator's TxVerdict.
    verdicts: dict[int, asyncio.Future[TxVerdict]] = field(default_factory=dict)
    #: GetState requests in flight (state sync, ADR 0039).
    chunks: dict[int, asyncio.Future[StateChunk]] = field(default_factory=dict)
    _queue: deque[bytes] = field(default_factory=deque)
    _queued_bytes: int = 0
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _eof_after_drain: bool = False

    @property
    def address(self) -> str:
        peername = self.writer.get_extra_info("peername")
        if isinstance(peername, tuple) and len(peername) >= 2:
            return f"{peername[0]}:{peername[1]}"
        return "?"

    @property
    def local_address(self) -> str:
        sockname = self.writer.get_extra_info("sockname")
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            return f"{sockname[0]}:{sockname[1]}"
        return "?"

    @property
    def usable(self) -> bool:
        return not (self.closing or self.retired)

    def send(self, frame: Frame) -> bool:
        return self.send_raw(encode_frame(frame))

    def send_raw(self, data: bytes) -> bool:
        """Queue an encoded frame; a peer too slow to keep up is dropped, not buffered."""
        if self.closing or self._eof_after_drain:
            return False
        if len(data) - LENGTH_PREFIX_BYTES > self.peer_max_frame_bytes:
            _log.warning(
                "frame not sent: larger than the peer accepts",
                peer=_short(self.peer),
                size=len(data),
                limit=self.peer_max_frame_bytes,
            )
            return False
        if (
            len(self._queue) >= self.max_queue_frames
            or self._queued_bytes + len(data) > self.max_queue_bytes
        ):
            self.close("slow peer: write queue full", abort=True)
            return False
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._wakeup.set()
        return True

    def retire(self, grace_s: float) -> None:
        """Stop using this link: flush what is queued, half-close, keep reading to the end.

        Both ends retire the same link of a duplicate pair, so frames already in flight on it
        are still delivered; the grace timer bounds how long a silent peer can keep it open.
        """
        if self.retired or self.closing:
            return
        self.retired = True
        self._eof_after_drain = True
        self._wakeup.set()
        asyncio.get_running_loop().call_later(grace_s, self.close, "retired duplicate link")

    def close(self, reason: str, *, abort: bool = False) -> None:
        """Close; the serving task notices the end of the stream and cleans up.

        A graceful close flushes what the transport holds, but a peer that does not read
        would keep that going forever, so it is cut short after :data:`CLOSE_GRACE_S`.
        """
        transport = self.writer.transport
        if not self.closing:
            self.closing = True
            self.close_reason = reason
            self._wakeup.set()
            if not abort:
                transport.close()
                asyncio.get_running_loop().call_later(CLOSE_GRACE_S, transport.abort)
        if abort:
            transport.abort()

    async def write_loop(self) -> None:
        writer = self.writer
        try:
            while True:
                if self._queue:
                    # A bounded batch per write (fewer syscalls for many small votes), then
                    # drain(): it pushes back while the socket is full, so the transport holds
                    # at most about one batch and the bound on our queue really bounds memory.
                    seal = self.channel.seal_encoded
                    batch = [self._queue.popleft()]
                    size = len(batch[0])
                    while self._queue and size + len(self._queue[0]) <= WRITE_BATCH_BYTES:
                        batch.append(self._queue.popleft())
                        size += len(batch[-1])
                    self._queued_bytes -= size
                    sealed = [seal(data) for data in batch]
                    writer.write(sealed[0] if len(sealed) == 1 else b"".join(sealed))
                    await writer.drain()
                    continue
                if self.closing:
                    return
                if self._eof_after_drain:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
        except (OSError, RuntimeError) as exc:  # reset by peer, or transport already closing
            self.close(f"write failed: {exc}")

    def fail_pending(self) -> None:
        futures: list[asyncio.Future[Any]] = [
            *self.pending.values(),
            *self.verdicts.values(),
            *self.chunks.values(),
        ]
        for fut in futures:
            if not fut.done():
                fut.set_exception(LinkClosedError(self.close_reason or "link closed"))
        self.pending.clear()
        self.verdicts.clear()
        self.chunks.clear()


@dataclass(eq=False)
class _PeerState:
    key: bytes
    name: str | None
    address: PeerAddress | None
    seen_consensus: RepeatFilter
    score: float
    link: PeerLink | None = None
    links: set[PeerLink] = field(default_factory=set)
    banned_until: float = 0.0
    height: int | None = None
    last_error: str | None = None
    last_disconnect: str | None = None
    ever_connected: bool = False
    #: A genesis gateway's link (ADR 0024): an observer, never in consensus or gossip.
    is_gateway: bool = False


class PeerNetwork:
    """Authenticated links to the genesis validators (see the module docstring).

    ``local_height`` is called for every ping and handshake so peers learn this node's head;
    pass ``lambda: node.head.height`` (without it, this node announces height 0).
    ``max_frame_bytes`` bounds every frame this node accepts after the handshake and is
    announced to peers: engine payloads larger than it are refused to the caller by
    :meth:`broadcast_consensus` and :meth:`send_consensus` with FrameTooLargeError, a frame
    larger than what a *peer* announced is skipped for that peer (and logged), and block
    responses are packed to fit the asker's limit.  ``tuning`` holds timers, bounds and scoring;
    ``observer`` is the optional metrics hook.

    ``gateways`` are the genesis gateways' keys.  A validator (``key`` among ``validators``)
    passes its ``handler`` and admits gateway links too; a gateway (``key`` among ``gateways``)
    passes a ``follower`` instead, lists the validators it dials as ``peers`` and gives no
    ``listen_host``: it never accepts connections.
    """

    def __init__(
        self,
        *,
        key: SigningKey,
        chain_id: bytes,
        validators: Sequence[bytes],
        listen_host: str | None,
        listen_port: int,
        peers: Sequence[PeerAddress],
        handler: NetworkHandler | None = None,
        gateways: Sequence[bytes] = (),
        follower: FollowerHandler | None = None,
        max_frame_bytes: int = 8 * 1024 * 1024,
        local_height: Callable[[], int] | None = None,
        tuning: NetworkTuning | None = None,
        observer: NetworkObserver | None = None,
        snapshots: SnapshotService | None = None,
    ) -> None:
        if not MIN_FRAME_BYTES <= max_frame_bytes < 2**32:
            raise ConfigError(
                f"max_frame_bytes must be at least {MIN_FRAME_BYTES} (a transaction must fit)"
            )
        self._key = key
        self._own = key.public_key
        self._chain_id = chain_id
        self._validators = frozenset(v for v in validators if v != self._own)
        self._gateways = frozenset(g for g in gateways if g != self._own)
        #: This node is a gateway: it follows, it does not take part.
        self._is_gateway = self._own in frozenset(gateways)
        if self._is_gateway:
            if follower is None or handler is not None or listen_host is not None:
                raise ConfigError("a gateway's network takes a follower and does not listen")
        elif handler is None or follower is not None:
            raise ConfigError("a validator's network takes a handler (and no follower)")
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._handler_or_none = handler
        self._follower = follower
        self._snapshots = snapshots
        self._max_frame_bytes = max_frame_bytes
        self._local_height = local_height or (lambda: 0)
        self._tuning = tuning or NetworkTuning()
        self._observer = observer
        self._log = _log.bind(local=_short(self._own))
        self._states: dict[bytes, _PeerState] = {}
        for i, peer in enumerate(peers):
            if peer.public_key == self._own:
                continue  # a shared peer list may name this node itself
            if peer.public_key not in self._validators and (
                self._is_gateway or peer.public_key in self._gateways
            ):
                # A validator may list a key the chain admits later (ADR 0035): it dials it,
                # and the link is refused until that key is a validator on chain.
                raise ConfigError(
                    f"p2p.peers[{i}] ({peer.name}): public_key is not a genesis validator"
                )
            state = self._state(peer.public_key)
            state.name, state.address = peer.name, peer
        self._seen_txs = SeenSet(self._tuning.seen_tx_capacity)
        #: Transactions to gossip at the end of this turn of the event loop, by the peer not
        #: to send them to (the one they came from; None for this node's own): one TxGossip
        #: per batch instead of one frame per transaction (ADR 0047).
        self._outbox: dict[bytes | None, list[bytes]] = {}
        self._flush_armed = False
        self._request_ids = itertools.count(1)
        self._link_seq = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._running = False
        # Admission of inbound connections (ADR 0020): pending handshakes per source address,
        # and a pool for strangers that the configured peers' addresses do not draw from.
        self._known_sources: dict[str, int] = {}
        for configured in self._states.values():
            if configured.address is not None and _is_ip(configured.address.host):
                self._learn_source(_plain_ip(configured.address.host))
        self._pending: collections.Counter[str] = collections.Counter()
        self._stranger_pending = 0
        self._connected_count = 0
        #: set when the validator set changes (the dial loops of peers outside it wait on it)
        self._set_changed = asyncio.Event()
        #: this node was removed from the validator set: it dials nobody (stop_dialing)
        self._dialing_stopped = False

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def listen_port(self) -> int:
        """The bound port (useful with ``listen_port=0``)."""
        if self._server is not None and self._server.sockets:
            port: int = self._server.sockets[0].getsockname()[1]
            return port
        return self._listen_port

    async def start(self) -> None:
        """Listen, then dial every configured peer (each in its own reconnecting task)."""
        if self._running:
            return
        if self._listen_host is not None:
            self._server = await asyncio.start_server(
                self._on_inbound, self._listen_host, self._listen_port
            )
        self._running = True
        await self._resolve_peer_hosts()
        self._log.info(
            "p2p listening",
            host=self._listen_host,
            port=self.listen_port,
            peers=sum(1 for s in self._states.values() if s.address is not None),
        )
        for state in self._states.values():
            if state.address is not None:
                self._spawn(self._dial_loop(state))
        self._spawn(self._ping_loop())

    async def stop(self) -> None:
        """Stop accepting and dialing, close every link, and wait for every task to end."""
        if not self._running:
            return
        self._running = False
        if self._server is not None:
            self._server.close()
        for state in self._states.values():
            for link in list(state.links):
                link.close("node stopping")
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._log.info("p2p stopped")

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("p2p task failed", exc_info=task.exception())

    def _state(self, key: bytes) -> _PeerState:
        state = self._states.get(key)
        if state is None:
            state = _PeerState(
                key=key,
                name=None,
                address=None,
                seen_consensus=RepeatFilter(
                    self._tuning.seen_consensus_capacity, self._tuning.consensus_repeat_s
                ),
                score=self._tuning.score_max,
                is_gateway=key in self._gateways,
            )
            self._states[key] = state
        return state

    @property
    def _handler(self) -> NetworkHandler:
        """The validator's handler (a gateway's network never calls it: see _dispatch)."""
        if self._handler_or_none is None:
            raise ProtocolViolationError("a gateway takes no validator traffic")
        return self._handler_or_none

    def _validator_links(self) -> list[PeerLink]:
        """The usable links to validators (a gateway's link is never among them)."""
        return [
            s.link
            for s in self._states.values()
            if not s.is_gateway and s.link is not None and s.link.usable
        ]

    # --- the runtime's API -------------------------------------------------------------------

    def set_validators(self, keys: Collection[bytes]) -> None:
        """The keys the chain counts as validators now or soon (ADR 0035): link with them as
        validators; a link to a key that left (and is no gateway) is closed and refused."""
        validators = frozenset(k for k in keys if k != self._own)
        if validators == self._validators:
            return
        self._validators = validators
        for state in self._states.values():
            if state.key in validators or state.is_gateway:
                continue
            for link in list(state.links):
                link.close("no longer a validator")
        self._wake_dialers()

    def stop_dialing(self) -> None:
        """This node is no longer a validator (ADR 0044): dial nobody from now on.  The links
        it has stay until their peers close them (its last heights may still need its vote);
        the validators refuse a new one anyway."""
        if not self._dialing_stopped:
            self._dialing_stopped = True
            self._log.info("p2p dialing stopped", peers=len(self._states))
            self._wake_dialers()

    def _wake_dialers(self) -> None:
        self._set_changed.set()
        self._set_changed = asyncio.Event()

    def _dials(self, state: _PeerState) -> bool:
        """Whether this node dials a configured peer now: only one the chain counts as a
        validator (a key removed from the set, or admitted only later, is refused by both
        ends: dialing it would only fill both logs), and not at all once this node was
        removed from the set itself (ADR 0044)."""
        return not self._dialing_stopped and state.key in self._validators

    def set_gateways(self, keys: Collection[bytes]) -> None:
        """The gateways the chain admits now (ADR 0043): a link from an added key is a
        gateway link; a removed gateway's links are closed and refused (``unknown_peer``)."""
        gateways = frozenset(k for k in keys if k != self._own)
        if gateways == self._gateways:
            return
        self._gateways = gateways
        for state in self._states.values():
            if state.key in self._validators:
                continue
            state.is_gateway = state.key in gateways
            if not state.is_gateway:
                for link in list(state.links):
                    link.close("no longer a gateway")

    def broadcast_consensus(self, payload: bytes) -> None:
        """Send an engine message to every connected peer (best effort: engines retransmit)."""
        data = self._consensus_frame(payload)
        self._flush_txs()  # transactions queued before it go first (a proposal carries them)
        for link in self._validator_links():
            link.send_raw(data)

    def send_consensus(self, to: bytes, payload: bytes) -> None:
        """Send an engine message to one peer; dropped (and logged) if it is not connected."""
        data = self._consensus_frame(payload)
        state = self._states.get(to)
        if state is None or state.is_gateway or state.link is None or not state.link.usable:
            self._log.debug("consensus message dropped: peer not connected", peer=_short(to))
            return
        self._flush_txs()
        state.link.send_raw(data)

    def gossip_tx(self, tx_bytes: bytes) -> None:
        """Flood a transaction admitted locally; a transaction already seen is not re-sent."""
        if not 1 <= len(tx_bytes) <= MAX_TX_BYTES:
            raise FrameTooLargeError(f"a transaction is 1 to {MAX_TX_BYTES} bytes")
        if not self._seen_txs.add(sha256(tx_bytes)):
            return
        self._queue_tx(tx_bytes, exclude=None)

    def flush_gossip(self) -> None:
        """Queue what :meth:`gossip_tx` and :meth:`reannounce_tx` gathered on the links now
        instead of at the end of this turn of the event loop (before a client or gateway is
        told a transaction was admitted, so its next nonce does not overtake it)."""
        self._flush_txs()

    def reannounce_tx(self, tx_bytes: bytes) -> None:
        """Flood a transaction that is still pending here again (node/reannounce.py says when).

        Unlike :meth:`gossip_tx` this ignores the seen set: the point is to reach a peer that
        refused the first copy for a reason that may have passed (a full pool, a nonce gap).
        A peer that has it drops the copy as seen, without answering.
        """
        if not 1 <= len(tx_bytes) <= MAX_TX_BYTES:
            raise FrameTooLargeError(f"a transaction is 1 to {MAX_TX_BYTES} bytes")
        self._queue_tx(tx_bytes, exclude=None)

    async def fetch_blocks(self, from_height: int, count: int) -> list[bytes]:
        """Raw CommittedBlock bytes for ``from_height`` onwards, from the first peer that has any.

        Peers that announced a height of at least ``from_height`` are asked first, best score
        first.  A peer that times out, disconnects or answers with something other than
        consecutive decodable blocks from ``from_height`` is skipped (and scored if the answer
        was bad).  At most :data:`MAX_BLOCKS_PER_REQUEST` blocks come back, possibly fewer than
        ``count``; an empty list means no connected peer served any.  The blocks' certificates
        are *not* checked here: that is the runtime's job, with the validator set.
        """
        if count < 1:
            return []
        count = min(count, MAX_BLOCKS_PER_REQUEST)
        loop = asyncio.get_running_loop()
        candidates = [
            s
            for s in self._states.values()
            if not s.is_gateway and s.link is not None and s.link.usable
        ]
        random.shuffle(candidates)  # spread load among equally good peers
        candidates.sort(key=lambda s: ((s.height or 0) < from_height, -s.score))
        for state in candidates:
            link = state.link
            if link is None or not link.usable:
                continue
            request_id = next(self._request_ids)
            fut: asyncio.Future[tuple[bytes, ...]] = loop.create_future()
            link.pending[request_id] = fut
            try:
                if not link.send(GetBlocks(request_id, from_height, count)):
                    continue
                async with asyncio.timeout(self._tuning.fetch_timeout_s):
                    blocks = await fut
            except TimeoutError:
                state.last_error = "fetch_timeout"
                self._log.info("block fetch timed out", peer=_short(state.key), start=from_height)
                continue
            except LinkClosedError:
                continue
            finally:
                link.pending.pop(request_id, None)
            try:
                self._check_blocks(blocks, from_height, count)
            except (DecodeError, ProtocolViolationError) as exc:
                self._penalise(state, self._tuning.penalty_misbehaviour, exc.code, exc.message)
                continue
            if blocks:
                return list(blocks)
        return []

    def peer_heights(self) -> dict[bytes, int]:
        """The linked validators' announced heights (those that announced one)."""
        return {
            key: s.height
            for key, s in self._states.items()
            if not s.is_gateway and s.link is not None and s.link.usable and s.height is not None
        }

    async def fetch_state(self, peer: bytes, height: int, after: bytes) -> StateChunk:
        """One chunk of ``peer``'s state snapshot at ``height`` (0: pin one at its head) after
        the key ``after``.  StateFetchError when the peer is not linked, times out or the link
        closes.  The entries are *not* checked here: node.state_sync checks the whole set
        against a certified state root."""
        state = self._states.get(peer)
        link = None if state is None else state.link
        if state is None or state.is_gateway or link is None or not link.usable:
            raise StateFetchError("the peer is not linked")
        request_id = next(self._request_ids)
        fut: asyncio.Future[StateChunk] = asyncio.get_running_loop().create_future()
        link.chunks[request_id] = fut
        try:
            if not link.send(GetState(request_id, height, after)):
                raise StateFetchError("the link refused the request")
            async with asyncio.timeout(self._tuning.fetch_timeout_s):
                return await fut
        except TimeoutError:
            state.last_error = "fetch_timeout"
            raise StateFetchError("the peer did not answer in time") from None
        except LinkClosedError:
            raise StateFetchError("the link closed") from None
        finally:
            link.chunks.pop(request_id, None)

    def connected_peers(self) -> list[bytes]:
        """The validators this node has a usable link with (gateways are not peers)."""
        return sorted(
            key
            for key, state in self._states.items()
            if not state.is_gateway and state.link is not None and state.link.usable
        )

    def connected_gateways(self) -> list[bytes]:
        """The genesis gateways linked to this validator now."""
        return sorted(
            key
            for key, state in self._states.items()
            if state.is_gateway and state.link is not None and state.link.usable
        )

    def announce_block(self, committed: bytes) -> None:
        """Push a block this validator just committed (CommittedBlock bytes) to its gateways."""
        links = [
            s.link
            for s in self._states.values()
            if s.is_gateway and s.link is not None and s.link.usable
        ]
        if not links:
            return
        data = encode_frame(NewBlock(committed))
        for link in links:
            link.send_raw(data)

    @property
    def has_gateway_links(self) -> bool:
        """Whether announce_block would send anything (spares encoding a block for nobody)."""
        return any(
            s.is_gateway and s.link is not None and s.link.usable for s in self._states.values()
        )

    async def submit_tx(
        self, tx_bytes: bytes, to: Sequence[bytes]
    ) -> dict[bytes, TxVerdict | GridchainError]:
        """(Gateway role) forward a transaction to the validators ``to`` that are linked and
        wait for each one's verdict; a validator without a live link is left out, one whose
        link fails or times out maps to that error.  NoValidatorLinkError when none is linked."""
        if not self._is_gateway:
            raise ProtocolViolationError("only a gateway forwards client transactions")
        if not 1 <= len(tx_bytes) <= MAX_TX_BYTES:
            raise FrameTooLargeError(f"a transaction is 1 to {MAX_TX_BYTES} bytes")
        loop = asyncio.get_running_loop()
        waits: dict[bytes, tuple[PeerLink, int, asyncio.Future[TxVerdict]]] = {}
        for key in to:
            state = self._states.get(key)
            link = None if state is None else state.link
            if link is None or not link.usable:
                continue
            request_id = next(self._request_ids)
            fut: asyncio.Future[TxVerdict] = loop.create_future()
            link.verdicts[request_id] = fut
            if link.send(SubmitTx(request_id, tx_bytes)):
                waits[key] = (link, request_id, fut)
            else:
                link.verdicts.pop(request_id, None)
        if not waits:
            raise NoValidatorLinkError("no live link to any of the validators asked")
        try:
            async with asyncio.timeout(self._tuning.fetch_timeout_s):
                await asyncio.wait([fut for _, _, fut in waits.values()])
        except TimeoutError:
            pass
        finally:
            for link, request_id, _ in waits.values():
                link.verdicts.pop(request_id, None)
        out: dict[bytes, TxVerdict | GridchainError] = {}
        for key, (_, _, fut) in waits.items():
            if not fut.done():
                fut.cancel()
                out[key] = LinkClosedError("no verdict in time")
            elif isinstance(fut.exception(), GridchainError):
                error = fut.exception()
                assert isinstance(error, GridchainError)
                out[key] = error
            else:
                out[key] = fut.result()
        return out

    def peer_info(self) -> list[dict[str, Any]]:
        """One entry per configured peer and per validator or gateway that ever connected."""
        now = asyncio.get_running_loop().time() if self._running else 0.0
        out: list[dict[str, Any]] = []
        for key in sorted(self._states):
            state = self._states[key]
            if state.address is None and not state.ever_connected:
                continue
            link = state.link if state.link is not None and state.link.usable else None
            address = state.address
            out.append(
                {
                    "name": state.name,
                    "role": "gateway" if state.is_gateway else "validator",
                    "public_key": key.hex(),
                    "address": f"{address.host}:{address.port}" if address else None,
                    "connected": link is not None,
                    "direction": None if link is None else ("out" if link.outbound else "in"),
                    "remote": None if link is None else link.address,
                    "local": None if link is None else link.local_address,
                    "links": len(state.links),
                    "height": state.height,
                    "score": round(state.score, 1),
                    "banned_s": round(max(0.0, state.banned_until - now), 1),
                    "last_error": state.last_error,
                    "last_disconnect": state.last_disconnect,
                }
            )
        return out

    # --- helpers for the API -------------------------------------------------------------

    def _consensus_frame(self, payload: bytes) -> bytes:
        if not 1 <= len(payload) <= MAX_BLOCK_BYTES:
            raise FrameTooLargeError(f"a consensus payload is 1 to {MAX_BLOCK_BYTES} bytes")
        data = encode_frame(ConsensusFrame(payload))
        if len(data) - LENGTH_PREFIX_BYTES > self._max_frame_bytes:
            raise FrameTooLargeError(
                f"a consensus frame of {len(data)} bytes exceeds max_frame_bytes"
            )
        return data

    def _queue_tx(self, tx_bytes: bytes, exclude: bytes | None) -> None:
        """Gossip ``tx_bytes`` to every validator link but ``exclude``'s at the end of this
        turn of the event loop, batched with whatever else is queued by then (an API batch, a
        received batch passed on, a round of re-announcements)."""
        self._outbox.setdefault(exclude, []).append(tx_bytes)
        if not self._flush_armed:
            self._flush_armed = True
            asyncio.get_running_loop().call_soon(self._flush_txs)

    def _flush_txs(self) -> None:
        """Send what :meth:`_queue_tx` queued: each batch encoded once, sealed per link.

        ``relay`` is set when this node lacks a link to some validator: then a receiver passes
        the transactions on, as every receiver did before ADR 0047; in a full mesh each
        validator already heard them from here, and a copy from every other peer would only
        be decoded, hashed and dropped (n - 1 frames per transaction and validator at n
        validators).  A link that was down meanwhile is covered by re-announcement (ADR 0029).
        """
        self._flush_armed = False
        if not self._outbox:
            return
        outbox, self._outbox = self._outbox, {}
        links = self._validator_links()
        relay = not self._validators <= {link.peer for link in links}
        for exclude, txs in outbox.items():
            targets = [link for link in links if link.peer != exclude]
            if not targets:
                continue
            for batch in gossip_batches(txs):
                data = encode_frame(TxGossip(tuple(batch), relay))
                for link in targets:
                    link.send_raw(data)

    @staticmethod
    def _check_blocks(blocks: tuple[bytes, ...], from_height: int, count: int) -> None:
        if len(blocks) > count:
            raise ProtocolViolationError(f"asked for {count} blocks, got {len(blocks)}")
        for i, raw in enumerate(blocks):
            height = decode_committed(raw).block.height
            if height != from_height + i:
                raise ProtocolViolationError(
                    f"block {i} of a range from {from_height} has height {height}"
                )

    # --- connections ---------------------------------------------------------------------

    def _admit(self, key: bytes) -> None:
        """Raise unless ``key`` may have a link with this node right now: a validator links
        with validators and gateways, a gateway with validators only."""
        if key not in self._validators and (self._is_gateway or key not in self._gateways):
            what = "validator" if self._is_gateway else "validator or gateway"
            raise UnknownPeerError(f"{_short(key)} is not a genesis {what}")
        state = self._states.get(key)
        if state is not None and self._banned_for(state) > 0:
            raise BannedPeerError(f"banned for another {self._banned_for(state):.0f} s")

    def _banned_for(self, state: _PeerState) -> float:
        return state.banned_until - asyncio.get_running_loop().time()

    async def _handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        initiator: bool,
        expected: bytes | None,
    ) -> Authenticated:
        return await handshake(
            reader,
            writer,
            key=self._key,
            chain_id=self._chain_id,
            initiator=initiator,
            admit=self._admit,
            expected_key=expected,
            height=self._local_height(),
            max_frame_bytes=self._max_frame_bytes,
            timeout_s=self._tuning.handshake_timeout_s,
        )

    # --- admission of inbound connections ---------------------------------------------------

    async def _resolve_peer_hosts(self) -> None:
        """Learn the addresses the configured peers' host names stand for (best effort: a
        name that does not resolve yet is learnt from the first dial that reaches it)."""
        loop = asyncio.get_running_loop()
        for state in self._states.values():
            address = state.address
            if address is None or _is_ip(address.host):
                continue
            try:
                async with asyncio.timeout(self._tuning.connect_timeout_s):
                    infos = await loop.getaddrinfo(address.host, address.port)
            except (OSError, TimeoutError):
                continue
            for ip in {_plain_ip(str(info[4][0])) for info in infos}:
                self._learn_source(ip)

    def _learn_source(self, ip: str) -> None:
        self._known_sources[ip] = self._known_sources.get(ip, 0) + 1

    def _admission(self, source: str) -> str | None:
        """Why a new inbound connection from ``source`` is refused, or None to admit it.

        A configured peer's address may have ``max_pending_per_source`` handshakes per peer
        there, outside the strangers' pool, so strangers can never starve a validator's dial;
        any other address gets ``max_pending_per_source`` from the pool of
        ``max_pending_handshakes``.
        """
        tuning = self._tuning
        peers_there = self._known_sources.get(source, 0)
        if self._pending[source] >= tuning.max_pending_per_source * max(1, peers_there):
            return "source_limit"
        if peers_there == 0 and self._stranger_pending >= tuning.max_pending_handshakes:
            return "pending_limit"
        return None

    def _refused(self, reason: str) -> None:
        """Count a refused inbound connection (a metric, not a log line: floods are cheap)."""
        if self._observer is not None:
            self._observer.connection_refused(reason)

    def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback that hands the connection to a task this network owns: asyncio's own
        # task around a coroutine callback logs a spurious error when stop() cancels it.
        if not self._running:
            writer.transport.abort()
            return
        source = _source_of(writer)
        reason = self._admission(source)
        if reason is not None:
            writer.transport.abort()
            self._refused(reason)
            return
        stranger = source not in self._known_sources
        self._pending[source] += 1
        self._stranger_pending += stranger
        self._spawn(self._inbound(reader, writer, source, stranger=stranger))

    async def _inbound(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        source: str,
        *,
        stranger: bool,
    ) -> None:
        try:
            peer = await self._handshake(reader, writer, initiator=False, expected=None)
        except (GridchainError, OSError) as exc:
            code = exc.code if isinstance(exc, GridchainError) else "io_error"
            self._refused(code)
            self._log.debug("inbound peer refused", remote=source, reason=code, detail=str(exc))
            await linger_close(reader, writer)
            return
        except BaseException:
            writer.transport.abort()
            raise
        finally:
            self._pending[source] -= 1
            if self._pending[source] <= 0:
                del self._pending[source]
            self._stranger_pending -= stranger
        await self._serve(self._new_link(peer, reader, writer, outbound=False))

    async def _dial_loop(self, state: _PeerState) -> None:
        """Keep one link to a configured peer, redialing with jittered exponential backoff."""
        address = state.address
        assert address is not None
        tuning = self._tuning
        backoff = tuning.backoff_initial_s
        while self._running:
            link = state.link
            if not self._dials(state) and (link is None or not link.usable):
                # Not a validator now (or this node was removed): wait for the set to change.
                await self._set_changed.wait()
                backoff = tuning.backoff_initial_s
                continue
            if link is not None and link.usable:
                # Connected (maybe by the peer dialing us): wait for that link to end, then
                # pause briefly so a duplicate-link swap settles before we dial again.
                await link.closed.wait()
                backoff = tuning.backoff_initial_s
            else:
                banned = self._banned_for(state)
                if banned > 0:
                    await asyncio.sleep(banned)
                    continue
                try:
                    linked = await self._dial_once(state)
                except Exception:  # noqa: BLE001 - a bug must not end this peer's redialing
                    self._log.exception("dialing failed unexpectedly", peer=state.name)
                    linked = False
                backoff = (
                    tuning.backoff_initial_s if linked else min(backoff * 2, tuning.backoff_max_s)
                )
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))  # noqa: S311

    async def _dial_once(self, state: _PeerState) -> bool:
        """Connect, authenticate and serve the link until it ends; False if none was made."""
        address = state.address
        assert address is not None
        try:
            async with asyncio.timeout(self._tuning.connect_timeout_s):
                reader, writer = await asyncio.open_connection(address.host, address.port)
        except (OSError, TimeoutError) as exc:
            state.last_error = "unreachable"
            self._log.debug("dial failed", peer=address.name, error=str(exc) or "timeout")
            return False
        ip = _source_of(writer)
        if ip not in self._known_sources:  # a host name that did not resolve at start
            self._learn_source(ip)
        connected = await self._dial_handshake(state, reader, writer)
        if connected is None:
            return False
        await self._serve(connected)
        return True

    async def _dial_handshake(
        self, state: _PeerState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> PeerLink | None:
        address = state.address
        assert address is not None
        try:
            peer = await self._handshake(reader, writer, initiator=True, expected=state.key)
        except (GridchainError, OSError) as exc:
            await linger_close(reader, writer)
            code = exc.code if isinstance(exc, GridchainError) else "io_error"
            if isinstance(exc, PeerRefusedError):
                code = f"refused:{exc.reason}"
            state.last_error = code
            level = logging_level_for(exc)
            getattr(self._log, level)(
                "outbound link refused",
                peer=address.name,
                address=f"{address.host}:{address.port}",
                reason=code,
                detail=str(exc),
            )
            return None
        return self._new_link(peer, reader, writer, outbound=True)

    def _new_link(
        self,
        peer: Authenticated,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        outbound: bool,
    ) -> PeerLink:
        return PeerLink(
            peer=peer.public_key,
            first_height=peer.height,
            peer_max_frame_bytes=peer.max_frame_bytes,
            reader=reader,
            writer=writer,
            channel=peer.channel,
            outbound=outbound,
            seq=next(self._link_seq),
            max_queue_frames=self._tuning.max_queue_frames,
            max_queue_bytes=self._tuning.max_queue_bytes,
            last_received=asyncio.get_running_loop().time(),
        )

    def _preferred(self, link: PeerLink) -> bool:
        """The link both ends keep: the one dialed by the lower public key."""
        lower_dialed = self._own < link.peer
        return link.outbound == lower_dialed

    def _attach(self, link: PeerLink) -> None:
        """Make ``link`` the peer's link unless the one we have wins the tie-break."""
        state = self._state(link.peer)
        state.links.add(link)
        state.ever_connected = True
        state.last_error = None
        old = state.link
        if old is not None and old.usable:
            # Same preference: the newer link wins (a fresh handshake proves the peer is live
            # now; the old one may be half-dead after a restart that sent no FIN).
            if self._preferred(old) and not self._preferred(link):
                link.retire(self._tuning.retire_grace_s)
                return
            old.retire(self._tuning.retire_grace_s)
        state.link = link
        self._log.info(
            "peer connected",
            peer=_short(link.peer),
            name=state.name,
            direction="out" if link.outbound else "in",
            remote=link.address,
        )
        self._peers_changed()

    def _detach(self, link: PeerLink) -> None:
        state = self._state(link.peer)
        state.links.discard(link)
        if state.link is link:
            state.link = None
            state.last_disconnect = link.close_reason
            self._log.info(
                "peer disconnected",
                peer=_short(link.peer),
                name=state.name,
                reason=link.close_reason,
            )
            self._peers_changed()

    def _peers_changed(self) -> None:
        count = len(self.connected_peers())
        if count != self._connected_count:
            self._connected_count = count
            if self._observer is not None:
                self._observer.peers_changed(count)

    async def _serve(self, link: PeerLink) -> None:
        """Run one link to its end: attach it, read and dispatch frames, clean up."""
        if not self._running:
            link.close("node stopping", abort=True)
            return
        state = self._state(link.peer)
        self._attach(link)
        self._on_ping(state, link.first_height)
        writer_task = asyncio.get_running_loop().create_task(link.write_loop())
        try:
            while True:
                frame, _size = await link.channel.read_frame(link.reader, self._max_frame_bytes)
                link.last_received = asyncio.get_running_loop().time()
                if state.banned_until > link.last_received:
                    continue  # banned: its link is closing; nothing more it sends counts
                self._dispatch(state, link, frame)
        except LinkClosedError as exc:
            link.close(exc.message)
        except FrameAuthError as exc:
            # Anyone on the path can make a frame fail to open: end the link, score nobody.
            link.close(f"{exc.code}: {exc.message}", abort=True)
            state.last_error = exc.code
            self._log.warning("sealed frame refused", peer=_short(state.key), detail=exc.message)
        except (DecodeError, ProtocolViolationError) as exc:
            # The stream cannot be trusted past a bad frame: there is no resynchronising.
            link.close(f"{exc.code}: {exc.message}", abort=True)
            self._penalise(state, self._tuning.penalty_malformed, exc.code, exc.message)
        except OSError as exc:
            link.close(f"read failed: {exc}")
        finally:
            link.close(link.close_reason or "closed")
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer_task
            link.fail_pending()
            link.writer.transport.abort()
            link.closed.set()
            self._detach(link)

    # --- incoming frames -------------------------------------------------------------------

    def _dispatch(self, state: _PeerState, link: PeerLink, frame: Frame) -> None:
        # Between validators: consensus and gossip.  Validator -> gateway: NewBlock and
        # TxVerdict.  Gateway -> validator: SubmitTx.  Anything else on a link is a violation.
        between_validators = not (state.is_gateway or self._is_gateway)
        if isinstance(frame, ConsensusFrame | TxGossip) and not between_validators:
            raise ProtocolViolationError(f"{type(frame).__name__} on a gateway's link")
        if isinstance(frame, SubmitTx) and not state.is_gateway:
            raise ProtocolViolationError("SubmitTx from a peer that is not a gateway")
        if isinstance(frame, NewBlock | TxVerdict) and not self._is_gateway:
            raise ProtocolViolationError(f"{type(frame).__name__} sent to a validator")
        if isinstance(frame, ConsensusFrame):
            now = asyncio.get_running_loop().time()
            if state.seen_consensus.admit(sha256(frame.payload), now):
                self._call(state, self._handler.on_consensus, state.key, frame.payload)
        elif isinstance(frame, TxGossip):
            for tx in frame.txs:
                self._on_tx(state, tx, relay=frame.relay)
        elif isinstance(frame, Ping):
            self._on_ping(state, frame.height)
        elif isinstance(frame, GetBlocks):
            self._on_get_blocks(link, frame)
        elif isinstance(frame, GetState):
            self._on_get_state(state, link, frame)
        elif isinstance(frame, StateChunk):
            chunk = link.chunks.pop(frame.request_id, None)
            if chunk is not None and not chunk.done():
                chunk.set_result(frame)
        elif isinstance(frame, SubmitTx):
            self._on_submit(state, link, frame)
        elif isinstance(frame, TxVerdict):
            verdict = link.verdicts.pop(frame.request_id, None)
            if verdict is not None and not verdict.done():
                verdict.set_result(frame)
        elif isinstance(frame, NewBlock):
            assert self._follower is not None  # a gateway's network always has one
            self._call(state, self._follower.on_new_block, state.key, frame.block)
        elif isinstance(frame, Blocks):
            fut = link.pending.pop(frame.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(frame.blocks)
        elif isinstance(frame, Refuse):
            self._log.warning(
                "peer closed the link",
                peer=_short(state.key),
                reason=frame.code,
                detail=frame.message,
            )
            state.last_error = f"refused:{frame.code}"
            link.close(f"refused by peer: {frame.code}")
        elif isinstance(frame, Hello | PlaintextHello | HelloAuth):
            raise ProtocolViolationError(f"{type(frame).__name__} on an authenticated link")

    def _call(self, state: _PeerState, callback: Callable[..., None], *args: Any) -> bool:
        """Run a handler callback; True if it accepted.  Scores the sender on misbehaviour."""
        try:
            callback(*args)
        except MISBEHAVIOUR_ERRORS as exc:
            self._penalise(state, self._tuning.penalty_misbehaviour, exc.code, exc.message)
            return False
        except GridchainError as exc:
            self._log.debug("payload refused", peer=_short(state.key), code=exc.code)
            return False
        except Exception:  # noqa: BLE001 - a handler bug is not the peer's fault: keep the link
            self._log.exception("network handler failed", peer=_short(state.key))
            return False
        return True

    def _on_tx(self, state: _PeerState, tx: bytes, *, relay: bool) -> None:
        tx_hash = sha256(tx)
        if tx_hash in self._seen_txs:
            return
        try:
            self._handler.on_tx(state.key, tx)
        except MISBEHAVIOUR_ERRORS as exc:
            self._seen_txs.add(tx_hash)  # these bytes can never become valid
            self._penalise(state, self._tuning.penalty_misbehaviour, exc.code, exc.message)
            return
        except GridchainError as exc:
            # A state-dependent refusal (nonce, balance, full mempool) may not hold later,
            # so the hash is not remembered and the transaction is not forwarded.
            self._log.debug("tx refused", peer=_short(state.key), code=exc.code)
            return
        except Exception:  # noqa: BLE001 - a handler bug is not the peer's fault
            self._log.exception("network handler failed", peer=_short(state.key))
            return
        self._seen_txs.add(tx_hash)
        if relay:  # the sender could not reach every validator (ADR 0047)
            self._queue_tx(tx, exclude=state.key)

    def _on_submit(self, state: _PeerState, link: PeerLink, frame: SubmitTx) -> None:
        """A gateway's client transaction: admit it, answer, and gossip it if admitted.

        The gateway checks what it forwards (ADR 0024), so undecodable or badly signed bytes
        score it like a validator's bad gossip; a refusal that depends on state does not.
        """
        code, message = "", ""
        try:
            self._handler.on_client_tx(state.key, frame.tx)
        except MISBEHAVIOUR_ERRORS as exc:
            code, message = exc.code, exc.message
            self._penalise(state, self._tuning.penalty_misbehaviour, exc.code, exc.message)
        except GridchainError as exc:
            code, message = exc.code, exc.message
        except Exception:  # noqa: BLE001 - a handler bug is not the gateway's fault
            self._log.exception("network handler failed", peer=_short(state.key))
            code, message = "internal", "the validator failed to admit the transaction"
        if not code and self._seen_txs.add(sha256(frame.tx)):
            self._queue_tx(frame.tx, exclude=None)
            self._flush_txs()  # on the validator links before the gateway hears the verdict
        link.send(TxVerdict(frame.request_id, code[:64], message[:256]))

    def _on_ping(self, state: _PeerState, height: int) -> None:
        state.height = height
        if self._is_gateway:
            assert self._follower is not None
            self._call(state, self._follower.on_peer_height, state.key, height)
        elif not state.is_gateway:  # a gateway's height is no evidence of the chain's
            self._call(state, self._handler.on_peer_height, state.key, height)

    def _on_get_blocks(self, link: PeerLink, frame: GetBlocks) -> None:
        if self._is_gateway:
            link.send(Blocks(frame.request_id, ()))  # a gateway serves no blocks
            return
        try:
            blocks = self._handler.get_blocks(frame.from_height, frame.count)
        except Exception:  # noqa: BLE001 - serving is best effort; the asker tries another peer
            self._log.exception("serving blocks failed", start=frame.from_height)
            blocks = []
        budget = min(self._max_frame_bytes, link.peer_max_frame_bytes) - BLOCKS_FRAME_OVERHEAD
        out: list[bytes] = []
        for raw in blocks[: frame.count]:
            if len(raw) > budget or len(raw) > MAX_BLOCK_BYTES:
                break
            budget -= len(raw)
            out.append(raw)
        link.send(Blocks(frame.request_id, tuple(out)))

    def _on_get_state(self, state: _PeerState, link: PeerLink, frame: GetState) -> None:
        """Serve a chunk of a state snapshot to a validator (a gateway gets nothing)."""
        if self._snapshots is None or self._is_gateway or state.is_gateway:
            link.send(StateChunk(frame.request_id, 0, (), (), True))
            return
        budget = min(self._max_frame_bytes, link.peer_max_frame_bytes) - STATE_CHUNK_OVERHEAD
        try:
            height, entries, last = self._snapshots.state_chunk(frame.height, frame.after, budget)
        except Exception:  # noqa: BLE001 - serving is best effort; the asker tries another peer
            self._log.exception("serving state failed", height=frame.height)
            height, entries, last = 0, [], True
        keys = tuple(key for key, _ in entries)
        values = tuple(value for _, value in entries)
        link.send(StateChunk(frame.request_id, height, keys, values, last))

    # --- scoring ---------------------------------------------------------------------------

    def _penalise(self, state: _PeerState, points: float, code: str, detail: str) -> None:
        state.score -= points
        state.last_error = code
        self._log.warning(
            "peer misbehaved",
            peer=_short(state.key),
            name=state.name,
            code=code,
            detail=detail[:200],
            score=round(state.score, 1),
        )
        if self._observer is not None:
            self._observer.misbehaviour(state.key, code)
        if state.score > 0:
            return
        loop = asyncio.get_running_loop()
        state.banned_until = loop.time() + self._tuning.ban_s
        state.score = self._tuning.score_max  # the ban is the punishment; start afresh after it
        self._log.warning(
            "peer banned", peer=_short(state.key), name=state.name, seconds=self._tuning.ban_s
        )
        refusal = BannedPeerError(f"banned for {self._tuning.ban_s:.0f} s after {code}")
        for link in list(state.links):
            link.send(Refuse(refusal.code, refusal.message))
            link.retire(0.5)  # flush the Refuse, then close

    # --- pings and housekeeping ------------------------------------------------------------

    async def _ping_loop(self) -> None:
        tuning = self._tuning
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tuning.ping_interval_s)
            try:
                ping = encode_frame(Ping(self._local_height()))
            except Exception:  # noqa: BLE001 - a broken height callback must not stop pings
                self._log.exception("local_height failed")
                continue
            now = loop.time()
            for state in self._states.values():
                state.score = min(tuning.score_max, state.score + tuning.score_recovery)
                for link in list(state.links):
                    if now - link.last_received > tuning.idle_timeout_s:
                        link.close("idle timeout", abort=True)
                if state.link is not None and state.link.usable:
                    state.link.send_raw(ping)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _plain_ip(text: str) -> str:
    """An address in one spelling: an IPv4-mapped IPv6 address as its IPv4 form."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _source_of(writer: asyncio.StreamWriter) -> str:
    """The remote address of a connection (without the port)."""
    peername = writer.get_extra_info("peername")
    if isinstance(peername, tuple) and peername:
        return _plain_ip(str(peername[0]))
    return "?"


def logging_level_for(exc: BaseException) -> str:
    """Refusals that mean a misconfigured or hostile peer are warnings; plain I/O is debug."""
    if isinstance(exc, HandshakeError):
        return "warning"
    return "info" if isinstance(exc, GridchainError) else "debug"

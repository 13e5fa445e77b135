"""The bridge: read every meter at each clock-aligned interval, sign, store, send until committed.

Two loops share the store and nothing else:

* the **poller** wakes at each multiple of the interval (15 min: :00, :15, :30, :45 on the wall
  clock, so every bridge's records cover the same market slots), reads each meter, builds the
  next record of its hash chain, signs it and writes it to LevelDB with fsync;
* the **sender** turns unsent records into MeterReadings transactions of at most 200 readings,
  one transaction in flight at a time, and retries until the chain shows them committed.

Exactly once, across restarts and node outages, comes from three rules:

1. a record is durable before it is sent, and its sequence and hash never change;
2. the transaction in flight is durable before it is posted, and it is re-posted byte for byte
   (same nonce, same hash) until the node reports it committed or the chain's meter head shows
   its readings are in: the node cannot apply one transaction twice;
3. before building a new batch the sender asks the chain where each meter stands
   (``GET /v1/meters/{id}``) and sends only what follows; the chain itself rejects a sequence
   that is not the next one, so even a wrong guess cannot duplicate.

A meter that cannot be read after the retries, or whose values are not a measurement (beyond
the record's integer fields or the profile's rating, or below the last accepted registers),
gets a record with status UNAVAILABLE that repeats its last registers (this store's or the
chain's, learnt at reconciliation); a meter with no last registers anywhere skips the interval
instead, since any number would be made up.  Either way the gap is counted and logged.

A reading the node refuses is a problem of its meter, never of the batch (issue 12): a refused
batch of several meters is split, one meter per transaction, until the refused meter is found;
its unsent records are set aside in the store (kept, counted, logged), and its chain continues
from the chain's head with one UNAVAILABLE record covering their intervals.  If even that record
is refused, or the node refuses the meter itself (unregistered, another bridge key), the meter is
blocked until restart; the other meters are sent all along (ADR 0019).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog

from gridchain.api.client import NodeClient, NodeError, NodeRefusedError
from gridchain.api.models import Reading
from gridchain.meterbridge.config import BridgeConfig, MeterConfig
from gridchain.meterbridge.devices import DeviceController
from gridchain.meterbridge.metrics import BridgeMetrics
from gridchain.meterbridge.modbus import BusClient, MeterUnavailable
from gridchain.meterbridge.plausibility import ImplausibleReadingError, check_plausible
from gridchain.meterbridge.profiles import DecodeError, Measurement, Profile, load_profile
from gridchain.meterbridge.store import BridgeStore
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.meter import (
    GENESIS_READING_HASH,
    MAX_READINGS_PER_TX,
    ReadingRecord,
    ReadingStatus,
    SignedReading,
    sign_reading,
)
from gridchain.protocol.tx import MeterReadings, Transaction, sign_tx

log = structlog.get_logger("meterbridge")
#: How the bridge names itself to the node (its requests show in the node's access log).
USER_AGENT = "gridchain-meterbridge/0.1"


#: Node refusals of one reading's content (market/errors.py, raised by
#: market.meters.check_reading): the reading is set aside and replaced by an UNAVAILABLE one.
#: ``implausible_reading`` is the code a node-side bound would use (ADR 0019).
CONTENT_REFUSALS = frozenset(
    {
        "reading_sequence",
        "reading_hash_chain",
        "decreasing_register",
        "reading_interval",
        "reading_time_out_of_bounds",
        "implausible_reading",
    }
)
#: Refusals of the meter's registration itself: nothing this bridge signs for it can pass, so
#: the meter is blocked (logged, shown in /agent/health) until the operator fixes it and
#: restarts the bridge.
IDENTITY_REFUSALS = frozenset(
    {"unregistered_meter", "bridge_key_mismatch", "bad_reading_signature"}
)
#: Refusals that name one reading: the meter is isolated and handled alone.  Any other refusal
#: concerns the transaction (nonce, fee, size) and is retried from the chain's heads.
READING_REFUSALS = CONTENT_REFUSALS | IDENTITY_REFUSALS


class ChainConflictError(GridchainError):
    """The chain holds a different record than this store at the same sequence."""

    code = "chain_conflict"


@dataclass
class MeterState:
    config: MeterConfig
    profile: Profile
    bus: BusClient
    #: False until the head is known (from the store or the chain): no record before that.
    ready: bool = False
    #: Last answer of the chain about the meter; readings of unregistered meters are not sent.
    registered: bool = True
    last_error: str | None = None
    last_read_ms: int | None = None
    #: Why the node refuses even this meter's UNAVAILABLE record: nothing is sent until restart.
    blocked: str | None = None
    #: The chain registers the meter to another bridge key (checked at every reconciliation).
    foreign_key: bool = False
    #: Hash of the UNAVAILABLE record written after a refusal (refused again: block the meter).
    replacement: bytes | None = None


@dataclass
class SendOutcome:
    posted: int = 0
    committed: int = 0
    errors: list[str] = field(default_factory=list)


def _record_of(meter_id: str, reading: Reading) -> ReadingRecord | None:
    """The ReadingRecord the API's view of a reading describes (None: an unknown status)."""
    statuses = {s.name.lower(): int(s) for s in ReadingStatus}
    if reading.status not in statuses:
        return None
    return ReadingRecord(
        meter_id=meter_id,
        interval_start_ms=reading.interval_start_ms,
        interval_end_ms=reading.interval_end_ms,
        import_wh=reading.import_wh,
        export_wh=reading.export_wh,
        power_w=reading.power_w,
        voltage_dv=reading.voltage_dv,
        status=statuses[reading.status],
        sequence=reading.sequence,
        prev_hash=bytes.fromhex(reading.prev_hash),
    )


def next_tick_ms(now_ms: int, interval_ms: int) -> int:
    """The first multiple of the interval after ``now_ms`` (clock-aligned polling)."""
    return (now_ms // interval_ms + 1) * interval_ms


class Bridge:
    def __init__(
        self,
        config: BridgeConfig,
        *,
        key: SigningKey | None = None,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self.config = config
        self.key = key if key is not None else config.signing_key()
        self.metrics = metrics if metrics is not None else BridgeMetrics()
        self.store = BridgeStore(config.data_dir)
        self.buses = {b.name: BusClient(b, self.metrics) for b in config.buses}
        self.meters = {
            m.meter_id: MeterState(
                m, load_profile(m.profile, config.profile_dirs), self.buses[m.bus]
            )
            for m in config.meters
        }
        self.interval_ms = round(config.interval_s * 1000)
        self.node = NodeClient(config.node_url, user_agent=USER_AGENT, ca_file=config.node_ca)
        self.node_reachable = False
        #: Chargers and inverters that follow the chain's schedule (ADR 0028), if configured.
        self.devices = (
            DeviceController(
                config.devices,
                self.node,
                self.buses,
                self.metrics,
                profile_dirs=config.profile_dirs,
            )
            if config.devices is not None
            else None
        )
        self._wake_sender = asyncio.Event()
        #: Meters of a refused batch, sent one meter per transaction until the culprit is found.
        self._suspects: list[str] = []
        for meter_id, state in self.meters.items():
            state.ready = self.store.head(meter_id) is not None

    async def __aenter__(self) -> Bridge:
        await self.node.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for bus in self.buses.values():
            await bus.close()
        await self.node.__aexit__(None, None, None)
        self.store.close()

    @property
    def chain_id(self) -> bytes | None:
        return self.store.chain_id()

    # --- reconciliation -------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Learn the chain id and each meter's chain head; mark what the chain already has.

        Raises NodeError when the node cannot be asked; the caller retries later.
        """
        chain_id = (await self.node.status()).chain_id
        known = self.store.chain_id()
        if known is None:
            self.store.set_chain_id(chain_id)
        elif known != chain_id:
            raise ChainConflictError(
                f"the node serves chain {chain_id.hex()}, this store signed for {known.hex()}"
            )
        for meter_id, state in self.meters.items():
            await self._reconcile_meter(meter_id, state)
        self.node_reachable = True

    async def _reconcile_meter(self, meter_id: str, state: MeterState) -> None:
        on_chain = await self.node.meter(meter_id)
        state.registered = on_chain is not None
        if on_chain is None:
            state.last_error = "not registered on chain"
            log.warning("meter_not_registered", meter=meter_id)
            return
        state.foreign_key = on_chain.bridge_key != self.key.public_key.hex()
        if state.foreign_key:
            # the chain would refuse every reading of it: do not let it into a batch
            state.last_error = f"registered to another bridge key ({on_chain.bridge_key[:16]})"
            log.warning("meter_foreign_bridge_key", meter=meter_id, key=on_chain.bridge_key)
            return
        if on_chain.last_sequence is None:
            state.ready = True
            return
        seq = on_chain.last_sequence
        local = self.store.get(meter_id, seq)
        if local is not None:
            if on_chain.last_hash is not None and local.record.hash() != on_chain.last_hash:
                raise ChainConflictError(
                    f"meter {meter_id}: the chain's record #{seq} is not this bridge's"
                )
        elif self.store.chain_head(meter_id) == (seq, on_chain.last_hash):
            # this store started from that chain head; its records follow it
            if on_chain.last_hash is not None and self.store.chain_record(meter_id) is None:
                await self._learn_chain_record(meter_id, seq, on_chain.last_hash)
        else:
            head = self.store.head(meter_id)
            if head is not None and head.sequence > seq:
                raise ChainConflictError(
                    f"meter {meter_id}: store has #{head.sequence} but lacks committed #{seq}"
                )
            if on_chain.last_hash is None:
                raise ChainConflictError(f"meter {meter_id}: chain head #{seq} without a hash")
            await self._learn_chain_record(meter_id, seq, on_chain.last_hash)
            self.store.set_chain_head(
                meter_id, seq, on_chain.last_hash, on_chain.last_interval_end_ms or 0
            )
            log.info("meter_head_from_chain", meter=meter_id, sequence=seq)
        self.store.set_acked(meter_id, seq + 1)
        state.ready = True

    async def _learn_chain_record(self, meter_id: str, seq: int, record_hash: bytes) -> None:
        """Fetch the chain's record #seq of the meter, so its registers bound the next reading.

        The record is rebuilt from the API's view and kept only if it hashes to the chain's
        head: the registers then are exactly what the chain accepted.
        """
        found = await self.node.readings(meter_id, from_seq=seq, limit=1)
        record = _record_of(meter_id, found[0]) if found else None
        if record is None or record.hash() != record_hash:
            log.warning("chain_record_unverified", meter=meter_id, sequence=seq)
            return
        self.store.set_chain_record(record)

    # --- polling ------------------------------------------------------------------------

    async def poll_once(self, tick_ms: int) -> list[SignedReading]:
        """Read every meter for the interval ending at ``tick_ms``; store and return records."""
        chain_id = self.store.chain_id()
        if chain_id is None:
            log.warning("interval_skipped", reason="chain id unknown (node never reached)")
            for meter_id in self.meters:
                self.metrics.readings.labels(meter_id, "skipped").inc()
            return []
        written: list[SignedReading] = []
        for meter_id, state in self.meters.items():
            reading = await self._poll_meter(meter_id, state, tick_ms, chain_id)
            if reading is not None:
                written.append(reading)
        if written:
            self._wake_sender.set()
        return written

    async def _poll_meter(
        self, meter_id: str, state: MeterState, tick_ms: int, chain_id: bytes
    ) -> SignedReading | None:
        head = self.store.head(meter_id)
        if (
            not state.ready
            or state.blocked is not None
            or (head is not None and tick_ms <= head.interval_end_ms)
        ):
            self.metrics.readings.labels(meter_id, "skipped").inc()
            log.warning("interval_skipped", meter=meter_id, tick_ms=tick_ms, ready=state.ready)
            return None
        measurement: Measurement | None
        try:
            measurement = await state.bus.read_meter(meter_id, state.config.slave_id, state.profile)
        except (MeterUnavailable, DecodeError) as exc:
            measurement, state.last_error = None, exc.message
        last = head.record if head is not None else None
        if head is not None and head.interval_end_ms:
            start_ms = head.interval_end_ms
        else:
            start_ms = tick_ms - self.interval_ms
        if (
            measurement is not None
            and last is not None
            and (measurement.import_wh < last.import_wh or measurement.export_wh < last.export_wh)
        ):
            state.last_error = (
                "a cumulative register is below the last accepted one (counter wrap or meter"
                " swap: a new meter is registered, not continued)"
            )
            measurement = None
        if measurement is not None:
            try:
                check_plausible(
                    state.profile,
                    measurement,
                    previous=None if last is None else (last.import_wh, last.export_wh),
                    duration_ms=round((tick_ms - start_ms) * self.config.meter_time_scale),
                )
            except ImplausibleReadingError as exc:
                state.last_error, measurement = exc.message, None
                self.metrics.implausible.labels(meter_id).inc()
                log.warning("reading_implausible", meter=meter_id, error=exc.message)
        if measurement is None:
            if last is None:
                self.metrics.readings.labels(meter_id, "skipped").inc()
                log.warning("interval_skipped", meter=meter_id, error=state.last_error)
                return None
            status = ReadingStatus.UNAVAILABLE
            measurement = Measurement(last.import_wh, last.export_wh, last.power_w, last.voltage_dv)
        else:
            status = ReadingStatus.OK
            state.last_error = None
            state.last_read_ms = tick_ms
        record = ReadingRecord(
            meter_id=meter_id,
            interval_start_ms=start_ms,
            interval_end_ms=tick_ms,
            import_wh=measurement.import_wh,
            export_wh=measurement.export_wh,
            power_w=measurement.power_w,
            voltage_dv=measurement.voltage_dv,
            status=int(status),
            sequence=0 if head is None else head.sequence + 1,
            prev_hash=GENESIS_READING_HASH if head is None else head.record_hash,
        )
        reading = sign_reading(self.key, chain_id, record)
        self.store.append(reading)
        self.metrics.readings.labels(meter_id, status.name.lower()).inc()
        log.info("reading_stored", meter=meter_id, sequence=record.sequence, status=status.name)
        return reading

    # --- sending ------------------------------------------------------------------------

    def _sendable(self, meter_id: str) -> bool:
        state = self.meters[meter_id]
        return state.registered and not state.foreign_key and state.blocked is None

    def _unsent(self) -> list[SignedReading]:
        while self._suspects:
            # a refused batch is being split: one suspect meter per transaction
            meter_id = self._suspects[0]
            if self._sendable(meter_id):
                alone = self.store.unsent(meter_id, MAX_READINGS_PER_TX)
                if alone:
                    return alone
            self._suspects.pop(0)
        batch: list[SignedReading] = []
        for meter_id in self.meters:
            if not self._sendable(meter_id):
                continue
            room = MAX_READINGS_PER_TX - len(batch)
            if room <= 0:
                break
            batch.extend(self.store.unsent(meter_id, room))
        return batch

    def unsent_count(self) -> int:
        return sum(len(self.store.unsent(m, 1_000_000)) for m in self.meters)

    async def send_once(self) -> SendOutcome:
        """One round of the sender; raises NodeError when the node cannot be reached."""
        outcome = SendOutcome()
        inflight = self.store.inflight()
        if inflight is not None:
            settled = await self._settle_inflight(inflight, outcome)
            if not settled:
                return outcome
        await self.reconcile()
        batch = self._unsent()
        self.metrics.unsent.set(self.unsent_count())
        if not batch:
            return outcome
        chain_id = self.store.chain_id()
        assert chain_id is not None  # reconcile() stored it
        nonce = await self._pending_nonce()
        tx = sign_tx(self.key, chain_id, nonce, MeterReadings(tuple(batch)))
        self.store.set_inflight(tx)  # durable before it is posted
        await self._post(tx, outcome)
        return outcome

    async def _post(self, tx: Transaction, outcome: SendOutcome) -> None:
        try:
            await self.node.submit_raw(tx.encode().hex())
        except NodeRefusedError as exc:
            if exc.status == 409 or "known" in exc.node_code or "duplicate" in exc.node_code:
                return  # the node already has exactly these bytes
            self.metrics.node_errors.labels(exc.node_code).inc()
            outcome.errors.append(exc.node_code)
            log.error("tx_refused", code=exc.node_code, message=exc.node_message)
            self.store.set_inflight(None)  # the chain's meter heads decide what is resent
            if exc.node_code in READING_REFUSALS:
                await self._reading_refused(tx, exc.node_code, exc.node_message)
            return
        meters = {r.record.meter_id for r in self._readings_of(tx)}
        if len(meters) == 1 and self._suspects and self._suspects[0] in meters:
            self._suspects.pop(0)  # accepted alone: not the culprit
        outcome.posted += 1
        self.metrics.txs_submitted.inc()
        log.info("tx_posted", hash=tx.hash().hex(), readings=len(self._readings_of(tx)))

    async def _reading_refused(self, tx: Transaction, code: str, message: str) -> None:
        """Find the meter whose reading the node refused; never let it hold the others back."""
        meters = list(dict.fromkeys(r.record.meter_id for r in self._readings_of(tx)))
        if len(meters) > 1:
            log.warning("batch_split", meters=meters, code=code)
            self._suspects = meters + [m for m in self._suspects if m not in meters]
            return
        if not meters:  # pragma: no cover - a MeterReadings body has at least one reading
            return
        # found: the other suspects go back into shared batches (split again if refused again)
        self._suspects.clear()
        await self._set_aside(meters[0], code, message)

    async def _set_aside(self, meter_id: str, code: str, message: str) -> None:
        """Take the meter's refused records out of its chain and continue it from the chain's head.

        The refused records are kept in the store (``X:``), counted and logged; one UNAVAILABLE
        record repeating the chain's last registers covers their intervals, so that time adds no
        energy and the next reading follows the chain.  If that very record is refused, or the
        refusal is about the meter's identity, the meter is blocked until restart.
        """
        state = self.meters[meter_id]
        self.metrics.refused.labels(meter_id, code).inc()
        state.last_error = f"the node refused a reading: {code}: {message}"
        log.error("reading_refused", meter=meter_id, code=code, message=message)
        if code in IDENTITY_REFUSALS:
            state.blocked = state.last_error
            log.error("meter_blocked", meter=meter_id, reason=state.blocked)
            return
        await self._reconcile_meter(meter_id, state)
        first = self.store.acked(meter_id)
        unsent = self.store.unsent(meter_id, 1)
        if not unsent:
            return  # the chain moved past what was refused; nothing of it is left to send
        if unsent[0].record.hash() == state.replacement:
            state.blocked = state.last_error
            log.error("meter_blocked", meter=meter_id, reason=state.blocked)
            return
        moved = self.store.set_aside(meter_id, first)
        head = self.store.head(meter_id)
        chain_id = self.store.chain_id()
        if head is None or head.record is None or chain_id is None:
            # no accepted registers to repeat: the meter's next good read continues the chain
            state.replacement = None
            return
        last = head.record
        record = ReadingRecord(
            meter_id=meter_id,
            interval_start_ms=head.interval_end_ms,
            interval_end_ms=max(head.interval_end_ms, moved[-1].record.interval_end_ms),
            import_wh=last.import_wh,
            export_wh=last.export_wh,
            power_w=last.power_w,
            voltage_dv=last.voltage_dv,
            status=int(ReadingStatus.UNAVAILABLE),
            sequence=head.sequence + 1,
            prev_hash=head.record_hash,
        )
        self.store.append(sign_reading(self.key, chain_id, record))
        state.replacement = record.hash()
        self.metrics.readings.labels(meter_id, "unavailable").inc()
        log.info("reading_replaced", meter=meter_id, set_aside=len(moved), sequence=record.sequence)

    async def _pending_nonce(self) -> int:
        """The nonce the bridge key's next transaction carries (0 for an unseen account)."""
        address = format_address(address_of(self.key.public_key))
        try:
            return (await self.node.account(address)).pending_nonce
        except NodeRefusedError as exc:
            if exc.status == 404:
                return 0
            raise

    @staticmethod
    def _readings_of(tx: Transaction) -> tuple[SignedReading, ...]:
        body = tx.body
        return body.readings if isinstance(body, MeterReadings) else ()

    async def _settle_inflight(self, tx: Transaction, outcome: SendOutcome) -> bool:
        """True once the transaction in flight is resolved (committed or dead)."""
        tx_hash = tx.hash().hex()
        status = await self.node.tx_status(tx_hash)
        if status is not None and status.status == "committed":
            self.store.set_inflight(None)
            outcome.committed += 1
            self.metrics.txs_committed.inc()
            log.info("tx_committed", hash=tx_hash)
            return True
        if status is not None and status.status == "pending":
            return False
        if status is not None:  # any other final status: rejected
            log.error("tx_failed", hash=tx_hash, status=status.status)
            self.store.set_inflight(None)
            return True
        # Unknown to the node (its mempool was lost, or it never arrived): if the chain's heads
        # already cover every reading, it was committed; otherwise post the same bytes again.
        await self.reconcile()
        if all(
            r.record.sequence < self.store.acked(r.record.meter_id) for r in self._readings_of(tx)
        ):
            self.store.set_inflight(None)
            return True
        if await self._pending_nonce() > tx.nonce:
            # the nonce was used by a transaction that did not carry these readings
            self.store.set_inflight(None)
            return True
        await self._post(tx, outcome)
        return False

    # --- the loops ----------------------------------------------------------------------

    async def run_poller(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now_ms = time.time_ns() // 1_000_000
            tick = next_tick_ms(now_ms, self.interval_ms)
            try:
                await asyncio.wait_for(stop.wait(), (tick - now_ms) / 1000)
                return
            except TimeoutError:
                pass
            await self.poll_once(tick)

    async def run_sender(self, stop: asyncio.Event, *, idle_s: float = 1.0) -> None:
        backoff = idle_s
        while not stop.is_set():
            try:
                outcome = await self.send_once()
            except NodeError as exc:
                self.node_reachable = False
                self.metrics.node_errors.labels(exc.code).inc()
                log.warning("node_unavailable", error=exc.message)
                backoff = min(backoff * 2, 30.0)
            else:
                backoff = idle_s
                if outcome.posted or outcome.committed:
                    continue
            self._wake_sender.clear()
            waiter = asyncio.ensure_future(self._wake_sender.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waiter, stopper}, timeout=backoff, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            stopper.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.reconcile()
        except NodeError as exc:
            log.warning("node_unavailable_at_start", error=exc.message)
        loops = [self.run_poller(stop), self.run_sender(stop)]
        if self.devices is not None:
            loops.append(self.devices.run(stop))
        await asyncio.gather(*loops)

"""A small node HTTP server that checks readings the way the chain does (for bridge tests).

It answers with the contract's models (gridchain.api.models) on the routes the bridge uses
(``/v1/status``, ``/v1/txs``, ``/v1/accounts/{address}``, ``/v1/meters/{id}``) and, when it
commits, enforces what the chain enforces for MeterReadings: the sender is the meter's
registered bridge key, every signature verifies, each meter's sequence is the next one and its
prev_hash is the hash of the last committed record, and the transaction's nonce is the
sender's next.  A transaction failing any rule is recorded in ``rejections``, so a test can
assert that the bridge never sent a duplicate or out-of-order reading.  Commits happen only
when the test calls :meth:`commit`, so the test decides where a crash or an outage falls.

With ``admit_like_chain`` a posted transaction is admitted as the node's mempool admits it:
every reading must pass the chain's own :func:`gridchain.market.meters.check_reading` against
the committed heads (registers that never decrease included), or the POST is refused with the
chain's error code, as the real node answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from gridchain.api import models as m
from gridchain.market.meters import MeterRecord, check_reading
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import sha256
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.meter import ReadingStatus, SignedReading
from gridchain.protocol.tx import MeterReadings, Transaction, decode_tx


@dataclass
class FakeMeter:
    bridge_key: bytes
    last_sequence: int | None = None
    last_hash: bytes | None = None
    last_interval_end_ms: int | None = None
    readings: list[SignedReading] = field(default_factory=list)


class FakeNode:
    def __init__(self, chain_id: bytes = sha256(b"fake-chain")) -> None:
        self.chain_id = chain_id
        self.meters: dict[str, FakeMeter] = {}
        self.nonces: dict[bytes, int] = {}
        self.mempool: dict[str, Transaction] = {}
        self.committed: dict[str, int] = {}
        self.rejections: list[str] = []
        self.posts = 0
        self.on_post: Callable[[Transaction], None] | None = None
        self.admit_like_chain = False
        #: Block time the admission check uses (check_reading bounds interval ends by it).
        self.block_ms = 2**62
        #: What GET /v1/schedule answers (newest first), set by device tests; None: a 503.
        self.decisions: list[m.Decision] | None = []
        self.schedule_requests = 0
        #: What GET /v1/devices/{id} answers (absent: 404 not_found, linked to no meter).
        self.device_links: dict[str, m.DeviceLink] = {}
        #: True: GET /v1/devices/{id} answers 503 (an outage of the lookup alone).
        self.device_links_down = False
        self.device_requests = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    def register_meter(self, meter_id: str, bridge_key: bytes) -> None:
        self.meters[meter_id] = FakeMeter(bridge_key)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_get("/v1/status", self._status)
        app.router.add_post("/v1/txs", self._post_tx)
        app.router.add_get("/v1/txs/{hash}", self._get_tx)
        app.router.add_get("/v1/accounts/{address}", self._account)
        app.router.add_get("/v1/meters/{id}", self._meter)
        app.router.add_get("/v1/meters/{id}/readings", self._readings)
        app.router.add_get("/v1/schedule", self._schedule)
        app.router.add_get("/v1/devices/{id}", self._device)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.port = port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def drop_mempool(self) -> None:
        """What a node restart does to transactions not yet in a block."""
        self.mempool.clear()

    def commit(self) -> None:
        """Apply the mempool in nonce order, as a block would."""
        for tx_hash, tx in sorted(self.mempool.items(), key=lambda kv: kv[1].nonce):
            error = self._check(tx)
            self.nonces[tx.sender] = self.nonces.get(tx.sender, 0) + (error is None)
            if error is not None:
                self.rejections.append(error)
                continue
            assert isinstance(tx.body, MeterReadings)
            for reading in tx.body.readings:
                rec = reading.record
                meter = self.meters[rec.meter_id]
                meter.last_sequence, meter.last_hash = rec.sequence, rec.hash()
                meter.last_interval_end_ms = rec.interval_end_ms
                meter.readings.append(reading)
            self.committed[tx_hash] = len(self.committed) + 1
        self.mempool.clear()

    def _check(self, tx: Transaction) -> str | None:
        if tx.nonce != self.nonces.get(tx.sender, 0):
            return f"nonce {tx.nonce}, expected {self.nonces.get(tx.sender, 0)}"
        if not isinstance(tx.body, MeterReadings):
            return "not MeterReadings"
        heads = {m: (f.last_sequence, f.last_hash) for m, f in self.meters.items()}
        for reading in tx.body.readings:
            rec = reading.record
            meter = self.meters.get(rec.meter_id)
            if meter is None or meter.bridge_key != tx.sender:
                return f"{rec.meter_id}: unregistered or wrong bridge key"
            try:
                reading.verify(meter.bridge_key, self.chain_id)
            except GridchainError as exc:
                return exc.message
            last_seq, last_hash = heads[rec.meter_id]
            want = 0 if last_seq is None else last_seq + 1
            if rec.sequence != want:
                return f"{rec.meter_id}: sequence {rec.sequence}, expected {want}"
            if rec.prev_hash != (last_hash or b"\x00" * 32):
                return f"{rec.meter_id}#{rec.sequence}: prev_hash breaks the chain"
            heads[rec.meter_id] = (rec.sequence, rec.hash())
        return None

    def _chain_head(self, meter_id: str, meter: FakeMeter) -> MeterRecord:
        last = meter.readings[-1].record if meter.readings else None
        return MeterRecord(
            meter_id=meter_id,
            owner=address_of(meter.bridge_key),
            meter_type=6,
            bridge_key=meter.bridge_key,
            profile="x",
            registered_height=0,
            next_sequence=len(meter.readings),
            last_hash=b"\x00" * 32 if last is None else last.hash(),
            last_import_wh=0 if last is None else last.import_wh,
            last_export_wh=0 if last is None else last.export_wh,
            last_interval_end_ms=0 if last is None else last.interval_end_ms,
        )

    def _admit(self, tx: Transaction) -> GridchainError | None:
        """The chain's reading checks against the committed heads (the mempool's admission)."""
        if not isinstance(tx.body, MeterReadings):
            return None
        heads: dict[str, MeterRecord | None] = {}
        for reading in tx.body.readings:
            meter_id = reading.record.meter_id
            if meter_id not in heads:
                fake = self.meters.get(meter_id)
                heads[meter_id] = None if fake is None else self._chain_head(meter_id, fake)
            try:
                heads[meter_id] = check_reading(
                    heads[meter_id], reading, tx.sender, self.chain_id, self.block_ms
                )
            except GridchainError as exc:
                return exc
        return None

    # --- handlers ------------------------------------------------------------------------

    async def _status(self, _: web.Request) -> web.Response:
        status = m.Status(
            node="fake",
            chain_id=self.chain_id,
            chain_name="fake",
            height=len(self.committed),
            head_hash=bytes(32),
            head_time_ms=0,
            state_root=bytes(32),
            consensus={"engine": "solo"},
            mempool=m.MempoolStatus(txs=len(self.mempool), bytes=0),
            validator="00" * 32,
            peers=[],
            halted=None,
        )
        return web.json_response(text=status.model_dump_json())

    async def _post_tx(self, request: web.Request) -> web.Response:
        doc = await request.json()
        tx = decode_tx(bytes.fromhex(doc["tx"]))
        tx.verify_signature(self.chain_id)
        self.posts += 1
        if self.on_post is not None:
            self.on_post(tx)
        tx_hash = tx.hash().hex()
        if tx_hash in self.committed or tx_hash in self.mempool:
            return web.json_response(
                {"error": {"code": "already_known", "message": "known"}}, status=409
            )
        refused = self._admit(tx) if self.admit_like_chain else None
        if refused is not None:
            self.rejections.append(refused.code)
            return web.json_response(
                {"error": {"code": refused.code, "message": refused.message}},
                status=refused.http_status,
            )
        self.mempool[tx_hash] = tx
        accepted = m.TxAccepted(hash=tx_hash, status="pending")
        return web.json_response(text=accepted.model_dump_json(), status=202)

    async def _get_tx(self, request: web.Request) -> web.Response:
        tx_hash = request.match_info["hash"]
        if tx_hash in self.committed:
            height = self.committed[tx_hash]
            found = m.TxStatus(hash=tx_hash, status="committed", height=height, index=0)
            return web.json_response(text=found.model_dump_json())
        if tx_hash in self.mempool:
            found = m.TxStatus(hash=tx_hash, status="pending", height=None, index=None)
            return web.json_response(text=found.model_dump_json())
        return web.json_response({"error": {"code": "not_found", "message": "no"}}, status=404)

    async def _account(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        senders = {format_address(address_of(k)): k for k in self.nonces} | {
            format_address(address_of(m.bridge_key)): m.bridge_key for m in self.meters.values()
        }
        key = senders.get(address)
        nonce = self.nonces.get(key, 0) if key is not None else 0
        pending = nonce + sum(1 for tx in self.mempool.values() if tx.sender == key)
        account = m.Account(
            address=address,
            balance_mc=0,
            locked_mc=0,
            spendable_mc=0,
            nonce=nonce,
            pending_nonce=pending,
            registered=key is not None,
            name=None,
        )
        return web.json_response(text=account.model_dump_json())

    async def _meter(self, request: web.Request) -> web.Response:
        meter_id = request.match_info["id"]
        meter = self.meters.get(meter_id)
        if meter is None:
            return web.json_response(
                {"error": {"code": "not_found", "message": "no such meter"}}, status=404
            )
        has = meter.last_sequence is not None
        view = m.Meter(
            meter_id=meter_id,
            owner=format_address(address_of(meter.bridge_key)),
            meter_type="household",
            bridge_key=meter.bridge_key.hex(),
            profile="x",
            registered_height=0,
            last_sequence=meter.last_sequence,
            last_hash=meter.last_hash,
            last_interval_end_ms=meter.last_interval_end_ms,
            last_import_wh=meter.readings[-1].record.import_wh if has else None,
            last_export_wh=meter.readings[-1].record.export_wh if has else None,
            device_id=None,
            device_linked_height=None,
        )
        return web.json_response(text=view.model_dump_json())

    async def _device(self, request: web.Request) -> web.Response:
        self.device_requests += 1
        if self.device_links_down:
            return web.json_response(
                {"error": {"code": "unavailable", "message": "test outage"}}, status=503
            )
        link = self.device_links.get(request.match_info["id"])
        if link is None:
            return web.json_response(
                {"error": {"code": "not_found", "message": "no meter is linked"}}, status=404
            )
        return web.json_response(text=link.model_dump_json())

    async def _schedule(self, request: web.Request) -> web.Response:
        self.schedule_requests += 1
        if self.decisions is None:
            return web.json_response(
                {"error": {"code": "unavailable", "message": "test outage"}}, status=503
            )
        limit = int(request.query.get("limit", "10"))
        interval_ms = self.decisions[0].end_ms - self.decisions[0].start_ms if self.decisions else 1
        view = m.Schedule(
            next_interval=self.decisions[0].interval + 1 if self.decisions else 0,
            open_requests=0,
            interval_ms=interval_ms,
            interval_minutes=10,
            current_interval=0,
            decisions=self.decisions[:limit],
        )
        return web.json_response(text=view.model_dump_json())

    async def _readings(self, request: web.Request) -> web.Response:
        meter_id = request.match_info["id"]
        meter = self.meters.get(meter_id)
        if meter is None:
            return web.json_response(
                {"error": {"code": "not_found", "message": "no such meter"}}, status=404
            )
        start = int(request.query.get("from_seq", "0"))
        limit = int(request.query.get("limit", "100"))
        names = {s.value: s.name.lower() for s in ReadingStatus}
        views = [
            m.Reading(
                sequence=r.record.sequence,
                interval_start_ms=r.record.interval_start_ms,
                interval_end_ms=r.record.interval_end_ms,
                import_wh=r.record.import_wh,
                export_wh=r.record.export_wh,
                power_w=r.record.power_w,
                voltage_dv=r.record.voltage_dv,
                status=names[r.record.status],
                prev_hash=r.record.prev_hash.hex(),
                hash=r.record.hash().hex(),
                height=1,
            )
            for r in meter.readings[start : start + limit]
        ]
        return web.json_response(
            text=m.ReadingList(meter_id=meter_id, readings=views).model_dump_json()
        )

"""The smart agent's HTTP API on the bridge (seed 000, table 2.5), served by aiohttp.

Implemented, because the bridge holds the data:

* ``GET /agent/health``: the bridge's state: each meter's last sequence, what the chain has
  committed, its last read error; whether the node answered last time; Modbus counters; and
  with a ``[devices]`` section each charger's and inverter's state and the fail-safe.
* ``GET /fetchHistoricalData?meter_id=M[&from_ms=..][&to_ms=..][&limit=..]``: the meter's
  signed readings from the bridge's LevelDB, oldest first, with their committed flag.
* ``GET /metrics``: this bridge's Prometheus metrics.

Not here: ``/fetchForecastData``, ``/fetchOptimizationsData`` and ``/fetchTransactionData``
are served by the household agent, a separate process that reads this API's history
(``gridchain agent run``, agent/api.py, ADR 0037); the bridge runs no forecaster or optimiser.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gridchain.meterbridge.bridge import Bridge
from gridchain.meterbridge.store import BridgeStore
from gridchain.protocol.meter import ReadingStatus, SignedReading

MAX_LIMIT = 10_000

BRIDGE_KEY: web.AppKey[Bridge] = web.AppKey("bridge", Bridge)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def reading_json(reading: SignedReading, committed: bool) -> dict[str, Any]:
    r = reading.record
    return {
        "meter_id": r.meter_id,
        "sequence": r.sequence,
        "interval_start_ms": r.interval_start_ms,
        "interval_end_ms": r.interval_end_ms,
        "import_wh": r.import_wh,
        "export_wh": r.export_wh,
        "power_w": r.power_w,
        "voltage_dv": r.voltage_dv,
        "status": ReadingStatus(r.status).name.lower(),
        "hash": r.hash().hex(),
        "prev_hash": r.prev_hash.hex(),
        "signature": reading.signature.hex(),
        "committed": committed,
    }


def _int_param(request: web.Request, name: str, default: int | None) -> int | None:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise web.HTTPBadRequest(
            text=f'{{"error": {{"code": "bad_request", "message": "{name} must be an integer"}}}}',
            content_type="application/json",
        )
    return int(text)


async def health(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE_KEY]
    store: BridgeStore = bridge.store
    meters = []
    for meter_id, state in bridge.meters.items():
        head = store.head(meter_id)
        meters.append(
            {
                "meter_id": meter_id,
                "bus": state.config.bus,
                "slave_id": state.config.slave_id,
                "profile": state.profile.name,
                "last_sequence": None if head is None else head.sequence,
                "committed_through": store.acked(meter_id) - 1 if store.acked(meter_id) else None,
                "last_interval_end_ms": None if head is None else head.interval_end_ms,
                "registered": state.registered,
                "blocked": state.blocked,
                "refused_readings": len(store.refused(meter_id)),
                "last_error": state.last_error,
            }
        )
    ok = all(m["last_error"] is None for m in meters)
    return web.json_response(
        {
            "status": "ok" if ok else "degraded",
            "bridge": bridge.config.name,
            "bridge_public_key": bridge.key.public_key.hex(),
            "node_url": bridge.config.node_url,
            "node_reachable": bridge.node_reachable,
            "interval_s": bridge.config.interval_s,
            "unsent_readings": bridge.unsent_count(),
            "inflight_tx": None if (tx := store.inflight()) is None else tx.hash().hex(),
            "meters": meters,
            "devices": None if bridge.devices is None else bridge.devices.health(),
        }
    )


async def historical(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE_KEY]
    meter_id = request.query.get("meter_id")
    if meter_id is None or meter_id not in bridge.meters:
        return _error(404, "not_found", f"no meter {meter_id!r} on this bridge")
    from_ms = _int_param(request, "from_ms", 0) or 0
    to_ms = _int_param(request, "to_ms", None)
    limit = min(_int_param(request, "limit", 1000) or 1000, MAX_LIMIT)
    acked = bridge.store.acked(meter_id)
    out: list[dict[str, Any]] = []
    for reading in bridge.store.readings(meter_id):
        end = reading.record.interval_end_ms
        if end < from_ms:
            continue
        if (to_ms is not None and end > to_ms) or len(out) >= limit:
            break
        out.append(reading_json(reading, reading.record.sequence < acked))
    return web.json_response({"meter_id": meter_id, "readings": out})


async def metrics(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE_KEY]
    body = generate_latest(bridge.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(bridge: Bridge) -> web.Application:
    app = web.Application()
    app[BRIDGE_KEY] = bridge
    app.router.add_get("/agent/health", health)
    app.router.add_get("/fetchHistoricalData", historical)
    app.router.add_get("/metrics", metrics)
    return app

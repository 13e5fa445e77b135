"""Meters, signed readings and settlement through a real solo node process and its HTTP API.

Why: the meter bridge and wallets see the chain only through these routes.  The bridge resumes
from ``GET /v1/meters/{id}`` (last sequence and hash), so that answer must follow every accepted
reading; a refused reading must come back as a typed 4xx; and a trade must end in a receipt
that ``GET /v1/settlements`` (and the wallet's ``receipts`` command) shows once the slot and
its grace period are over.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gridchain.protocol.address import format_address
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.meter import GENESIS_READING_HASH, ReadingRecord, sign_reading
from gridchain.protocol.tx import MeterReadings, PlaceOrder, Transaction, sign_tx
from tests.procs import (
    PASSWORD,
    http_get,
    make_chain,
    node_for,
    pv_and_load_meters,
    submit,
    wait_committed,
)

pytestmark = pytest.mark.integration

SLOT_MS = 3000
GRACE_MS = 500
BRIDGE = SigningKey(sha256(b"it-bridge"))
PRICE = 120_000


def _commit(url: str, tx: Transaction) -> dict[str, Any]:
    status, body = submit(url, tx)
    assert status == 202, body
    return wait_committed(url, tx.hash().hex())


def test_meters_readings_and_settlement_over_the_api(tmp_path: Path) -> None:
    chain = make_chain(
        tmp_path / "chain",
        block_interval_ms=50,
        slot_length_ms=SLOT_MS,
        gate_closure_ms=1000,
        order_horizon_ms=60_000,
        settlement_grace_ms=GRACE_MS,
        genesis_changes=pv_and_load_meters(BRIDGE),
    )
    node = node_for(chain).start()
    try:
        url = node.api_url
        status, meter = http_get(url + "/v1/meters/pv-a")
        assert status == 200
        assert meter == {
            "meter_id": "pv-a",
            "owner": format_address(chain.address(0)),
            "meter_type": "PV",
            "bridge_key": BRIDGE.public_key.hex(),
            "profile": "eastron-sdm120",
            "registered_height": 0,
            "last_sequence": None,
            "last_hash": None,
            "last_interval_end_ms": None,
            "last_import_wh": None,
            "last_export_wh": None,
            "device_id": None,  # linked to no device (ADR 0048)
            "device_linked_height": None,
        }
        status, missing = http_get(url + "/v1/meters/nope")
        assert (status, missing["error"]["code"]) == (404, "not_found")

        # A trade of 1 kWh from peer A's PV to peer B's load in a slot a few seconds ahead.
        _, markets = http_get(url + "/v1/markets")
        slot = int(markets["first_open_slot"]["intraday"]) + 1
        start, end = slot * SLOT_MS, (slot + 1) * SLOT_MS
        sell = sign_tx(chain.peer(0), chain.chain_id, 0, PlaceOrder(1, slot, 1, 2, PRICE, 1000))
        buy = sign_tx(chain.peer(1), chain.chain_id, 0, PlaceOrder(1, slot, 0, 3, PRICE, 1000))
        _commit(url, sell)
        _commit(url, buy)
        _, trades = http_get(url + f"/v1/trades?slot={slot}")
        assert [t["quantity_wh"] for t in trades["trades"]] == [1000]

        # The bridge (no participant) sends one reading at the slot's start and one at its
        # end per meter; a reading may end up to a minute after the block time.
        readings = []
        for meter_id, before, after in (
            ("pv-a", (0, 5000), (0, 6000)),
            ("load-b", (700, 0), (1700, 0)),
        ):
            prev = GENESIS_READING_HASH
            for seq, (lo, hi, regs) in enumerate(
                ((start - 1000, start, before), (start, end, after))
            ):
                record = ReadingRecord(meter_id, lo, hi, *regs, 0, 2301, 0, seq, prev)
                readings.append(sign_reading(BRIDGE, chain.chain_id, record))
                prev = record.hash()
        _commit(url, sign_tx(BRIDGE, chain.chain_id, 0, MeterReadings(tuple(readings))))
        _, meter = http_get(url + "/v1/meters/pv-a")
        assert meter["last_sequence"] == 1
        assert meter["last_hash"] == readings[1].record.hash().hex()
        assert meter["last_interval_end_ms"] == end
        _, listed = http_get(url + "/v1/meters/pv-a/readings?from_seq=1&limit=5")
        assert [r["sequence"] for r in listed["readings"]] == [1]
        assert listed["readings"][0]["export_wh"] == 6000
        status, bad = http_get(url + "/v1/meters/pv-a/readings?from_seq=-1")
        assert (status, bad["error"]["code"]) == (400, "invalid_request")

        # A replayed reading is refused with its typed error and changes nothing.
        replay = sign_tx(BRIDGE, chain.chain_id, 1, MeterReadings((readings[1],)))
        status, body = submit(url, replay)
        assert (status, body["error"]["code"]) == (409, "reading_sequence")

        # After the slot's end plus the grace period, the next block settles the slot.
        while time.time() * 1000 < end + GRACE_MS + 200:
            time.sleep(0.1)
        _commit(url, chain.transfer(2, 0, 0, 1))
        _, settled = http_get(url + f"/v1/settlements?address={format_address(chain.address(1))}")
        (receipt,) = settled["receipts"]
        assert receipt["slot"] == slot
        assert receipt["status"] == "delivered"
        assert (receipt["delivered_wh"], receipt["paid_mc"], receipt["fine_mc"]) == (1000, PRICE, 0)
        assert receipt["seller_reading"] == {
            "start_wh": 5000,
            "end_wh": 6000,
            "metered_wh": 1000,
            "metering": "complete",
        }
        assert receipt["buyer_reading"]["start_wh"] == 700
        _, trades = http_get(url + f"/v1/trades?slot={slot}")
        assert trades["trades"][0]["status"] == "settled"
        # The slot's real-time pool (ADR 0041): both parties are the contract's, nobody else
        # is metered, so it cleared one contract and no household.
        status, pools = http_get(url + f"/v1/pool/slots?from_slot={slot}&limit=1")
        assert status == 200
        (pool,) = pools["slots"]
        assert (pool["slot"], pool["contracts"], pool["households"]) == (slot, 1, 0)
        status, mine = http_get(url + f"/v1/pool/receipts?slot={slot}")
        assert (status, mine) == (200, {"receipts": []})
        status, bad = http_get(url + "/v1/pool/receipts?address=nope")
        assert (status, bad["error"]["code"]) == (400, "bad_address")

        # The wallet shows the receipt.
        wallet = subprocess.run(
            [
                sys.executable,
                "-m",
                "gridchain",
                "wallet",
                "receipts",
                "--node",
                url,
                format_address(chain.address(1)),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=_env(),
        )
        assert wallet.returncode == 0, wallet.stderr
        assert '"delivered_wh": 1000' in wallet.stdout
        assert PASSWORD  # the chain's wallets stay locked: receipts need no key
    finally:
        node.terminate()


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONUNBUFFERED": "1"}

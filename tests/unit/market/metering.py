"""A chain with meters in genesis, bridges that sign reading chains, and the exchange harness.

peer-a sells from PV (meter "pv-a"), peer-b buys for its load (meter "load-b"), both read by
bridge 1; peer-c has a net meter ("net-c") read by bridge 2.  The governance account, which is
the real-time pool's counterparty on chain, holds GOVERNANCE_MC so the pool can pay sellers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from gridchain.genesis.builder import GenesisBundle
from gridchain.genesis.schema import parse_genesis
from gridchain.market.app import Application
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.meter import (
    GENESIS_READING_HASH,
    ReadingRecord,
    SignedReading,
    sign_reading,
)
from gridchain.protocol.tx import MeterReadings, Transaction, sign_tx
from tests.helpers import det_key, small_bundle
from tests.unit.market.conftest import BALANCE_MC, Exchange

GOVERNANCE_MC = 5_000_000
BRIDGE_1 = det_key("bridge/1")
BRIDGE_2 = det_key("bridge/2")


def meter_bundle(meters: list[dict[str, Any]] | None = None, **params: Any) -> GenesisBundle:
    """small_bundle plus meters (default: the three of the module text) and a funded pool."""
    bundle = small_bundle(balance_mc=BALANCE_MC, **params)
    peers = bundle.participants
    if meters is None:
        meters = [
            meter_entry("pv-a", peers[0].address, "PV", BRIDGE_1),
            meter_entry("load-b", peers[1].address, "Loadmeter", BRIDGE_1),
            meter_entry("net-c", peers[2].address, "Netmeter", BRIDGE_2),
        ]
    doc = bundle.genesis.model_dump(mode="json")
    doc["meters"] = meters
    doc["balances"] = [
        *doc["balances"],
        {"address": bundle.genesis.governance_address, "amount_mc": GOVERNANCE_MC},
    ]
    return replace(bundle, genesis=parse_genesis(doc))


def meter_entry(meter_id: str, owner: str, meter_type: str, bridge: SigningKey) -> dict[str, Any]:
    return {
        "meter_id": meter_id,
        "owner": owner,
        "meter_type": meter_type,
        "bridge_public_key": bridge.public_key.hex(),
        "profile": "eastron-sdm120",
    }


def make_metered_exchange(**params: Any) -> Exchange:
    bundle = meter_bundle(**params)
    app = Application(bundle.genesis)
    return Exchange(bundle, app, app.genesis_state())


@dataclass
class MeterChain:
    """A bridge's hash chain of records for one meter (what meterbridge/ keeps on disk)."""

    meter_id: str
    key: SigningKey
    chain_id: bytes
    sequence: int = 0
    prev_hash: bytes = GENESIS_READING_HASH
    last_end_ms: int = 0
    sent: list[SignedReading] = field(default_factory=list)

    def reading(
        self,
        start_ms: int,
        end_ms: int,
        import_wh: int,
        export_wh: int,
        *,
        advance: bool = True,
        **overrides: Any,
    ) -> SignedReading:
        """The next record, signed; ``overrides`` replace fields to forge a bad one."""
        record = ReadingRecord(
            meter_id=self.meter_id,
            interval_start_ms=start_ms,
            interval_end_ms=end_ms,
            import_wh=import_wh,
            export_wh=export_wh,
            power_w=0,
            voltage_dv=2301,
            status=0,
            sequence=self.sequence,
            prev_hash=self.prev_hash,
        )
        record = replace(record, **overrides)
        signed = sign_reading(self.key, self.chain_id, record)
        if advance:
            self.sequence += 1
            self.prev_hash = record.hash()
            self.last_end_ms = end_ms
            self.sent.append(signed)
        return signed


def readings_tx(ex: Exchange, bridge: SigningKey, *readings: SignedReading) -> Transaction:
    """A MeterReadings transaction from ``bridge`` with its next nonce (tracked by ``ex``)."""
    address = bridge.public_key
    nonce = ex.nonces.get(address, 0)
    ex.nonces[address] = nonce + 1
    return sign_tx(bridge, ex.bundle.genesis.chain_id, nonce, MeterReadings(tuple(readings)))


def probe_readings_tx(ex: Exchange, bridge: SigningKey, *readings: SignedReading) -> Transaction:
    """Like :func:`readings_tx` but without using up the nonce (for a refused transaction)."""
    nonce = ex.nonces.get(bridge.public_key, 0)
    return sign_tx(bridge, ex.bundle.genesis.chain_id, nonce, MeterReadings(tuple(readings)))

"""The bridge's client of a node: the wallet's client plus the meter endpoint.

Only the fields the bridge relies on are read (``chain_id``, ``pending_nonce``, the meter's
``last_sequence``/``last_hash``/``last_interval_end_ms``), each checked, so a node that adds
fields never breaks a bridge in the field.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import CHAIN_ID_BYTES, HASH_BYTES
from gridchain.wallet.client import NodeClient, NodeRefusedError, _Fields


@dataclass(frozen=True, slots=True)
class MeterOnChain:
    meter_id: str
    last_sequence: int | None
    last_hash: bytes | None
    last_interval_end_ms: int | None


class BridgeNodeClient(NodeClient):
    async def chain_id(self) -> bytes:
        f = _Fields(await self._request("GET", "/v1/status"), "GET /v1/status")
        return f.hex_bytes("chain_id", CHAIN_ID_BYTES)

    async def pending_nonce(self, public_key: bytes) -> int:
        path = f"/v1/accounts/{format_address(address_of(public_key))}"
        try:
            doc = await self._request("GET", path)
        except NodeRefusedError as exc:
            if exc.status == 404:  # an account the chain has never seen starts at nonce 0
                return 0
            raise
        return _Fields(doc, f"GET {path}").integer("pending_nonce")

    async def meter(self, meter_id: str) -> MeterOnChain | None:
        """The meter's chain head, or None when it is not registered (404 not_found)."""
        path = f"/v1/meters/{meter_id}"
        try:
            doc = await self._request("GET", path)
        except NodeRefusedError as exc:
            if exc.status == 404 and exc.node_code == "not_found":
                return None
            raise
        f = _Fields(doc, f"GET {path}")
        last_hash = None if doc.get("last_hash") is None else f.hex_bytes("last_hash", HASH_BYTES)
        return MeterOnChain(
            meter_id=f.string("meter_id"),
            last_sequence=f.opt_integer("last_sequence"),
            last_hash=last_hash,
            last_interval_end_ms=f.opt_integer("last_interval_end_ms"),
        )

    async def post_raw_tx(self, raw_hex: str) -> str:
        f = _Fields(await self._request("POST", "/v1/txs", {"tx": raw_hex}), "POST /v1/txs")
        return f.string("hash").lower()

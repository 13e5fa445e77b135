"""What the agent may send, checked before anything is signed, and the signing itself.

Every order (from the plan or from the user through the API) passes :func:`check_order`
against the limits in the configuration and the market's clock; a refusal is a typed error and
nothing is signed, sent or logged.  What passes is signed with the household key
(:func:`gridchain.protocol.tx.sign_tx`, the wallet's own signing) and sent through the typed
node client; the outcome is an :class:`~gridchain.agent.models.Action` in the agent's log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from gridchain.agent.config import Limits
from gridchain.agent.errors import LimitExceededError, SlotClosedError
from gridchain.agent.models import OrderRequest
from gridchain.api.client import NodeClient
from gridchain.api.models import Markets
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import (
    DEVICE_BY_LABEL,
    MARKET_BY_LABEL,
    SIDE_BY_LABEL,
    PlaceOrder,
    TxBody,
    sign_tx,
)


def check_order(
    request: OrderRequest,
    *,
    market: str,
    markets: Markets,
    limits: Limits,
    placed_wh: Mapping[tuple[int, str], int],
) -> None:
    """Refuse an order the user's limits or the market's clock do not allow.

    ``placed_wh`` is what the agent already ordered per (slot, side): the per-slot limits bound
    the total, so two orders cannot together exceed what one may not.
    """
    first_open = markets.first_open_slot.get(market)
    if first_open is None:
        raise SlotClosedError(f"the node has no {market} market")
    if request.slot < first_open:
        raise SlotClosedError(
            f"{market} slot {request.slot} is closed (gate closure passed); the first open "
            f"slot is {first_open}"
        )
    last = (markets.now_ms + markets.order_horizon_ms) // markets.slot_length_ms
    if request.slot > last:
        raise SlotClosedError(
            f"{market} slot {request.slot} is beyond the order horizon (last slot {last})"
        )
    already = placed_wh.get((request.slot, request.side), 0)
    if request.side == "sell":
        if already + request.quantity_wh > limits.max_sell_wh_per_slot:
            raise LimitExceededError(
                f"selling {request.quantity_wh} Wh in slot {request.slot} would make "
                f"{already + request.quantity_wh} Wh; the limit is "
                f"{limits.max_sell_wh_per_slot} Wh per slot"
            )
        if request.price_mc_per_kwh < limits.min_sell_price_mc_per_kwh:
            raise LimitExceededError(
                f"{request.price_mc_per_kwh} mc/kWh is below the minimum sell price "
                f"{limits.min_sell_price_mc_per_kwh} mc/kWh"
            )
    else:
        if already + request.quantity_wh > limits.max_buy_wh_per_slot:
            raise LimitExceededError(
                f"buying {request.quantity_wh} Wh in slot {request.slot} would make "
                f"{already + request.quantity_wh} Wh; the limit is "
                f"{limits.max_buy_wh_per_slot} Wh per slot"
            )
        if request.price_mc_per_kwh > limits.max_buy_price_mc_per_kwh:
            raise LimitExceededError(
                f"{request.price_mc_per_kwh} mc/kWh is above the maximum buy price "
                f"{limits.max_buy_price_mc_per_kwh} mc/kWh"
            )


def order_body(request: OrderRequest, market: str) -> PlaceOrder:
    device = request.device or ("PV" if request.side == "sell" else "Load")
    return PlaceOrder(
        market=int(MARKET_BY_LABEL[market]),
        slot=request.slot,
        side=int(SIDE_BY_LABEL[request.side]),
        device=int(DEVICE_BY_LABEL[device]),
        price_mc_per_kwh=request.price_mc_per_kwh,
        quantity_wh=request.quantity_wh,
        peak_wh=0,
        expiry_ms=0,
    )


class Signer:
    """Signs with the household key and submits, one transaction at a time (nonces in order)."""

    def __init__(self, node: NodeClient, key: SigningKey, commit_timeout_s: float) -> None:
        self.node = node
        self.key = key
        self.commit_timeout_s = commit_timeout_s
        self._lock = asyncio.Lock()
        self._chain_id: bytes | None = None

    async def submit(self, address: str, body: TxBody) -> str:
        """Sign and submit; return the hash once accepted (raises the node's typed error)."""
        async with self._lock:
            if self._chain_id is None:
                self._chain_id = (await self.node.status()).chain_id
            account = await self.node.account(address)
            tx = sign_tx(self.key, self._chain_id, account.pending_nonce, body)
            return await self.node.submit_tx(tx)

    async def committed(self, tx_hash: str) -> None:
        await self.node.wait_committed(tx_hash, timeout_s=self.commit_timeout_s)

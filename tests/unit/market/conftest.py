"""A small exchange harness: a genesis, its application and state, signed order transactions.

Times: the test chain starts at GENESIS_TIME_MS (2024-01-01T00:00Z, a multiple of the 15 min
slot).  SLOT delivers four hours later, so its gate closure (1 h before) is GATE_MS, three
hours after genesis, and every test picks block times around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gridchain.genesis.builder import GenesisBundle, NamedKey
from gridchain.market.accounts import get_account
from gridchain.market.app import Application, BlockContext, Execution
from gridchain.market.orders import OrderRecord, get_order
from gridchain.market.state import MerkleState, Overlay
from gridchain.protocol.tx import (
    AmendOrder,
    CancelOrder,
    Market,
    PlaceOrder,
    Side,
    Transaction,
    TxBody,
)
from tests.helpers import GENESIS_TIME_MS, addr, signed, small_bundle

SLOT_MS = 900_000
SLOT = GENESIS_TIME_MS // SLOT_MS + 16
START_MS = SLOT * SLOT_MS
GATE_MS = START_MS - 3_600_000
#: A block time well before gate closure.
EARLY_MS = GENESIS_TIME_MS + 60_000
BALANCE_MC = 1_000_000

DEVICE_FOR = {Side.BUY: 3, Side.SELL: 1}  # Load buys, Battery sells


@dataclass
class Exchange:
    """One chain's application and committed state, with nonces tracked per key."""

    bundle: GenesisBundle
    app: Application
    state: MerkleState
    height: int = 0
    nonces: dict[bytes, int] = field(default_factory=dict)

    @property
    def peers(self) -> tuple[NamedKey, ...]:
        return self.bundle.participants

    def sign(self, who: NamedKey, body: TxBody, *, probe: bool = False) -> Transaction:
        """Sign with the sender's next nonce; a ``probe`` (a transaction only to be refused)
        uses the committed nonce and does not use it up."""
        address = addr(who)
        if probe:
            return signed(who, self.bundle.genesis.chain_id, self.nonce(who), body)
        nonce = self.nonces.get(address, 0)
        self.nonces[address] = nonce + 1
        return signed(who, self.bundle.genesis.chain_id, nonce, body)

    def place(
        self,
        who: NamedKey,
        side: Side,
        price: int,
        quantity: int,
        *,
        peak: int = 0,
        slot: int = SLOT,
        market: Market = Market.INTRADAY,
        device: int | None = None,
        expiry_ms: int = 0,
        probe: bool = False,
    ) -> Transaction:
        body = PlaceOrder(
            int(market),
            slot,
            int(side),
            DEVICE_FOR[side] if device is None else device,
            price,
            quantity,
            peak,
            expiry_ms,
        )
        return self.sign(who, body, probe=probe)

    def cancel(
        self, who: NamedKey, order: Transaction | bytes, *, probe: bool = False
    ) -> Transaction:
        order_id = order if isinstance(order, bytes) else order.hash()
        return self.sign(who, CancelOrder(order_id), probe=probe)

    def amend(
        self, who: NamedKey, order: Transaction, price: int, quantity: int, *, probe: bool = False
    ) -> Transaction:
        return self.sign(who, AmendOrder(order.hash(), price, quantity), probe=probe)

    def ctx(self, timestamp_ms: int) -> BlockContext:
        return BlockContext(self.height + 1, timestamp_ms, b"")

    def block(self, txs: list[Transaction], timestamp_ms: int = EARLY_MS) -> Execution:
        """Execute and commit a block (every transaction must apply)."""
        execution = self.app.execute_block(self.state, txs, self.ctx(timestamp_ms))
        self.state.apply(execution.writes)
        self.height += 1
        return execution

    def admit(self, tx: Transaction, timestamp_ms: int = EARLY_MS) -> Overlay:
        """What the mempool does with a new transaction (raises the refusal)."""
        return self.app.check_tx(tx, self.state, self.ctx(timestamp_ms))

    def order(self, tx: Transaction) -> OrderRecord:
        record = get_order(self.state, tx.hash())
        assert record is not None
        return record

    def locked(self, who: NamedKey) -> int:
        return get_account(self.state, addr(who)).locked_mc

    def nonce(self, who: NamedKey) -> int:
        return get_account(self.state, addr(who)).nonce


def make_exchange(**params: Any) -> Exchange:
    """A fresh chain: three participants with BALANCE_MC each; ``params`` are ChainParams."""
    bundle = small_bundle(balance_mc=BALANCE_MC, **params)
    app = Application(bundle.genesis)
    return Exchange(bundle, app, app.genesis_state())

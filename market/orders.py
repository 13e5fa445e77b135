"""Orders on the chain: placing, amending, cancelling and expiring them, escrow and contracts.

The matching rules are in :mod:`market.book`; this module keeps the books in the Merkle state
and turns a match into ledger changes.  Every write goes through the overlay the application
hands in, after every check that can refuse the transaction has passed, so a refused
transaction writes nothing.

State layout (keys; values are canonical records, tags 0x60-0x62):

* ``ord:`` + order id -> :class:`OrderRecord` (kept after the order closes until its slot is
  pruned into the node's archive, market/pruning.py);
* ``book:`` + market + slot + side + price key + seq + order id -> owner: the priority index;
  price key = price for asks and ``MAX_PRICE - price`` for bids, so that key order is price-time
  priority on both sides and ``scan`` walks a book best first;
* ``oexp:`` + expiry ms + order id: open orders by the time they expire (gate closure, their own
  expiry, or the iceberg waiting limit), walked at the start of every block;
* ``oown:`` + owner + slot + order id: every order of an address, for wallets;
* ``oslt:`` + slot + order id -> owner: the orders of a slot, for pruning;
* ``ctr:`` + slot + trade id -> :class:`Contract`: matched quantities awaiting settlement (the
  settlement of issue 5 walks a slot's contracts in this order);
* ``ctrp:`` + party + slot + trade id: contracts by buyer and by seller;
* ``meta:market`` -> :class:`MarketCounters`: the sequence and trade-id counters.

Escrow: a buy order locks ceil(price * open / 1000) mc of its owner's balance (``locked_mc``);
a fill at the resting price p moves p * q // 1000 into the contract (still locked, until
settlement) and releases the rest of what the filled quantity had locked; cancel, expiry and
self-trade cancellation release exactly the lock of the quantity they remove.  So at all times
an account's ``locked_mc`` is the sum of its open buy orders' locks and its unsettled contracts
as buyer, and no balance moves: money is conserved by construction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from gridchain.genesis.schema import ChainParams
from gridchain.market.accounts import Account, get_account, put_account
from gridchain.market.book import BUY, SELL, Book, BookOrder, Fill, MatchResult, Rules, match
from gridchain.market.errors import (
    GateClosedError,
    InsufficientBalanceError,
    InvalidDeviceError,
    InvalidExpiryError,
    InvalidOrderError,
    InvalidPeakError,
    InvalidPriceError,
    InvalidQuantityError,
    InvalidSideError,
    NotOrderOwnerError,
    OrderNotOpenError,
    SlotOutOfRangeError,
    UnknownMarketError,
    UnknownOrderError,
)
from gridchain.market.state import Overlay, StateReader
from gridchain.protocol.encoding import (
    U8,
    U64,
    Bytes20,
    Bytes32,
    LabelledEnum,
    Record,
    decode,
    register,
)
from gridchain.protocol.tx import AmendOrder, CancelOrder, Device, Market, PlaceOrder, Side

#: Prices and quantities an order may name (the genesis tariffs use the same price bound).
MAX_PRICE_MC_PER_KWH = 10**9
MAX_QUANTITY_WH = 10**9

ORDER_PREFIX = b"ord:"
BOOK_PREFIX = b"book:"
EXPIRY_PREFIX = b"oexp:"
OWNER_PREFIX = b"oown:"
#: ``oslt:`` + slot + order id -> owner: the orders of a slot, for pruning (market/pruning.py).
SLOT_INDEX_PREFIX = b"oslt:"
CONTRACT_PREFIX = b"ctr:"
PARTY_PREFIX = b"ctrp:"
COUNTERS_KEY = b"meta:market"

#: Which devices may take which side: a PV array only exports, a plain load only imports.
DEVICE_SIDES: dict[Device, frozenset[Side]] = {
    Device.EV: frozenset({Side.BUY, Side.SELL}),
    Device.BATTERY: frozenset({Side.BUY, Side.SELL}),
    Device.PV: frozenset({Side.SELL}),
    Device.LOAD: frozenset({Side.BUY}),
}


_MARKETS = frozenset(int(m) for m in Market)
_SIDES = frozenset(int(s) for s in Side)
_DEVICES = frozenset(int(d) for d in Device)


class OrderStatus(LabelledEnum):
    OPEN = 0
    #: Everything traded (filled_wh == quantity_wh).
    FILLED = 1
    #: The owner cancelled it, or self-trade prevention cancelled what was left.
    CANCELLED = 2
    #: Gate closure, its own expiry or the iceberg waiting limit took what was left.
    EXPIRED = 3
    #: It reached a block after its slot's gate closure (or its own expiry): nothing happened.
    REJECTED = 4


class ContractStatus(LabelledEnum):
    AWAITING_SETTLEMENT = 0
    #: Settled against the meters (market/settlement.py); its receipt is under ``stl:``.
    SETTLED = 1


@register(0x60)
@dataclass(frozen=True, slots=True)
class OrderRecord(Record):
    """An order and what became of it.  quantity = filled + cancelled + open."""

    order_id: Bytes32
    owner: Bytes20
    market: U8
    slot: U64
    side: U8
    device: U8
    price_mc_per_kwh: U64
    quantity_wh: U64
    peak_wh: U64
    open_wh: U64
    display_wh: U64
    filled_wh: U64
    cancelled_wh: U64
    seq: U64
    placed_height: U64
    placed_ms: U64
    expires_ms: U64
    status: U8


@register(0x61)
@dataclass(frozen=True, slots=True)
class Contract(Record):
    """A matched quantity: the seller delivers, the buyer's ``amount_mc`` waits in escrow."""

    trade_id: U64
    market: U8
    slot: U64
    seller: Bytes20
    buyer: Bytes20
    sell_order: Bytes32
    buy_order: Bytes32
    quantity_wh: U64
    price_mc_per_kwh: U64
    amount_mc: U64
    taker_side: U8
    height: U64
    timestamp_ms: U64
    status: U8


@register(0x62)
@dataclass(frozen=True, slots=True)
class MarketCounters(Record):
    next_seq: U64 = 1
    next_trade: U64 = 1


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order was placed, traded, amended, cancelled, expired or rejected (for /v1/events)."""

    kind: str
    order: OrderRecord


@dataclass(frozen=True, slots=True)
class TradeEvent:
    contract: Contract


MarketEvent = OrderEvent | TradeEvent


def lock_for(price_mc_per_kwh: int, quantity_wh: int) -> int:
    """Escrow of a buy: price x quantity, rounded up to whole mc."""
    return -(-price_mc_per_kwh * quantity_wh // 1000)


def payment_for(price_mc_per_kwh: int, quantity_wh: int) -> int:
    """What energy costs (DESIGN section 2): price x quantity, rounded down."""
    return price_mc_per_kwh * quantity_wh // 1000


# --- keys ------------------------------------------------------------------------------------


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def order_key(order_id: bytes) -> bytes:
    return ORDER_PREFIX + order_id


def book_prefix(market: int, slot: int, side: int | None = None) -> bytes:
    prefix = BOOK_PREFIX + bytes([market]) + _u64(slot)
    return prefix if side is None else prefix + bytes([side])


def book_key(market: int, slot: int, side: int, *, price: int, seq: int, order_id: bytes) -> bytes:
    price_key = price if side == SELL else MAX_PRICE_MC_PER_KWH - price
    return book_prefix(market, slot, side) + _u64(price_key) + _u64(seq) + order_id


def _book_key_of(record: OrderRecord) -> bytes:
    return book_key(
        record.market,
        record.slot,
        record.side,
        price=record.price_mc_per_kwh,
        seq=record.seq,
        order_id=record.order_id,
    )


def expiry_key(expires_ms: int, order_id: bytes) -> bytes:
    return EXPIRY_PREFIX + _u64(expires_ms) + order_id


def owner_key(owner: bytes, slot: int, order_id: bytes) -> bytes:
    return OWNER_PREFIX + owner + _u64(slot) + order_id


def slot_index_key(slot: int, order_id: bytes) -> bytes:
    return SLOT_INDEX_PREFIX + _u64(slot) + order_id


def contract_key(slot: int, trade_id: int) -> bytes:
    return CONTRACT_PREFIX + _u64(slot) + _u64(trade_id)


def party_key(party: bytes, slot: int, trade_id: int) -> bytes:
    return PARTY_PREFIX + party + _u64(slot) + _u64(trade_id)


# --- reads (also used by the HTTP API on the committed state) --------------------------------


def get_order(state: StateReader, order_id: bytes) -> OrderRecord | None:
    raw = state.get(order_key(order_id))
    return None if raw is None else decode(raw, OrderRecord)


def get_counters(state: StateReader) -> MarketCounters:
    raw = state.get(COUNTERS_KEY)
    return MarketCounters() if raw is None else decode(raw, MarketCounters)


def resting_orders(state: StateReader, market: int, slot: int, side: int) -> list[OrderRecord]:
    """The open orders of one side of a book in price-time priority (best first)."""
    out = []
    for key, _ in state.scan(book_prefix(market, slot, side)):
        record = get_order(state, key[-32:])
        if record is not None:
            out.append(record)
    return out


def book_levels(
    state: StateReader, market: int, slot: int, side: int
) -> list[tuple[int, int, int]]:
    """(price, displayed quantity, orders) per price level, best first: no hidden volume."""
    levels: list[tuple[int, int, int]] = []
    for record in resting_orders(state, market, slot, side):
        price = record.price_mc_per_kwh
        if levels and levels[-1][0] == price:
            _, quantity, count = levels[-1]
            levels[-1] = (price, quantity + record.display_wh, count + 1)
        else:
            levels.append((price, record.display_wh, 1))
    return levels


def orders_of(state: StateReader, owner: bytes, slot: int | None = None) -> Iterator[OrderRecord]:
    """An address's orders, by slot and then by order id."""
    prefix = OWNER_PREFIX + owner + (b"" if slot is None else _u64(slot))
    for key, _ in state.scan(prefix):
        record = get_order(state, key[-32:])
        if record is not None:
            yield record


def contracts(
    state: StateReader, *, party: bytes | None = None, slot: int | None = None
) -> Iterator[Contract]:
    """Contracts by slot and trade id, optionally of one party (as buyer or seller)."""
    tail = b"" if slot is None else _u64(slot)
    if party is None:
        for _, raw in state.scan(CONTRACT_PREFIX + tail):
            yield decode(raw, Contract)
        return
    for key, _ in state.scan(PARTY_PREFIX + party + tail):
        slot_and_id = key[len(PARTY_PREFIX) + len(party) :]
        found = state.get(CONTRACT_PREFIX + slot_and_id)
        if found is not None:
            yield decode(found, Contract)


# --- the book in the state -------------------------------------------------------------------


class _Counters:
    """The market counters, read once per transaction and written back if used."""

    def __init__(self, view: Overlay) -> None:
        self._view = view
        self._value = get_counters(view)
        self._dirty = False

    def take_seq(self) -> int:
        seq = self._value.next_seq
        self._value = replace(self._value, next_seq=seq + 1)
        self._dirty = True
        return seq

    def take_trade(self) -> int:
        trade = self._value.next_trade
        self._value = replace(self._value, next_trade=trade + 1)
        self._dirty = True
        return trade

    def flush(self) -> None:
        if self._dirty:
            self._view.put(COUNTERS_KEY, self._value.encode())
            self._dirty = False


class StateBook(Book):
    """One (market, slot) book whose priority index lives in the state under ``book:``.

    Orders are loaded on first touch and kept for the transaction, so the matching engine's
    changes to them are seen and written back once by :meth:`touched`'s caller.
    """

    def __init__(self, view: Overlay, market: int, slot: int, counters: _Counters) -> None:
        self._view = view
        self.market = market
        self.slot = slot
        self._counters = counters
        self.live: dict[bytes, BookOrder] = {}
        self.loaded: dict[bytes, OrderRecord] = {}
        #: Orders changed by matching, in the order first changed (deterministic).
        self.touched: dict[bytes, None] = {}

    def load(self, order_id: bytes) -> BookOrder:
        order = self.live.get(order_id)
        if order is not None:
            return order
        record = get_order(self._view, order_id)
        if record is None:
            raise UnknownOrderError(f"the book names order {order_id.hex()} but it is missing")
        order = BookOrder(
            order_id=record.order_id,
            owner=record.owner,
            side=record.side,
            price=record.price_mc_per_kwh,
            open_wh=record.open_wh,
            display_wh=record.display_wh,
            peak_wh=record.peak_wh,
            seq=record.seq,
            filled_wh=record.filled_wh,
            cancelled_wh=record.cancelled_wh,
        )
        self.live[order_id] = order
        self.loaded[order_id] = record
        return order

    def _key(self, order: BookOrder) -> bytes:
        return book_key(
            self.market,
            self.slot,
            order.side,
            price=order.price,
            seq=order.seq,
            order_id=order.order_id,
        )

    def _touch(self, order: BookOrder) -> None:
        self.live[order.order_id] = order
        self.touched.setdefault(order.order_id, None)

    def first(self, side: int, after: object | None) -> tuple[object, BookOrder] | None:
        cursor = after if isinstance(after, bytes) else None
        for key, _ in self._view.scan(book_prefix(self.market, self.slot, side), cursor):
            return key, self.load(key[-32:])
        return None

    def orders(self, side: int) -> list[BookOrder]:
        prefix = book_prefix(self.market, self.slot, side)
        return [self.load(key[-32:]) for key, _ in self._view.scan(prefix)]

    def insert(self, order: BookOrder) -> None:
        self._view.put(self._key(order), order.owner)
        self._touch(order)

    def remove(self, order: BookOrder) -> None:
        self._view.delete(self._key(order))
        self._touch(order)

    def requeue(self, order: BookOrder, seq: int) -> None:
        self._view.delete(self._key(order))
        order.seq = seq
        self._view.put(self._key(order), order.owner)
        self._touch(order)

    def changed(self, order: BookOrder) -> None:
        self._touch(order)

    def next_seq(self) -> int:
        return self._counters.take_seq()


# --- the exchange ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderContext:
    """What an order transaction is executed with (from the block header and the tx)."""

    height: int
    timestamp_ms: int
    #: Mempool admission (True) refuses an order whose gate has closed; a block (False)
    #: records it as rejected instead, because the block may be later than the admission.
    admission: bool


class Exchange:
    """The order life cycle under one genesis' market parameters."""

    def __init__(self, params: ChainParams) -> None:
        self.params = params
        self.rules = Rules(
            ranking=params.matching_rule,
            iceberg=params.iceberg_execution,
            price_weight=params.adbev_price_weight,
            time_weight=params.adbev_time_weight,
        )

    # --- time ----------------------------------------------------------------------------

    def slot_start_ms(self, slot: int) -> int:
        return slot * self.params.slot_length_ms

    def slot_of(self, time_ms: int) -> int:
        return time_ms // self.params.slot_length_ms

    def gate_closure_ms(self, market: int, slot: int) -> int:
        """Orders for ``slot`` are accepted while the block time is below this."""
        lead = self.params.gate_closure_lead_ms(market == Market.DAY_AHEAD)
        return self.slot_start_ms(slot) - lead

    # --- checks --------------------------------------------------------------------------

    @staticmethod
    def _check_price(price: int) -> None:
        if not 1 <= price <= MAX_PRICE_MC_PER_KWH:
            raise InvalidPriceError(
                f"price_mc_per_kwh must be 1 to {MAX_PRICE_MC_PER_KWH}, got {price}"
            )

    @staticmethod
    def _check_quantity(quantity: int) -> None:
        if not 1 <= quantity <= MAX_QUANTITY_WH:
            raise InvalidQuantityError(
                f"quantity_wh must be 1 to {MAX_QUANTITY_WH}, got {quantity}"
            )

    @staticmethod
    def _check_spendable(account: Account, extra_lock: int) -> None:
        spendable = account.balance_mc - account.locked_mc
        if extra_lock > spendable:
            raise InsufficientBalanceError(
                f"the order needs {extra_lock} mc in escrow; the spendable balance is "
                f"{spendable} mc"
            )

    def _check_place(self, body: PlaceOrder, ctx: OrderContext) -> tuple[int, bool]:
        """Check every field; return (expiry of the order, whether time has run out)."""
        if body.market not in _MARKETS:
            raise UnknownMarketError(
                f"market must be 0 (day_ahead) or 1 (intraday), got {body.market}"
            )
        if body.side not in _SIDES:
            raise InvalidSideError(f"side must be 0 (buy) or 1 (sell), got {body.side}")
        if body.device not in _DEVICES:
            raise InvalidDeviceError(
                f"device must be 0 (EV), 1 (Battery), 2 (PV) or 3 (Load), got {body.device}"
            )
        device, side = Device(body.device), Side(body.side)
        if side not in DEVICE_SIDES[device]:
            raise InvalidDeviceError(f"a {device.label} cannot {side.label} energy")
        self._check_price(body.price_mc_per_kwh)
        self._check_quantity(body.quantity_wh)
        if body.peak_wh and not body.peak_wh < body.quantity_wh:
            raise InvalidPeakError(
                f"an iceberg's peak_wh ({body.peak_wh}) must be below its quantity_wh "
                f"({body.quantity_wh}); use peak_wh 0 for a normal order"
            )
        if self.slot_start_ms(body.slot) > ctx.timestamp_ms + self.params.order_horizon_ms:
            raise SlotOutOfRangeError(
                f"slot {body.slot} starts more than order_horizon_ms "
                f"({self.params.order_horizon_ms}) after the block time"
            )
        gate = self.gate_closure_ms(body.market, body.slot)
        expires = gate
        if body.expiry_ms:
            if body.expiry_ms > gate:
                raise InvalidExpiryError(
                    f"expiry_ms {body.expiry_ms} is after the slot's gate closure {gate}; "
                    "use 0 to keep the order until gate closure"
                )
            expires = body.expiry_ms
        too_late = ctx.timestamp_ms >= expires
        if too_late and ctx.admission:
            if ctx.timestamp_ms >= gate:
                raise GateClosedError(
                    f"slot {body.slot} of {Market(body.market).label} closed at {gate} ms "
                    f"(block time {ctx.timestamp_ms} ms)"
                )
            raise InvalidExpiryError(f"expiry_ms {body.expiry_ms} is not in the future")
        if body.peak_wh and self.params.iceberg_waiting_limit_ms:
            expires = min(expires, ctx.timestamp_ms + self.params.iceberg_waiting_limit_ms)
        return expires, too_late

    def _own_open_order(
        self, view: Overlay, sender: bytes, order_id: bytes, ctx: OrderContext
    ) -> OrderRecord | None:
        """The sender's open order, or None when time has closed it (blocks only)."""
        record = get_order(view, order_id)
        if record is None:
            raise UnknownOrderError(f"no order {order_id.hex()}")
        if record.owner != sender:
            raise NotOrderOwnerError(f"order {order_id.hex()} belongs to another account")
        gate = self.gate_closure_ms(record.market, record.slot)
        timed_out = (
            record.status == OrderStatus.EXPIRED
            or ctx.timestamp_ms >= gate
            or (record.status == OrderStatus.OPEN and ctx.timestamp_ms >= record.expires_ms)
        )
        if timed_out and not ctx.admission:
            return None
        if ctx.timestamp_ms >= gate:
            raise GateClosedError(
                f"slot {record.slot} of {Market(record.market).label} closed at {gate} ms"
            )
        if record.status != OrderStatus.OPEN or ctx.timestamp_ms >= record.expires_ms:
            status = OrderStatus(record.status)
            label = "expired" if status == OrderStatus.OPEN else status.label
            raise OrderNotOpenError(f"order {order_id.hex()} is {label}")
        return record

    # --- transactions --------------------------------------------------------------------

    def place(
        self, view: Overlay, sender: bytes, order_id: bytes, body: PlaceOrder, ctx: OrderContext
    ) -> list[MarketEvent]:
        expires, too_late = self._check_place(body, ctx)
        record = OrderRecord(
            order_id=order_id,
            owner=sender,
            market=body.market,
            slot=body.slot,
            side=body.side,
            device=body.device,
            price_mc_per_kwh=body.price_mc_per_kwh,
            quantity_wh=body.quantity_wh,
            peak_wh=body.peak_wh,
            open_wh=body.quantity_wh,
            display_wh=0,
            filled_wh=0,
            cancelled_wh=0,
            seq=0,
            placed_height=ctx.height,
            placed_ms=ctx.timestamp_ms,
            expires_ms=expires,
            status=int(OrderStatus.OPEN),
        )
        if too_late:
            rejected = replace(
                record, open_wh=0, cancelled_wh=body.quantity_wh, status=int(OrderStatus.REJECTED)
            )
            view.put(order_key(order_id), rejected.encode())
            view.put(owner_key(sender, body.slot, order_id), bytes([body.market]))
            view.put(slot_index_key(body.slot, order_id), sender)
            return [OrderEvent("rejected", rejected)]
        if body.side == Side.BUY:
            self._check_spendable(
                get_account(view, sender), lock_for(body.price_mc_per_kwh, body.quantity_wh)
            )
        counters = _Counters(view)
        book = StateBook(view, body.market, body.slot, counters)
        incoming = BookOrder(
            order_id=order_id,
            owner=sender,
            side=body.side,
            price=body.price_mc_per_kwh,
            open_wh=body.quantity_wh,
            display_wh=body.quantity_wh,
            peak_wh=body.peak_wh,
        )
        result = match(book, incoming, self.rules)
        view.put(owner_key(sender, body.slot, order_id), bytes([body.market]))
        view.put(slot_index_key(body.slot, order_id), sender)
        return self._write_match(
            view,
            book=book,
            counters=counters,
            ctx=ctx,
            before=record,
            incoming=incoming,
            result=result,
            kind="placed",
        )

    def cancel(
        self, view: Overlay, sender: bytes, body: CancelOrder, ctx: OrderContext
    ) -> list[MarketEvent]:
        record = self._own_open_order(view, sender, body.order_id, ctx)
        if record is None:
            return []  # expired at gate closure before this block reached it: nothing to do
        view.delete(_book_key_of(record))
        view.delete(expiry_key(record.expires_ms, record.order_id))
        if record.side == Side.BUY:
            self._adjust_locks(view, {sender: -lock_for(record.price_mc_per_kwh, record.open_wh)})
        closed = replace(
            record,
            open_wh=0,
            display_wh=0,
            cancelled_wh=record.cancelled_wh + record.open_wh,
            status=int(OrderStatus.CANCELLED),
        )
        view.put(order_key(record.order_id), closed.encode())
        return [OrderEvent("cancelled", closed)]

    def amend(
        self, view: Overlay, sender: bytes, body: AmendOrder, ctx: OrderContext
    ) -> list[MarketEvent]:
        self._check_price(body.price_mc_per_kwh)
        self._check_quantity(body.quantity_wh)
        record = self._own_open_order(view, sender, body.order_id, ctx)
        if record is None:
            return []  # closed by time before this block reached it
        price, quantity = body.price_mc_per_kwh, body.quantity_wh
        if price == record.price_mc_per_kwh and quantity == record.open_wh:
            raise InvalidOrderError("the amendment changes neither price nor quantity")
        if record.side == Side.BUY:
            extra = lock_for(price, quantity) - lock_for(record.price_mc_per_kwh, record.open_wh)
            if extra > 0:
                self._check_spendable(get_account(view, sender), extra)
        new_total = record.filled_wh + record.cancelled_wh + quantity
        if price == record.price_mc_per_kwh and quantity < record.open_wh:
            # Less at the same price keeps the order's place; hidden volume goes first.
            if record.side == Side.BUY:
                self._adjust_locks(
                    view,
                    {sender: lock_for(price, quantity) - lock_for(price, record.open_wh)},
                )
            amended = replace(
                record,
                quantity_wh=new_total,
                open_wh=quantity,
                display_wh=min(record.display_wh, quantity),
            )
            view.put(order_key(record.order_id), amended.encode())
            return [OrderEvent("amended", amended)]
        # A new price or more quantity: the order leaves the book and comes back as if new,
        # matching first and resting at the tail of its (new) price level.
        counters = _Counters(view)
        book = StateBook(view, record.market, record.slot, counters)
        incoming = book.load(record.order_id)
        book.remove(incoming)
        incoming.price = price
        incoming.open_wh = quantity
        incoming.display_wh = quantity
        result = match(book, incoming, self.rules)
        base = replace(record, quantity_wh=new_total)
        return self._write_match(
            view,
            book=book,
            counters=counters,
            ctx=ctx,
            before=base,
            incoming=incoming,
            result=result,
            kind="amended",
        )

    def expire_due(self, view: Overlay, timestamp_ms: int) -> list[MarketEvent]:
        """Expire every open order whose time has come, in (expiry, order id) order.

        Run at the start of each block, so the first block at or past a slot's gate closure
        closes its books before any transaction of that block executes.
        """
        due: list[bytes] = []
        for key, _ in view.scan(EXPIRY_PREFIX):
            if int.from_bytes(key[len(EXPIRY_PREFIX) : len(EXPIRY_PREFIX) + 8], "big") > (
                timestamp_ms
            ):
                break
            due.append(key)
        events: list[MarketEvent] = []
        releases: dict[bytes, int] = {}
        for key in due:
            view.delete(key)
            record = get_order(view, key[-32:])
            if record is None or record.status != OrderStatus.OPEN:
                continue
            view.delete(_book_key_of(record))
            if record.side == Side.BUY:
                releases[record.owner] = releases.get(record.owner, 0) - lock_for(
                    record.price_mc_per_kwh, record.open_wh
                )
            expired = replace(
                record,
                open_wh=0,
                display_wh=0,
                cancelled_wh=record.cancelled_wh + record.open_wh,
                status=int(OrderStatus.EXPIRED),
            )
            view.put(order_key(record.order_id), expired.encode())
            events.append(OrderEvent("expired", expired))
        self._adjust_locks(view, releases)
        return events

    # --- writing a match -----------------------------------------------------------------

    def _write_match(
        self,
        view: Overlay,
        *,
        book: StateBook,
        counters: _Counters,
        ctx: OrderContext,
        before: OrderRecord,
        incoming: BookOrder,
        result: MatchResult,
        kind: str,
    ) -> list[MarketEvent]:
        """Write the incoming order, the resting orders it traded with, the contracts, and
        the escrow changes of one match."""
        events: list[MarketEvent] = []
        locks: dict[bytes, int] = {}

        def add_lock(address: bytes, delta: int) -> None:
            locks[address] = locks.get(address, 0) + delta

        for fill in result.fills:
            contract = self._contract(fill, book, counters, ctx)
            view.put(contract_key(contract.slot, contract.trade_id), contract.encode())
            view.put(party_key(contract.seller, contract.slot, contract.trade_id), b"s")
            view.put(party_key(contract.buyer, contract.slot, contract.trade_id), b"b")
            add_lock(contract.buyer, contract.amount_mc)
            events.append(TradeEvent(contract))

        # The incoming order: its escrow goes from what it held before (nothing for a new
        # order) to the lock of what is still open; the contracts above hold the rest.
        if incoming.side == BUY:
            held = 0 if kind == "placed" else lock_for(before.price_mc_per_kwh, before.open_wh)
            add_lock(incoming.owner, lock_for(incoming.price, incoming.open_wh) - held)
        record = self._updated(before, incoming)
        if kind == "amended" and before.status == OrderStatus.OPEN:
            view.delete(expiry_key(before.expires_ms, before.order_id))
        if record.status == OrderStatus.OPEN:
            view.put(expiry_key(record.expires_ms, record.order_id), _u64(record.slot))
        view.put(order_key(record.order_id), record.encode())
        events.append(OrderEvent(kind, record))

        for order_id in book.touched:
            if order_id == incoming.order_id:
                continue
            maker = book.live[order_id]
            loaded = book.loaded[order_id]
            if maker.side == BUY:
                add_lock(
                    maker.owner,
                    lock_for(maker.price, maker.open_wh) - lock_for(maker.price, loaded.open_wh),
                )
            updated = self._updated(loaded, maker)
            if updated.status != OrderStatus.OPEN:
                view.delete(expiry_key(loaded.expires_ms, order_id))
            view.put(order_key(order_id), updated.encode())
            events.append(OrderEvent("traded", updated))
        counters.flush()
        self._adjust_locks(view, locks)
        return events

    @staticmethod
    def _updated(before: OrderRecord, order: BookOrder) -> OrderRecord:
        if order.open_wh:
            status = int(OrderStatus.OPEN)
        elif order.filled_wh == before.quantity_wh:
            status = int(OrderStatus.FILLED)
        else:
            status = int(OrderStatus.CANCELLED)
        return replace(
            before,
            price_mc_per_kwh=order.price,
            open_wh=order.open_wh,
            display_wh=order.display_wh,
            filled_wh=order.filled_wh,
            cancelled_wh=order.cancelled_wh,
            seq=order.seq,
            status=status,
        )

    def _contract(
        self, fill: Fill, book: StateBook, counters: _Counters, ctx: OrderContext
    ) -> Contract:
        return Contract(
            trade_id=counters.take_trade(),
            market=book.market,
            slot=book.slot,
            seller=fill.seller,
            buyer=fill.buyer,
            sell_order=fill.sell_order,
            buy_order=fill.buy_order,
            quantity_wh=fill.quantity_wh,
            price_mc_per_kwh=fill.price_mc_per_kwh,
            amount_mc=payment_for(fill.price_mc_per_kwh, fill.quantity_wh),
            taker_side=fill.taker_side,
            height=ctx.height,
            timestamp_ms=ctx.timestamp_ms,
            status=int(ContractStatus.AWAITING_SETTLEMENT),
        )

    @staticmethod
    def _adjust_locks(view: Overlay, deltas: dict[bytes, int]) -> None:
        """Change escrow by account, in address order (the order does not change the result,
        but a fixed one keeps the write sequence the same on every validator)."""
        for address in sorted(deltas):
            delta = deltas[address]
            if delta == 0:
                continue
            account = get_account(view, address)
            put_account(
                view,
                address,
                Account(account.balance_mc, account.nonce, account.locked_mc + delta),
            )

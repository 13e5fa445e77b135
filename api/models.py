"""Every request and response of the node's HTTP API as pydantic models (DESIGN section 10).

One description serves three readers: the node builds its answers from these models, the
OpenAPI document at /openapi.json is generated from them (gridchain.api.openapi), and the
client parses answers into them (gridchain.api.client).  The JSON on the wire is what the node
has always sent: integer units (``_mc`` millicredits, ``_wh``, ``_w``, ``_ms``), lower-case hex
for bytes, ``gc1...`` text for addresses, and names for enumerations.

Integers are strict (a JSON ``true`` is not a count) and counts are non-negative, so a client
refuses a malformed answer instead of guessing.  Enumerations are plain strings with their
values listed in the description: a node that adds a value must not break an older client.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
)

from gridchain.protocol.tx import MAX_TX_BYTES

# --- field types ---------------------------------------------------------------------------

#: A count, an amount or a time in ms: a JSON integer >= 0 (never a boolean).
UInt = Annotated[int, Strict(), Field(ge=0)]
#: A signed quantity (a power that may flow either way, an offset before the epoch).
SInt = Annotated[int, Strict()]
#: A 32-byte hash or public key as 64 lower-case hex digits.
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
#: Bytes of any length as lower-case hex.
HexBytes = Annotated[str, Field(pattern=r"^([0-9a-f]{2})*$")]
#: A submitted transaction: hex of 1 to MAX_TX_BYTES bytes (either case is accepted).
TxHex = Annotated[
    str, Field(pattern=r"^([0-9a-fA-F]{2})+$", min_length=2, max_length=2 * MAX_TX_BYTES)
]
#: An address as people type it: gc1, 20 bytes and a 4-byte checksum in hex.
Address = Annotated[str, Field(pattern=r"^gc1[0-9a-f]{48}$")]


def _bytes32(value: object) -> bytes:
    """32 bytes from their hex text (the wire) or from bytes (the node building a model)."""
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str):
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise ValueError("is not hex") from None
    else:
        raise ValueError("is not a hex string")
    if len(raw) != 32:
        raise ValueError("is not 32 bytes of hex")
    return raw


#: 32 bytes that a client uses as bytes (a chain id it signs with, a hash it chains to).
Bytes32 = Annotated[
    bytes,
    BeforeValidator(_bytes32),
    PlainSerializer(lambda raw: raw.hex(), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9a-f]{64}$"}),
]


class Model(BaseModel):
    """A JSON object of the API: frozen; unknown fields are ignored (a newer node may add)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


# --- errors and health ---------------------------------------------------------------------


class ErrorBody(Model):
    code: str = Field(description="machine-readable reason, e.g. insufficient_balance")
    message: str = Field(description="a sentence for people")


class Error(Model):
    """Every refusal: a 4xx (or 5xx) status and this object; never a stack trace."""

    error: ErrorBody


class Health(Model):
    status: Literal["ok"]
    height: UInt


# --- status --------------------------------------------------------------------------------


class MempoolStatus(Model):
    txs: UInt
    bytes: UInt


class Status(Model):
    node: str = Field(description="this validator's name")
    chain_id: Bytes32
    chain_name: str
    height: UInt
    head_hash: Bytes32
    head_time_ms: UInt
    state_root: Bytes32
    consensus: dict[str, Any] = Field(description="the engine's own figures (engine, round, ...)")
    mempool: MempoolStatus
    validator: Hex32 = Field(description="this validator's public key")
    peers: list[dict[str, Any]] = Field(description="connected peers (empty for solo)")
    halted: str | None = Field(description="why the node halted, or null while it runs")


# --- transactions and blocks ---------------------------------------------------------------


class SubmitTx(Model):
    """``POST /v1/txs`` with one transaction (JSON; or the raw bytes as application/msgpack)."""

    tx: TxHex = Field(description="hex of the canonically encoded, signed transaction")


class SubmitBatch(Model):
    """``POST /v1/txs`` with a batch: each item is admitted or refused alone, in order."""

    txs: list[TxHex] = Field(min_length=1, max_length=1000)


class TxAccepted(Model):
    hash: Hex32
    status: Literal["pending"]


class BatchResults(Model):
    results: list[TxAccepted | Error] = Field(description="one per transaction, in order")


class TxView(Model):
    hash: Hex32
    kind: str = Field(description="the body's type: Transfer, PlaceOrder, MeterReadings, ...")
    sender: Hex32 = Field(description="the sender's public key")
    sender_address: Address
    nonce: UInt
    body: dict[str, Any] = Field(description="the body's fields (bytes as hex, addresses gc1)")
    signature: HexBytes


class TxStatus(Model):
    """Where a transaction is: the part of ``GET /v1/txs/{hash}`` a submitter polls."""

    hash: Hex32
    status: str = Field(description="pending or committed")
    height: UInt | None
    index: UInt | None


class TxRecord(TxStatus):
    block_hash: Hex32 | None = Field(default=None, description="null while pending")
    tx: TxView


class BlockHeaderView(Model):
    type: Literal["BlockHeader"]
    chain_id: Hex32
    height: UInt
    prev_hash: Hex32
    timestamp_ms: UInt
    proposer: Hex32
    round: UInt
    benefit: SInt
    tx_root: Hex32
    schedule_root: Hex32
    state_root: Hex32


class ScheduleEntryRecord(Model):
    type: Literal["ScheduleEntry"]
    request_id: Hex32
    rate_w: SInt


class VoteView(Model):
    type: Literal["Vote"]
    height: UInt
    round: UInt
    block_hash: Hex32
    step: UInt


class VoteSignatureView(Model):
    type: Literal["VoteSignature"]
    validator: Hex32
    signature: HexBytes


class CertificateView(Model):
    type: Literal["Certificate"]
    vote: VoteView
    signatures: list[VoteSignatureView]


class BlockView(Model):
    height: UInt
    hash: Hex32
    header: BlockHeaderView
    txs: list[TxView]
    schedule: list[ScheduleEntryRecord]
    certificate: CertificateView | None


class BlockList(Model):
    """Committed blocks in height order from ``from``; ``next`` is where the page after starts."""

    head: UInt = Field(description="the committed head when the page was read")
    blocks: list[BlockView]
    next: UInt | None = Field(description="the height to ask for next, or null at the head")


# --- accounts, participants, validators ----------------------------------------------------


class Account(Model):
    address: Address
    balance_mc: UInt
    locked_mc: UInt
    spendable_mc: UInt = Field(description="balance less escrow, after pending transactions")
    nonce: UInt
    pending_nonce: UInt = Field(description="the nonce the next transaction must carry")
    registered: bool
    name: str | None


class Participant(Model):
    address: Address
    name: str
    public_key: Hex32
    registered_height: UInt


class ParticipantList(Model):
    participants: list[Participant]


class Proposal(Model):
    """A council proposal and what became of it (docs/governance.md)."""

    id: Hex32 = Field(description="the hash of the Propose transaction")
    kind: str = Field(description="the governance record's kind, e.g. RegisterParticipant")
    record: dict[str, Any] = Field(description="the governance record's fields")
    record_hex: HexBytes = Field(description="the record's canonical bytes")
    proposer: Hex32
    approvals: list[Hex32] = Field(description="approving members' keys, in order")
    threshold: UInt = Field(description="approvals needed to apply it")
    expires_at_height: UInt
    proposed_height: UInt
    status: str = Field(description="open, applied, expired or failed")
    closed_height: UInt = Field(description="the block that closed it (0 while open)")
    error: str = Field(description="the record's error code when it failed to apply")


class ProposalList(Model):
    threshold: UInt
    council: list[Hex32] = Field(description="the council members' public keys")
    proposals: list[Proposal]


class Validator(Model):
    name: str
    address: Address
    public_key: Hex32
    power: UInt
    this_node: bool = Field(description="true for the validator that answered")
    encryption_key: Hex32 | None = Field(
        default=None,
        description="X25519 key sealed transactions are wrapped to (null: the chain seals none)",
    )


class ValidatorList(Model):
    validators: list[Validator]


# --- chain parameters (ADR 0043) ----------------------------------------------------------


class TariffBand(Model):
    start_hour: UInt
    end_hour: UInt
    retail_mc_per_kwh: UInt
    feed_in_mc_per_kwh: UInt


class ParamValues(Model):
    """The parameters that govern settlement and the books, as one block applies them."""

    slot_length_ms: UInt
    gate_closure_ms: UInt
    day_ahead_gate_closure_ms: UInt | None
    penalty_mc_per_kwh: UInt
    settlement_grace_ms: UInt
    cd_tolerance_permille: UInt
    cd_tolerance_wh: UInt
    tariffs: list[TariffBand]


class ParamChange(Model):
    """A council change: ``name`` is a parameter (``value``) or "tariffs" (``tariffs``)."""

    name: str
    effective_height: UInt
    value: UInt | None = None
    tariffs: list[TariffBand] | None = None
    in_force: bool = Field(description="whether the head's block applied it already")


class ChainParameters(Model):
    height: UInt = Field(description="the head: ``in_force`` are the parameters of its block")
    in_force: ParamValues
    next_block: ParamValues = Field(description="the parameters of the block after the head")
    changeable: list[str] = Field(description="what SetParameter may name (and SetTariffs)")
    changes: list[ParamChange] = Field(description="every change applied, by effective height")


# --- markets -------------------------------------------------------------------------------


class Markets(Model):
    markets: list[str]
    slot_length_ms: UInt
    gate_closure_ms: UInt
    day_ahead_gate_closure_ms: UInt
    order_horizon_ms: UInt
    matching_rule: str
    adbev_price_weight: UInt
    adbev_time_weight: UInt
    iceberg_execution: str
    iceberg_waiting_limit_ms: UInt
    now_ms: UInt
    current_slot: UInt
    first_open_slot: dict[str, UInt] = Field(description="per market, the first slot open now")
    penalty_mc_per_kwh: UInt | None = Field(
        default=None,
        description="the fine a seller pays the buyer per kWh it sold and did not deliver "
        "(null from a node older than this field)",
    )
    settlement_grace_ms: UInt | None = Field(
        default=None, description="how long after a slot's end its settlement waits for readings"
    )

    def gate_closure_of(self, market: str, slot: int) -> int:
        lead = self.day_ahead_gate_closure_ms if market == "day_ahead" else self.gate_closure_ms
        return slot * self.slot_length_ms - lead


class Level(Model):
    price_mc_per_kwh: UInt
    quantity_wh: UInt = Field(description="displayed quantity only")
    orders: UInt


class Book(Model):
    market: str
    slot: UInt
    start_ms: UInt
    end_ms: UInt
    gate_closure_ms: SInt = Field(description="negative for the slots just after the epoch")
    open: bool
    height: UInt
    matching_rule: str
    bids: list[Level]
    asks: list[Level]
    best_bid: UInt | None
    best_ask: UInt | None


class Offer(Model):
    """One resting order of a book as every reader may see it: no owner, no hidden volume."""

    id: Hex32 = Field(description="the order id (its PlaceOrder transaction's hash)")
    side: str = Field(description="sell (an ask) or buy (a bid)")
    price_mc_per_kwh: UInt
    display_wh: UInt = Field(description="the displayed quantity (an iceberg's visible clip)")
    iceberg: bool
    seq: UInt = Field(description="time priority: lower came first")
    priority: UInt = Field(
        description="1 for the order an incoming order meets first under the chain's "
        "matching rule, then 2, ... (price-time, or AdBEV's weighted rank)"
    )


class Offers(Model):
    """A book's individual resting orders, each side in the order the matching walks them."""

    market: str
    slot: UInt
    height: UInt
    open: bool
    matching_rule: str
    asks: list[Offer]
    bids: list[Offer]


class Order(Model):
    id: Hex32 = Field(description="the PlaceOrder transaction's hash")
    owner: Address
    market: str
    slot: UInt
    side: str
    device: str
    price_mc_per_kwh: UInt
    quantity_wh: UInt
    iceberg: bool
    peak_wh: UInt
    open_wh: UInt
    display_wh: UInt
    hidden_wh: UInt
    filled_wh: UInt
    cancelled_wh: UInt
    locked_mc: UInt
    status: str = Field(description="open, filled, cancelled or expired")
    seq: UInt
    placed_height: UInt
    placed_ms: UInt
    expires_ms: UInt


class OrderList(Model):
    address: Address
    orders: list[Order]


class Trade(Model):
    trade_id: UInt
    market: str
    slot: UInt
    seller: Address
    buyer: Address
    sell_order: Hex32
    buy_order: Hex32
    quantity_wh: UInt
    price_mc_per_kwh: UInt
    amount_mc: UInt
    aggressor: str
    height: UInt
    timestamp_ms: UInt
    status: str


class TradeList(Model):
    trades: list[Trade]


class CurvePoint(Model):
    sdr_permille: UInt
    p_sell_mc_per_kwh: UInt
    p_buy_mc_per_kwh: UInt


class PoolQuote(Model):
    tsp_wh: UInt
    tbp_wh: UInt
    p_sell_mc_per_kwh: UInt
    p_buy_mc_per_kwh: UInt


class PoolInterval(Model):
    slot: UInt
    start_ms: UInt
    end_ms: UInt
    hour_utc: UInt
    r_buy_mc_per_kwh: UInt
    r_sell_mc_per_kwh: UInt
    curve: list[CurvePoint]
    quote: PoolQuote | None = Field(default=None, description="with supply_wh and demand_wh")


class PoolPrices(Model):
    intervals: list[PoolInterval]


# --- meters and settlement -----------------------------------------------------------------


class Meter(Model):
    """A meter and the head of its reading chain: where its bridge resumes after a restart.

    The ``last_*`` fields are null until the first reading is accepted; the bridge's next
    record then carries ``last_sequence + 1`` (0 at first) and ``prev_hash = last_hash``.
    """

    meter_id: str
    owner: Address
    meter_type: str
    bridge_key: Hex32
    profile: str
    registered_height: UInt
    last_sequence: UInt | None
    last_hash: Bytes32 | None
    last_interval_end_ms: UInt | None
    last_import_wh: UInt | None
    last_export_wh: UInt | None
    device_id: str | None = Field(
        description="the device the council linked this meter to (a charger's OCPP charge "
        "point id, an inverter's id; ADR 0048), null when unlinked"
    )
    device_linked_height: UInt | None = Field(description="the block that linked it")


class MeterList(Model):
    meters: list[Meter]


class DeviceLink(Model):
    """Which meter measures a device, as the council linked them (ADR 0048)."""

    device_id: str
    meter_id: str
    meter_type: str = Field(description="EV (the device is a charger) or Battery (an inverter)")
    owner: Address
    linked_height: UInt


class Reading(Model):
    sequence: UInt
    interval_start_ms: UInt
    interval_end_ms: UInt
    import_wh: UInt
    export_wh: UInt
    power_w: SInt
    voltage_dv: UInt
    status: str
    prev_hash: Hex32
    hash: Hex32
    height: UInt


class ReadingList(Model):
    meter_id: str
    readings: list[Reading]


class ReceiptReading(Model):
    #: summed registers; import - export for a net meter, so negative on a producer
    start_wh: SInt
    end_wh: SInt
    metered_wh: UInt
    metering: str


class ReceiptPool(Model):
    """A party's position in the slot's SDR pool (market/settlement.py: signed on chain)."""

    p_sell_mc_per_kwh: UInt
    p_buy_mc_per_kwh: UInt
    seller_wh: SInt = Field(description="the seller's pool position (signed)")
    seller_mc: SInt = Field(description="positive: paid by the pool; negative: paid to it")
    buyer_wh: SInt = Field(description="positive: took less than it bought; negative: drew more")
    buyer_mc: SInt = Field(description="positive: paid by the pool; negative: paid to it")


class Receipt(Model):
    """A settled trade as the source's trade record shows it."""

    trade_id: UInt
    market: str
    slot: UInt
    seller: Address
    buyer: Address
    seller_device: str
    buyer_device: str
    seller_reading: ReceiptReading
    buyer_reading: ReceiptReading
    quantity_wh: UInt
    delivered_wh: UInt
    taken_wh: UInt
    shortfall_wh: UInt
    price_mc_per_kwh: UInt
    escrow_mc: UInt
    paid_mc: UInt
    released_mc: UInt
    fine_mc: UInt
    fine_paid_mc: UInt
    pool: ReceiptPool
    status: str = Field(description="delivered, partial or not_delivered")
    shortfall_reason: str | None = Field(
        default=None,
        description="why less than the quantity was delivered: no_meter (the seller has no "
        "meter for the device), missing_readings (its meter did not cover the whole slot; "
        "the unmeasured part counted as zero) or under_delivered (metered, and less than "
        "sold); null when delivered in full",
    )
    height: UInt
    settled_ms: UInt


class SealedOutcome(Model):
    """What became of one of the account's sealed transactions (docs/sealed.md)."""

    tx_hash: Hex32
    status: str = Field(description="applied or refused")
    code: str = Field(description="the refusal's error code; empty when applied")
    height: UInt


class SealedOutcomeList(Model):
    address: Address
    outcomes: list[SealedOutcome]


class SealedReadRequest(Model):
    """``POST /v1/sealed-reads``: a signed read request (protocol/sealed_read.py)."""

    request: TxHex = Field(description="hex of the encoded SignedRead")


class SealedReply(Model):
    """The answer to a sealed read: the JSON of the open route's model, sealed to the reply key
    (HPKE base mode, X25519/HKDF-SHA256/ChaCha20-Poly1305; info binds chain and request)."""

    kind: str = Field(description="orders, trades, receipts, readings or sealed_outcomes")
    request_hash: Hex32
    sealed: HexBytes = Field(description="enc || ciphertext, hex")


class ReceiptList(Model):
    receipts: list[Receipt]


class PoolSlot(Model):
    """A settled slot's real-time pool (ADR 0041): the SDR prices and what cleared."""

    slot: UInt
    tsp_wh: UInt = Field(description="total supply offered to the pool")
    tbp_wh: UInt = Field(description="total demand drawn from the pool")
    r_buy_mc_per_kwh: UInt = Field(description="the grid's retail tariff of the slot")
    r_sell_mc_per_kwh: UInt = Field(description="the grid's feed-in tariff of the slot")
    p_sell_mc_per_kwh: UInt
    p_buy_mc_per_kwh: UInt
    grid_import_wh: UInt
    grid_export_wh: UInt
    residual_mc: int = Field(description="what rounding left with the pool account (>= 0)")
    contracts: UInt = Field(description="contracts settled in the slot")
    households: UInt = Field(description="households pooled without a contract")
    height: UInt
    settled_ms: UInt


class PoolSlotList(Model):
    slots: list[PoolSlot]


class PoolReceipt(Model):
    """What the pool did with a household that had no contract in the slot (ADR 0041)."""

    slot: UInt
    participant: Address
    net_wh: int = Field(description="> 0 supplied to the pool, < 0 drawn from it")
    internal_wh: UInt = Field(description="traded inside the community")
    grid_wh: UInt = Field(description="traded with the grid")
    start_wh: int = Field(description="summed import - export registers at the slot's start")
    end_wh: int = Field(description="...and at its end")
    cd_wh: int = Field(description="C&D energy (import - export) settled by C&D instead")
    metering: str = Field(description="complete, missing_readings or no_meter")
    p_sell_mc_per_kwh: UInt
    p_buy_mc_per_kwh: UInt
    amount_mc: int = Field(description="assessed: > 0 paid to the household, < 0 owed by it")
    paid_mc: int = Field(description="what moved (capped by what the payer could spend)")
    height: UInt
    settled_ms: UInt


class PoolReceiptList(Model):
    receipts: list[PoolReceipt]


# --- C&D requests and the schedule ---------------------------------------------------------


class CDRequest(Model):
    """A C&D request with its window in intervals and block time, and its progress."""

    id: Hex32
    owner: Address
    kind: str = Field(description="charge or discharge")
    device: str
    arrival_ms: UInt
    departure_ms: UInt
    energy_wh: UInt
    max_rate_w: UInt
    limit_price_mc_per_kwh: UInt
    meter_id: str = Field(description="the registered meter that measures the device")
    first_interval: UInt
    end_interval: UInt
    window_start_ms: UInt
    window_end_ms: UInt
    cap_units: UInt
    delivered_units: UInt
    remaining_units: UInt
    delivered_wh: UInt
    remaining_wh: UInt
    submitted_height: UInt
    status: str = Field(description="open, complete or ended")


class CDReceipt(Model):
    """One request's settlement for one decided interval (ADR 0030): the setpoint's energy,
    the meter's, the deviation, and the money (assessed and paid) at the interval's price."""

    request_id: Hex32
    interval: UInt
    owner: Address
    meter_id: str
    kind: str = Field(description="charge or discharge")
    device: str
    start_ms: UInt
    end_ms: UInt
    setpoint_w: SInt
    scheduled_wh: UInt
    start_wh: SInt
    end_wh: SInt
    metered_wh: UInt
    metering: str = Field(description="complete, missing_readings or no_meter")
    deviation_wh: SInt
    tolerance_wh: UInt
    price_mc_per_kwh: UInt
    amount_mc: UInt = Field(description="charge: owed by the owner; discharge: owed to it")
    paid_mc: UInt
    penalty_mc: UInt
    penalty_paid_mc: UInt
    height: UInt
    settled_ms: UInt


class CDReceipts(Model):
    request_id: Hex32
    receipts: list[CDReceipt]


class CDList(Model):
    owner: Address | None
    requests: list[CDRequest]


class ScheduleEntry(Model):
    """One setpoint; owner, kind, device and meter come from the request's record (null if
    gone)."""

    request_id: Hex32
    owner: Address | None
    kind: str | None
    device: str | None
    rate_w: SInt
    #: The registered meter that measures the device (a charger's controller picks its
    #: setpoints by it).
    meter_id: str | None = None


class Decision(Model):
    """The setpoints decided for one interval.  ``benefit`` is a string: it may exceed 2^53,
    beyond what a JSON number keeps exactly in most clients."""

    interval: UInt
    start_ms: UInt
    end_ms: UInt
    height: UInt
    base_load_w: SInt
    load_w: SInt
    benefit: str = Field(pattern=r"^-?[0-9]+$")
    entries: list[ScheduleEntry]
    #: The transformer capacity the decision was held to (null: none in genesis), and whether
    #: even the least load the requests allowed was over it (ADR 0036).
    capacity_w: UInt | None = None
    over_capacity: bool = False


class Schedule(Model):
    next_interval: UInt
    open_requests: UInt
    interval_ms: UInt
    interval_minutes: UInt
    current_interval: UInt
    decisions: list[Decision] = Field(description="newest first")


# --- the events websocket ------------------------------------------------------------------


class BlockCommittedEvent(Model):
    type: Literal["block_committed"]
    height: UInt
    hash: Hex32
    timestamp_ms: UInt
    txs: list[Hex32]
    market_events: UInt = Field(description="how many trade and order messages follow")


class TradeEvent(Trade):
    type: Literal["trade"]


class OrderEvent(Model):
    type: Literal["order"]
    event: str = Field(description="what happened to the order: placed, amended, ...")
    height: UInt
    order: Order


class ScheduleEvent(Model):
    type: Literal["schedule"]
    height: UInt
    interval: UInt
    start_ms: UInt
    end_ms: UInt
    base_load_w: SInt
    load_w: SInt
    benefit: str
    entries: list[ScheduleEntry]
    capacity_w: UInt | None = None
    over_capacity: bool = False


#: One websocket message of ``GET /v1/events``: a block, then its trades and order changes,
#: then its schedule decision if it made one.
Event = Annotated[
    BlockCommittedEvent | TradeEvent | OrderEvent | ScheduleEvent, Field(discriminator="type")
]


class EventMessage(BaseModel):
    """Wrapper that parses one event message by its ``type``."""

    model_config = ConfigDict(frozen=True)

    event: Event


# --- operator statistics (the /ui/ page's aggregates) ------------------------------------


class MarketSlotStats(Model):
    """One book's trades: how many, how much, at what prices (public aggregates only)."""

    market: str
    trades: UInt
    volume_wh: UInt
    vwap_mc_per_kwh: UInt | None = Field(description="volume-weighted price; null: no trade")
    low_mc_per_kwh: UInt | None
    high_mc_per_kwh: UInt | None
    best_bid: UInt | None
    best_ask: UInt | None
    bid_depth_wh: UInt = Field(description="displayed quantity resting on the bid side")
    ask_depth_wh: UInt = Field(description="displayed quantity resting on the ask side")


class SettlementStats(Model):
    """What settlement made of one slot's trades: traded against metered energy."""

    receipts: UInt
    traded_wh: UInt = Field(description="sum of the settled contracts' quantities")
    delivered_wh: UInt = Field(description="the sellers' metered share of them")
    taken_wh: UInt = Field(description="the buyers' metered share of them")
    shortfall_wh: UInt
    imbalance_wh: SInt = Field(description="delivered - taken: + flowed to the pool, - drawn")
    fines_mc: UInt
    pool_p_sell_mc_per_kwh: UInt | None = Field(description="the slot's SDR pool prices")
    pool_p_buy_mc_per_kwh: UInt | None
    shortfall_reasons: dict[str, UInt] = Field(description="receipts per shortfall_reason")


class SlotStats(Model):
    slot: UInt
    start_ms: UInt
    end_ms: UInt
    markets: list[MarketSlotStats]
    settlement: SettlementStats


class SlotStatsList(Model):
    current_slot: UInt
    slots: list[SlotStats] = Field(description="in slot order")


class PowerFluctuation(Model):
    """The source's power fluctuation levels (market/scheduling/metrics.py) of a profile."""

    eq3_11: float | None = Field(description="ln((max - min) / mean); null for a flat load")
    eq4_4: float = Field(description="total variation, kW")
    eq5_7: float = Field(description="variance of the slope, (kW/h)^2")
    eq6_4: float = Field(description="sum of squared steps, kW^2")


class LoadInterval(Model):
    interval: UInt
    start_ms: UInt
    end_ms: UInt
    base_load_w: SInt = Field(description="the community load without the scheduled devices")
    load_w: SInt = Field(description="with the committed setpoints")


class LoadStats(Model):
    """The community load against the committed schedule, oldest interval first, with the
    PFL of both profiles (null with fewer than two intervals or no positive mean)."""

    interval_minutes: UInt
    intervals: list[LoadInterval]
    pfl_base: PowerFluctuation | None
    pfl_scheduled: PowerFluctuation | None

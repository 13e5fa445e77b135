"""Read-only answers to the API's questions, as the contract's models.

The HTTP handlers ask this class and nothing else: it reads the committed state and the store
through the market's and the store's own accessors (never a raw key prefix) and the node only
through its public surface (``status()``, ``head``, ``state``, ``store``, ``mempool``,
``genesis``, ``app``, ``clock``), so the runtime can change its internals without the API
noticing.  Nothing here writes.  Arguments are already parsed (bytes, ints); a missing object
is ``None`` and the handler turns it into a 404.
"""

from __future__ import annotations

from gridchain.api import models as m
from gridchain.genesis.schema import ChainParams
from gridchain.market.accounts import get_account, get_participant, iter_participants
from gridchain.market.book import BUY, SELL
from gridchain.market.cd_requests import (
    CDRecord,
    CDStatus,
    all_requests,
    get_head,
    get_request,
    open_requests,
)
from gridchain.market.cd_schedule import Decision, get_decision, latest_decisions
from gridchain.market.cd_settlement import cd_receipts
from gridchain.market.chain_params import params_at
from gridchain.market.council import council_record
from gridchain.market.device_links import link_of_device, link_of_meter
from gridchain.market.governance import ProposalStatus, get_proposal, iter_proposals
from gridchain.market.meters import get_meter, iter_meters, meters_of, readings_from
from gridchain.market.orders import (
    Exchange,
    OrderStatus,
    book_levels,
    contracts,
    get_order,
    orders_of,
)
from gridchain.market.pool import sdr_prices
from gridchain.market.sealed_outcomes import SealedStatus, outcomes_of
from gridchain.market.settlement import receipts
from gridchain.market.slot_settlement import pool_receipts, pool_slots
from gridchain.market.validators import validators_at
from gridchain.node.archive import ServedState
from gridchain.node.operator_stats import book_offers, load_figures, slot_figures
from gridchain.node.params_view import chain_parameters
from gridchain.node.runtime import CommitEvent, Node
from gridchain.node.views import (
    cd_receipt_view,
    cd_view,
    committed_view,
    contract_view,
    decision_view,
    device_link_view,
    market_event_view,
    meter_view,
    order_view,
    pool_receipt_view,
    pool_slot_view,
    proposal_view,
    reading_view,
    receipt_view,
    tx_view,
)
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.tx import Market

HOUR_MS = 3_600_000
#: SDR values (in thousandths) at which /v1/pool/prices shows the price curve.
CURVE_PERMILLE = (0, 250, 500, 750, 1000)
EventModel = m.BlockCommittedEvent | m.TradeEvent | m.OrderEvent | m.ScheduleEvent


class NodeQuery:
    """The read side of one node for its API."""

    def __init__(self, node: Node) -> None:
        self._node = node

    @property
    def _served(self) -> ServedState:
        """The committed state with the archive of pruned entries behind it (node/archive.py):
        every record the chain ever held, whether or not it is still live."""
        return ServedState(self._node.state, self._node.store)

    # --- chain ---------------------------------------------------------------------------

    @property
    def halted(self) -> str | None:
        return self._node.halted

    @property
    def head_height(self) -> int:
        return self._node.head.height

    @property
    def history_from(self) -> int:
        """The first height whose block this node stores: above 0 after a state sync."""
        return self._node.store.sync_base()

    def now_ms(self) -> int:
        return self._node.clock()

    def status(self) -> m.Status:
        return m.Status.model_validate(self._node.status())

    def tx(self, tx_hash: bytes) -> m.TxRecord | None:
        node = self._node
        location = node.store.tx_location(tx_hash)
        if location is not None:
            height, index = location
            committed = node.store.get_block(height)
            if committed is not None:
                return m.TxRecord(
                    hash=tx_hash.hex(),
                    status="committed",
                    height=height,
                    index=index,
                    block_hash=committed.block.hash().hex(),
                    tx=tx_view(committed.block.txs[index]),
                )
        pending = node.mempool.get(tx_hash)
        if pending is None:
            return None
        return m.TxRecord(
            hash=tx_hash.hex(), status="pending", height=None, index=None, tx=tx_view(pending)
        )

    def block(self, height: int) -> m.BlockView | None:
        committed = self._node.store.get_block(height) if height > 0 else None
        return None if committed is None else committed_view(committed)

    def block_by_hash(self, block_hash: bytes) -> m.BlockView | None:
        height = self._node.store.height_of_block(block_hash)
        return None if height is None else self.block(height)

    def blocks(self, first: int, limit: int) -> m.BlockList:
        head = self.head_height
        last = min(head, first + limit - 1)
        found = [view for h in range(first, last + 1) if (view := self.block(h)) is not None]
        return m.BlockList(head=head, blocks=found, next=last + 1 if last < head else None)

    # --- accounts, participants, validators ----------------------------------------------

    def account(self, address: bytes) -> m.Account:
        node = self._node
        account = get_account(node.state, address)
        pending = get_account(node.mempool.pending_state, address)
        participant = get_participant(node.state, address)
        return m.Account(
            address=format_address(address),
            balance_mc=account.balance_mc,
            locked_mc=account.locked_mc,
            spendable_mc=pending.balance_mc - pending.locked_mc,
            nonce=account.nonce,
            pending_nonce=pending.nonce,
            registered=participant is not None
            or (
                address == node.app.governance_address
                and node.app.council_in(node.state).keys == {node.app.governance_key}
            ),
            name=None if participant is None else participant.name,
        )

    def participants(self, limit: int) -> m.ParticipantList:
        out = []
        for address, record in iter_participants(self._node.state):
            out.append(
                m.Participant(
                    address=format_address(address),
                    name=record.name,
                    public_key=record.public_key.hex(),
                    registered_height=record.registered_height,
                )
            )
            if len(out) >= limit:
                break
        return m.ParticipantList(participants=out)

    def proposals(self, limit: int, status: ProposalStatus | None = None) -> m.ProposalList:
        """Council proposals by id (optionally of one status), with the council itself."""
        members, threshold = self._council()
        out = []
        for record in iter_proposals(self._node.state):
            if status is not None and record.status != status:
                continue
            out.append(proposal_view(record, threshold))
            if len(out) >= limit:
                break
        return m.ProposalList(
            threshold=threshold, council=[k.hex() for k in members], proposals=out
        )

    def proposal(self, proposal_id: bytes) -> m.Proposal | None:
        record = get_proposal(self._node.state, proposal_id)
        return None if record is None else proposal_view(record, self._council()[1])

    def _council(self) -> tuple[tuple[bytes, ...], int]:
        """The council in office (members in order) and its threshold (market/council.py)."""
        node = self._node
        record = council_record(node.state)
        if record is None:
            return node.genesis.council_keys(), node.genesis.threshold
        return record.members, record.threshold

    def chain_parameters(self) -> m.ChainParameters:
        node = self._node
        return chain_parameters(node.state, node.genesis, node.head.height)

    def _next_params(self) -> ChainParams:
        """The parameters of the block after the head (what an order sent now faces)."""
        node = self._node
        return params_at(node.state, node.genesis, node.head.height + 1)

    def _next_exchange(self) -> Exchange:
        node = self._node
        return node.app.exchange_at(node.state, node.head.height + 1)

    def validators(self) -> m.ValidatorList:
        """The set that certifies the next height, from the chain state (ADR 0035): genesis's
        validators by their genesis names, one admitted later by a name from its key."""
        node = self._node
        own = node.status()["validator"]
        named = {v.public_key_bytes: v for v in node.genesis.validators}
        keys = validators_at(node.state, node.genesis, node.head.height + 1)
        out = []
        for key in keys:
            known = named.get(key)
            out.append(
                m.Validator(
                    name=known.name if known is not None else f"validator-{key.hex()[:8]}",
                    address=format_address(address_of(key)),
                    public_key=key.hex(),
                    power=known.power if known is not None else 1,
                    this_node=key.hex() == own,
                    encryption_key=known.encryption_key if known is not None else None,
                )
            )
        return m.ValidatorList(validators=out)

    # --- markets -------------------------------------------------------------------------

    def markets(self) -> m.Markets:
        params = self._next_params()
        now = self.now_ms()
        first_open = {
            mk.label: (now + params.gate_closure_lead_ms(mk == Market.DAY_AHEAD))
            // params.slot_length_ms
            + 1
            for mk in Market
        }
        return m.Markets(
            markets=[mk.label for mk in Market],
            slot_length_ms=params.slot_length_ms,
            gate_closure_ms=params.gate_closure_ms,
            day_ahead_gate_closure_ms=params.gate_closure_lead_ms(True),
            order_horizon_ms=params.order_horizon_ms,
            matching_rule=params.matching_rule,
            adbev_price_weight=params.adbev_price_weight,
            adbev_time_weight=params.adbev_time_weight,
            iceberg_execution=params.iceberg_execution,
            iceberg_waiting_limit_ms=params.iceberg_waiting_limit_ms,
            now_ms=now,
            current_slot=self._node.app.exchange.slot_of(now),
            first_open_slot=first_open,
            penalty_mc_per_kwh=params.penalty_mc_per_kwh,
            settlement_grace_ms=params.settlement_grace_ms,
        )

    def book(self, market: Market, slot: int) -> m.Book:
        node = self._node
        exchange = self._next_exchange()
        bids = book_levels(node.state, market, slot, BUY)
        asks = book_levels(node.state, market, slot, SELL)
        gate = exchange.gate_closure_ms(market, slot)
        start = exchange.slot_start_ms(slot)
        return m.Book(
            market=market.label,
            slot=slot,
            start_ms=start,
            end_ms=start + node.genesis.params.slot_length_ms,
            gate_closure_ms=gate,
            open=self.now_ms() < gate,
            height=node.head.height,
            matching_rule=node.genesis.params.matching_rule,
            bids=[m.Level(price_mc_per_kwh=p, quantity_wh=q, orders=n) for p, q, n in bids],
            asks=[m.Level(price_mc_per_kwh=p, quantity_wh=q, orders=n) for p, q, n in asks],
            best_bid=bids[0][0] if bids else None,
            best_ask=asks[0][0] if asks else None,
        )

    def offers(self, market: Market, slot: int, limit: int) -> m.Offers:
        """A book's individual resting orders, each side in matching order (no owners)."""
        node = self._node
        exchange = self._next_exchange()
        asks, bids = book_offers(node.state, exchange, market, slot, limit)
        return m.Offers(
            market=market.label,
            slot=slot,
            height=node.head.height,
            open=self.now_ms() < exchange.gate_closure_ms(market, slot),
            matching_rule=node.genesis.params.matching_rule,
            asks=asks,
            bids=bids,
        )

    def slot_stats(self, first: int, count: int) -> m.SlotStatsList:
        """Per-slot public aggregates of the books and settlement (node/operator_stats.py)."""
        slot_ms = self._node.genesis.params.slot_length_ms
        served, live = self._served, self._node.state
        return m.SlotStatsList(
            current_slot=self.current_slot(),
            slots=[
                slot_figures(served, live, slot, slot_ms) for slot in range(first, first + count)
            ],
        )

    def load_stats(self, limit: int) -> m.LoadStats:
        """The latest ``limit`` decided intervals' load, base and scheduled, with their PFL."""
        decisions = latest_decisions(self._node.state, limit)
        return load_figures(decisions, self._node.app.interval_clock)

    def order(self, order_id: bytes) -> m.Order | None:
        record = get_order(self._served, order_id)
        return None if record is None else order_view(record)

    def orders(
        self, address: bytes, slot: int | None, status: OrderStatus | None, limit: int
    ) -> m.OrderList:
        out = []
        for record in orders_of(self._served, address, slot):
            if status is not None and record.status != status:
                continue
            out.append(order_view(record))
            if len(out) >= limit:
                break
        return m.OrderList(address=format_address(address), orders=out)

    def trades(
        self, address: bytes | None, slot: int | None, market: Market | None, limit: int
    ) -> m.TradeList:
        out = []
        for contract in contracts(self._served, party=address, slot=slot):
            if market is not None and contract.market != market:
                continue
            out.append(contract_view(contract))
            if len(out) >= limit:
                break
        return m.TradeList(trades=out)

    def current_slot(self) -> int:
        return self._node.app.exchange.slot_of(self.now_ms())

    def pool_prices(self, first: int, count: int, quote: tuple[int, int] | None) -> m.PoolPrices:
        genesis = self._node.genesis
        exchange = self._node.app.exchange
        params = self._next_params()
        intervals = []
        for slot in range(first, first + count):
            start = exchange.slot_start_ms(slot)
            hour = start // HOUR_MS % 24
            tariff = params.tariff_at_hour(hour)
            r_buy, r_sell = tariff.retail_mc_per_kwh, tariff.feed_in_mc_per_kwh
            curve = []
            for permille in CURVE_PERMILLE:
                prices = sdr_prices(permille, 1000, r_buy, r_sell)
                curve.append(
                    m.CurvePoint(
                        sdr_permille=permille,
                        p_sell_mc_per_kwh=prices.p_sell_mc_per_kwh,
                        p_buy_mc_per_kwh=prices.p_buy_mc_per_kwh,
                    )
                )
            priced = None
            if quote is not None:
                supply, demand = quote
                at = sdr_prices(supply, demand, r_buy, r_sell)
                priced = m.PoolQuote(
                    tsp_wh=supply,
                    tbp_wh=demand,
                    p_sell_mc_per_kwh=at.p_sell_mc_per_kwh,
                    p_buy_mc_per_kwh=at.p_buy_mc_per_kwh,
                )
            intervals.append(
                m.PoolInterval(
                    slot=slot,
                    start_ms=start,
                    end_ms=start + genesis.params.slot_length_ms,
                    hour_utc=hour,
                    r_buy_mc_per_kwh=r_buy,
                    r_sell_mc_per_kwh=r_sell,
                    curve=curve,
                    quote=priced,
                )
            )
        return m.PoolPrices(intervals=intervals)

    # --- meters and settlement -----------------------------------------------------------

    def meter(self, meter_id: str) -> m.Meter | None:
        state = self._node.state
        meter = get_meter(state, meter_id)
        return None if meter is None else meter_view(meter, link_of_meter(state, meter_id))

    def meters(self, owner: bytes | None, limit: int) -> m.MeterList:
        state = self._node.state
        found = iter_meters(state) if owner is None else iter(meters_of(state, owner))
        out = []
        for meter in found:
            out.append(meter_view(meter, link_of_meter(state, meter.meter_id)))
            if len(out) >= limit:
                break
        return m.MeterList(meters=out)

    def device_link(self, device_id: str) -> m.DeviceLink | None:
        """The meter the council linked ``device_id`` to (None: linked to none)."""
        state = self._node.state
        link = link_of_device(state, device_id)
        meter = None if link is None else get_meter(state, link.meter_id)
        return None if link is None or meter is None else device_link_view(link, meter)

    def readings(self, meter_id: str, from_seq: int, limit: int) -> m.ReadingList:
        found = readings_from(self._served, meter_id, from_seq, limit)
        return m.ReadingList(meter_id=meter_id, readings=[reading_view(r) for r in found])

    def receipts(self, address: bytes | None, slot: int | None, limit: int) -> m.ReceiptList:
        found = receipts(self._served, party=address, slot=slot)[:limit]
        return m.ReceiptList(receipts=[receipt_view(r) for r in found])

    def pool_slots(self, from_slot: int, limit: int) -> m.PoolSlotList:
        found = pool_slots(self._served, from_slot=from_slot)[:limit]
        return m.PoolSlotList(slots=[pool_slot_view(p) for p in found])

    def pool_receipts(
        self, address: bytes | None, slot: int | None, limit: int
    ) -> m.PoolReceiptList:
        found = pool_receipts(self._served, party=address, slot=slot)[:limit]
        return m.PoolReceiptList(receipts=[pool_receipt_view(r) for r in found])

    # --- C&D requests and the schedule ---------------------------------------------------

    def sealed_outcomes(self, address: bytes, limit: int) -> m.SealedOutcomeList:
        found = []
        for outcome in outcomes_of(self._node.state, address):
            found.append(
                m.SealedOutcome(
                    tx_hash=outcome.tx_hash.hex(),
                    status=SealedStatus(outcome.status).label,
                    code=outcome.code,
                    height=outcome.height,
                )
            )
            if len(found) >= limit:
                break
        return m.SealedOutcomeList(address=format_address(address), outcomes=found)

    def meter_owner(self, meter_id: str) -> bytes | None:
        meter = get_meter(self._node.state, meter_id)
        return None if meter is None else meter.owner

    def decisions(self, decisions: list[Decision]) -> list[m.Decision]:
        """Decisions with each setpoint's owner, kind and device from its request's record."""
        state = self._served  # a decision's requests may be archived (market/pruning.py)
        records: dict[bytes, CDRecord] = {}
        for decision in decisions:
            for entry in decision.entries:
                if entry.request_id not in records:
                    record = get_request(state, entry.request_id)
                    if record is not None:
                        records[entry.request_id] = record
        clock = self._node.app.interval_clock
        return [decision_view(d, clock, records) for d in decisions]

    def next_interval(self) -> int:
        return get_head(self._node.state).next_interval

    def schedule(self, interval: int | None, limit: int) -> m.Schedule | None:
        """The latest ``limit`` decisions, or the one of ``interval`` (None: none is kept)."""
        state = self._node.state
        head = get_head(state)
        if interval is not None:
            found = get_decision(state, interval)
            if found is None:
                return None
            decisions = [found]
        else:
            decisions = latest_decisions(state, limit)
        clock = self._node.app.interval_clock
        return m.Schedule(
            next_interval=head.next_interval,
            open_requests=head.open_requests,
            interval_ms=clock.interval_ms,
            interval_minutes=clock.interval_minutes,
            current_interval=clock.interval_at(self.now_ms()),
            decisions=self.decisions(decisions),
        )

    def cd_request(self, request_id: bytes) -> m.CDRequest | None:
        record = get_request(self._served, request_id)
        if record is None:
            return None
        return cd_view(request_id, record, self._node.app.interval_clock)

    def cd_receipts(self, request_id: bytes) -> m.CDReceipts | None:
        """A request's settlement receipts in interval order (None: no such request)."""
        state = self._served
        if get_request(state, request_id) is None:
            return None
        return m.CDReceipts(
            request_id=request_id.hex(),
            receipts=[cd_receipt_view(r) for r in cd_receipts(state, request_id)],
        )

    def cd_requests(self, owner: bytes | None, status: CDStatus | None, limit: int) -> m.CDList:
        """Requests newest first (by submission height, then id), of one owner and status."""
        # The open index avoids a scan of every request ever made (the archive holds none open).
        state = self._node.state
        candidates = open_requests(state) if status is CDStatus.OPEN else all_requests(self._served)
        matches = [
            (rid, rec)
            for rid, rec in candidates
            if (owner is None or rec.owner == owner) and (status is None or rec.status == status)
        ]
        matches.sort(key=lambda item: (-item[1].submitted_height, item[0]))
        clock = self._node.app.interval_clock
        return m.CDList(
            owner=None if owner is None else format_address(owner),
            requests=[cd_view(rid, rec, clock) for rid, rec in matches[:limit]],
        )

    # --- the events websocket ------------------------------------------------------------

    def event_messages(self, event: CommitEvent) -> list[EventModel]:
        """The websocket messages of one commit: the block, then one per trade and order
        change, then the schedule decision if the block made one."""
        out: list[EventModel] = [
            m.BlockCommittedEvent(
                type="block_committed",
                height=event.height,
                hash=event.block_hash.hex(),
                timestamp_ms=event.timestamp_ms,
                txs=[h.hex() for h in event.tx_hashes],
                market_events=len(event.market_events),
            )
        ]
        out.extend(market_event_view(e, event.height) for e in event.market_events)
        if event.decision is not None:
            (view,) = self.decisions([event.decision])
            out.append(
                m.ScheduleEvent(
                    type="schedule",
                    height=event.height,
                    interval=view.interval,
                    start_ms=view.start_ms,
                    end_ms=view.end_ms,
                    base_load_w=view.base_load_w,
                    load_w=view.load_w,
                    benefit=view.benefit,
                    entries=view.entries,
                    capacity_w=view.capacity_w,
                    over_capacity=view.over_capacity,
                )
            )
        return out

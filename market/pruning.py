"""Pruning: what is closed for good leaves the live state (and the state root) for the archive.

Issue 17: the state held about seven entries per order and every reading ever sent, so the tree
grew with the chain's age and so did every block's cost.  Here, once a slot is settled and an
hour more has passed (``RETAIN_MS``: a client sees its receipt, with a proof, in the live state
first), a block moves out of the live state

* the slot's orders (``ord:``, the owner index ``oown:``; found through ``oslt:``),
* its settled contracts (``ctr:``, the party index ``ctrp:``),
* its receipts (``stl:``, the party index ``stlp:``),
* its households' pool receipts (``plr:``, the party index ``plrp:``) and its pool summary
  (``pls:``; market/slot_settlement.py),
* every meter's readings (``mrd:``, ``mseq:``) that no settlement can use any more: those
  before the last reading that ends at or before the first slot still kept;
* each closed C&D request (``cdr:``, found through its ``cdx:`` entry) with its receipts
  (``cdrc:``), once the interval whose decision closed it is settled (its end +
  ``settlement_grace_ms``: every earlier decision naming it is settled too) and ``RETAIN_MS``
  more has passed.  Checked every block (one scan step when nothing is due), by interval, not
  by slot.

Each is *archived* (:meth:`~gridchain.market.state.Overlay.archive`): deleted from the state and
handed, with its last value, to the node's archive index, which the API reads behind the live
state, so a route answers the same before and after (ADR 0027).  What stays live is bounded by
the open books, the open C&D requests, the unsettled slots and the last hour of settled ones.

The work is done once per newly prunable slot boundary (``meta:pruned`` remembers the last
boundary at which something was pruned), and the scans start at the oldest live entry (the
pruned ones are gone), so a block pays for what it prunes, not for the history.
Deterministic: a function of the state and the block time only.
"""

from __future__ import annotations

from gridchain.genesis.schema import Genesis
from gridchain.market.cd_requests import CD_CLOSED_PREFIX, IntervalClock, request_key
from gridchain.market.cd_settlement import CD_RECEIPT_PREFIX
from gridchain.market.meters import (
    _MAX_U64,
    READING_PREFIX,
    StoredReading,
    _id,
    _reading_suffix,
    iter_meters,
    reading_seq_key,
)
from gridchain.market.orders import (
    CONTRACT_PREFIX,
    SLOT_INDEX_PREFIX,
    Contract,
    ContractStatus,
    OrderStatus,
    get_order,
    order_key,
    owner_key,
    party_key,
)
from gridchain.market.settlement import RECEIPT_PREFIX, Receipt, receipt_party_key
from gridchain.market.slot_settlement import (
    POOL_RECEIPT_PREFIX,
    POOL_SLOT_PREFIX,
    pool_receipt_party_key,
    settled_before,
)
from gridchain.market.state import Overlay
from gridchain.protocol.encoding import decode

#: How long a settled slot's records stay live after the slot's settlement became due.
RETAIN_MS = 3_600_000
PRUNED_KEY = b"meta:pruned"


def _slot_of(key: bytes, prefix: bytes) -> int:
    return int.from_bytes(key[len(prefix) : len(prefix) + 8], "big")


def prunable_before(genesis: Genesis, timestamp_ms: int) -> int:
    """The first slot whose records stay live at ``timestamp_ms`` (every earlier slot is
    settled, plus ``RETAIN_MS``)."""
    params = genesis.params
    waited = timestamp_ms - params.settlement_grace_ms - RETAIN_MS
    return max(0, waited // params.slot_length_ms)


def prune_due(genesis: Genesis, view: Overlay, timestamp_ms: int) -> None:
    """Archive what the slots before :func:`prunable_before` left behind, and the C&D requests
    settled long enough ago (module text)."""
    _prune_cd_requests(genesis, view, timestamp_ms)
    limit = prunable_before(genesis, timestamp_ms)
    # Never past the settlement cursor: a slot still to settle needs its readings.
    limit = min(limit, settled_before(genesis, view))
    raw = view.get(PRUNED_KEY)
    if raw is not None and int.from_bytes(raw, "big") >= limit:
        return
    before = len(view.archived)
    _prune_orders(view, limit)
    _prune_contracts(view, limit)
    _prune_receipts(view, limit)
    _prune_pool(view, limit)
    _prune_readings(view, limit * genesis.params.slot_length_ms)
    if len(view.archived) > before:
        # Only a block that pruned something writes: a block with nothing to do (most of
        # them, and every one on a chain without trading) leaves the state as it was.
        view.put(PRUNED_KEY, limit.to_bytes(8, "big"))


def _prune_orders(view: Overlay, limit: int) -> None:
    due = []
    for key, owner in view.scan(SLOT_INDEX_PREFIX):
        if _slot_of(key, SLOT_INDEX_PREFIX) >= limit:
            break
        due.append((key, owner))
    for key, owner in due:
        slot, order_id = _slot_of(key, SLOT_INDEX_PREFIX), key[-32:]
        record = get_order(view, order_id)
        if record is not None and record.status == OrderStatus.OPEN:
            continue  # still on a book (cannot happen after gate closure): keep it whole
        view.delete(key)
        view.archive(order_key(order_id))
        view.archive(owner_key(owner, slot, order_id))


def _prune_contracts(view: Overlay, limit: int) -> None:
    due = []
    for key, raw in view.scan(CONTRACT_PREFIX):
        if _slot_of(key, CONTRACT_PREFIX) >= limit:
            break
        contract = decode(raw, Contract)
        if contract.status == ContractStatus.SETTLED:
            due.append((key, contract))
    for key, c in due:
        view.archive(key)
        view.archive(party_key(c.seller, c.slot, c.trade_id))
        view.archive(party_key(c.buyer, c.slot, c.trade_id))


def _prune_receipts(view: Overlay, limit: int) -> None:
    due = []
    for key, raw in view.scan(RECEIPT_PREFIX):
        if _slot_of(key, RECEIPT_PREFIX) >= limit:
            break
        due.append((key, decode(raw, Receipt)))
    for key, r in due:
        view.archive(key)
        view.archive(receipt_party_key(r.seller, r.slot, r.trade_id))
        view.archive(receipt_party_key(r.buyer, r.slot, r.trade_id))


def _prune_pool(view: Overlay, limit: int) -> None:
    """Households' pool receipts (and their party index) and the slots' pool summaries."""
    due = []
    for key, _ in view.scan(POOL_RECEIPT_PREFIX):
        if _slot_of(key, POOL_RECEIPT_PREFIX) >= limit:
            break
        due.append(key)
    for key in due:
        slot, participant = _slot_of(key, POOL_RECEIPT_PREFIX), key[-20:]
        view.archive(key)
        view.archive(pool_receipt_party_key(participant, slot))
    slots = []
    for key, _ in view.scan(POOL_SLOT_PREFIX):
        if _slot_of(key, POOL_SLOT_PREFIX) >= limit:
            break
        slots.append(key)
    for key in slots:
        view.archive(key)


def _prune_readings(view: Overlay, cutoff_ms: int) -> None:
    """Per meter, archive the readings before the last one ending at or before ``cutoff_ms``
    (that one is what the next settlement reads as the start of its slot).

    Reading keys run from the newest to the oldest (market/meters.py), so the scan starts where
    :func:`~gridchain.market.meters.reading_at_or_before` looks: the first entry is kept and
    every one after it is older."""
    for meter in list(iter_meters(view)):
        if meter.next_sequence < 2:
            continue
        prefix = READING_PREFIX + _id(meter.meter_id)
        start = prefix + _reading_suffix(cutoff_ms, _MAX_U64)
        older = view.scan_from(prefix, start, inclusive=True)
        if next(older, None) is None:
            continue
        due = [(key, decode(raw, StoredReading).record.sequence) for key, raw in older]
        for key, sequence in due:
            view.archive(key)
            view.archive(reading_seq_key(meter.meter_id, sequence))


def _prune_cd_requests(genesis: Genesis, view: Overlay, timestamp_ms: int) -> None:
    """Archive each closed C&D request whose closing interval was settled ``RETAIN_MS`` ago,
    with its receipts; its ``cdx:`` entry is only an index and is deleted."""
    clock = IntervalClock.of(genesis)
    grace = genesis.params.settlement_grace_ms
    due = []
    for key, _ in view.scan(CD_CLOSED_PREFIX):
        interval = _slot_of(key, CD_CLOSED_PREFIX)
        if clock.start_ms(interval + 1) + grace + RETAIN_MS > timestamp_ms:
            break
        due.append((key, key[len(CD_CLOSED_PREFIX) + 8 :]))
    for key, request_id in due:
        receipts = [k for k, _ in view.scan(CD_RECEIPT_PREFIX + request_id)]
        for receipt in receipts:
            view.archive(receipt)
        view.archive(request_key(request_id))
        view.delete(key)

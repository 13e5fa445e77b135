"""``gridchain bench state``'s community, played small: the live state stops growing, the
ledger replays to the same roots, and the report has every figure the issue asks for.

Why: the benchmark's claim (a block costs the same on the last day as on the first) rests on
pruning keeping the live state bounded; counted here in entries, never in time.  The replay is
what a validator rebuilding from its blocks does: it must reach every header's root.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from gridchain.bench.state import (
    ORDER_LEAD_SLOTS,
    SLOT_MS,
    SLOTS_PER_DAY,
    Ledger,
    community,
    format_report,
    play,
    replay,
    run,
)
from gridchain.market.orders import SLOT_INDEX_PREFIX
from gridchain.market.pruning import RETAIN_MS
from gridchain.node import store_schema
from gridchain.node.store import Store
from gridchain.protocol.block import CommittedBlock
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.tx import Transaction
from tests.helpers import certify


def test_the_live_state_is_bounded_and_the_ledger_replays(tmp_path: Path) -> None:
    people = community(4)
    ledger = Ledger.open(people.bundle.genesis, tmp_path / "ledger")
    sizes = []
    blocks = play(people.bundle, people, ledger, 1)
    for _ in range(4):  # four quarters of a day, three blocks per slot
        for _ in itertools.islice(blocks, 3 * SLOTS_PER_DAY // 4):
            pass
        sizes.append(len(ledger.state))
    # Orders every slot, readings every slot: without pruning the state grows by the same
    # amount each quarter (783, 1206, 1639, 2090 entries with the readings left unpruned).
    # With it, the day's last quarter holds about what the first one grew to.
    assert sizes[3] <= sizes[0] * 1.2, sizes
    # Orders live from placement (ORDER_LEAD_SLOTS ahead) to their slot's settlement plus
    # RETAIN_MS: one order per household per slot in that window, not the day's 96.
    window = ORDER_LEAD_SLOTS + RETAIN_MS // SLOT_MS + 2
    assert len(list(ledger.state.scan(SLOT_INDEX_PREFIX))) <= 4 * window
    ledger.store.close()

    source = Store(tmp_path / "ledger")
    try:
        replayed = replay(people.bundle.genesis, source, tmp_path / "replay")
    finally:
        source.close()
    assert replayed.blocks == 3 * SLOTS_PER_DAY


def test_the_replay_checks_signatures_and_certificates_as_a_validator_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay is a validator re-executing fetched blocks: every transaction signature is
    checked once (the application's cache), and a block whose certificate another key signed
    is refused, not executed."""
    people = community(2)
    genesis = people.bundle.genesis
    ledger = Ledger.open(genesis, tmp_path / "ledger")
    for _ in itertools.islice(play(people.bundle, people, ledger, 1), 12):
        pass
    blocks = [ledger.store.get_block(height) for height in range(1, 13)]
    txs = sum(len(committed.block.txs) for committed in blocks if committed is not None)
    ledger.store.close()
    checked: list[bytes] = []
    real = Transaction.verify_signature

    def counted(tx: Transaction, *args: Any, **kwargs: Any) -> None:
        checked.append(tx.hash())
        real(tx, *args, **kwargs)

    monkeypatch.setattr(Transaction, "verify_signature", counted)
    source = Store(tmp_path / "ledger")
    try:
        assert replay(genesis, source, tmp_path / "replay").blocks == 12
        assert len(checked) == len(set(checked)) == txs > 0
        # Block 5 again, certified by a key that is not the validator's.
        committed = source.get_block(5)
        assert committed is not None
        forged = CommittedBlock(
            committed.block, certify(committed.block, [SigningKey(b"\x09" * 32)], genesis.chain_id)
        )
        source._history.put(store_schema.block_key(5), forged.encode())
        with pytest.raises(GridchainError):
            replay(genesis, source, tmp_path / "replay-forged")
    finally:
        source.close()


def test_the_report_has_every_figure(tmp_path: Path) -> None:
    report = run(2, 1, tmp_path, do_replay=True)
    days = {"first_day", "middle_day", "last_day", "last_over_first"}
    assert set(report["ms_per_block"]) == set(report["cpu_ms_per_block"]) == days
    assert report["live_state_entries"] > 0
    assert report["ledger_bytes"] == report["live_bytes"] + report["history_bytes"]
    assert report["live_bytes"] > 0
    assert report["history_bytes"] > 0
    assert report["replay"]["blocks"] == report["blocks"] == 3 * SLOTS_PER_DAY
    lines = format_report(report)
    assert any("replay" in line for line in lines)
    assert report["cpu_seconds"] > 0
    assert report["replay"]["cpu_seconds"] > 0

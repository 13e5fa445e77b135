"""bench footprint plays days that end just before the present (ADR 0046): its validator then
restarts on a recent ledger, as a live chain's, instead of settling years of empty slots."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gridchain.bench.state import DAY_MS, QUIET_AT_MS, SLOT_MS, recent_genesis_ms


@given(
    days=st.integers(min_value=1, max_value=400),
    now_ms=st.integers(min_value=1_700_000_000_000, max_value=2_000_000_000_000),
)
def test_the_played_days_end_within_half_an_hour_before_now(days: int, now_ms: int) -> None:
    genesis = recent_genesis_ms(days, now_ms)
    assert genesis % SLOT_MS == 0
    # bench.state.play: the last slot starts at genesis + days * DAY_MS; its last block is the
    # quiet one, QUIET_AT_MS later.
    last_block_ms = genesis + days * DAY_MS + QUIET_AT_MS
    assert now_ms - 2 * SLOT_MS < last_block_ms < now_ms

"""The invariants a fault run checks over the API once the faults have healed.

Pure functions over what the runner read: each returns the failures it found, and each
failure says what broke with the height, the validators and the hashes involved, so a report
can be acted on without re-running.  (Liveness is checked by the runner while it waits, since
it is about time, not about what was read.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Divergent heights listed in one failure before the rest are only counted.
SHOWN = 3


@dataclass(frozen=True, slots=True)
class Failure:
    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


@dataclass(frozen=True, slots=True)
class ChainCopy:
    """One validator's committed chain as its API served it: hashes and txs by height."""

    node: str
    hashes: tuple[str, ...]  # hashes[h - 1] is the block at height h
    txs: Mapping[str, int]  # tx hash -> height

    @property
    def height(self) -> int:
        return len(self.hashes)

    def at(self, height: int) -> str | None:
        return self.hashes[height - 1] if 1 <= height <= self.height else None


def _short(h: str | None) -> str:
    return "none" if h is None else h[:16]


def same_blocks(chains: list[ChainCopy]) -> list[Failure]:
    """Every validator holds the same block at every height they all have."""
    common = min(c.height for c in chains)
    bad = [h for h in range(1, common + 1) if len({c.at(h) for c in chains}) > 1]
    if not bad:
        return []
    lines = [
        f"height {h}: " + ", ".join(f"{c.node} {_short(c.at(h))}" for c in chains)
        for h in bad[:SHOWN]
    ]
    more = f" (and {len(bad) - SHOWN} more heights)" if len(bad) > SHOWN else ""
    return [
        Failure(
            "same blocks",
            f"validators disagree at {len(bad)} of {common} common heights, first at "
            f"{bad[0]}{more}: " + "; ".join(lines),
        )
    ]


def observations_kept(
    observed: Mapping[tuple[str, int], str], chains: Mapping[str, ChainCopy]
) -> list[Failure]:
    """A head a validator reported during the run is still its block at that height (no
    rollback after kill -9, no switch to another branch after a partition)."""
    failures = []
    for (node, height), block_hash in sorted(observed.items()):
        now = chains[node].at(height)
        if now != block_hash:
            where = f"now {_short(now)}" if now else f"now absent (head {chains[node].height})"
            failures.append(
                Failure(
                    "committed blocks kept",
                    f"{node} reported block {_short(block_hash)} at height {height} during the "
                    f"run, {where}",
                )
            )
    return failures[:SHOWN] + (
        [Failure("committed blocks kept", f"... and {len(failures) - SHOWN} more")]
        if len(failures) > SHOWN
        else []
    )


def no_tx_lost(
    seen: Mapping[str, tuple[int, str, str]], chains: Mapping[str, ChainCopy]
) -> list[Failure]:
    """Every transaction some validator reported committed (at a height, in a block) is in
    that block on every validator that has reached that height."""
    failures = []
    for tx_hash, (height, block_hash, reporter) in sorted(seen.items()):
        for chain in chains.values():
            if chain.height < height:
                continue
            where = chain.txs.get(tx_hash)
            if where != height or chain.at(height) != block_hash:
                failures.append(
                    Failure(
                        "no committed tx lost",
                        f"tx {tx_hash[:16]} was reported committed by {reporter} at height "
                        f"{height} in block {_short(block_hash)}; {chain.node} has it "
                        f"{'nowhere' if where is None else f'at height {where}'} and block "
                        f"{_short(chain.at(height))} at {height}",
                    )
                )
    return failures[:SHOWN] + (
        [Failure("no committed tx lost", f"... and {len(failures) - SHOWN} more")]
        if len(failures) > SHOWN
        else []
    )


def supply_conserved(totals: Mapping[str, tuple[int, int]], genesis_total: int) -> list[Failure]:
    """The sum of all balances (participants and governance) equals the genesis supply on
    every validator; ``totals`` is node -> (height read at, sum)."""
    return [
        Failure(
            "supply conserved",
            f"{node} at height {height}: balances sum to {total} mc, genesis issued "
            f"{genesis_total} mc (difference {total - genesis_total:+d})",
        )
        for node, (height, total) in sorted(totals.items())
        if total != genesis_total
    ]


def none_halted(halted: Mapping[str, str | None]) -> list[Failure]:
    return [
        Failure("no halt", f"{node} halted: {reason}")
        for node, reason in sorted(halted.items())
        if reason is not None
    ]

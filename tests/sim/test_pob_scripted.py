"""Scripted attacks on PoB validator-set changes, on the shipped driver path (ADR 0049).

Each attack runs twice: on the shipped code, where it must finalize nothing that conflicts, and
with the rule it targets bypassed for the run (tests/sim/pob_scripted.py's ``bypassed``), where
two honest validators must finalize different blocks, so that the first run is safe because of
the rule and not for want of an attack.  A few seconds each.
"""

from __future__ import annotations

from tests.sim.pob_set_fork import SWAP, run_set_fork


def test_a_fork_below_a_large_set_change_finalizes_nothing_that_conflicts() -> None:
    """Rule 1: a one-key swap of a 7-validator set (O -> N, honest_overlap 0) with a fork below
    it, two Byzantine validators voting on both sides and messages held back.  The shipped
    governance rule refuses the swap, and the same script forks nothing: the side that kept
    hearing the others finalizes its branch, the other side finalizes nothing above the fork."""
    outcome = run_set_fork()
    assert outcome.safe, outcome.trace
    assert outcome.refused(SWAP) == "validator_quorum_overlap"
    heights = outcome.heights()
    assert all(h >= 2 for h in heights.values()), heights
    assert max(heights.values()) >= 4, heights  # group Y finalized its branch above the fork


def test_the_scripted_fork_still_forks_the_drivers_when_the_swap_is_forced() -> None:
    """The script stays an attack on the shipped path: with rule 1 bypassed (the swap accepted,
    its run and the pending change as shipped), the swap's set is in force on one branch and
    not on the other, and two honest validators commit different blocks at height 3."""
    outcome = run_set_fork(forced=True)
    assert outcome.refused(SWAP) is None
    assert outcome.carried[SWAP], outcome.carried
    assert outcome.conflict == 3, outcome.trace

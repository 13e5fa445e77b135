"""Scripted attacks on PoB validator-set changes, on the shipped driver path (ADR 0049).

Each attack runs twice: on the shipped code, where it must finalize nothing that conflicts, and
with the rule it targets bypassed for the run (tests/sim/pob_scripted.py's ``bypassed``), where
two honest validators must finalize different blocks, so that the first run is safe because of
the rule and not for want of an attack.  A few seconds each.
"""

from __future__ import annotations

from tests.sim.pob_set_fork import SWAP, run_set_fork
from tests.sim.pob_sibling_fork import run_sibling_fork
from tests.sim.pob_stacked_fork import REMOVE_X, run_stacked_fork


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


def test_stacked_changes_above_a_fork_are_refused_one_at_a_time_and_stay_safe() -> None:
    """Rules 2 and 3: governance adds y, then removes x (each change safe alone; together the
    swap of the test above), both on one branch above a fork whose other branch has neither.
    The shipped code keeps the addition pending (no final run on its branch), so it refuses
    the removal (validator_change_pending) and counts every block against O: the branch that
    would need P and N finalizes nothing, the other side finalizes its own."""
    outcome = run_stacked_fork()
    assert outcome.safe, outcome.trace
    assert outcome.refusals.get(REMOVE_X) == ["validator_change_pending"]
    o = ("h1", "h2", "h3", "h4", "x", "z1", "z2")
    assert outcome.sets["X4"] == o
    assert outcome.sets["Y4"] == o
    assert outcome.pending["X4"] == tuple(sorted((*o, "y")))  # the addition waits for its run
    assert max(outcome.heights().values()) >= 5, outcome.heights()


def test_stacked_changes_fork_the_drivers_when_changes_come_in_at_a_fixed_distance() -> None:
    """Without rule 3 (the change in force the block after next, whatever is final) the same
    script gets both changes in on one branch: N counts there while the other branch counts O,
    and two honest validators commit different blocks at height 2."""
    outcome = run_stacked_fork("final-run")
    assert REMOVE_X not in outcome.refusals
    assert outcome.sets["X4"] == ("h1", "h2", "h3", "h4", "y", "z1", "z2")
    assert outcome.sets["Y4"] == ("h1", "h2", "h3", "h4", "x", "z1", "z2")
    assert outcome.conflict == 2, outcome.trace


def test_without_rule_2_alone_the_second_change_replaces_the_first_and_nothing_stacks() -> None:
    """What rule 2 does and does not do: with its refusal bypassed (rule 3 in), the removal
    replaces the pending addition (the one pending record, measured against O), so the
    addition is lost and no branch holds two changes: the script stays safe.  Rule 2 keeps a
    change from being lost; the stacking itself is closed by rule 3 (ADR 0049's lemma 2 holds
    either way: a branch's sets are each one change from the last)."""
    outcome = run_stacked_fork("pending")
    assert outcome.safe, outcome.trace
    assert REMOVE_X not in outcome.refusals
    assert outcome.pending["X4"] == ("h1", "h2", "h3", "h4", "z1", "z2")


def test_sibling_changes_on_two_branches_stay_pending_and_safe() -> None:
    """Rule 3: two changes with one nonce (remove a, remove b), one on each branch of a fork
    of a 5-validator set; each alone is safe, but quorums of S0 - a and S0 - b need not share
    an honest validator.  On the shipped code each stays pending on its branch (no final run),
    both branches are counted against S0 and neither side finalizes a conflicting block."""
    outcome = run_sibling_fork()
    assert outcome.safe, outcome.trace
    s0 = ("a", "b", "c", "d", "z")
    assert outcome.sets["X3"] == s0
    assert outcome.sets["Y3"] == s0
    assert outcome.pending["X3"] == ("b", "c", "d", "z")
    assert outcome.pending["Y3"] == ("a", "c", "d", "z")


def test_sibling_changes_fork_the_drivers_when_changes_come_in_at_a_fixed_distance() -> None:
    """Without rule 3 each branch counts its own change from height 5: both sides finalize,
    and two honest validators commit different blocks at height 2."""
    outcome = run_sibling_fork(forced=True)
    assert outcome.sets["X3"] == ("b", "c", "d", "z")
    assert outcome.sets["Y3"] == ("a", "c", "d", "z")
    assert outcome.conflict == 2, outcome.trace

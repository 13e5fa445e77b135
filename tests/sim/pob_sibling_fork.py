"""A scripted adversary with two sibling validator-set changes on two branches (ADR 0049,
rule 3), on the shipped driver path (tests/sim/pob_scripted.py).

Five validators S0 = {a, b, c, d, z} (f = 1, q = 4; z Byzantine).  Governance signs two changes
with one nonce, so a chain takes one of them: C removes a, D removes b.  Each alone is safe
(honest_overlap(S0, S0 - a) = 1), but S0 - a and S0 - b (q = 3 each) share only c, d and z, so
{b, c, z} and {a, d, z} are quorums of the two that share no honest validator.  The clients
hand both to z alone, the honest validators have nothing to propose of their own (no transfers),
and z builds every block the honest ones do not (real blocks, with its own driver).  Round by
round (0 is the first round after start):

0. z proposes B1, empty, to everyone; everyone votes for it in round 1.
1. z proposes X2 on B1 carrying C, to b, c and d.
2. b, c and d vote X2; z's vote for it reaches them only before round 4, so X2 is not
   notarized yet for anyone.  z proposes Y2 on B1 carrying D to a, c and d (a, holding no
   block of round 1, announced on B1 and built nothing: nothing to carry).
3. a, c and d vote Y2 (their own blocks on X2 wait for X2's notarization); z's vote for it
   reaches a now, c and d before round 5.  z proposes X3 on X2 to b, c and d.
4. b, c and d vote X3 (X2 is notarized for them now); z's vote reaches b now, c before round 6,
   d never.  z proposes Y3 on Y2 to a, c and d.
5. a, c and d vote Y3; z's vote reaches a now, d before round 6, c never.  z proposes X4 on X3
   to b and c.
6. on: b and c vote X4 and then their own blocks above it, a and d the best of their blocks on
   Y3 and then their own above it; z votes with each side.  Every message of one branch goes
   only to the validators named for it (b, c, d for X; a, c, d for Y); requests for missing
   blocks are lost.

On X the change C is carried by X2, on Y the change D by Y2.  If each came into force at a fixed
distance (the block after it, two heights above that: from height 5 on), X4 would be voted by
b, c and z (a quorum of S0 - a) and Y's block of round 5 by a, d and z (a quorum of S0 - b): the
two sides finalize X5 and Y5, conflicting from height 2 on.  The shipped rule (3) keeps each
change pending until a final run of rounds on its own branch (X2 round 1, X3 round 3: no run),
so both blocks are counted against S0, need four votes and get three: neither side finalizes.

``--forced`` takes rule 3 out for the run (:func:`tests.sim.pob_scripted.bypassed`:
``activation_run`` answers 1, a fixed distance), and the script must then break safety.

Run: ``python -m tests.sim.pob_sibling_fork [--forced] [--trace]``.
"""

from __future__ import annotations

import argparse
import sys

from tests.sim.pob_scripted import (
    VOTE,
    Attack,
    AttackOutcome,
    Change,
    ScriptedCluster,
    branch_link,
    echo,
    scripted,
)

REMOVE_A = "remove a"
REMOVE_B = "remove b"
X_SIDE = ("b", "c", "d")
Y_SIDE = ("a", "c", "d")
EVERYONE = ("a", "b", "c", "d")
#: round -> (label, parent, the changes it carries, who gets it); z proposes it a quarter in
PROPOSALS = {
    0: ("B1", None, (), EVERYONE),
    1: ("X2", "B1", (REMOVE_A,), X_SIDE),
    2: ("Y2", "B1", (REMOVE_B,), Y_SIDE),
    3: ("X3", "X2", (), X_SIDE),
    4: ("Y3", "Y2", (), Y_SIDE),
    5: ("X4", "X3", (), ("b", "c")),
}
#: round -> (the block z votes for, who gets the vote and when: None now, k just before round
#: k; a validator left out never gets it)
VOTES: dict[int, tuple[str, dict[str, int | None]]] = {
    1: ("B1", dict.fromkeys(EVERYONE)),
    2: ("X2", {"b": 4, "c": 4, "d": 4}),
    3: ("Y2", {"a": None, "c": 5, "d": 5}),
    4: ("X3", {"b": None, "c": 6}),
    5: ("Y3", {"a": None, "d": 6}),
}


def sides(branch: str, r: int) -> tuple[str, ...]:
    """Who hears of a branch: b, c, d of X (above X2), a, c, d of Y (above Y2)."""
    return X_SIDE if branch == "X2" else Y_SIDE


SIBLING_FORK = Attack(
    name="sibling-fork",
    honest=("a", "b", "c", "d"),
    byzantine=("z",),
    joiner=None,
    changes=(Change(REMOVE_A, remove=("a",), nonce=0), Change(REMOVE_B, remove=("b",), nonce=0)),
    groups={"X": ("b", "c"), "Y": ("a", "d")},
    link=branch_link(sides, ("X2", "Y2")),
    act=scripted("z", PROPOSALS, VOTES, 6, echo(lambda r, group: VOTE)),
    changes_to_all=False,
    transfers=False,
    drop_requests=True,
    rounds=10,
)


def run_sibling_fork(*, forced: bool = False) -> AttackOutcome:
    return ScriptedCluster(SIBLING_FORK, rule="final-run" if forced else None).play()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", action="store_true", help="print every event of the run")
    parser.add_argument(
        "--forced", action="store_true", help="bypass rule 3 (the final run) for the run"
    )
    args = parser.parse_args(argv)
    outcome = run_sibling_fork(forced=args.forced)
    if args.trace:
        print(outcome.trace)
    sets = f"set of height 5: {outcome.set_of('X3')} on X, {outcome.set_of('Y3')} on Y"
    heights = outcome.heights()
    if outcome.safe:
        print(f"sibling fork: {REMOVE_A} on X, {REMOVE_B} on Y; {sets}; safe; heights {heights}")
        return 0
    print(
        f"sibling fork: {REMOVE_A} on X, {REMOVE_B} on Y; {sets}; SAFETY VIOLATED: two honest "
        f"validators committed different blocks at height {outcome.conflict}; heights {heights}"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""A scripted adversary with two validator-set changes stacked above a fork (ADR 0049, rules 2
and 3), on the shipped driver path (tests/sim/pob_scripted.py).

Seven validators O = {h1, h2, h3, h4, x, z1, z2} (f = 2, q = 5; z1 and z2 Byzantine) and a
joiner y.  Governance replaces x by y the way a council should, in two changes each safe on its
own: C1 adds y (O -> P = O + y, q = 6; honest_overlap 1), then C2 removes x (P -> N = P - x,
q = 5; honest_overlap 1).  O and N are the sets of the one-key swap of tests/sim/pob_set_fork.py:
a quorum of each, {z1, z2, x, h3, h4} and {z1, z2, y, h1, h2}, share no honest validator.  The
clients hand both changes to z1 alone; the honest validators have no transfers, so they build
only above a block that carries something (empty blocks, so that it can become final), and z1
builds every other block (real blocks, with its own driver).  Rounds (0 is the first after start):

0. z1 proposes B1, empty, to everyone; all vote for it in round 1.
1. z1 proposes X2 on B1 carrying C1, to X's side {h1, h2, y, x}.
2. h1, h2 and x vote X2; z's votes reach them only before round 4.  z1 proposes Y2 on B1 to
   Y's side {h3, h4, x}.
3. h3, h4 and x vote Y2 (z's votes reach them at once).  z1 proposes X3 on X2 carrying C2.
4. h1, h2 and x vote X3; z's votes reach h1, h2 and y at once, x only before round 6.  z1
   proposes Y3 on Y2.
5. Y's side votes Y3.  z1 proposes X4 on X3.
6. h1, h2, y and x vote X4; z's votes never reach x.  z1 proposes Y4 on Y3, and Y5, Y6, ... in
   the next rounds; X's side builds its own blocks above X4 (x's among them in round 6: only
   h1, h2 and y hear of X's branch from round 7 on).
7. on: z1 and z2 vote with each side.

Each message of one branch reaches only that branch's side; requests are lost.  If a change came
into force at a fixed distance (the block after it, two heights above that) the chain would take
C2 in X3 (C1 being in force from X3 on), P would count X4 (h1, h2, y, x, z1, z2), N the blocks
above it (h1, h2, y, z1, z2) while Y's branch counts O (h3, h4, x, z1, z2): both sides finalize.
The shipped code keeps C1 pending until a final run on its branch (X2 round 1, X3 round 3: no
run), so it refuses C2 in X3 (``validator_change_pending``, rule 2); X4 is counted against O
(x's vote makes it), the block above it against O too, where h1, h2, z1 and z2 are one short.

Two forced variants (:func:`tests.sim.pob_scripted.bypassed`):

* ``--forced`` takes rule 3 out (``activation_run`` answers 1, a fixed distance); rule 2 stays,
  and only lets C2 in once C1 is "in force" by that rule: the script must break safety.
* ``--bypass pending`` takes rule 2 out only: C2 then replaces C1 in the one pending record
  (measured against O, C1 is lost), so nothing stacks, and rule 3 keeps the run safe.  Rule 2 is
  not what makes stacking safe in this model; it keeps the first change from being lost.

Run: ``python -m tests.sim.pob_stacked_fork [--forced | --bypass RULE] [--trace]``.
"""

from __future__ import annotations

import argparse
import sys

from tests.sim.pob_scripted import (
    BYPASSES,
    VOTE,
    Attack,
    AttackOutcome,
    Change,
    ScriptedCluster,
    branch_link,
    echo,
    scripted,
)

ADD_Y = "add y"
REMOVE_X = "remove x"
EVERYONE = ("h1", "h2", "h3", "h4", "x", "y")
X_SIDE = ("h1", "h2", "y", "x")
Y_SIDE = ("h3", "h4", "x")
#: round -> (label, parent, the changes it carries, who gets it); z1 proposes it a quarter in
PROPOSALS = {
    0: ("B1", None, (), EVERYONE),
    1: ("X2", "B1", (ADD_Y,), X_SIDE),
    2: ("Y2", "B1", (), Y_SIDE),
    3: ("X3", "X2", (REMOVE_X,), X_SIDE),
    4: ("Y3", "Y2", (), Y_SIDE),
    5: ("X4", "X3", (), X_SIDE),
    6: ("Y4", "Y3", (), Y_SIDE),
    7: ("Y5", "Y4", (), Y_SIDE),
    8: ("Y6", "Y5", (), Y_SIDE),
    9: ("Y7", "Y6", (), Y_SIDE),
}
#: round -> (the block z1 and z2 vote for, who gets the votes and when: None now, k just
#: before round k; a validator left out never gets them)
VOTES: dict[int, tuple[str, dict[str, int | None]]] = {
    1: ("B1", dict.fromkeys(EVERYONE)),
    2: ("X2", {"h1": 4, "h2": 4, "y": 4, "x": 4}),
    3: ("Y2", dict.fromkeys(Y_SIDE)),
    4: ("X3", {"h1": None, "h2": None, "y": None, "x": 6}),
    5: ("Y3", dict.fromkeys(Y_SIDE)),
    6: ("X4", dict.fromkeys(("h1", "h2", "y"))),
}


def sides(branch: str, r: int) -> tuple[str, ...]:
    """Who hears of a branch: X's side above X2 (without x from round 7 on), Y's above Y2."""
    if branch == "X2":
        return X_SIDE if r < 7 else ("h1", "h2", "y")
    return Y_SIDE


STACKED_FORK = Attack(
    name="stacked-fork",
    honest=("h1", "h2", "h3", "h4", "x"),
    byzantine=("z1", "z2"),
    joiner="y",
    changes=(Change(ADD_Y, add=("y",)), Change(REMOVE_X, remove=("x",))),
    groups={"X": ("h1", "h2", "y"), "Y": ("h3", "h4", "x")},
    link=branch_link(sides, ("X2", "Y2")),
    act=scripted("z1", PROPOSALS, VOTES, 7, echo(lambda r, group: VOTE)),
    changes_to_all=False,
    transfers=False,
    drop_requests=True,
    rounds=11,
)


def run_stacked_fork(rule: str | None = None) -> AttackOutcome:
    """The attack on the shipped code, or with one rule bypassed for the run."""
    return ScriptedCluster(STACKED_FORK, rule=rule).play()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", action="store_true", help="print every event of the run")
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--forced", action="store_true", help="bypass rule 3 (the final run) for the run"
    )
    how.add_argument("--bypass", choices=BYPASSES, help="bypass this rule for the run")
    args = parser.parse_args(argv)
    outcome = run_stacked_fork("final-run" if args.forced else args.bypass)
    if args.trace:
        print(outcome.trace)
    refused = outcome.refusals.get(REMOVE_X, [])
    second = f"{REMOVE_X} refused ({', '.join(refused)})" if refused else f"{REMOVE_X} taken"
    sets = f"set of height 6: {outcome.set_of('X4')} on X, {outcome.set_of('Y4')} on Y"
    heights = outcome.heights()
    head = f"stacked fork: {ADD_Y}, then {second}; {sets}"
    if outcome.safe:
        print(f"{head}; safe; committed heights {heights}")
        return 0
    print(
        f"{head}; SAFETY VIOLATED: two honest validators committed different blocks at height "
        f"{outcome.conflict}; committed heights {heights}"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""A scripted adversary against one PoB validator-set change too large to overlap (ADR 0049,
rule 1), on the shipped driver path (tests/sim/pob_scripted.py).

Seven validators O = {h1, h2, h3, h4, x, z1, z2} (f = 2, q = 5; z1 and z2 Byzantine) and a
joiner y.  Governance swaps one key: N = O - x + y, the change whose quorums need not share an
honest validator (honest_overlap(O, N) = 0).  The honest validators build their own blocks from
the clients' transfers; the first block, B1, carries the swap (when the chain takes it).  The
adversary lets B1, B2, B3 (three rounds in a row) through to everyone, then, in the split round
(B3's next):

* group X = {h1, h2, y} hears everything; group Y = {h3, h4, x} hears nothing from X from the
  split on, and X hears Y only during the split round;
* z1 and z2 vote with X (for B3, in the split round); to Y they only announce on B2, so Y sees
  three votes for B3, never five: B3 is not notarized for Y;
* after the split, z1 and z2 vote with each group.

With the swap in B1 and its final run B1, B2, B3 (the driver's pending-change path), N is the set
from height 5 on B3's branch: X's block A4 on B3 is voted by h1, h2, y, z1 and z2, a quorum of N,
so B2, B3, A4 are a final run for X, which commits B3.  Y falls back to B2 and builds R5, R6, R7
in consecutive rounds with z1 and z2, counted against O (their run restarts at R5, so the swap
is not in force there yet), and commits R5 at height 3: two final blocks at one height.  The
shipped code refuses the swap (``validator_quorum_overlap``): A4's voters are then four of O, A4
is never notarized, and only Y finalizes anything above B2.

``--forced`` takes rule 1 out for the run (:func:`tests.sim.pob_scripted.bypassed`:
``honest_overlap`` answers 1), so the chain accepts the swap as the code before ADR 0049 did:
the script must then break safety, or it would be no attack.  Rules 2 and 3 stay in: the swap
is in force on X's branch only after its final run, as the shipped driver computes it.

Run: ``python -m tests.sim.pob_set_fork [--forced] [--trace]``.
"""

from __future__ import annotations

import argparse
import sys

from gridchain.protocol.encoding import Record
from tests.sim.pob_scripted import (
    ABSTAIN,
    VOTE,
    Attack,
    AttackOutcome,
    Change,
    ScriptedCluster,
    echo,
)

SWAP = "swap x -> y"


def link(cluster: ScriptedCluster, sender: str, receiver: str, message: Record, r: int) -> bool:
    """From the split on: within a group always; Y to X only in the split round."""
    ours, theirs = cluster.group_of[sender], cluster.group_of[receiver]
    return ours == theirs or (ours == "Y" and r == 0)


def byzantine_mode(r: int, group: str) -> str | None:
    """z1 and z2 vote with each group, except for B3 with Y in the split round."""
    return ABSTAIN if (r, group) == (0, "Y") else VOTE


SET_FORK = Attack(
    name="set-fork",
    honest=("h1", "h2", "h3", "h4", "x"),
    byzantine=("z1", "z2"),
    joiner="y",
    changes=(Change(SWAP, add=("y",), remove=("x",)),),
    groups={"X": ("h1", "h2", "y"), "Y": ("h3", "h4", "x")},
    link=link,
    act=echo(byzantine_mode),
    split_after=3,
)


def run_set_fork(*, forced: bool = False) -> AttackOutcome:
    return ScriptedCluster(SET_FORK, rule="overlap" if forced else None).play()


def report(outcome: AttackOutcome, what: str, label: str) -> str:
    """One line: what became of the change, and whether the run stayed safe."""
    refused = outcome.refused(label)
    fate = f"refused ({refused})" if refused is not None else "accepted"
    heights = outcome.heights()
    if outcome.safe:
        return f"{what}: {label} {fate}; safe; committed heights {heights}"
    return (
        f"{what}: {label} {fate}; SAFETY VIOLATED: two honest validators committed different "
        f"blocks at height {outcome.conflict}; committed heights {heights}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", action="store_true", help="print every event of the run")
    parser.add_argument(
        "--forced", action="store_true", help="bypass rule 1 (the overlap refusal) for the run"
    )
    args = parser.parse_args(argv)
    outcome = run_set_fork(forced=args.forced)
    if args.trace:
        print(outcome.trace)
    print(report(outcome, "set fork", SWAP))
    return 0 if outcome.safe else 1


if __name__ == "__main__":
    sys.exit(main())

"""Replay one simulation by its seed and scenario, printing what happened.

Usage (the command a failing run prints)::

    python -m tests.sim.replay --seed 1234 --scenario lossy [--trace]
    python -m tests.sim.replay --engine epob --seed 1234 --scenario lossy [--trace]

Without ``--trace`` it prints the outcome, or the failure with the last events; with it, every
event of the run.  Runs are deterministic, so this is the failing run, event for event.
``--engine`` picks the simulator (``pbft``, the default, or ``epob``).
"""

from __future__ import annotations

import argparse
import sys

from tests.sim.cluster import SCENARIO_NAMES, SCENARIOS, Cluster, SimFailure, scenario_for_seed


def main(argv: list[str] | None = None) -> int:
    from tests.sim import epob_cluster

    parser = argparse.ArgumentParser(prog="python -m tests.sim.replay", description=__doc__)
    parser.add_argument("--engine", choices=("pbft", "epob"), default="pbft")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument(
        "--scenario",
        choices=sorted({*SCENARIO_NAMES, *epob_cluster.ALL_SCENARIOS}),
        help="the fault mix (default: the one the test suite uses for this seed)",
    )
    parser.add_argument("--trace", action="store_true", help="print every event of the run")
    args = parser.parse_args(argv)
    cluster: Cluster
    if args.engine == "epob":
        name = args.scenario or epob_cluster.scenario_for_seed(args.seed)
        if name not in epob_cluster.ALL_SCENARIOS:
            parser.error(f"no ePoB scenario {name!r}")
        cluster = epob_cluster.EpobCluster(
            epob_cluster.ALL_SCENARIOS[name], args.seed, full_trace=args.trace
        )
    else:
        name = args.scenario or scenario_for_seed(args.seed)
        if name not in SCENARIOS:
            parser.error(f"no PBFT scenario {name!r}")
        cluster = Cluster(SCENARIOS[name], args.seed, full_trace=args.trace)
    try:
        outcome = cluster.run()
    except SimFailure as failure:
        print(failure)
        return 1
    if args.trace:
        print(cluster.render_trace())
    print(
        f"seed {outcome.seed} scenario {outcome.scenario}: ok after {outcome.sim_time_ms} ms "
        f"simulated, {outcome.events} events, {outcome.view_changes} view-change messages; "
        f"heights {outcome.heights}; evidence {outcome.evidence}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

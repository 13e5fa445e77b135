"""``gridchain node run --config FILE`` and ``gridchain node init`` (genesis/peer_init.py).

With ``GRIDCHAIN_PROFILE_DIR`` set, the validator runs under cProfile and writes
``<dir>/<node name>-<pid>.prof`` when it stops (SIGTERM), so ``bench consensus`` can be
profiled per validator process without a change to the launcher: the variable is inherited by
the processes the bench starts.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

PROFILE_DIR_ENV = "GRIDCHAIN_PROFILE_DIR"


def _run(args: argparse.Namespace) -> int:
    from gridchain.node.server import run_node  # noqa: PLC0415 - keep `gridchain --help` fast

    profile_dir = os.environ.get(PROFILE_DIR_ENV)
    if not profile_dir:
        return run_node(Path(args.config))
    import cProfile  # noqa: PLC0415 - only when profiling

    profiler = cProfile.Profile()
    try:
        return profiler.runcall(run_node, Path(args.config))
    finally:
        out = Path(profile_dir) / f"{Path(args.config).parent.name}-{os.getpid()}.prof"
        out.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(out)


def register(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text)
    node_sub = parser.add_subparsers(dest="node_command", required=True, metavar="SUBCOMMAND")
    run = node_sub.add_parser("run", help="run a validator until SIGTERM")
    run.add_argument("--config", required=True, help="the node's config.toml")
    run.set_defaults(handler=_run)
    from gridchain.genesis.peer_init import add_init_parser  # noqa: PLC0415 - keep start fast

    add_init_parser(node_sub)

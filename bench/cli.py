"""``gridchain bench <name> [options]``: run the benchmark module ``bench/<name>.py``.

Each benchmark module exposes ``main(argv) -> int``, prints a table for people (or JSON with
``--json``) and the conditions it ran under.  Benchmarks measure; tests never assert timings.
"""

from __future__ import annotations

import argparse
import importlib
import signal
from types import FrameType
from typing import Any

BENCHMARKS = {
    "transfers": "committed transfers/s on one node (synced writes) beside Ed25519 verify/s",
    "consensus": "committed tx/s and finality latency per engine and cluster size on loopback",
    "meters": "readings/s one meter bridge sustains, and RS-485 bus use at 9600 baud",
    "schedule": "EV charge/discharge scheduling: PFL, solve time and competitive ratios",
    "market": "order matching: engine orders/s in memory, on the state, through a testnet",
    "cdday": "community PFL (eq. 6.4) a chain achieves over a day vs offline (--loop: metered)",
    "state": "ms per block over a simulated community year (real app + LevelDB), and replay",
    "soak": "RSS and open files of 4 PBFT validators under half-saturation load, and their slope",
    "gateway": "honest commit latency through a gateway, unloaded and under five kinds of flood",
    "links": "frames/s and handshakes/s of one peer link on loopback (the network stack alone)",
    "agent": "agent forecast error vs persistence, and its plan's cost vs the rule-based base case",
    "footprint": "RSS and idle CPU of a validator, a bridge and a gateway on an aged ledger",
}


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the benchmarks' clusters are stopped on the way out.

    Without it a benchmark killed with SIGTERM (``timeout``, ``kill``) left its validator
    processes running: they are started in their own sessions, like a testnet's.
    """
    raise SystemExit(128 + signum)


def _run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    module: Any = importlib.import_module(f"gridchain.bench.{args.name}")
    code: int = module.main(list(args.args))
    return code


def register(sub: Any, name: str, help_text: str) -> None:
    lines = "\n".join(f"  {k:<10} {v}" for k, v in BENCHMARKS.items())
    parser = sub.add_parser(
        name,
        help=help_text,
        description=f"benchmarks:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="options of that benchmark")
    parser.set_defaults(handler=_run)

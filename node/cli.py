"""``gridchain node run --config FILE``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from gridchain.node.server import run_node  # noqa: PLC0415 - keep `gridchain --help` fast

    return run_node(Path(args.config))


def register(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text)
    node_sub = parser.add_subparsers(dest="node_command", required=True, metavar="SUBCOMMAND")
    run = node_sub.add_parser("run", help="run a validator until SIGTERM")
    run.add_argument("--config", required=True, help="the node's config.toml")
    run.set_defaults(handler=_run)

"""``gridchain gateway run --config FILE``: the public edge in front of the validators."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from gridchain.gateway.run import run_gateway  # noqa: PLC0415 - keep --help fast

    return run_gateway(Path(args.config))


def register(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text)
    gw_sub = parser.add_subparsers(dest="gateway_command", required=True, metavar="SUBCOMMAND")
    run = gw_sub.add_parser("run", help="run a gateway until SIGTERM")
    run.add_argument("--config", required=True, help="the gateway's config.toml")
    run.set_defaults(handler=_run)

"""The one ``gridchain`` command.  Each area registers its own subcommand parser.

Subcommand modules are imported lazily so that ``gridchain wallet ...`` on a peer device does
not pay for importing the node runtime, and a missing optional piece fails only its command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gridchain.protocol.errors import GridchainError

#: subcommand -> (module exposing ``register(subparsers)``, help text)
COMMANDS: dict[str, tuple[str, str]] = {
    "genesis": ("gridchain.genesis.cli", "create a chain: genesis.json, node configs and wallets"),
    "node": ("gridchain.node.cli", "run a validator node"),
    "gateway": (
        "gridchain.gateway.cli",
        "run a gateway: the public HTTPS edge that filters floods before the validators",
    ),
    "testnet": ("gridchain.node.testnet_cli", "run a local testnet of validator processes"),
    "wallet": ("gridchain.wallet.cli", "keys, balances and transactions"),
    "gov": ("gridchain.wallet.gov", "the governance council: propose, approve, list"),
    "meterbridge": (
        "gridchain.meterbridge.cli",
        "read Modbus meters and send signed readings; simulate",
    ),
    "agent": (
        "gridchain.agent.cli",
        "the household's smart agent: forecast, plan, trade within limits, serve its API",
    ),
    "bench": ("gridchain.bench.cli", "benchmarks that measure and print"),
}

Handler = Callable[[argparse.Namespace], int]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` just that subcommand's (a faster start)."""
    parser = argparse.ArgumentParser(
        prog="gridchain", description="Peer-to-peer energy trading on a permissioned chain."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            continue
        module: Any = importlib.import_module(module_name)
        module.register(sub, name, help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argv[0] if argv else None
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except GridchainError as exc:
        if getattr(args, "json", False):
            import json  # noqa: PLC0415 - only on the error path

            print(json.dumps({"error": {"code": exc.code, "message": exc.message}}))
        else:
            print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

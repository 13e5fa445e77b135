"""``gateway run``: the process.  Follow the chain over the links, serve the API, stop on a
signal with the links closed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import structlog

from gridchain.gateway.chain import FollowerChain
from gridchain.gateway.config import GatewayConfig, load_gateway_config
from gridchain.gateway.server import serve_gateway
from gridchain.logs import configure_logging
from gridchain.node.follower import Follower

log = structlog.get_logger("gridchain.gateway")


async def _run(config: GatewayConfig) -> None:
    follower = Follower.from_config(config.link)
    await follower.start()
    try:
        await serve_gateway(
            config.settings,
            FollowerChain(follower),
            follower.chain_id,
            encryption_keys=follower.genesis.encryption_keys(),
        )
    finally:
        await follower.stop()


def run_gateway(config_path: Path) -> int:
    config = load_gateway_config(config_path)
    configure_logging(config.name, config.log.level)
    # The standard event loop, not uvloop: the guard upgrades admitted connections with
    # loop.start_tls, and uvloop 0.23's server-side start_tls never completes the handshake.
    with asyncio.Runner() as runner:
        try:
            runner.run(_run(config))
        except OSError as exc:
            log.error("cannot listen", reason=str(exc))
            print(f"error: cannot listen: {exc}", file=sys.stderr)
            return 1
    return 0

"""Run one validator until SIGTERM or SIGINT: start the node, serve the API, stop cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import structlog
from aiohttp import web

from node.api import build_app
from node.config import NodeConfig, load_config
from node.logs import configure_logging
from node.runtime import Node


async def serve(config: NodeConfig, *, ready: asyncio.Event | None = None) -> None:
    """Start the node and its API; return after a stop signal, with the ledger closed."""
    node = Node(config)
    runner = web.AppRunner(build_app(node), access_log=None, handle_signals=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log = structlog.get_logger("gridchain.server")
    try:
        await node.start()
        await runner.setup()
        site = web.TCPSite(runner, config.api.host, config.api.port, reuse_address=True)
        await site.start()
        log.info("api listening", host=config.api.host, port=config.api.port)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stop signal received")
    finally:
        await runner.cleanup()
        await node.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_node(config_path: Path) -> int:
    config = load_config(config_path)
    configure_logging(config.node.name, config.log.level)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(config))
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS): a faster loop for the same code."""
    try:
        import uvloop  # noqa: PLC0415 - optional accelerator, absent on some platforms
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory

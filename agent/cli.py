"""``gridchain agent run --config FILE``: the household's smart agent until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any


def register(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text)
    agent_sub = parser.add_subparsers(dest="agent_command", required=True, metavar="SUBCOMMAND")
    run = agent_sub.add_parser(
        "run", help="forecast, plan and trade for the household, and serve the agent API"
    )
    run.add_argument("--config", required=True, help="the agent's config.toml")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from aiohttp import web  # noqa: PLC0415 - keep `gridchain --help` fast

    from gridchain.agent.api import make_app  # noqa: PLC0415
    from gridchain.agent.config import load_config  # noqa: PLC0415
    from gridchain.agent.runner import Agent  # noqa: PLC0415
    from gridchain.api.client import NodeClient  # noqa: PLC0415
    from gridchain.logs import configure_logging  # noqa: PLC0415
    from gridchain.protocol.keystore import open_keystore  # noqa: PLC0415
    from gridchain.wallet.keystore_file import keystore_address, read_keystore  # noqa: PLC0415
    from gridchain.wallet.password import read_password  # noqa: PLC0415

    config = load_config(Path(args.config))
    # the key is opened before anything starts, so a wrong password stops the agent at once
    doc = read_keystore(config.wallet)
    address = keystore_address(doc, config.wallet)
    key = open_keystore(doc, read_password())
    log = configure_logging(f"agent-{config.name}", "info")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with NodeClient(config.node_url, ca_file=config.node_ca) as node:
            agent = Agent(config, key, address, node)
            agent.load_actions()
            runner = web.AppRunner(make_app(agent))
            await runner.setup()
            await web.TCPSite(runner, config.api.host, config.api.port).start()
            log.info("agent_started", address=address, api_port=config.api.port)
            try:
                await agent.run(stop)
            finally:
                await runner.cleanup()

    asyncio.run(main())
    return 0

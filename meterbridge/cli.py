"""``gridchain meterbridge run --config FILE`` and ``gridchain meterbridge simulate ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from gridchain.protocol.errors import GridchainError


class UsageError(GridchainError):
    code = "bad_arguments"


def register(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text)
    mb_sub = parser.add_subparsers(dest="meterbridge_command", required=True, metavar="SUBCOMMAND")
    run = mb_sub.add_parser("run", help="poll meters and send signed readings until SIGTERM")
    run.add_argument("--config", required=True, help="the bridge's config.toml")
    run.add_argument(
        "--meter-time-scale",
        type=float,
        metavar="SPEED",
        help="meter seconds per wall-clock second, for meters simulated with --speed (overrides "
        "the config's meter_time_scale; real meters: 1)",
    )
    run.set_defaults(handler=_run)

    sim = mb_sub.add_parser("simulate", help="serve simulated Modbus meters")
    where = sim.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT", help="RTU frames over TCP on this address")
    where.add_argument("--serial", metavar="DEVICE", help="a serial device, e.g. a socat pty end")
    sim.add_argument("--baudrate", type=int, default=9600, help="serial baud rate (9600)")
    sim.add_argument(
        "--line-timing",
        type=int,
        metavar="BAUD",
        help="delay each answer by its frames' time on an RS-485 line at BAUD",
    )
    sim.add_argument(
        "--households",
        type=int,
        default=0,
        help="households of 4 meters (net SDM630, PV SDM120, EV generic, battery SDM120) at "
        "slave ids 4i+1..4i+4; 1 when no --household or --meter is given",
    )
    sim.add_argument(
        "--household",
        action="append",
        default=[],
        metavar="DEVICES",
        help="a household with only these devices, e.g. PV,Battery,Load (repeatable; follows "
        "the --households ones in slave id order)",
    )
    sim.add_argument(
        "--tag",
        default=None,
        help="ignored; lets a launcher recognise the process it started by its command line",
    )
    sim.add_argument(
        "--meter",
        action="append",
        default=[],
        metavar="SLAVE:PROFILE:KIND",
        help="an extra meter (kind: pv, load, ev, battery, net); repeatable",
    )
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    sim.add_argument(
        "--start-ms", type=int, help="simulated start time, ms since the epoch (default: now)"
    )
    sim.set_defaults(handler=_simulate)


async def _until_signal(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def _run(args: argparse.Namespace) -> int:
    from aiohttp import web  # noqa: PLC0415 - keep `gridchain --help` fast

    from gridchain.logs import configure_logging  # noqa: PLC0415
    from gridchain.meterbridge.agent import make_app  # noqa: PLC0415
    from gridchain.meterbridge.bridge import Bridge  # noqa: PLC0415
    from gridchain.meterbridge.config import load_config  # noqa: PLC0415

    config = load_config(Path(args.config))
    if args.meter_time_scale is not None:
        config = config.model_copy(update={"meter_time_scale": max(1.0, args.meter_time_scale)})
    log = configure_logging(f"meterbridge-{config.name}", config.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        await _until_signal(stop)
        async with Bridge(config) as bridge:
            runner: web.AppRunner | None = None
            if config.agent_api.port:
                runner = web.AppRunner(make_app(bridge))
                await runner.setup()
                await web.TCPSite(runner, config.agent_api.host, config.agent_api.port).start()
            log.info(
                "meterbridge_started",
                meters=len(config.meters),
                interval_s=config.interval_s,
                agent_api=config.agent_api.port or None,
            )
            try:
                await bridge.run(stop)
            finally:
                if runner is not None:
                    await runner.cleanup()

    asyncio.run(main())
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from gridchain.meterbridge.profiles import load_profile  # noqa: PLC0415
    from gridchain.meterbridge.simulator import (  # noqa: PLC0415
        KINDS,
        MeterSimulator,
        SimClock,
        SimMeter,
        household_meters,
        household_with,
    )

    meters: list[SimMeter] = []
    if not args.households and not args.household and not args.meter:
        args.households = 1
    for i in range(args.households):
        meters.extend(household_meters(4 * i + 1))
    for devices in args.household:
        try:
            household = household_with([d for d in devices.split(",") if d])
        except ValueError as exc:
            raise UsageError(f"--household {devices!r}: {exc}") from None
        meters.extend(household_meters(len(meters) + 1, household))
    for spec in args.meter:
        parts = spec.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or parts[2] not in KINDS:
            raise UsageError(f"--meter {spec!r}: expected SLAVE:PROFILE:KIND, KIND in {KINDS}")
        meters.append(SimMeter(int(parts[0]), load_profile(parts[1]), parts[2]))
    ids = [m.slave_id for m in meters]
    if len(set(ids)) != len(ids) or not all(1 <= i <= 247 for i in ids):
        raise UsageError(f"slave ids must be unique and in 1..247, got {ids}")
    simulator = MeterSimulator(
        meters, clock=SimClock(args.speed, args.start_ms), line_baud=args.line_timing
    )

    async def main() -> None:
        stop = asyncio.Event()
        await _until_signal(stop)
        if args.tcp:
            host, _, port = args.tcp.rpartition(":")
            if not port.isdigit():
                raise UsageError(f"--tcp {args.tcp!r}: expected HOST:PORT")
            await simulator.start_tcp(host or "127.0.0.1", int(port))
            where = f"RTU over TCP on {args.tcp}"
        else:
            await simulator.start_serial(args.serial, baudrate=args.baudrate)
            where = f"serial {args.serial} at {args.baudrate} 8N1"
        print(f"simulating {len(meters)} meters (slave ids {ids}) on {where}", flush=True)
        await stop.wait()
        await simulator.stop()

    asyncio.run(main())
    return 0

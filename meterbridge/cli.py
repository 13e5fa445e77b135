"""``gridchain meterbridge run --config FILE`` and ``gridchain meterbridge simulate ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
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
        "slave ids 4i+1..4i+4; 1 when no other device is given",
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
    sim.add_argument(
        "--csms",
        metavar="URL",
        help="the OCPP central system the --charger charge points connect to, e.g. "
        "ws://127.0.0.1:9000 (the bridge's [devices] csms_port)",
    )
    sim.add_argument(
        "--charger",
        action="append",
        default=[],
        metavar="ID:SLAVE[:PROFILE]",
        help="an OCPP 1.6J charge point ID whose meter (default eastron-sdm120) is at SLAVE "
        "and measures what it delivers; repeatable",
    )
    sim.add_argument(
        "--ev",
        action="append",
        default=[],
        metavar="ID:KWH:SOC:MAX_KW[:ARRIVE_S[:DEPART_S]]",
        help="an EV at charger ID: battery kWh, state of charge 0..1, most it takes (kW), "
        "plugged in ARRIVE_S..DEPART_S wall seconds after the start (default: from the start, "
        "staying)",
    )
    sim.add_argument(
        "--inverter",
        action="append",
        default=[],
        metavar="SLAVE:KWH:SOC[:PROFILE]",
        help="a battery inverter at SLAVE that follows its setpoint register (default profile "
        "generic-battery-inverter) and measures itself; repeatable",
    )
    sim.add_argument(
        "--meter-values-s",
        type=float,
        default=5.0,
        help="how often a charge point sends MeterValues (5 s)",
    )
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    sim.add_argument(
        "--start-ms", type=int, help="simulated start time, ms since the epoch (default: now)"
    )
    sim.add_argument(
        "--clock",
        choices=["utc", "daylight"],
        default="utc",
        help="the simulated hour of day: utc (the sun follows UTC) or daylight (shifted by "
        "whole hours into the day, so a demo started at night still meters PV)",
    )
    sim.add_argument(
        "--registers",
        metavar="FILE",
        help="keep the meters' cumulative registers in FILE across restarts, as a real meter "
        "keeps them through a power cut (read at start, written every second and at stop)",
    )
    sim.set_defaults(handler=_simulate)


async def _until_signal(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


#: How long the simulator's charge points get to close their sessions once asked to stop.
STOP_GRACE_S = 3.0


async def _stop_within(tasks: list[asyncio.Future[None]], grace_s: float) -> None:
    """Let ``tasks`` finish within ``grace_s``, then cancel them: a charge point waiting on a
    CSMS that already went away must not keep the simulator from exiting on SIGTERM."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


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


def _fields(flag: str, spec: str, count: range) -> list[str]:
    parts = spec.split(":")
    if len(parts) not in count:
        raise UsageError(f"{flag} {spec!r}: expected {count.start}..{count.stop - 1} fields")
    return parts


def _number(flag: str, spec: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag} {spec!r}: {text!r} is not a number") from None
    if value < 0:
        raise UsageError(f"{flag} {spec!r}: {text!r} is negative")
    return value


def _sim_devices(args: argparse.Namespace, meters: list[Any], clock: Any) -> list[Any]:
    """The --charger, --ev and --inverter devices: their meters join ``meters``."""
    from gridchain.meterbridge.profiles import load_profile  # noqa: PLC0415
    from gridchain.meterbridge.sim_charger import (  # noqa: PLC0415
        ChargerModel,
        InverterModel,
        SimChargePoint,
        SimEV,
    )
    from gridchain.meterbridge.simulator import SimMeter  # noqa: PLC0415

    models: dict[str, ChargerModel] = {}
    chargers: list[SimChargePoint] = []
    if args.charger and not args.csms:
        raise UsageError("--charger needs --csms URL")
    for spec in args.charger:
        parts = _fields("--charger", spec, range(2, 4))
        if not parts[1].isdigit() or parts[0] in models:
            raise UsageError(f"--charger {spec!r}: expected a new ID and a slave id")
        model = ChargerModel()
        models[parts[0]] = model
        profile = load_profile(parts[2] if len(parts) == 3 else "eastron-sdm120")
        meters.append(SimMeter(int(parts[1]), profile, "ev", source=model))
        chargers.append(
            SimChargePoint(
                parts[0],
                args.csms,
                model,
                sim_now_ms=clock.now_ms,
                meter_values_s=args.meter_values_s,
            )
        )
    for spec in args.ev:
        parts = _fields("--ev", spec, range(4, 7))
        if parts[0] not in models:
            raise UsageError(f"--ev {spec!r}: no --charger {parts[0]!r}")
        kwh, soc, max_kw, *window = (_number("--ev", spec, p) for p in parts[1:])
        if not 0 <= soc <= 1 or kwh <= 0:
            raise UsageError(f"--ev {spec!r}: need KWH > 0 and SOC in 0..1")
        models[parts[0]].ev = SimEV(
            capacity_wh=kwh * 1000,
            soc=soc,
            max_power_w=max_kw * 1000,
            arrive_s=window[0] if window else 0.0,
            depart_s=window[1] if len(window) > 1 else None,
        )
    for spec in args.inverter:
        parts = _fields("--inverter", spec, range(3, 5))
        if not parts[0].isdigit():
            raise UsageError(f"--inverter {spec!r}: expected a slave id")
        kwh, soc = (_number("--inverter", spec, p) for p in parts[1:3])
        profile = load_profile(parts[3] if len(parts) == 4 else "generic-battery-inverter")
        if profile.setpoint is None or not 0 <= soc <= 1 or kwh <= 0:
            raise UsageError(f"--inverter {spec!r}: need a setpoint profile, KWH > 0, SOC 0..1")
        inverter = InverterModel(kwh * 1000, soc, float(profile.setpoint.max_w))
        meters.append(SimMeter(int(parts[0]), profile, "battery", source=inverter))
    return chargers


def _simulate(args: argparse.Namespace) -> int:
    from gridchain.logs import configure_logging  # noqa: PLC0415
    from gridchain.meterbridge.profiles import load_profile  # noqa: PLC0415
    from gridchain.meterbridge.simulator import (  # noqa: PLC0415
        KINDS,
        MeterSimulator,
        SimClock,
        SimMeter,
        daylight_offset_ms,
        household_meters,
        household_with,
    )

    meters: list[SimMeter] = []
    if not any((args.households, args.household, args.meter, args.charger, args.inverter)):
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
    start_ms = time.time_ns() // 1_000_000 if args.start_ms is None else args.start_ms
    if args.clock == "daylight":
        start_ms += daylight_offset_ms(start_ms)
    clock = SimClock(args.speed, start_ms)
    chargers = _sim_devices(args, meters, clock)
    ids = [m.slave_id for m in meters]
    if len(set(ids)) != len(ids) or not all(1 <= i <= 247 for i in ids):
        raise UsageError(f"slave ids must be unique and in 1..247, got {ids}")
    simulator = MeterSimulator(meters, clock=clock, line_baud=args.line_timing)
    log = configure_logging("meterbridge-simulator")  # JSON lines on stderr, like the bridge's
    registers = Path(args.registers) if args.registers else None
    if registers is not None:
        log.info("registers_restored", meters=simulator.restore_registers(registers))

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
        tasks = [asyncio.ensure_future(cp.run(stop)) for cp in chargers]
        if chargers:
            names = [cp.charge_point_id for cp in chargers]
            print(f"charge points {names} connecting to {args.csms}", flush=True)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if registers is not None:
                simulator.save_registers(registers)
        await _stop_within(tasks, STOP_GRACE_S)
        await simulator.stop()
        if registers is not None:
            simulator.save_registers(registers)  # after the last answer: never behind a reading

    asyncio.run(main())
    return 0

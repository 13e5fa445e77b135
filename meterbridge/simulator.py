"""A Modbus server that behaves like a household's meters: ``gridchain meterbridge simulate``.

Each simulated meter has a slave id, one of the bridge's profiles (so its register layout is
the real meter's: float32 input registers for the Eastrons, signed 16-bit holding registers with
decimals for the generic profile) and a kind that decides what it measures:

* ``pv``: a clear-sky PV curve, peak at 12:00, zero before 06:00 and after 18:00 (export);
* ``load``: the household load, the DOE mid-rise apartment weekday profile of the month
  (embedded, interpolated between hours) scaled from the building to one flat;
* ``ev``: an EV charging at a fixed power in an evening window;
* ``battery``: charging from the midday surplus, discharging in the evening peak;
* ``net``: the grid connection, load + EV + battery - PV, importing or exporting.

Energy registers integrate power over simulated time at each request, so they only grow and
two meters read at the same instant agree.  The simulated clock may run faster than the wall
clock (``speed``) so a testnet sees a day of readings in minutes.  With ``line_baud`` each
answer is delayed by the time its request and response frames take on an RS-485 line at that
baud rate (10 bits a character, 8N1, plus the 3.5-character gap), so bus load is realistic.

A real meter keeps its cumulative registers through a power cut; so does a simulated one given
a registers file (``save_registers``/``restore_registers``, ``simulate --registers FILE``): the
launcher keeps it in the testnet directory so a restarted testnet's first reading continues the
count instead of "a cumulative register decreased".  The time the simulator was down is not
metered (the meters were off), so the registers resume, never jump.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridchain.meterbridge.loaddata import MIDRISE_WEEKDAY_KW_CSV
from gridchain.meterbridge.profiles import (
    Profile,
    decode_setpoint_words,
    encode_quantity,
    load_profile,
)
from gridchain.meterbridge.sim_charger import InverterModel

Kind = Literal["pv", "load", "ev", "battery", "net"]
KINDS: tuple[Kind, ...] = ("pv", "load", "ev", "battery", "net")
MS_PER_HOUR = 3_600_000
#: Integration step in simulated time: fine enough for a PV curve, cheap at high speed.
STEP_MS = 60_000


def _load_table() -> list[list[float]]:
    rows = list(csv.reader(io.StringIO(MIDRISE_WEEKDAY_KW_CSV)))[1:]
    return [[float(v) for v in row[1:]] for row in rows if row]


_BUILDING_KW = _load_table()  # [hour][month]


@dataclass(frozen=True)
class Household:
    """The parameters of one household's installation (kW)."""

    pv_peak_kw: float = 4.0
    #: the building profile peaks near 50 kW; 0.04 makes one flat of 0.6 to 2 kW
    load_scale: float = 0.04
    ev_kw: float = 7.4
    ev_window_h: tuple[float, float] = (18.0, 21.0)
    battery_kw: float = 2.5
    battery_charge_h: tuple[float, float] = (10.0, 14.0)
    battery_discharge_h: tuple[float, float] = (18.0, 21.0)

    def pv_kw(self, hour: float) -> float:
        return self.pv_peak_kw * max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0))

    def load_kw(self, hour: float, month: int) -> float:
        h0 = int(hour) % 24
        frac = hour - int(hour)
        a, b = _BUILDING_KW[h0][month], _BUILDING_KW[(h0 + 1) % 24][month]
        return self.load_scale * (a + (b - a) * frac)

    def ev_on(self, hour: float) -> float:
        lo, hi = self.ev_window_h
        return self.ev_kw if lo <= hour < hi else 0.0

    def battery_kw_at(self, hour: float) -> float:
        if self.battery_charge_h[0] <= hour < self.battery_charge_h[1]:
            return self.battery_kw
        if self.battery_discharge_h[0] <= hour < self.battery_discharge_h[1]:
            return -self.battery_kw
        return 0.0

    def power_kw(self, kind: Kind, t_ms: int) -> float:
        """Power through the meter, positive when importing from the grid side."""
        hour = (t_ms % (24 * MS_PER_HOUR)) / MS_PER_HOUR
        month = time.gmtime(t_ms / 1000).tm_mon - 1
        if kind == "pv":
            return -self.pv_kw(hour)
        if kind == "load":
            return self.load_kw(hour, month)
        if kind == "ev":
            return self.ev_on(hour)
        if kind == "battery":
            return self.battery_kw_at(hour)
        return (
            self.load_kw(hour, month)
            + self.ev_on(hour)
            + self.battery_kw_at(hour)
            - self.pv_kw(hour)
        )


class SimClock:
    """Simulated milliseconds since the epoch: wall time, optionally accelerated from a start."""

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        self.speed = speed
        self._wall0 = time.time()
        self._sim0 = time.time_ns() // 1_000_000 if start_ms is None else start_ms

    def now_ms(self) -> int:
        return self._sim0 + int((time.time() - self._wall0) * 1000 * self.speed)


class PowerSource(Protocol):
    """A simulated device a meter measures (a charger, an inverter): it integrates its own
    power on the simulated clock, so the meter counts exactly what the device delivered."""

    power_w: float
    import_wh: float
    export_wh: float

    def sync(self, sim_ms: int) -> None: ...


@dataclass
class SimMeter:
    slave_id: int
    profile: Profile
    kind: Kind
    household: Household = field(default_factory=Household)
    import_wh: float = 0.0
    export_wh: float = 0.0
    t_ms: int | None = None
    #: The device this meter measures; None: the household's fixed daily curve for ``kind``.
    source: PowerSource | None = None

    def advance(self, t_ms: int) -> None:
        if self.source is not None:
            self.source.sync(t_ms)
            self.import_wh, self.export_wh = self.source.import_wh, self.source.export_wh
            return
        if self.t_ms is None:
            self.t_ms = t_ms
        while self.t_ms < t_ms:
            step = min(STEP_MS, t_ms - self.t_ms)
            kw = self.household.power_kw(self.kind, self.t_ms)
            wh = kw * 1000 * step / MS_PER_HOUR
            if wh >= 0:
                self.import_wh += wh
            else:
                self.export_wh -= wh
            self.t_ms += step

    def values(self, t_ms: int) -> dict[str, float]:
        """Each quantity in SI base units (V, W, Wh)."""
        self.advance(t_ms)
        hour = (t_ms % (24 * MS_PER_HOUR)) / MS_PER_HOUR
        power = (
            1000 * self.household.power_kw(self.kind, t_ms)
            if self.source is None
            else self.source.power_w
        )
        return {
            "voltage": 230.0 + 3.0 * math.sin(2 * math.pi * hour / 24),
            "power": power,
            "import_energy": self.import_wh,
            "export_energy": self.export_wh,
        }

    def register_count(self) -> int:
        ends = [s.address + s.type.words for s in self.profile.registers.values()]
        if self.profile.setpoint is not None:
            ends.extend(end for _, end, _ in self.profile.setpoint.spans())
        return max(ends)

    def take_write(self, address: int, words: Sequence[int]) -> None:
        """A Modbus write: an inverter's setpoint or revert timer; other registers ignore it."""
        spec = self.profile.setpoint
        if spec is None or not isinstance(self.source, InverterModel):
            return
        written = dict(zip(range(address, address + len(words)), words, strict=True))
        if spec.revert_timeout_address in written:
            self.source.revert_s = written[spec.revert_timeout_address]
        span = range(spec.address, spec.address + spec.type.words)
        if all(a in written for a in span):
            self.source.write_setpoint(decode_setpoint_words(spec, [written[a] for a in span]))

    def fill(self, registers: list[int], t_ms: int) -> None:
        """Write the current values into the register block, in the profile's layout."""
        divisors = {"V": 1.0, "dV": 0.1, "W": 1.0, "kW": 1000.0, "Wh": 1.0, "kWh": 1000.0}
        for quantity, value in self.values(t_ms).items():
            spec = self.profile.registers[quantity]
            words = encode_quantity(spec, value / divisors[spec.unit], self.profile.word_order)
            registers[spec.address : spec.address + len(words)] = words
        setpoint = self.profile.setpoint
        if setpoint is not None and isinstance(self.source, InverterModel):
            words = setpoint.encode_w(round(self.source.effective_setpoint_w()))
            registers[setpoint.address : setpoint.address + len(words)] = words


def frame_seconds(count: int, baud: int) -> float:
    """Line time of an FC3/FC4 exchange: 8-byte request, 5+2n-byte answer, two 3.5-char gaps."""
    chars = 8 + 5 + 2 * count + 7
    return chars * 10 / baud


class MeterSimulator:
    """Serves simulated meters over RTU-over-TCP or a serial device."""

    def __init__(
        self,
        meters: Sequence[SimMeter],
        *,
        clock: SimClock | None = None,
        line_baud: int | None = None,
    ) -> None:
        self.meters = {m.slave_id: m for m in meters}
        self.clock = clock or SimClock()
        self.line_baud = line_baud
        self.requests = 0
        self._server: Any = None

    def _devices(self) -> list[SimDevice]:
        devices = []
        for meter in self.meters.values():
            size = meter.register_count()
            devices.append(
                SimDevice(
                    id=meter.slave_id,
                    simdata=[SimData(0, count=size, values=0, datatype=DataType.REGISTERS)],
                    action=partial(self._action, meter),
                )
            )
        return devices

    async def _action(  # noqa: PLR0917 - pymodbus calls it with positional arguments
        self,
        meter: SimMeter,
        _function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        self.requests += 1
        if start_address != 0:
            raise ValueError("the simulator's register block starts at 0")
        now = self.clock.now_ms()
        meter.fill(registers, now)
        if set_values:
            meter.take_write(address, [int(v) for v in set_values])
            meter.advance(now)
        if self.line_baud:
            await asyncio.sleep(frame_seconds(count, self.line_baud))

    def _silence_unknown_ids(self, server: Any) -> Any:
        """Make a slave id nobody has go unanswered, as on a real RS-485 line.

        pymodbus 3.16's SimCore raises KeyError (not NoSuchIdException) for an id it does not
        know, which the server answers with an exception frame; a real bus stays silent and the
        master times out, which is what the bridge's retry path must be tested against.
        """
        core = server.context
        inner = core.async_getValues

        async def get_values(device_id: int, func_code: int, address: int, count: int = 1) -> Any:
            if device_id not in self.meters:
                raise NoSuchIdException(f"no meter with slave id {device_id}")
            return await inner(device_id, func_code, address, count)

        core.async_getValues = get_values
        return server

    async def start_tcp(self, host: str, port: int) -> None:
        """Serve RTU frames (with CRC, no MBAP header) over TCP, like an RS-485 converter."""
        self._server = self._silence_unknown_ids(
            ModbusTcpServer(
                self._devices(),
                framer=FramerType.RTU,
                address=(host, port),
                ignore_missing_devices=True,
            )
        )
        await self._server.serve_forever(background=True)

    async def start_serial(self, port: str, *, baudrate: int = 9600) -> None:
        self._server = self._silence_unknown_ids(
            ModbusSerialServer(
                self._devices(),
                framer=FramerType.RTU,
                port=port,
                baudrate=baudrate,
                bytesize=8,
                parity="N",
                stopbits=1,
                ignore_missing_devices=True,
            )
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    def save_registers(self, path: Path) -> None:
        """Each meter's cumulative registers, counted up to now, into ``path`` (written whole,
        then renamed, so a kill mid-write leaves the previous file).  A real meter counts
        whether or not anyone reads it, so the registers advance here too."""
        now = self.clock.now_ms()
        for meter in self.meters.values():
            meter.advance(now)
        doc = {
            str(sid): {"import_wh": m.import_wh, "export_wh": m.export_wh}
            for sid, m in sorted(self.meters.items())
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def restore_registers(self, path: Path) -> int:
        """Start each meter from the registers ``save_registers`` wrote; the count restored.

        A meter measuring a device model (charger, inverter) restores the model's counters,
        which are what that meter serves."""
        if not path.exists():
            return 0
        doc = json.loads(path.read_text(encoding="utf-8"))
        restored = 0
        for sid, meter in self.meters.items():
            saved = doc.get(str(sid))
            if not isinstance(saved, dict):
                continue
            imported, exported = float(saved["import_wh"]), float(saved["export_wh"])
            meter.import_wh, meter.export_wh = imported, exported
            if meter.source is not None:
                meter.source.import_wh, meter.source.export_wh = imported, exported
            restored += 1
        return restored


def household_with(devices: Sequence[str]) -> Household:
    """A household that has only these devices (genesis names: PV, EV, Battery, Load).

    The four meters are always served (a real installation may have the meter wired before
    the device); an absent device measures zero and the net meter leaves it out.
    """
    known = {"PV", "EV", "Battery", "Load", "ExternalGenerator"}
    unknown = set(devices) - known
    if unknown:
        raise ValueError(f"unknown devices {sorted(unknown)}; known: {sorted(known)}")
    base = Household()
    return Household(
        pv_peak_kw=base.pv_peak_kw if "PV" in devices else 0.0,
        load_scale=base.load_scale if "Load" in devices else 0.0,
        ev_kw=base.ev_kw if "EV" in devices else 0.0,
        battery_kw=base.battery_kw if "Battery" in devices else 0.0,
    )


def household_meters(first_slave_id: int = 1, household: Household | None = None) -> list[SimMeter]:
    """A typical household: net meter (SDM630), PV (SDM120), EV (generic), battery (SDM120)."""
    h = household or Household()
    return [
        SimMeter(first_slave_id, load_profile("eastron-sdm630"), "net", h),
        SimMeter(first_slave_id + 1, load_profile("eastron-sdm120"), "pv", h),
        SimMeter(first_slave_id + 2, load_profile("generic"), "ev", h),
        SimMeter(first_slave_id + 3, load_profile("eastron-sdm120"), "battery", h),
    ]


#: The simulated hours a daylight clock keeps a demo in: PV at half its peak or more.
DAYLIGHT_HOURS = (9, 15)


def daylight_offset_ms(now_ms: int, *, morning_hour: int = 10) -> int:
    """The shift, in whole hours, that puts ``now_ms`` in daylight on the simulated clock.

    The simulated sun follows the clock's hour of day (UTC); a demo started at night would
    meter no PV.  Rather than bend the curve, a daylight clock moves the households to a time
    zone where it is day: zero if the hour is already in DAYLIGHT_HOURS, else the whole hours
    to ``morning_hour`` (minutes and seconds kept), so the simulated day is still a real one.
    """
    hour = (now_ms % (24 * MS_PER_HOUR)) // MS_PER_HOUR
    if DAYLIGHT_HOURS[0] <= hour < DAYLIGHT_HOURS[1]:
        return 0
    return ((morning_hour - hour) % 24) * MS_PER_HOUR

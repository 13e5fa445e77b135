"""Meter profiles: register maps as data files, the read plan and the decoding of register words.

A meter model is described by a TOML file in ``meterbridge/profiles/`` (or any directory the
config names), so supporting a new model is adding a file, not code.  A profile says which
function code reads the meter, and where each of the four quantities a reading needs lives:
voltage, power, cumulative import energy and cumulative export energy, with its data type,
decimals and unit.  Everything is converted here to the integers of a
:class:`protocol.meter.ReadingRecord` (Wh, W, decivolts) with exact decimal arithmetic, so a
register value of 2301 with one decimal is 230.1 V = 2301 dV, never 2300.9999.

The read plan groups registers whose addresses are contiguous into one request (at most 125
registers, the Modbus limit for function codes 3 and 4), because on a 9600 baud RS-485 bus each
request costs a round trip of tens of milliseconds shared by every meter on the line.
"""

from __future__ import annotations

import enum
import itertools
import math
import struct
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridchain.protocol.errors import GridchainError

#: Modbus allows at most 125 registers in one read (function codes 3 and 4).
MAX_REGISTERS_PER_READ = 125
QUANTITIES = ("voltage", "power", "import_energy", "export_energy")


class ProfileError(GridchainError):
    code = "bad_meter_profile"


class DecodeError(GridchainError):
    """Register words that cannot be a measurement (NaN, infinity, out of range)."""

    code = "bad_register_value"


class RegisterType(enum.StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"

    @property
    def words(self) -> int:
        return 1 if self in (RegisterType.INT16, RegisterType.UINT16) else 2


#: Unit -> (quantity it may measure, factor to the record's unit: V->dV, W, Wh).
_UNITS: dict[str, tuple[str, Decimal]] = {
    "V": ("voltage", Decimal(10)),
    "dV": ("voltage", Decimal(1)),
    "W": ("power", Decimal(1)),
    "kW": ("power", Decimal(1000)),
    "Wh": ("energy", Decimal(1)),
    "kWh": ("energy", Decimal(1000)),
}


def unit_factor(unit: str) -> Decimal:
    """How many of the record's units (dV, W, Wh) one ``unit`` is."""
    return _UNITS[unit][1]


class RegisterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: int = Field(ge=0, le=0xFFFF)
    type: RegisterType
    decimals: int = Field(default=0, ge=0, le=6)
    unit: str


class Rating(BaseModel):
    """What the meter model can measure at most: the plausibility bounds of its readings.

    A value beyond these is not a measurement (a late or garbled answer, a broken meter, a wrong
    register map), so the bridge records the interval as UNAVAILABLE instead of signing it.
    Integers in the units a data sheet gives, so a profile reads like the maker's page.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The highest voltage the voltage register can plausibly show (operating range plus a
    #: margin for swells).
    max_voltage_v: int = Field(gt=0, le=100_000)
    #: The largest magnitude of the power register (import or export), W.
    max_power_w: int = Field(gt=0, le=100_000_000)
    #: The fastest the energy registers can grow, W (a three-phase meter's total energy grows
    #: with all phases while its power register may show one); defaults to ``max_power_w``.
    max_energy_rate_w: int | None = Field(default=None, gt=0, le=100_000_000)

    @property
    def energy_rate_w(self) -> int:
        return self.max_power_w if self.max_energy_rate_w is None else self.max_energy_rate_w


class SetpointSpec(BaseModel):
    """A writable active-power setpoint (holding registers), for battery inverters (ADR 0028).

    Modelled on SunSpec's DER control (model 704 ``WSet`` with its scale factor and revert
    timer ``WSetRvrtTms``): a signed integer of W times ``10**-decimals``, whose sign convention
    the maker chooses (SunSpec counts injection positive: ``export_positive``), and optionally a
    register the inverter counts down from after each write, reverting to 0 W when it expires,
    so a device whose controller has gone silent stops following an old setpoint by itself.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: int = Field(ge=0, le=0xFFFF)
    type: Literal[RegisterType.INT16, RegisterType.INT32]
    decimals: int = Field(default=0, ge=0, le=3)
    unit: Literal["W", "kW"] = "W"
    sign: Literal["import_positive", "export_positive"] = "import_positive"
    #: The inverter's rating: the largest setpoint magnitude it accepts, W.
    max_w: int = Field(gt=0, le=100_000_000)
    #: A uint16 of seconds; absent if the device has no revert timer.
    revert_timeout_address: int | None = Field(default=None, ge=0, le=0xFFFF)

    def spans(self) -> list[tuple[int, int, str]]:
        out = [(self.address, self.address + self.type.words, "setpoint")]
        if self.revert_timeout_address is not None:
            a = self.revert_timeout_address
            out.append((a, a + 1, "setpoint revert timeout"))
        return out

    def encode_w(self, watts: int) -> list[int]:
        """Register words for a setpoint of ``watts`` (import positive, the chain's sign)."""
        if abs(watts) > self.max_w:
            raise DecodeError(f"setpoint {watts} W beyond the device's {self.max_w} W")
        device = watts if self.sign == "import_positive" else -watts
        spec = RegisterSpec(
            address=self.address, type=self.type, decimals=self.decimals, unit=self.unit
        )
        value = Decimal(device) / unit_factor(self.unit)
        words = encode_quantity(spec, float(value))
        if decode_setpoint_words(self, words) != watts:
            raise DecodeError(f"setpoint {watts} W does not fit register {self.address:#06x}")
        return words


def decode_setpoint_words(spec: SetpointSpec, words: Sequence[int]) -> int:
    """The setpoint the register words hold, W, import positive (the chain's sign)."""
    register = RegisterSpec(
        address=spec.address, type=spec.type, decimals=spec.decimals, unit=spec.unit
    )
    device = decode_quantity(register, words)
    return device if spec.sign == "import_positive" else -device


class Profile(BaseModel):
    """One meter model's register map, as validated from its TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    function_code: Literal[3, 4]
    #: "high_first": the first register holds the high 16 bits (Eastron, most meters).
    word_order: Literal["high_first", "low_first"] = "high_first"
    registers: dict[str, RegisterSpec]
    rating: Rating
    #: A battery inverter's power setpoint; meters have none.
    setpoint: SetpointSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> Profile:
        missing = [q for q in QUANTITIES if q not in self.registers]
        extra = [q for q in self.registers if q not in QUANTITIES]
        if missing or extra:
            raise ValueError(
                f"registers must be exactly {QUANTITIES}; missing {missing}, extra {extra}"
            )
        for quantity, spec in self.registers.items():
            if spec.unit not in _UNITS:
                raise ValueError(f"{quantity}: unknown unit {spec.unit!r}")
            kind = _UNITS[spec.unit][0]
            if kind != quantity.split("_")[-1]:
                raise ValueError(f"{quantity}: unit {spec.unit!r} measures {kind}")
            if spec.type is RegisterType.FLOAT32 and spec.decimals:
                raise ValueError(f"{quantity}: a float32 register has no decimals")
        spans = sorted((s.address, s.address + s.type.words, q) for q, s in self.registers.items())
        if self.setpoint is not None:
            spans = sorted([*spans, *self.setpoint.spans()])
        for (_, end, q1), (start, _, q2) in itertools.pairwise(spans):
            if start < end:
                raise ValueError(f"registers {q1} and {q2} overlap")
        return self


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One Modbus request: ``count`` registers from ``address`` with ``function_code``."""

    function_code: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class Measurement:
    """A decoded reading in the record's integer units."""

    import_wh: int
    export_wh: int
    power_w: int
    voltage_dv: int


def builtin_profile_names() -> list[str]:
    root = resources.files("gridchain.meterbridge") / "profiles"
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def parse_profile(text: str, where: str) -> Profile:
    try:
        return Profile.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ProfileError(f"meter profile {where}: {exc}") from exc


def load_profile(name: str, extra_dirs: Sequence[Path] = ()) -> Profile:
    """The profile called ``name``: first from ``extra_dirs`` (site files), then the built-ins."""
    for directory in extra_dirs:
        path = directory / f"{name}.toml"
        if path.is_file():
            return parse_profile(path.read_text(encoding="utf-8"), str(path))
    resource = resources.files("gridchain.meterbridge") / "profiles" / f"{name}.toml"
    if not resource.is_file():
        known = ", ".join(builtin_profile_names())
        raise ProfileError(f"no meter profile {name!r} (built in: {known})")
    profile = parse_profile(resource.read_text(encoding="utf-8"), f"{name}.toml")
    if profile.name != name:
        raise ProfileError(f"profile file {name}.toml names itself {profile.name!r}")
    return profile


def plan_reads(profile: Profile) -> list[ReadBlock]:
    """Requests covering every register, merging runs of contiguous addresses into one."""
    spans = sorted((s.address, s.address + s.type.words) for s in profile.registers.values())
    blocks: list[ReadBlock] = []
    start, end = spans[0]
    for s, e in spans[1:]:
        if s == end and e - start <= MAX_REGISTERS_PER_READ:
            end = e
        else:
            blocks.append(ReadBlock(profile.function_code, start, end - start))
            start, end = s, e
    blocks.append(ReadBlock(profile.function_code, start, end - start))
    return blocks


def _raw_value(spec: RegisterSpec, words: Sequence[int], word_order: str) -> Decimal:
    if any(not 0 <= w <= 0xFFFF for w in words):
        raise DecodeError(f"register words must be 16-bit, got {list(words)}")
    if spec.type.words == 2 and word_order == "low_first":
        words = [words[1], words[0]]
    data = b"".join(w.to_bytes(2, "big") for w in words)
    if spec.type is RegisterType.FLOAT32:
        value = struct.unpack(">f", data)[0]
        if not math.isfinite(value):
            raise DecodeError(f"register {spec.address:#06x} holds {value}")
        return _shortest_float32(value, data)
    fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I"}[spec.type.value]
    integer = struct.unpack(fmt, data)[0]
    return Decimal(integer).scaleb(-spec.decimals)


def _shortest_float32(value: float, data: bytes) -> Decimal:
    """The shortest decimal that is this float32: 230.1, not the double 230.10000610351562."""
    for digits in range(6, 10):
        text = f"{value:.{digits}g}"
        if struct.pack(">f", float(text)) == data:
            return Decimal(text)
    return Decimal(repr(value))


def decode_quantity(
    spec: RegisterSpec, words: Sequence[int], word_order: str = "high_first"
) -> int:
    """One register's value in the record's unit (dV, W or Wh), rounded half to even."""
    value = _raw_value(spec, words, word_order) * _UNITS[spec.unit][1]
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def decode(profile: Profile, registers: Mapping[int, int]) -> Measurement:
    """Decode a meter's registers (address -> word, as read by the plan) into a measurement.

    Cumulative energy must not be negative: a register that is (a netmeter wired the other way
    round, or a wrapped 16-bit counter) is a :class:`DecodeError`, not a made-up value.
    """
    values: dict[str, int] = {}
    for quantity, spec in profile.registers.items():
        try:
            words = [registers[spec.address + i] for i in range(spec.type.words)]
        except KeyError as exc:
            raise DecodeError(f"{quantity}: register {exc.args[0]:#06x} was not read") from exc
        values[quantity] = decode_quantity(spec, words, profile.word_order)
    for quantity in ("import_energy", "export_energy"):
        if values[quantity] < 0:
            raise DecodeError(f"{quantity} is negative ({values[quantity]} Wh)")
    if values["voltage"] < 0:
        raise DecodeError(f"voltage is negative ({values['voltage']} dV)")
    return Measurement(
        import_wh=values["import_energy"],
        export_wh=values["export_energy"],
        power_w=values["power"],
        voltage_dv=values["voltage"],
    )


def encode_quantity(spec: RegisterSpec, value: float, word_order: str = "high_first") -> list[int]:
    """Register words holding ``value`` (in the spec's unit); the simulator's side of decode.

    Integer registers wrap like a real meter's counter does, so the bridge sees the wrap.
    """
    if spec.type is RegisterType.FLOAT32:
        data = struct.pack(">f", value)
    else:
        scaled = round(Decimal(repr(value)).scaleb(spec.decimals))
        bits = 16 * spec.type.words
        data = (scaled % (1 << bits)).to_bytes(spec.type.words * 2, "big")
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if len(words) == 2 and word_order == "low_first":
        words.reverse()
    return words

"""The bridge's TOML configuration, validated by pydantic so a bad value stops it at start.

Example (see docs/meterbridge.md)::

    name = "peer-a"
    node_url = "http://127.0.0.1:8700"     # or a gateway: "https://gw:8443" with node_ca = "ca.pem"
    data_dir = "/var/lib/gridchain/meterbridge"
    interval_s = 900
    key_seed_hex = "..."            # or: keystore = "wallets/peer-a-bridge.json"

    [[buses]]
    name = "rs485"
    kind = "serial"
    port = "/dev/ttyUSB0"           # baudrate 9600, bytesize 8, parity "N", stopbits 1 by default

    [[meters]]
    meter_id = "peer-a-net"
    bus = "rs485"
    slave_id = 1
    profile = "eastron-sdm120"

The key is the bridge key registered on chain for these meters; it signs every reading and is
the sender of the MeterReadings transactions.  A keystore is opened with $GRIDCHAIN_PASSWORD.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.json_document import JsonDocumentError, load_object
from gridchain.protocol.keystore import open_keystore

PASSWORD_ENV = "GRIDCHAIN_PASSWORD"  # noqa: S105 - the variable's name, not a password
#: A keystore is a few hundred bytes (as wallet.keystore_file bounds it).
MAX_KEYSTORE_BYTES = 64 * 1024


class ConfigError(GridchainError):
    code = "bad_config"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialBus(_Strict):
    """An RS-485 line behind a USB adaptor; the source's settings (9600 8N1) are the defaults."""

    name: str
    kind: Literal["serial"]
    port: str = "/dev/ttyUSB0"
    baudrate: int = Field(default=9600, gt=0)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(default=0.5, gt=0)
    retries: int = Field(default=2, ge=0, le=10)


class TcpBus(_Strict):
    """An RS-485/Ethernet converter passing RTU frames (with CRC) over a TCP stream."""

    name: str
    kind: Literal["rtu-over-tcp"]
    host: str
    port: int = Field(ge=1, le=65535)
    timeout_s: float = Field(default=0.5, gt=0)
    retries: int = Field(default=2, ge=0, le=10)


Bus = SerialBus | TcpBus


class MeterConfig(_Strict):
    meter_id: str = Field(min_length=1, max_length=64)
    bus: str
    slave_id: int = Field(ge=1, le=247)
    profile: str


class AgentApiConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)  # 0: no agent API


class ChargerConfig(_Strict):
    """An EV charger that connects to the bridge's OCPP central system (ADR 0028).

    Its setpoints are the chain's rates for ``owner``'s EV requests that name ``meter_id``, the
    registered meter that measures it (so each of an owner's chargers follows its own
    vehicle); without ``meter_id`` it follows the meter the council linked its charge point id
    to on chain (meterbridge/device_meters.py, ADR 0048), and while there is none the sum of
    all of ``owner``'s EV rates.
    """

    charge_point_id: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9._:-]+$")
    owner: str = Field(pattern=r"^gc1[0-9a-f]{48}$")
    connector_id: int = Field(default=1, ge=1, le=16)
    #: The limit the charger falls back to when the chain cannot tell it one, W.
    safe_limit_w: int = Field(default=0, ge=0, le=1_000_000)
    meter_id: str | None = None
    #: OCPP 1.6 security profile 1: the charger's AuthorizationKey, checked as the password of
    #: HTTP Basic authentication (user: the charge point id) before the upgrade.  None: the
    #: charger is admitted by its id alone (a charger on a trusted wire or loopback).
    auth_key: str | None = Field(default=None, min_length=16, max_length=40)


class InverterConfig(_Strict):
    """A battery inverter on a Modbus bus whose profile has a ``[setpoint]`` register.

    Its setpoint is the chain's rate for ``owner``'s Battery requests that name ``meter_id``,
    the registered meter that measures it (so each of an owner's batteries follows its own
    requests); without ``meter_id`` it follows the Battery meter of ``owner`` the council
    linked its ``name`` to on chain (meterbridge/device_meters.py, ADR 0048), and while there
    is none the sum of all of ``owner``'s Battery rates.  ``name`` is its device id on chain:
    a name that is not one (1-48 characters of ``A-Z a-z 0-9 . _ : -``,
    protocol.governance.DEVICE_ID_PATTERN) is never looked up, which the bridge logs once.
    """

    name: str = Field(min_length=1, max_length=64)
    owner: str = Field(pattern=r"^gc1[0-9a-f]{48}$")
    bus: str
    slave_id: int = Field(ge=1, le=247)
    profile: str
    #: What the inverter is set to when the chain cannot tell it anything, W (import positive).
    safe_setpoint_w: int = 0
    meter_id: str | None = None


class DevicesConfig(_Strict):
    """The device controller in the bridge: an OCPP 1.6J central system and inverter setpoints."""

    #: Where the chargers connect (ws://HOST:PORT/CHARGE_POINT_ID); port 0: no OCPP server.
    csms_host: str = "127.0.0.1"
    csms_port: int = Field(default=0, ge=0, le=65535)
    #: How often the controller asks the node for the schedule, s.
    poll_s: float = Field(default=2.0, gt=0, le=60)
    #: The chain unreachable (or silent) this long: every device goes to its safe value, s.
    failsafe_after_s: float = Field(default=30.0, gt=0, le=3600)
    #: Heartbeat interval told to the chargers in BootNotification, s.
    heartbeat_s: int = Field(default=60, ge=1, le=86_400)
    #: How long the central system waits for a charger's answer to a call, s.
    call_timeout_s: float = Field(default=10.0, gt=0, le=120)
    chargers: list[ChargerConfig] = Field(default_factory=list)
    inverters: list[InverterConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> DevicesConfig:
        ids = [c.charge_point_id for c in self.chargers]
        if len(set(ids)) != len(ids):
            raise ValueError("charge point ids must be unique")
        if self.chargers and not self.csms_port:
            raise ValueError("chargers need csms_port")
        names = [i.name for i in self.inverters]
        if len(set(names)) != len(names):
            raise ValueError("inverter names must be unique")
        return self


class BridgeConfig(_Strict):
    name: str = Field(min_length=1)
    node_url: str
    #: The CA to pin when node_url is a gateway's https URL (ADR 0025).
    node_ca: Path | None = None
    data_dir: Path
    interval_s: float = Field(default=900.0, gt=0)
    #: Seconds of meter time per wall-clock second: 1 for real meters.  Only simulated meters
    #: run faster (``meterbridge simulate --speed``); the energy-per-interval bound is scaled
    #: by it, since their energy grows that much faster than the interval's duration says.
    meter_time_scale: float = Field(default=1.0, ge=1.0, le=100_000.0)
    key_seed_hex: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    keystore: Path | None = None
    profile_dirs: list[Path] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning"] = "info"
    agent_api: AgentApiConfig = Field(default_factory=AgentApiConfig)
    buses: list[SerialBus | TcpBus] = Field(min_length=1)
    meters: list[MeterConfig] = Field(min_length=1)
    #: Chargers and inverters that follow the chain's schedule (absent: none).
    devices: DevicesConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> BridgeConfig:
        if (self.key_seed_hex is None) == (self.keystore is None):
            raise ValueError("give exactly one of key_seed_hex and keystore")
        bus_names = [b.name for b in self.buses]
        if len(set(bus_names)) != len(bus_names):
            raise ValueError("bus names must be unique")
        ids = [m.meter_id for m in self.meters]
        if len(set(ids)) != len(ids):
            raise ValueError("meter ids must be unique")
        seen: set[tuple[str, int]] = set()
        for meter in self.meters:
            if meter.bus not in bus_names:
                raise ValueError(f"meter {meter.meter_id}: no bus named {meter.bus!r}")
            if (meter.bus, meter.slave_id) in seen:
                raise ValueError(f"meter {meter.meter_id}: slave id {meter.slave_id} is taken")
            seen.add((meter.bus, meter.slave_id))
        for inverter in self.devices.inverters if self.devices else []:
            if inverter.bus not in bus_names:
                raise ValueError(f"inverter {inverter.name}: no bus named {inverter.bus!r}")
        return self

    def signing_key(self) -> SigningKey:
        if self.key_seed_hex is not None:
            return SigningKey.from_hex(self.key_seed_hex)
        assert self.keystore is not None
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            raise ConfigError(f"set {PASSWORD_ENV} to open the keystore {self.keystore}")
        return open_keystore(read_keystore_document(self.keystore), password)


def read_keystore_document(path: Path) -> dict[str, Any]:
    """The keystore file as a JSON object, or a ConfigError naming the ``keystore`` field.

    Read like every JSON document (protocol.json_document: duplicate keys refused, a byte order
    mark accepted) and bounded in size like the wallet's, instead of a traceback.
    """
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_KEYSTORE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"keystore: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_KEYSTORE_BYTES:
        raise ConfigError(f"keystore: {path} is too large to be a keystore")
    try:
        return load_object(raw)
    except JsonDocumentError as exc:
        raise ConfigError(f"keystore: {path} is not a keystore ({exc.message})") from None


def load_config(path: Path) -> BridgeConfig:
    """Read and validate; relative paths in the file are relative to the file's directory."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    base = path.resolve().parent
    for key in ("data_dir", "keystore", "node_ca"):
        if isinstance(doc.get(key), str) and not Path(doc[key]).is_absolute():
            doc[key] = str(base / doc[key])
    if isinstance(doc.get("profile_dirs"), list):
        doc["profile_dirs"] = [str(base / d) for d in doc["profile_dirs"] if isinstance(d, str)]
    try:
        return BridgeConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc

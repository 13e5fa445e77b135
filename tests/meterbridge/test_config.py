"""The bridge's TOML config: defaults are the source's 9600 8N1, bad values are named at start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridchain.meterbridge.config import ConfigError, SerialBus, load_config
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import TESTNET_SCRYPT_N, seal

BASE = """
name = "peer-a"
node_url = "http://127.0.0.1:8700"
data_dir = "data"
{key}

[[buses]]
name = "rs485"
kind = "serial"

[[meters]]
meter_id = "peer-a-net"
bus = "rs485"
slave_id = {slave}
profile = "eastron-sdm630"
"""


def write(tmp_path: Path, key: str = 'key_seed_hex = "' + "11" * 32 + '"', slave: int = 1) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(BASE.format(key=key, slave=slave), encoding="utf-8")
    return path


def test_defaults_are_the_sources_serial_settings(tmp_path: Path) -> None:
    config = load_config(write(tmp_path))
    bus = config.buses[0]
    assert isinstance(bus, SerialBus)
    assert (bus.port, bus.baudrate, bus.bytesize, bus.parity, bus.stopbits) == (
        "/dev/ttyUSB0",
        9600,
        8,
        "N",
        1,
    )
    assert config.interval_s == 900
    assert config.data_dir == tmp_path / "data"  # relative to the config file
    assert config.signing_key().seed == bytes.fromhex("11" * 32)


@pytest.mark.parametrize(
    ("key", "slave", "match"),
    [
        ("", 1, "exactly one of key_seed_hex and keystore"),
        ('key_seed_hex = "' + "11" * 32 + '"', 248, "slave_id"),
        ('key_seed_hex = "zz"', 1, "key_seed_hex"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, key: str, slave: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, key, slave))


def test_keystore_opens_with_the_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SigningKey(b"\x42" * 32)
    (tmp_path / "bridge.json").write_text(
        json.dumps(seal(key, "pw", name="bridge", n=TESTNET_SCRYPT_N)), encoding="utf-8"
    )
    config = load_config(write(tmp_path, 'keystore = "bridge.json"'))
    monkeypatch.delenv("GRIDCHAIN_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="GRIDCHAIN_PASSWORD"):
        config.signing_key()
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "pw")
    assert config.signing_key().public_key == key.public_key


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "keystore: cannot read"),
        (b"{not json", "keystore: .* is not a keystore \\(not JSON"),
        (b'{"version": 2, "version": 1}', "key 'version' appears twice"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_bad_keystore_file_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | None, match: str
) -> None:
    """Failed before: FileNotFoundError, JSONDecodeError or UnicodeDecodeError tracebacks, and
    a duplicate key silently took its last value."""
    if content is not None:
        (tmp_path / "bridge.json").write_bytes(content)
    config = load_config(write(tmp_path, 'keystore = "bridge.json"'))
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "pw")
    with pytest.raises(ConfigError, match=match):
        config.signing_key()


def test_a_byte_order_mark_is_accepted_in_the_config_and_the_keystore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SigningKey(b"\x43" * 32)
    sealed = json.dumps(seal(key, "pw", name="bridge", n=TESTNET_SCRYPT_N)).encode()
    (tmp_path / "bridge.json").write_bytes(b"\xef\xbb\xbf" + sealed)
    path = write(tmp_path, 'keystore = "bridge.json"')
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "pw")
    assert load_config(path).signing_key().public_key == key.public_key


DEVICES = """
[devices]
csms_port = {csms_port}
failsafe_after_s = 10

[[devices.chargers]]
charge_point_id = "{cp}"
owner = "gc1{owner}"
safe_limit_w = 1380

[[devices.inverters]]
name = "battery"
owner = "gc1{owner}"
bus = "{bus}"
slave_id = 1
profile = "generic-battery-inverter"
"""


def write_devices(tmp_path: Path, **fields: object) -> Path:
    values: dict[str, object] = {
        "csms_port": 9000,
        "cp": "cp-1",
        "owner": "ab" * 24,
        "bus": "rs485",
    }
    values.update(fields)
    path = write(tmp_path)
    path.write_text(path.read_text() + DEVICES.format(**values), encoding="utf-8")
    return path


def test_devices_are_optional_and_validated(tmp_path: Path) -> None:
    assert load_config(write(tmp_path)).devices is None
    devices = load_config(write_devices(tmp_path)).devices
    assert devices is not None
    assert devices.chargers[0].safe_limit_w == 1380
    assert devices.chargers[0].connector_id == 1
    assert devices.inverters[0].slave_id == 1  # the inverter may be a registered meter too
    assert devices.inverters[0].meter_id is None  # it follows the chain's link, else its owner
    assert devices.poll_s == 2.0
    path = write_devices(tmp_path)
    path.write_text(path.read_text() + 'meter_id = "bat-1"\n', encoding="utf-8")
    linked = load_config(path).devices
    assert linked is not None
    assert linked.inverters[0].meter_id == "bat-1"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"csms_port": 0}, "chargers need csms_port"),
        ({"cp": "a/b"}, "charge_point_id"),
        ({"owner": "xy"}, "owner"),
        ({"bus": "nowhere"}, "inverter battery: no bus named 'nowhere'"),
    ],
)
def test_bad_device_values_are_named(tmp_path: Path, fields: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(write_devices(tmp_path, **fields))

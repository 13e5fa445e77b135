"""Node configuration: TOML file, environment overrides, and refusals that name the field.

Why: a node that starts with a wrong port, a truncated key or a typo in a section name would
fail later in a confusing way (or silently run with a default); the design asks that a bad
value stop the node at start with a message naming it, and operators rely on the documented
GRIDCHAIN_SECTION__FIELD overrides winning over the file.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gridchain.node.config import ConfigError, NodeConfig, load_config
from tests.helpers import det_key, small_bundle

KEY = det_key("config-test validator")
PEER = det_key("config-test peer")

BASE = f"""
[node]
name = "node-1"
data_dir = "data"
genesis_file = "../genesis.json"
private_key = "{KEY.seed.hex()}"

[api]
host = "0.0.0.0"
port = 8000

[p2p]
port = 9000

[[p2p.peers]]
name = "node-2"
public_key = "{PEER.public_key.hex()}"
host = "10.0.0.2"
port = 9001

[log]
level = "info"
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides from the developer's shell must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("GRIDCHAIN_"):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, text: str = BASE) -> Path:
    folder = tmp_path / "nodes" / "node-1"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.message


def test_a_config_file_is_read_and_relative_paths_follow_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    config = load_config(path)

    assert isinstance(config, NodeConfig)
    assert config.node.name == "node-1"
    assert config.node.data_dir == path.parent / "data"
    assert config.node.genesis_file.resolve() == (tmp_path / "nodes" / "genesis.json").resolve()
    assert config.signing_key.public_key == KEY.public_key
    assert (config.api.host, config.api.port) == ("0.0.0.0", 8000)
    assert (config.p2p.host, config.p2p.port) == ("127.0.0.1", 9000)  # host from the default
    assert [(p.name, p.public_key, p.host, p.port) for p in config.p2p.peers] == [
        ("node-2", PEER.public_key.hex(), "10.0.0.2", 9001)
    ]
    assert config.mempool.max_txs == 10_000
    assert config.log.level == "info"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    elsewhere = tmp_path / "var" / "ledger"
    text = BASE.replace('data_dir = "data"', f'data_dir = "{elsewhere}"')
    assert load_config(_write(tmp_path, text)).node.data_dir == elsewhere


def test_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDCHAIN_API__PORT", "8801")
    monkeypatch.setenv("GRIDCHAIN_LOG__LEVEL", "debug")
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "testnet")  # a wallet variable, not config
    config = load_config(_write(tmp_path))
    assert config.api.port == 8801
    assert config.api.host == "0.0.0.0"  # the rest of the section still comes from the file
    assert config.log.level == "debug"
    assert config.p2p.port == 9000


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("port = 8000", "port = 70000", "api.port"),
        ("port = 9001", "port = -1", "p2p.peers.0.port"),
        (f'private_key = "{KEY.seed.hex()}"', 'private_key = "not hex"', "node.private_key"),
        (f'private_key = "{KEY.seed.hex()}"', 'private_key = "abcd"', "node.private_key"),
        ('level = "info"', 'level = "chatty"', "log.level"),
        ('host = "0.0.0.0"', 'host = "0.0.0.0"\ncolour = "blue"', "api.colour"),
        ("[log]", "[logging]\nlevel = 1\n[log]", "logging"),
        ('name = "node-1"\n', "", "node.name"),
        ("port = 8000", 'port = "8000x"', "api.port"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    assert old in BASE
    message = _refused(_write(tmp_path, BASE.replace(old, new, 1)))
    assert f"{field}:" in message


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("GRIDCHAIN_API__PORT", "70000", "api.port"),
        ("GRIDCHAIN_NODE__PRIVATE_KEY", "00", "node.private_key"),
        ("GRIDCHAIN_API__COLOUR", "blue", "api.colour"),
        ("GRIDCHAIN_P2P__PEERS", "not json", "p2p"),
    ],
)
def test_a_bad_environment_override_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert field in _refused(_write(tmp_path))


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    assert "does not exist" in _refused(tmp_path / "nope.toml")


def test_a_folder_instead_of_a_file_is_a_config_error(tmp_path: Path) -> None:
    _refused(tmp_path)


@pytest.mark.parametrize("text", ["[node\nname = 1", 'name = "a"\nname = "b"', "= 3"])
def test_invalid_toml_is_a_config_error(tmp_path: Path, text: str) -> None:
    assert "not valid TOML" in _refused(_write(tmp_path, text))


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_bytes(b'[node]\nname = "\xff\xfe"\n')
    assert "not valid TOML" in _refused(path)


# --- data_dir (ADR 0021) -------------------------------------------------------------------


def _with_data_dir(tmp_path: Path, data_dir: Path) -> Path:
    return _write(tmp_path, BASE.replace('data_dir = "data"', f'data_dir = "{data_dir}"'))


def test_a_data_dir_that_is_a_file_is_refused_naming_the_field(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    message = _refused(_with_data_dir(tmp_path, blocker))
    assert message.startswith("node.data_dir: ")
    assert "is not a directory" in message


def test_a_data_dir_below_a_file_is_refused_naming_the_field(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    message = _refused(_with_data_dir(tmp_path, blocker / "data"))
    assert message.startswith("node.data_dir: cannot create ")
    assert "is not a directory" in message


@contextmanager
def _folder_nobody_may_write(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write to, even as root (CI runs as root, and for root
    os.access says every folder is writable): a read-only tmpfs when root may mount one,
    otherwise a folder without write permission."""
    locked = tmp_path / "locked"
    if os.geteuid() != 0:
        locked.mkdir(mode=0o500)
        yield locked
        return
    locked.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(locked)],
        check=False,
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs: {mounted.stderr}")
    try:
        yield locked
    finally:
        subprocess.run(["umount", str(locked)], check=True)


def test_a_data_dir_that_is_not_writable_is_refused_naming_the_field(tmp_path: Path) -> None:
    with _folder_nobody_may_write(tmp_path) as locked:
        assert "is not writable" in _refused(_with_data_dir(tmp_path, locked / "data"))
        assert "is not writable" in _refused(_with_data_dir(tmp_path, locked))


def test_a_data_dir_still_to_be_created_is_accepted(tmp_path: Path) -> None:
    wanted = tmp_path / "a" / "b" / "data"
    assert load_config(_with_data_dir(tmp_path, wanted)).node.data_dir == wanted
    assert not wanted.exists()  # checking creates nothing


def test_a_byte_order_mark_before_the_toml_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode("utf-8"))
    assert load_config(path).node.name == "node-1"


def test_the_node_reports_a_bad_data_dir_as_such_not_as_cannot_listen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed before: run_node printed "error: cannot listen: [Errno 17] File exists"."""
    from gridchain.node import server

    monkeypatch.setattr(server, "configure_logging", lambda *_args, **_kw: None)

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    path = _with_data_dir(tmp_path, blocker)
    bundle = small_bundle()
    (tmp_path / "nodes" / "genesis.json").write_bytes(bundle.genesis.canonical_json())
    with pytest.raises(ConfigError, match=r"^node\.data_dir: .* is not a directory$"):
        server.run_node(path)
    assert "cannot listen" not in capsys.readouterr().err

"""The container files agree with the code: compose validates and names real validators."""

from __future__ import annotations

import ast
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridchain.genesis.builder import PEER_DEVICES
from gridchain.genesis.cli import METER_SIM_PORT, node_config_toml
from tests.helpers import small_bundle

REPO = Path(__file__).resolve().parents[2]
#: The root folders installed as gridchain.<name> (symbolic links in gridchain/).
LINKED = (
    "protocol",
    "market",
    "consensus",
    "node",
    "genesis",
    "wallet",
    "meterbridge",
    "bench",
    "api",
    "gateway",
    "agent",
)


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (.ci/run installs it from Debian's package)",
)
def test_compose_file_validates() -> None:
    done = subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr


def test_compose_services_match_generated_validator_names() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    bundle = small_bundle(validators=4, engine="pbft")
    for i, v in enumerate(bundle.validators):
        assert f"  {v.name}:" in text
        assert f"/testnet/nodes/{v.name}/config.toml" in text
        config = tomllib.loads(
            node_config_toml(
                bundle,
                i,
                host="0.0.0.0",
                base_api_port=8700,
                base_p2p_port=9700,
                peer_host="{name}",
            )
        )
        assert config["api"]["host"] == "0.0.0.0"
        assert {p["host"] for p in config["p2p"]["peers"]} == {
            w.name for w in bundle.validators if w.name != v.name
        }


def test_dockerfile_copies_every_package() -> None:
    """The image copies gridchain/ and every root folder its links point to."""
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    assert packages == ["gridchain*"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY gridchain ./gridchain" in dockerfile
    for name in LINKED:
        assert f"COPY {name} ./{name}" in dockerfile, name


def test_gridchain_links_every_root_package() -> None:
    """gridchain.<name> is the root folder <name>: one copy of the code, one import name."""
    found = {p.name for p in (REPO / "gridchain").iterdir() if p.is_symlink()}
    assert found == set(LINKED)
    for name in LINKED:
        link = REPO / "gridchain" / name
        assert link.resolve() == (REPO / name).resolve(), name
        assert (REPO / name / "__init__.py").is_file(), name


def test_no_module_imports_a_package_by_its_old_top_level_name() -> None:
    """From the repository root ``import node`` would still work and load a second copy of every
    module (two ``Block`` classes, two metric registries); only ``gridchain.node`` is allowed."""
    offences: list[str] = []
    sources = [p for p in REPO.rglob("*.py") if not _ignored(p)]
    assert len(sources) > 150  # the scan really walks the tree
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names, line = [alias.name for alias in node.names], node.lineno
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names, line = [node.module], node.lineno
            else:
                continue
            offences.extend(
                f"{path.relative_to(REPO)}:{line}: {name}"
                for name in names
                if name.split(".")[0] in LINKED
            )
    assert offences == []


def _ignored(path: Path) -> bool:
    parts = path.relative_to(REPO).parts
    return parts[0] in {"gridchain", "build"} or any(p.startswith(".") for p in parts)


def test_compose_publishes_only_the_gateway() -> None:
    """The public reaches the chain only through the gateway (ADR 0025)."""
    text = (REPO / "docker-compose.yml").read_text()
    published = [line for line in text.splitlines() if line.strip().startswith("ports:")]
    assert published == ['    ports: ["8443:8443"]']
    assert "/testnet/gateways/gateway-1/config.toml" in text


def test_compose_genesis_command_makes_a_chain_behind_a_gateway(tmp_path: Path) -> None:
    """The genesis service's two commands, run here: the gateway's config loads, relays to
    the validators by service name, and every validator takes client transactions only
    from gateways."""
    from gridchain.cli import main
    from gridchain.gateway.config import load_gateway_config
    from gridchain.node.config import load_config

    out = tmp_path / "testnet"
    init = ["genesis", "init", "--out", str(out), "--validators", "4", "--consensus", "pbft"]
    init += ["--host", "0.0.0.0", "--peer-host", "{name}", "--fast-kdf", "--gateways", "1"]
    gateways = ["testnet", "gateways", "--dir", str(out), "--host", "0.0.0.0"]
    gateways += ["--relay-host", "{name}", "--cert-host", "{name}", "--cert-host", "localhost"]
    env_password = {"GRIDCHAIN_PASSWORD": "testnet"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env_password.items():
            mp.setenv(k, v)
        assert main(init) == 0
        assert main(gateways) == 0
    config = load_gateway_config(out / "gateways" / "gateway-1" / "config.toml")
    assert config.settings.api.host == "0.0.0.0"
    assert config.settings.api.port == 8443
    assert config.settings.relay.api_urls == [f"http://node-{i}:{8699 + i}" for i in range(1, 5)]
    assert {v.host for v in config.link.validators} == {f"node-{i}" for i in range(1, 5)}
    assert (out / "ca" / "ca.pem").is_file()
    for i in range(1, 5):
        node = load_config(out / "nodes" / f"node-{i}" / "config.toml")
        assert node.api.client_txs == "gateways"


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return doc


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def test_compose_runs_validators_gateway_simulator_and_a_bridge_per_peer() -> None:
    services = _compose()["services"]
    bundle = small_bundle(validators=4, engine="pbft")
    peers = [p.name for p in bundle.participants]
    expected = {"genesis", "gateway-1", "meter-simulator"}
    expected |= {v.name for v in bundle.validators} | {f"bridge-{p}" for p in peers}
    assert set(services) == expected
    for peer in peers:
        assert _command(services[f"bridge-{peer}"]) == [
            "meterbridge",
            "run",
            "--config",
            f"/testnet/bridges/{peer}/config.toml",
        ]
    # the simulator serves the households in genesis order, with each peer's devices
    sim = _command(services["meter-simulator"])
    households = [sim[i + 1] for i, arg in enumerate(sim) if arg == "--household"]
    assert households == [",".join(devices) for devices in PEER_DEVICES[: len(peers)]]
    assert sim[sim.index("--tcp") + 1].endswith(f":{METER_SIM_PORT}")


def test_compose_publishes_only_the_gateway_port() -> None:
    services = _compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert published == {"gateway-1": ["8443:8443"]}


def test_compose_services_write_only_to_the_volume_the_image_user_owns(tmp_path: Path) -> None:
    """Every service runs as the image's user (uid 10001) and mounts the named volume at
    /testnet, which the Dockerfile creates owned by that user (a new named volume copies it);
    every file a service writes (configs' data dirs, the simulator's registers) is under it."""
    from gridchain.cli import main
    from gridchain.meterbridge.config import TcpBus
    from gridchain.meterbridge.config import load_config as load_bridge_config
    from gridchain.node.config import load_config as load_node_config

    dockerfile = (REPO / "Dockerfile").read_text()
    runtime = dockerfile.split("\nFROM ")[-1]  # the last stage is the image
    assert "useradd --create-home --uid 10001 gridchain" in runtime
    assert "mkdir /testnet" in runtime
    assert "chown gridchain:gridchain /testnet" in runtime
    assert "\nUSER gridchain\n" in runtime
    compose = _compose()
    assert set(compose["volumes"]) == {"testnet"}
    services = compose["services"]
    for name, service in services.items():
        assert "user" not in service, f"{name} must run as the image's user"
        assert service["volumes"] == ["testnet:/testnet"], name
    # run the genesis service's commands into a directory standing for the volume
    script = services["genesis"]["command"][0]
    out = tmp_path / "testnet"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRIDCHAIN_PASSWORD", "testnet")
        for part in script.split("||", 1)[1].strip(" ()").split("&&"):
            argv = shlex.split(part.replace("/testnet", str(out)))
            assert argv[0] == "gridchain"
            assert main(argv[1:]) == 0
    written: list[Path] = []
    for name, service in services.items():
        argv = _command(service)
        if name == "genesis":
            continue
        config = Path(argv[argv.index("--config") + 1]) if "--config" in argv else None
        if config is not None:
            local = out / config.relative_to("/testnet")
            assert local.is_file(), f"{name}: {config} is not made by the genesis service"
            if argv[0] == "node":
                written.append(load_node_config(local).node.data_dir)
            elif argv[0] == "meterbridge":
                bridge = load_bridge_config(local)
                written.append(bridge.data_dir)
                bus = bridge.buses[0]
                assert isinstance(bus, TcpBus)
                assert bus.host == "meter-simulator"
                assert bridge.node_url == "https://gateway-1:8443"
                assert bridge.node_ca is not None
                assert bridge.node_ca.resolve().is_relative_to(out.resolve())
        if "--registers" in argv:
            registers = Path(argv[argv.index("--registers") + 1])
            assert registers.is_relative_to("/testnet")
            assert (out / registers.relative_to("/testnet")).parent.is_dir()
    assert written
    for path in written:
        assert Path(path).resolve().is_relative_to(out.resolve()), path


def test_dockerfile_builds_for_arm64_as_well() -> None:
    """No amd64-only base or wheel: every stage is the multi-arch python image, and LevelDB
    (plyvel's arm64 build) is installed for the build and for the runtime."""
    dockerfile = (REPO / "Dockerfile").read_text()
    bases = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert bases == ["python:3.11-slim-bookworm", "python:3.11-slim-bookworm"]
    assert "--platform" not in dockerfile.replace("docker buildx build --platform", "")
    assert "x86_64" not in dockerfile
    assert "amd64.whl" not in dockerfile
    assert "libleveldb-dev" in dockerfile
    assert "libleveldb1d" in dockerfile
    assert "linux/amd64,linux/arm64" in dockerfile  # the documented multi-arch build


def test_dockerignore_keeps_virtualenvs_history_and_testnets_out() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".testnet", "**/__pycache__"} <= ignored
    copied = [
        line.split()[1]
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    for source in copied:
        assert source not in ignored, f"{source} is copied but ignored"

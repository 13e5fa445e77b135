"""The container files agree with the code: compose validates and names real validators."""

from __future__ import annotations

import ast
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from gridchain.genesis.cli import node_config_toml
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

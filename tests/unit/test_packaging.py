"""The container files agree with the code: compose validates and names real validators."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from genesis.cli import node_config_toml
from tests.helpers import small_bundle

REPO = Path(__file__).resolve().parents[2]


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
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    dockerfile = (REPO / "Dockerfile").read_text()
    for pattern in packages:
        name = pattern.rstrip("*")
        assert f"COPY {name} ./{name}" in dockerfile, name

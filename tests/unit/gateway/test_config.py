"""A gateway's config file: its tables beside [gateway], and what it refuses to start with."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridchain.gateway.config import load_gateway_config
from gridchain.gateway.server import serve_gateway
from gridchain.gateway.settings import (
    FiltersSection,
    GatewayApiSection,
    GatewaySettings,
    RelaySection,
)
from gridchain.node.config import ConfigError
from tests.unit.gateway.conftest import CHAIN_ID, FakeChain

LINK = """
[gateway]
name = "gateway-1"
genesis_file = "genesis.json"
private_key = "{seed}"

[[gateway.validators]]
name = "node-1"
public_key = "{key}"
host = "127.0.0.1"
port = 9700
"""


def _write(tmp_path: Path, extra: str) -> Path:
    from tests.helpers import det_key

    text = LINK.format(seed="11" * 32, key=det_key("v").public_key.hex()) + extra
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_config_loads_with_paths_relative_to_its_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[api]\ntls_cert = "tls/cert.pem"\ntls_key = "tls/key.pem"\n'
        '[relay]\napi_urls = ["http://127.0.0.1:8700"]\n[filters]\nsender_rate = 5\n',
    )
    config = load_gateway_config(path)
    assert config.name == "gateway-1"
    assert config.settings.api.tls_cert == tmp_path / "tls" / "cert.pem"
    assert config.settings.filters.sender_rate == 5
    assert config.link.genesis_file == tmp_path / "genesis.json"


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ('[api]\ntls_cert = "c.pem"\n[relay]\napi_urls = ["http://x:1"]\n', "tls_key"),
        ("[api]\n", "relay"),
        ('[relay]\napi_urls = ["http://x:1"]\n[filters]\nnonce_window = -1\n', "nonce_window"),
        ('[relay]\napi_urls = ["http://x:1"]\n[bogus]\n', "bogus"),
    ],
    ids=["cert-without-key", "no-relay", "negative-window", "unknown-table"],
)
def test_a_bad_config_is_refused_naming_the_field(tmp_path: Path, extra: str, names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(_write(tmp_path, extra))
    assert names in caught.value.message


async def test_plain_http_on_a_public_address_is_refused() -> None:
    settings = GatewaySettings(
        api=GatewayApiSection(host="0.0.0.0", port=1),
        filters=FiltersSection(),
        relay=RelaySection(api_urls=["http://127.0.0.1:1"]),
    )
    with pytest.raises(ConfigError) as caught:
        await serve_gateway(settings, FakeChain(), CHAIN_ID, stop=asyncio.Event())
    assert "tls_cert" in caught.value.message

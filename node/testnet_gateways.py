"""Put a chain directory's validators behind its gateways (``testnet up --gateways N``).

``genesis init --gateways N`` names the gateways in genesis and writes each one's link table
(``DIR/gateways/<name>/config.toml``, [gateway]).  This completes them for a community:

* a community CA (``DIR/ca/ca.pem``, its key ``DIR/ca/ca.key`` mode 0600) and, per gateway, an
  HTTPS certificate it signed (``DIR/gateways/<name>/tls/``), which wallets pin with ``--ca``;
* each gateway's [api] (HTTPS on ``base_port + i``) and [relay] (the validators' private APIs);
* every validator's ``api.client_txs = "gateways"``: a client transaction reaches it only
  through a gateway's filters;
* every meter bridge's ``node_url``: the first gateway, with the CA pinned.

It runs once per directory (``DIR/ca/ca.pem`` marks it done).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gridchain.genesis.cli import write_private
from gridchain.genesis.community_ca import issue_server_cert, make_ca
from gridchain.protocol.errors import GridchainError

BASE_GATEWAY_PORT = 8443
CA_FILE = Path("ca") / "ca.pem"
GATEWAYS_DIR = "gateways"


class GatewaySetupError(GridchainError):
    code = "gateway_setup"


@dataclass(frozen=True, slots=True)
class GatewayEndpoint:
    name: str
    url: str
    config: Path


def gateway_names(directory: Path) -> list[str]:
    genesis = json.loads((directory / "genesis.json").read_text())
    return [g["name"] for g in genesis.get("gateways", [])]


def ca_file(directory: Path) -> Path:
    return directory / CA_FILE


def _validator_api_urls(directory: Path, names: list[str], relay_host: str | None) -> list[str]:
    """Each validator's API as a gateway reaches it: its config's address, or ``relay_host``
    (``{name}`` becomes the validator's name, e.g. a compose service) with its port."""
    urls = []
    for name in names:
        doc = tomllib.loads((directory / "nodes" / name / "config.toml").read_text("utf-8"))
        host = doc.get("api", {}).get("host", "127.0.0.1")
        host = "127.0.0.1" if host == "0.0.0.0" else host  # noqa: S104 - a comparison
        if relay_host is not None:
            host = relay_host.format(name=name)
        urls.append(f"http://{host}:{doc['api']['port']}")
    return urls


def _set_in_table(text: str, table: str, line: str) -> str:
    """``text`` with ``line`` as the first entry of ``[table]`` (added if missing)."""
    header = f"[{table}]\n"
    key = line.split("=", maxsplit=1)[0].strip()
    if any(row.split("=")[0].strip() == key for row in text.splitlines()):
        return text
    if header in text:
        return text.replace(header, f"{header}{line}\n", 1)
    return f"{text.rstrip()}\n\n{header}{line}\n"


def setup_gateways(
    directory: Path,
    *,
    host: str = "127.0.0.1",
    base_port: int = BASE_GATEWAY_PORT,
    cert_hosts: list[str] | None = None,
    relay_host: str | None = None,
    bridge_host: str | None = None,
) -> list[GatewayEndpoint]:
    """Complete the gateways of ``directory`` (once); return their endpoints.

    ``cert_hosts`` are the names clients use to reach a gateway (``{name}`` becomes the
    gateway's name, e.g. a compose service); the listen ``host`` is always included unless
    it is the wildcard address.  ``relay_host`` is how a gateway reaches the validators' APIs
    (default: each validator config's own API address).  ``bridge_host`` is how the meter
    bridges reach the first gateway (``{name}``: its name, e.g. its compose service; default:
    its URL)."""
    names = gateway_names(directory)
    if not names:
        raise GatewaySetupError(
            f"{directory}/genesis.json names no gateways (create it with --gateways N)"
        )
    genesis = json.loads((directory / "genesis.json").read_text())
    validators = [v["name"] for v in genesis["validators"]]
    relay = _validator_api_urls(directory, validators, relay_host)
    url_host = "127.0.0.1" if host == "0.0.0.0" else host  # noqa: S104 - a comparison
    endpoints = [
        GatewayEndpoint(
            name,
            f"https://{url_host}:{base_port + i}",
            directory / GATEWAYS_DIR / name / "config.toml",
        )
        for i, name in enumerate(names)
    ]
    if ca_file(directory).exists():
        return gateway_endpoints(directory)
    ca = make_ca(str(genesis["chain_name"]))
    write_private(directory / "ca" / "ca.key", ca.key_pem.decode())
    for i, endpoint in enumerate(endpoints):
        folder = endpoint.config.parent
        hosts = [h.format(name=endpoint.name) for h in (cert_hosts or [])]
        hosts += [h for h in (url_host, "localhost") if h not in hosts]
        issued = issue_server_cert(ca, endpoint.name, hosts)
        (folder / "tls").mkdir(parents=True, exist_ok=True)
        (folder / "tls" / "cert.pem").write_bytes(issued.cert_pem)
        write_private(folder / "tls" / "key.pem", issued.key_pem.decode())
        text = endpoint.config.read_text("utf-8")
        text += "\n".join(
            [
                "",
                "# The gateway's public API (HTTPS, certificate signed by the community CA).",
                "[api]",
                f'host = "{host}"',
                f"port = {base_port + i}",
                'tls_cert = "tls/cert.pem"',
                'tls_key = "tls/key.pem"',
                "",
                "# Reads are relayed to the validators' private APIs.",
                "[relay]",
                "api_urls = [" + ", ".join(f'"{u}"' for u in relay) + "]",
                "",
                "[filters]",
                "",
                "[log]",
                'level = "info"',
                "",
            ]
        )
        write_private(endpoint.config, text)
    for name in validators:
        config = directory / "nodes" / name / "config.toml"
        text = _set_in_table(config.read_text("utf-8"), "api", 'client_txs = "gateways"')
        write_private(config, text)
    bridges = directory / "bridges"
    bridge_url = endpoints[0].url
    if bridge_host is not None:
        bridge_url = f"https://{bridge_host.format(name=endpoints[0].name)}:{base_port}"
    for config in sorted(bridges.glob("*/config.toml")) if bridges.exists() else []:
        lines = [
            f'node_url = "{bridge_url}"' if line.startswith("node_url") else line
            for line in config.read_text("utf-8").splitlines()
        ]
        text = _set_top_level(
            "\n".join(lines) + "\n", f'node_ca = "{ca_file(directory).resolve()}"'
        )
        write_private(config, text)
    # the CA certificate last: its presence marks the directory as done
    ca_file(directory).write_bytes(ca.cert_pem)
    return gateway_endpoints(directory)


def gateway_endpoints(directory: Path) -> list[GatewayEndpoint]:
    """Each gateway's HTTPS URL, as its config file says (after setup_gateways)."""
    out = []
    for name in gateway_names(directory):
        config = directory / GATEWAYS_DIR / name / "config.toml"
        api = tomllib.loads(config.read_text("utf-8")).get("api", {})
        host = api.get("host", "127.0.0.1")
        host = "127.0.0.1" if host == "0.0.0.0" else host  # noqa: S104 - a comparison
        out.append(GatewayEndpoint(name, f"https://{host}:{api['port']}", config))
    return out


def _set_top_level(text: str, line: str) -> str:
    """``line`` added before the first table of a TOML text (top-level keys come first)."""
    rows = text.splitlines()
    for i, row in enumerate(rows):
        if row.startswith("["):
            return "\n".join([*rows[:i], line, *rows[i:]]) + "\n"
    return text.rstrip() + f"\n{line}\n"

"""``gridchain genesis init``: write genesis.json, one config per validator, one keystore each.

Layout of ``--out DIR``::

    DIR/genesis.json                    the chain (its hash is the chain id)
    DIR/nodes/<name>/config.toml        a validator's config with its private key (mode 0600)
    DIR/wallets/<participant>.json      encrypted keystores (GRIDCHAIN_PASSWORD or a prompt)
    DIR/wallets/governance.json         the governance key, needed to admit participants
                                        (without ``--council``: the council of one)
    DIR/wallets/council-<i>.json        with ``--council N --threshold K``: each council
                                        member's keystore (``gridchain gov``); the governance
                                        key then signs nothing and is not written
    DIR/bridges/<participant>/config.toml   with ``--with-meters``: that participant's meter
                                        bridge config with its bridge key (mode 0600)
    DIR/gateways/<name>/config.toml     with ``--gateways N``: a gateway's [gateway] table, its
                                        link key and the validators it follows (mode 0600)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.genesis.builder import (
    PEER_DEVICES,
    SLAVES_PER_HOUSEHOLD,
    GenesisBundle,
    NamedKey,
    build_genesis,
    household_meter_ids,
)
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.keystore import DEFAULT_SCRYPT_N, TESTNET_SCRYPT_N, seal

BASE_API_PORT = 8700
BASE_P2P_PORT = 9700
#: The meter simulator's RTU-over-TCP port and the bridges' smart-agent API ports (the
#: source's agent listened on 4012) on a generated testnet with meters.
METER_SIM_PORT = 5020
BASE_AGENT_PORT = 4012
DEFAULT_BRIDGE_INTERVAL_S = 5.0


class OutputExistsError(GridchainError):
    code = "output_exists"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (write a temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def node_config_toml(
    bundle: GenesisBundle,
    index: int,
    *,
    host: str,
    base_api_port: int,
    base_p2p_port: int,
    peer_host: str | None = None,
) -> str:
    """A validator's config.  ``peer_host`` is how the others reach it, where that differs
    from the listen address (``{name}`` becomes the validator's name, e.g. a compose service).
    """
    v = bundle.validators[index]
    lines = [
        "# gridchain validator configuration (local to this machine; the chain is genesis.json).",
        "# Environment variables override it: GRIDCHAIN_API__PORT=8801, GRIDCHAIN_LOG__LEVEL=debug",
        "[node]",
        f'name = "{v.name}"',
        'data_dir = "data"',
        'genesis_file = "../../genesis.json"',
        "# The validator's Ed25519 seed. Keep this file private.",
        f'private_key = "{v.key.seed.hex()}"',
        *(
            [
                "# The validator's X25519 key that opens sealed transactions. Keep it private.",
                f'encryption_key = "{bundle.encryption[index].private_bytes_raw().hex()}"',
            ]
            if bundle.encryption
            else []
        ),
        "",
        "[api]",
        f'host = "{host}"',
        f"port = {base_api_port + index}",
        "",
        "[p2p]",
        f'host = "{host}"',
        f"port = {base_p2p_port + index}",
    ]
    for j, peer in enumerate(bundle.validators):
        if j == index:
            continue
        lines += [
            "",
            "[[p2p.peers]]",
            f'name = "{peer.name}"',
            f'public_key = "{peer.key.public_key.hex()}"',
            f'host = "{(peer_host or host).format(name=peer.name)}"',
            f"port = {base_p2p_port + j}",
        ]
    lines += ["", "[log]", 'level = "info"', ""]
    return "\n".join(lines)


def gateway_config_toml(
    bundle: GenesisBundle,
    index: int,
    *,
    host: str,
    base_p2p_port: int,
    peer_host: str | None = None,
) -> str:
    """Gateway ``index``'s link config (node.follower_config): its key and every validator.

    The gateway process adds its own tables (HTTPS, filters) to this file.
    """
    g = bundle.gateways[index]
    lines = [
        f"# gridchain gateway {g.name}: the [gateway] table is its link to the validators.",
        "[gateway]",
        f'name = "{g.name}"',
        'genesis_file = "../../genesis.json"',
        "# The gateway's Ed25519 seed (its key is in genesis.gateways). Keep this file private.",
        f'private_key = "{g.key.seed.hex()}"',
    ]
    dial_host = "127.0.0.1" if host == "0.0.0.0" else host  # noqa: S104 - a comparison
    for j, validator in enumerate(bundle.validators):
        lines += [
            "",
            "[[gateway.validators]]",
            f'name = "{validator.name}"',
            f'public_key = "{validator.key.public_key.hex()}"',
            f'host = "{(peer_host or dial_host).format(name=validator.name)}"',
            f"port = {base_p2p_port + j}",
        ]
    return "\n".join([*lines, ""])


def bridge_config_toml(
    bundle: GenesisBundle,
    index: int,
    *,
    node_url: str,
    sim_host: str,
    sim_port: int,
    interval_s: float,
    agent_port: int,
) -> str:
    """Participant ``index``'s meter bridge: its household's meters on the simulator's bus."""
    participant, bridge = bundle.participants[index], bundle.bridges[index]
    devices = PEER_DEVICES[index % len(PEER_DEVICES)]
    lines = [
        f"# Meter bridge of {participant.name} (gridchain meterbridge run --config this file).",
        f'name = "{participant.name}"',
        f'node_url = "{node_url}"',
        'data_dir = "data"',
        f"interval_s = {interval_s}",
        "# The bridge key registered for these meters in genesis.json. Keep this file private.",
        f'key_seed_hex = "{bridge.key.seed.hex()}"',
        "",
        "[agent_api]",
        'host = "127.0.0.1"',
        f"port = {agent_port}",
        "",
        "[[buses]]",
        'name = "simulator"',
        'kind = "rtu-over-tcp"',
        f'host = "{sim_host}"',
        f"port = {sim_port}",
    ]
    meters = {m.meter_id: m for m in bundle.genesis.meters}
    for slot, meter_id in household_meter_ids(participant.name, devices):
        lines += [
            "",
            "[[meters]]",
            f'meter_id = "{meter_id}"',
            'bus = "simulator"',
            f"slave_id = {SLAVES_PER_HOUSEHOLD * index + slot + 1}",
            f'profile = "{meters[meter_id].profile}"',
        ]
    return "\n".join([*lines, ""])


def write_bundle(
    bundle: GenesisBundle,
    out: Path,
    *,
    password: str,
    scrypt_n: int,
    host: str = "127.0.0.1",
    base_api_port: int = BASE_API_PORT,
    base_p2p_port: int = BASE_P2P_PORT,
    peer_host: str | None = None,
    force: bool = False,
    meter_sim_port: int = METER_SIM_PORT,
    bridge_interval_s: float = DEFAULT_BRIDGE_INTERVAL_S,
    base_agent_port: int = BASE_AGENT_PORT,
    meter_sim_host: str = "127.0.0.1",
) -> None:
    genesis_path = out / "genesis.json"
    if genesis_path.exists() and not force:
        raise OutputExistsError(f"{genesis_path} exists; use --force to replace the chain")
    if force:
        # Replacing the chain: the old validators' configs, ledgers and wallets belong to the
        # old chain and must not linger beside the new genesis.
        for sub in ("nodes", "wallets", "bridges", "gateways"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    doc = bundle.genesis.model_dump(mode="json")
    genesis_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    for i, v in enumerate(bundle.validators):
        text = node_config_toml(
            bundle,
            i,
            host=host,
            base_api_port=base_api_port,
            base_p2p_port=base_p2p_port,
            peer_host=peer_host,
        )
        write_private(out / "nodes" / v.name / "config.toml", text)
    for i, gateway in enumerate(bundle.gateways):
        text = gateway_config_toml(
            bundle, i, host=host, base_p2p_port=base_p2p_port, peer_host=peer_host
        )
        write_private(out / "gateways" / gateway.name / "config.toml", text)
    for named in (*bundle.participants, *_governing(bundle)):
        keystore = seal(named.key, password, name=named.name, n=scrypt_n)
        write_private(out / "wallets" / f"{named.name}.json", json.dumps(keystore, indent=2))
    for i, participant in enumerate(bundle.participants[: len(bundle.bridges)]):
        node = i % len(bundle.validators)
        api_host = "127.0.0.1" if host == "0.0.0.0" else host  # noqa: S104 - a comparison
        if peer_host is not None:  # each bridge reaches its validator as the validators do
            api_host = peer_host.format(name=bundle.validators[node].name)
        text = bridge_config_toml(
            bundle,
            i,
            node_url=f"http://{api_host}:{base_api_port + node}",
            sim_host=meter_sim_host,
            sim_port=meter_sim_port,
            interval_s=bridge_interval_s,
            agent_port=base_agent_port + i,
        )
        write_private(out / "bridges" / participant.name / "config.toml", text)


def _governing(bundle: GenesisBundle) -> tuple[NamedKey, ...]:
    """The keys that govern: the council's, or the governance key when it is the council."""
    return bundle.council or (bundle.governance,)


def read_new_password(args: argparse.Namespace) -> str:
    """The password that encrypts new keystores: GRIDCHAIN_PASSWORD, or asked twice."""
    from_env = os.environ.get("GRIDCHAIN_PASSWORD")
    if from_env is not None:
        return from_env
    import getpass  # noqa: PLC0415 - interactive path only
    import sys  # noqa: PLC0415

    if not sys.stdin.isatty():
        raise GridchainError("set GRIDCHAIN_PASSWORD to encrypt the wallets (no terminal to ask)")
    first = getpass.getpass("Password for the generated wallets: ")
    if first != getpass.getpass("Repeat the password: "):
        raise GridchainError("the passwords do not match")
    return first


def _init(args: argparse.Namespace) -> int:
    if args.threshold is not None and not args.council:
        raise GridchainError("--threshold needs --council N")
    if args.council and args.threshold is None:
        args.threshold = args.council // 2 + 1
    bundle = build_genesis(
        chain_name=args.chain_name,
        genesis_time_ms=time.time_ns() // 1_000_000,
        validators=args.validators,
        participants=args.participants,
        engine=args.consensus,
        new_key=SigningKey.generate,
        new_encryption_key=X25519PrivateKey.generate,
        slot_length_ms=None if args.slot_seconds is None else args.slot_seconds * 1000,
        block_interval_ms=args.block_interval_ms,
        with_meters=args.with_meters,
        gateways=args.gateways,
        council=args.council,
        threshold=args.threshold if args.council else 0,
    )
    out = Path(args.out)
    write_bundle(
        bundle,
        out,
        password=read_new_password(args),
        scrypt_n=TESTNET_SCRYPT_N if args.fast_kdf else DEFAULT_SCRYPT_N,
        host=args.host,
        base_api_port=args.base_api_port,
        base_p2p_port=args.base_p2p_port,
        peer_host=args.peer_host,
        force=args.force,
        meter_sim_host=args.meter_sim_host,
    )
    summary: dict[str, Any] = {
        "chain_id": bundle.genesis.chain_id.hex(),
        "genesis": str(out / "genesis.json"),
        "validators": [
            {"name": v.name, "config": str(out / "nodes" / v.name / "config.toml")}
            for v in bundle.validators
        ],
        "wallets": [
            {"name": p.name, "address": p.address, "file": str(out / "wallets" / f"{p.name}.json")}
            for p in (*bundle.participants, *_governing(bundle))
        ],
        "council": {
            "threshold": bundle.genesis.threshold,
            "members": [k.hex() for k in bundle.genesis.council_keys()],
        },
        "gateways": [
            {"name": g.name, "config": str(out / "gateways" / g.name / "config.toml")}
            for g in bundle.gateways
        ],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"chain id   {summary['chain_id']}")
        print(f"genesis    {summary['genesis']}")
        for v in summary["validators"]:
            print(f"validator  {v['name']:<12} {v['config']}")
        for w in summary["wallets"]:
            print(f"wallet     {w['name']:<12} {w['address']}  {w['file']}")
        for g in summary["gateways"]:
            print(f"gateway    {g['name']:<12} {g['config']}")
        council = summary["council"]
        print(f"council    {len(council['members'])} members, threshold {council['threshold']}")
    return 0


def register(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text)
    gsub = parser.add_subparsers(dest="genesis_command", required=True, metavar="SUBCOMMAND")
    init = gsub.add_parser("init", help="create a new chain's files")
    init.add_argument("--out", required=True, help="directory to write")
    init.add_argument("--validators", type=int, default=1)
    init.add_argument("--consensus", choices=["solo", "pbft", "pob", "epob"], default="solo")
    init.add_argument("--participants", type=int, default=3)
    init.add_argument(
        "--gateways",
        type=int,
        default=0,
        help="name N gateways in genesis (keys in DIR/gateways/<name>/config.toml)",
    )
    init.add_argument(
        "--council",
        type=int,
        default=0,
        metavar="N",
        help="a governance council of N keys (DIR/wallets/council-<i>.json); default: the "
        "single governance key",
    )
    init.add_argument(
        "--threshold",
        type=int,
        default=None,
        metavar="K",
        help="council approvals that apply a proposal (default: a majority of --council)",
    )
    init.add_argument("--slot-seconds", type=int, default=None)
    init.add_argument("--block-interval-ms", type=int, default=None)
    init.add_argument("--chain-name", default="gridchain-local")
    init.add_argument("--host", default="127.0.0.1", help="address the nodes listen on")
    init.add_argument(
        "--peer-host",
        default=None,
        help="how validators reach each other when not at --host; {name} is the validator's "
        "name (docker-compose: --host 0.0.0.0 --peer-host {name})",
    )
    init.add_argument("--base-api-port", type=int, default=BASE_API_PORT)
    init.add_argument("--base-p2p-port", type=int, default=BASE_P2P_PORT)
    init.add_argument(
        "--fast-kdf", action="store_true", help="cheaper scrypt for throwaway testnet wallets"
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="replace an existing chain (deletes its nodes/ and wallets/)",
    )
    init.add_argument(
        "--with-meters",
        action="store_true",
        help="register each participant's household meters in genesis and write a meter "
        "bridge config per participant under DIR/bridges/ (for `meterbridge simulate`)",
    )
    init.add_argument(
        "--meter-sim-host",
        default="127.0.0.1",
        help="where the bridges reach the meter simulator (docker-compose: meter-simulator)",
    )
    init.add_argument("--json", action="store_true")
    init.set_defaults(handler=_init)

"""``gridchain node init``: a peer device makes its own keys and says what the council needs.

``genesis init`` makes every key of a testnet in one folder (convenient, and one folder then
holds every private key).  A real community grows one device at a time: the new peer runs
``node init`` on its own device, keeps its private keys there, and hands the council only
public keys.  Layout of ``--out DIR``::

    DIR/keys.toml        the validator's Ed25519 seed and X25519 encryption key (the
                         ``[node]`` values of a validator's config.toml) and the meter bridge's
                         seed (a bridge config's ``key_seed_hex``); mode 0600
    DIR/wallet.json      the household's encrypted keystore (GRIDCHAIN_PASSWORD or a prompt)
    DIR/admission.json   public keys only: what ``gridchain gov propose`` needs to admit the
                         household, register its meter and (once the validator set is chain
                         state) add its validator

The same admission is printed (``--json``: exactly the JSON of admission.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.genesis.cli import OutputExistsError, read_new_password, write_private
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.hpke import public_bytes
from gridchain.protocol.keystore import DEFAULT_SCRYPT_N, TESTNET_SCRYPT_N, seal

KEY_FILES = ("keys.toml", "wallet.json", "admission.json")


class PeerNameError(GridchainError):
    code = "bad_argument"


def admission(
    name: str,
    household: SigningKey,
    node: SigningKey,
    encryption: X25519PrivateKey,
    bridge: SigningKey,
) -> dict[str, Any]:
    """The public half of a new peer, and the council's commands that admit it."""
    address = format_address(address_of(household.public_key))
    meter_id = f"{name}-net"
    return {
        "name": name,
        "participant": {"public_key": household.public_key.hex(), "address": address},
        "validator": {
            "public_key": node.public_key.hex(),
            "address": format_address(address_of(node.public_key)),
            "encryption_key": public_bytes(encryption).hex(),
        },
        "bridge": {"public_key": bridge.public_key.hex()},
        "council_commands": [
            f"gridchain gov propose admit --public-key {household.public_key.hex()} --name {name}",
            f"gridchain gov propose meter --meter-id {meter_id} --owner {address} "
            f"--type Netmeter --bridge-key {bridge.public_key.hex()} --profile eastron-sdm630",
        ],
    }


def keys_toml(name: str, node: SigningKey, encryption: X25519PrivateKey, bridge: SigningKey) -> str:
    return "\n".join(
        [
            f"# Private keys of peer {name} made by `gridchain node init`. Keep this file here.",
            "[node]",
            f'name = "{name}"',
            "# the validator's Ed25519 seed (config.toml [node] private_key)",
            f'private_key = "{node.seed.hex()}"',
            "# the validator's X25519 key that opens sealed transactions ([node] encryption_key)",
            f'encryption_key = "{encryption.private_bytes_raw().hex()}"',
            "",
            "[bridge]",
            "# the meter bridge's Ed25519 seed (bridge config key_seed_hex)",
            f'key_seed_hex = "{bridge.seed.hex()}"',
            "",
        ]
    )


def refuse_existing(out: Path, *, force: bool) -> None:
    """Never overwrite a device's keys by accident: they are the peer's identity on chain."""
    existing = [f for f in KEY_FILES if (out / f).exists()]
    if existing and not force:
        raise OutputExistsError(
            f"{out / existing[0]} exists: this device has keys already (--force replaces them)"
        )


def init_peer(
    out: Path, name: str, *, password: str, scrypt_n: int, force: bool = False
) -> dict[str, Any]:
    """Make the keys, write the three files and return the admission."""
    refuse_existing(out, force=force)
    household, node, bridge = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    encryption = X25519PrivateKey.generate()
    write_private(out / "keys.toml", keys_toml(name, node, encryption, bridge))
    keystore = seal(household, password, name=name, n=scrypt_n)
    write_private(out / "wallet.json", json.dumps(keystore, indent=2))
    found = admission(name, household, node, encryption, bridge)
    (out / "admission.json").write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    return found


def _run(args: argparse.Namespace) -> int:
    name: str = args.name
    if not 1 <= len(name) <= 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise PeerNameError("--name is 1-64 letters, digits, '-' or '_'")
    out = Path(args.out)
    refuse_existing(out, force=args.force)
    found = init_peer(
        out,
        name,
        password=read_new_password(args),
        scrypt_n=TESTNET_SCRYPT_N if args.fast_kdf else DEFAULT_SCRYPT_N,
        force=args.force,
    )
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    rows = [
        ("peer", name),
        ("household", found["participant"]["address"]),
        ("household key", found["participant"]["public_key"]),
        ("validator key", found["validator"]["public_key"]),
        ("encryption key", found["validator"]["encryption_key"]),
        ("bridge key", found["bridge"]["public_key"]),
        ("private keys", f"{out / 'keys.toml'} and {out / 'wallet.json'} (keep them here)"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    print("\nGive the council admission.json; a council member then runs:")
    for command in found["council_commands"]:
        print(f"  {command}")
    return 0


def add_init_parser(node_sub: Any) -> None:
    """``gridchain node init`` under the ``node`` command (node/cli.py)."""
    init = node_sub.add_parser(
        "init",
        help="make this peer device's own keys and print what the council needs to admit it",
    )
    init.add_argument("--out", required=True, help="directory for the keys (e.g. ~/.gridchain)")
    init.add_argument("--name", required=True, help="the peer's name on chain, e.g. peer-d")
    init.add_argument("--force", action="store_true", help="replace keys already there")
    init.add_argument("--fast-kdf", action="store_true", help="cheaper scrypt (testnets only)")
    init.add_argument("--json", action="store_true", help="print the admission as JSON")
    init.set_defaults(handler=_run)

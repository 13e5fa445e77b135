"""The genesis document (parse_genesis, chain id) and the files ``genesis init`` writes.

Why: genesis is consensus-critical and hashed into the chain id, so a value that could be read
two ways (a float, a string number), a silently ignored field, a typo'd address or a document
that cannot run (two validators under solo, a day without a tariff) must stop everything with a
message naming the field.  The chain id must depend on the content only, never on how the JSON
was laid out.  The generated files carry secrets, so they must be private and must open.
"""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.genesis.cli import OutputExistsError, write_bundle
from gridchain.genesis.schema import GenesisError, parse_genesis
from gridchain.node.config import load_config
from gridchain.node.follower_config import load_gateway_section
from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.keystore import TESTNET_SCRYPT_N, WrongPasswordError, open_keystore
from tests.helpers import GENESIS_TIME_MS, det_key, key_factory, small_bundle

Doc = dict[str, Any]
PASSWORD = "correct horse"


@pytest.fixture
def doc(bundle: GenesisBundle) -> Doc:
    return bundle.genesis.model_dump(mode="json")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("GRIDCHAIN_"):
            monkeypatch.delenv(name)


def _keyed(label: str, name: str) -> Doc:
    key = det_key(label)
    return {
        "name": name,
        "public_key": key.public_key.hex(),
        "address": format_address(address_of(key.public_key)),
    }


def _typo(address: str) -> str:
    last = "0" if address[-1] != "0" else "1"
    return address[:-1] + last


def _refusal(doc: Doc) -> str:
    with pytest.raises(GenesisError) as info:
        parse_genesis(json.dumps(doc))
    return info.value.message


#: The identity point (small order) and a non-canonical encoding (y = p + 1) of it: keys that
#: OpenSSL accepts forgeries by (ADR 0021).
IDENTITY_KEY = "01" + "00" * 31
NON_CANONICAL_KEY = "ee" + "ff" * 30 + "7f"


def _set_key(entity: Doc, public_hex: str) -> None:
    entity["public_key"] = public_hex
    entity["address"] = format_address(address_of(bytes.fromhex(public_hex)))


def _gateway(label: str, name: str) -> Doc:
    return {"name": name, "public_key": det_key(label).public_key.hex()}


def _add_gateways(doc: Doc, *gateways: Doc) -> None:
    doc["gateways"] = [*doc.get("gateways", []), *gateways]


def _huge_balances(doc: Doc) -> None:
    for balance in doc["balances"]:
        balance["amount_mc"] = 2**62


# --- refusals --------------------------------------------------------------------------------

Mutation = Callable[[Doc], None]

REFUSALS: dict[str, tuple[Mutation, str]] = {
    "float balance": (
        lambda d: d["balances"][0].__setitem__("amount_mc", 1000.0),
        "balances.0.amount_mc",
    ),
    "fractional balance": (
        lambda d: d["balances"][0].__setitem__("amount_mc", 0.5),
        "balances.0.amount_mc",
    ),
    "negative balance": (
        lambda d: d["balances"][1].__setitem__("amount_mc", -1),
        "balances.1.amount_mc",
    ),
    "string time": (lambda d: d.__setitem__("genesis_time_ms", "1000"), "genesis_time_ms"),
    "string interval": (
        lambda d: d["params"].__setitem__("block_interval_ms", "1000"),
        "params.block_interval_ms",
    ),
    "bool interval": (
        lambda d: d["params"].__setitem__("block_interval_ms", True),
        "params.block_interval_ms",
    ),
    "missing chain_name": (lambda d: d.pop("chain_name"), "chain_name"),
    "missing validator key": (lambda d: d["validators"][0].pop("public_key"), "validators.0"),
    "unknown top-level field": (lambda d: d.__setitem__("difficulty", 1), "difficulty"),
    "unknown nested field": (lambda d: d["params"].__setitem__("gas", 1), "params.gas"),
    "bad address checksum": (
        lambda d: d["participants"][0].__setitem__(
            "address", _typo(d["participants"][0]["address"])
        ),
        "participants.0",
    ),
    "address not derived from the key": (
        lambda d: d["participants"][0].__setitem__("address", d["participants"][1]["address"]),
        "participants.0",
    ),
    "upper-case public key": (
        lambda d: d["validators"][0].__setitem__(
            "public_key", d["validators"][0]["public_key"].upper()
        ),
        "validators.0.public_key",
    ),
    "small-order validator key": (
        lambda d: _set_key(d["validators"][0], IDENTITY_KEY),
        "validators.0.public_key: Value error, public key: public key has small order",
    ),
    "small-order participant key": (
        lambda d: _set_key(d["participants"][1], "00" * 32),
        "participants.1.public_key: Value error, public key: public key has small order",
    ),
    "non-canonical participant key": (
        lambda d: _set_key(d["participants"][0], NON_CANONICAL_KEY),
        "participants.0.public_key: Value error, public key: public key is not a canonical",
    ),
    "small-order governance key": (
        lambda d: d.__setitem__("governance_public_key", IDENTITY_KEY),
        "governance_public_key: Value error, public key: public key has small order",
    ),
    "off-curve validator key": (
        lambda d: _set_key(d["validators"][0], "02" + "00" * 31),
        "validators.0.public_key: Value error, public key: public key is not a point",
    ),
    "duplicate participant names": (
        lambda d: d["participants"][1].__setitem__("name", d["participants"][0]["name"]),
        "participants: names must be unique",
    ),
    "duplicate participant keys": (
        lambda d: d["participants"].append({**d["participants"][0], "name": "twin"}),
        "participants: public keys must be unique",
    ),
    "balance for an unknown address": (
        lambda d: d["balances"].append(
            {"address": _keyed("outsider", "x")["address"], "amount_mc": 1}
        ),
        "balances[3].address",
    ),
    "balance listed twice": (
        lambda d: d["balances"].append(dict(d["balances"][0])),
        "balances[3].address",
    ),
    "balance address typo": (
        lambda d: d["balances"][0].__setitem__("address", _typo(d["balances"][0]["address"])),
        "balances.0.address",
    ),
    "supply too large": (_huge_balances, "balances: the total supply"),
    "tariffs with a gap": (
        lambda d: d["params"]["tariffs"].pop(1),
        "params.tariffs",
    ),
    "tariffs ending early": (
        lambda d: d["params"]["tariffs"].pop(),
        "params.tariffs",
    ),
    "feed-in above retail": (
        lambda d: d["params"]["tariffs"][0].__setitem__("feed_in_mc_per_kwh", 10**9),
        "params.tariffs.0",
    ),
    "solo with two validators": (
        lambda d: d["validators"].append(_keyed("second validator", "node-2")),
        "consensus.engine",
    ),
    "no validators": (lambda d: d.__setitem__("validators", []), "validators"),
    "unknown engine": (
        lambda d: d["consensus"].__setitem__("engine", "pow"),
        "consensus.engine",
    ),
    "gateway with a validator's key": (
        lambda d: _add_gateways(
            d, {"name": "gateway-1", "public_key": d["validators"][0]["public_key"]}
        ),
        "gateways: key",
    ),
    "duplicate gateway names": (
        lambda d: _add_gateways(d, _gateway("g1", "gateway-1"), _gateway("g2", "gateway-1")),
        "gateways: names must be unique",
    ),
    "duplicate gateway keys": (
        lambda d: _add_gateways(d, _gateway("g1", "gateway-1"), _gateway("g1", "gateway-2")),
        "gateways: public keys must be unique",
    ),
    "small-order gateway key": (
        lambda d: _add_gateways(d, {"name": "gateway-1", "public_key": IDENTITY_KEY}),
        "gateways.0.public_key: Value error, public key: public key has small order",
    ),
    "gateway with an address": (
        lambda d: _add_gateways(d, {**_gateway("g1", "gateway-1"), "address": "gc1"}),
        "gateways.0.address",
    ),
    "block interval too short": (
        lambda d: d["params"].__setitem__("block_interval_ms", 9),
        "params.block_interval_ms",
    ),
    "block interval too long": (
        lambda d: d["params"].__setitem__("block_interval_ms", 3_600_001),
        "params.block_interval_ms",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_bad_document_is_refused_naming_the_field(doc: Doc, case: str) -> None:
    mutate, field = REFUSALS[case]
    bad = copy.deepcopy(doc)
    mutate(bad)
    assert field in _refusal(bad)


def test_a_utf8_byte_order_mark_is_accepted(doc: Doc, bundle: GenesisBundle) -> None:
    """Failed before: "Invalid JSON: expected value at line 1 column 1" for a file a Windows
    editor saved.  Accepted (ADR 0021): the chain id is over the canonical form, not the file."""
    raw = json.dumps(doc, indent=2).encode("utf-8")
    assert parse_genesis(b"\xef\xbb\xbf" + raw).chain_id == bundle.genesis.chain_id
    assert parse_genesis("\ufeff" + raw.decode()).chain_id == bundle.genesis.chain_id


@pytest.mark.parametrize(
    ("key", "where"),
    [("chain_name", "top level"), ("amount_mc", "balances[0]"), ("engine", "consensus")],
)
def test_a_duplicate_key_is_refused_naming_it(doc: Doc, key: str, where: str) -> None:
    """Failed before: json keeps the last value silently, so a reviewer reading the first
    occurrence approves a different document than the one the node runs."""
    text = json.dumps(doc)
    needle = f'"{key}": '
    at = text.index(needle)
    doubled = (
        text[:at] + needle + json.dumps("first" if key != "amount_mc" else 1) + ", " + text[at:]
    )
    with pytest.raises(GenesisError) as info:
        parse_genesis(doubled.encode())
    assert f"key '{key}' appears twice" in info.value.message, where


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"\xff{}", "not UTF-8"),
        (b'{"chain_name": NaN}', "NaN is not a JSON value"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_text_that_is_not_strict_json_is_refused_saying_why(raw: bytes, text: str) -> None:
    with pytest.raises(GenesisError, match=text):
        parse_genesis(raw)


def test_the_boundaries_of_the_block_interval_are_accepted(doc: Doc) -> None:
    for ms in (10, 3_600_000):
        doc["params"]["block_interval_ms"] = ms
        assert parse_genesis(json.dumps(doc)).params.block_interval_ms == ms


@pytest.mark.parametrize("text", ["{not json", "[]", "", "null"])
def test_text_that_is_not_a_genesis_object_is_refused(text: str) -> None:
    with pytest.raises(GenesisError):
        parse_genesis(text)


def test_the_builder_refuses_bad_values_too() -> None:
    with pytest.raises(GenesisError, match=r"consensus\.engine"):
        small_bundle(validators=2, engine="solo")
    with pytest.raises(GenesisError, match=r"params\.block_interval_ms"):
        small_bundle(block_interval_ms=5)


# --- chain id --------------------------------------------------------------------------------


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


def test_the_chain_id_does_not_depend_on_json_layout(doc: Doc, bundle: GenesisBundle) -> None:
    texts = [
        json.dumps(doc),
        json.dumps(_reversed_keys(doc)),
        json.dumps(doc, indent=4, sort_keys=True),
        json.dumps(_reversed_keys(doc), separators=(",", ":")),
    ]
    ids = {parse_genesis(t).chain_id for t in texts} | {parse_genesis(doc).chain_id}
    assert ids == {bundle.genesis.chain_id}
    assert len(bundle.genesis.chain_id) == 32


def test_the_chain_id_is_reproducible_from_the_same_inputs() -> None:
    assert small_bundle().genesis.chain_id == small_bundle().genesis.chain_id
    assert small_bundle().genesis.chain_id != small_bundle(seed="other keys").genesis.chain_id


CHANGES: dict[str, Mutation] = {
    "chain_name": lambda d: d.__setitem__("chain_name", "gridchain-test2"),
    "genesis_time_ms": lambda d: d.__setitem__("genesis_time_ms", d["genesis_time_ms"] + 1),
    "engine": lambda d: d["consensus"].__setitem__("engine", "pbft"),
    "view_timeout_ms": lambda d: d["consensus"].__setitem__("view_timeout_ms", 4001),
    "block_interval_ms": lambda d: d["params"].__setitem__("block_interval_ms", 1001),
    "empty_blocks": lambda d: d["params"].__setitem__("empty_blocks", True),
    "tariff": lambda d: d["params"]["tariffs"][2].__setitem__("retail_mc_per_kwh", 350_001),
    "balance": lambda d: d["balances"][2].__setitem__("amount_mc", 1_000_001),
    "devices": lambda d: d["participants"][2].__setitem__("devices", ["PV"]),
    "participant name": lambda d: d["participants"][0].__setitem__("name", "peer-z"),
    "participant order": lambda d: d["participants"].reverse(),
    "governance": lambda d: d.__setitem__(
        "governance_public_key", det_key("other governance").public_key.hex()
    ),
    "gateways": lambda d: _add_gateways(d, _gateway("g1", "gateway-1")),
}


def test_an_empty_gateway_list_keeps_the_chain_id_of_a_document_without_one(
    doc: Doc, bundle: GenesisBundle
) -> None:
    """Chains made before gateways existed keep their id (canonical_json leaves it out)."""
    without = {k: v for k, v in doc.items() if k != "gateways"}
    assert "gateways" in doc  # the written document lists it, empty
    assert parse_genesis(json.dumps(without)).chain_id == bundle.genesis.chain_id
    assert parse_genesis(json.dumps({**doc, "gateways": []})).chain_id == bundle.genesis.chain_id


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_chain_id_changes_with_any_value(doc: Doc, bundle: GenesisBundle, change: str) -> None:
    changed = copy.deepcopy(doc)
    CHANGES[change](changed)
    assert changed != doc
    assert parse_genesis(json.dumps(changed)).chain_id != bundle.genesis.chain_id


# --- the files genesis init writes -----------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def pbft_bundle() -> GenesisBundle:
    return small_bundle(validators=3, participants=2, engine="pbft", seed="write-bundle")


def test_write_bundle_writes_genesis_configs_and_keystores(
    tmp_path: Path, pbft_bundle: GenesisBundle
) -> None:
    out = tmp_path / "chain"
    write_bundle(pbft_bundle, out, password=PASSWORD, scrypt_n=TESTNET_SCRYPT_N, base_api_port=8800)

    genesis = parse_genesis((out / "genesis.json").read_bytes())
    assert genesis.chain_id == pbft_bundle.genesis.chain_id

    names = [v.name for v in pbft_bundle.validators]
    assert sorted(p.name for p in (out / "nodes").iterdir()) == names
    for i, validator in enumerate(pbft_bundle.validators):
        path = out / "nodes" / validator.name / "config.toml"
        assert _mode(path) == 0o600
        config = load_config(path)
        assert config.node.name == validator.name
        assert config.signing_key.public_key == validator.key.public_key
        assert config.node.genesis_file.resolve() == (out / "genesis.json").resolve()
        assert config.node.data_dir == path.parent / "data"
        assert config.api.port == 8800 + i
        assert config.p2p.port == 9700 + i
        others = [
            (v.name, v.key.public_key.hex(), 9700 + j)
            for j, v in enumerate(pbft_bundle.validators)
            if j != i
        ]
        assert [(p.name, p.public_key, p.port) for p in config.p2p.peers] == others

    wallets = out / "wallets"
    expected = {f"{k.name}.json": k for k in (*pbft_bundle.participants, pbft_bundle.governance)}
    assert sorted(p.name for p in wallets.iterdir()) == sorted(expected)
    for filename, named in expected.items():
        path = wallets / filename
        assert _mode(path) == 0o600
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert doc["address"] == named.address
        assert doc["crypto"]["kdfparams"]["n"] == TESTNET_SCRYPT_N
        assert open_keystore(doc, PASSWORD).public_key == named.key.public_key
    with pytest.raises(WrongPasswordError):
        open_keystore(json.loads((wallets / "governance.json").read_text()), "wrong")


def test_genesis_init_names_gateways_and_writes_their_link_configs(tmp_path: Path) -> None:
    bundle = build_genesis(
        chain_name="gridchain-test",
        genesis_time_ms=GENESIS_TIME_MS,
        validators=4,
        participants=2,
        engine="pbft",
        new_key=key_factory("gateways"),
        gateways=2,
    )
    assert [g.name for g in bundle.genesis.gateways] == ["gateway-1", "gateway-2"]
    assert bundle.genesis.gateway_keys() == tuple(g.key.public_key for g in bundle.gateways)
    assert not set(bundle.genesis.gateway_keys()) & set(bundle.genesis.validator_keys())
    out = tmp_path / "chain"
    write_bundle(bundle, out, password=PASSWORD, scrypt_n=TESTNET_SCRYPT_N, base_p2p_port=9900)

    assert parse_genesis((out / "genesis.json").read_bytes()).chain_id == bundle.genesis.chain_id
    for gateway in bundle.gateways:
        path = out / "gateways" / gateway.name / "config.toml"
        assert _mode(path) == 0o600
        section = load_gateway_section(path)
        assert section.name == gateway.name
        assert section.signing_key.public_key == gateway.key.public_key
        assert section.genesis_file.resolve() == (out / "genesis.json").resolve()
        assert [(v.name, v.public_key, v.host, v.port) for v in section.validators] == [
            (v.name, v.key.public_key.hex(), "127.0.0.1", 9900 + j)
            for j, v in enumerate(bundle.validators)
        ]


def test_write_bundle_refuses_to_overwrite_without_force(
    tmp_path: Path, pbft_bundle: GenesisBundle
) -> None:
    out = tmp_path / "chain"
    write_bundle(pbft_bundle, out, password=PASSWORD, scrypt_n=TESTNET_SCRYPT_N)
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    replacement = small_bundle(seed="replacement")

    with pytest.raises(OutputExistsError):
        write_bundle(replacement, out, password=PASSWORD, scrypt_n=TESTNET_SCRYPT_N)
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before

    write_bundle(replacement, out, password=PASSWORD, scrypt_n=TESTNET_SCRYPT_N, force=True)
    assert parse_genesis((out / "genesis.json").read_bytes()).chain_id == (
        replacement.genesis.chain_id
    )
    config = load_config(out / "nodes" / "node-1" / "config.toml")
    assert config.signing_key.public_key == replacement.validators[0].key.public_key
    assert _mode(out / "nodes" / "node-1" / "config.toml") == 0o600

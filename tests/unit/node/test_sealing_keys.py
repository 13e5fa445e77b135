"""Validators' encryption keys: genesis registers and checks them, ``genesis init`` writes the
private half into the validator's private config, the node refuses to start with a missing
or wrong key, and the sealed-read checks and replay memory refuse what they must."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from gridchain.genesis.cli import write_bundle
from gridchain.genesis.schema import GenesisError, parse_genesis
from gridchain.node.api_reply import ReadsBusyError
from gridchain.node.config import ConfigError, load_config
from gridchain.node.sealed_reads import ReplayCache
from gridchain.node.sealing import validator_opener
from gridchain.protocol.address import address_of
from gridchain.protocol.errors import SignatureError
from gridchain.protocol.hpke import BadX25519KeyError, public_bytes
from gridchain.protocol.keystore import TESTNET_SCRYPT_N
from gridchain.protocol.sealed_read import (
    MAX_READ_WINDOW_MS,
    NotOwnerReadError,
    ReadExpiredError,
    ReadQuery,
    ReadRefusedError,
    ReadReplayedError,
    ReadWindowError,
    SignedRead,
    check_read,
    sign_read,
)
from tests.helpers import det_encryption_key, det_key, sealing_bundle, small_bundle

BUNDLE = sealing_bundle(3, seed="sealing-keys")
CHAIN = BUNDLE.genesis.chain_id
NOW = 1_800_000_000_000


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = BUNDLE.genesis.model_dump(mode="json")
    return doc


# --- genesis ----------------------------------------------------------------------------------


def test_genesis_lists_one_encryption_key_per_validator() -> None:
    assert BUNDLE.genesis.encryption_keys() == tuple(public_bytes(k) for k in BUNDLE.encryption)


@pytest.mark.parametrize(
    "bad",
    [
        "00" * 32,  # all zero
        "01" + "00" * 31,  # u = 1, low order
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # order 8
        "ff" * 32,  # not canonical
        "ab" * 31,  # too short
        "AB" * 32,  # upper case
    ],
)
def test_a_bad_encryption_key_is_refused_naming_the_field(bad: str) -> None:
    doc = _doc()
    doc["validators"][1]["encryption_key"] = bad
    with pytest.raises(GenesisError, match=r"validators\.1\.encryption_key"):
        parse_genesis(doc)


def test_encryption_keys_are_all_or_none_and_unique() -> None:
    doc = _doc()
    del doc["validators"][2]["encryption_key"]
    with pytest.raises(GenesisError, match="every validator has an encryption_key, or none"):
        parse_genesis(doc)
    doc = _doc()
    doc["validators"][2]["encryption_key"] = doc["validators"][0]["encryption_key"]
    with pytest.raises(GenesisError, match="encryption keys must be unique"):
        parse_genesis(doc)


def test_a_chain_without_encryption_keys_keeps_its_chain_id() -> None:
    """Documents written before encryption keys existed hash as they did: an absent key is
    left out of the canonical form, not written as null."""
    plain = small_bundle()
    assert b"encryption_key" not in plain.genesis.canonical_json()
    assert plain.genesis.encryption_keys() == ()
    assert b"encryption_key" in BUNDLE.genesis.canonical_json()


# --- the files genesis init writes and the node's start ---------------------------------------


def test_write_bundle_puts_each_private_key_in_its_validators_private_config(
    tmp_path: Path,
) -> None:
    write_bundle(BUNDLE, tmp_path, password="pw", scrypt_n=TESTNET_SCRYPT_N)
    for i, validator in enumerate(BUNDLE.validators):
        path = tmp_path / "nodes" / validator.name / "config.toml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        config = load_config(path)
        key = config.encryption_key
        assert key is not None
        assert public_bytes(key) == BUNDLE.genesis.encryption_keys()[i]
        opener = validator_opener(BUNDLE.genesis, validator.key.public_key, key)
        assert opener is not None
        assert opener.index == i
    written = json.loads((tmp_path / "genesis.json").read_text())
    assert parse_genesis(written).chain_id == CHAIN


def test_the_node_refuses_a_missing_or_foreign_encryption_key() -> None:
    validator = BUNDLE.validators[1].key.public_key
    with pytest.raises(ConfigError, match="must be in the config"):
        validator_opener(BUNDLE.genesis, validator, None)
    with pytest.raises(ConfigError, match="not the key genesis registers"):
        validator_opener(BUNDLE.genesis, validator, BUNDLE.encryption[0])
    plain = small_bundle()
    with pytest.raises(ConfigError, match="registers no encryption keys"):
        validator_opener(plain.genesis, plain.validators[0].key.public_key, BUNDLE.encryption[0])
    assert validator_opener(plain.genesis, plain.validators[0].key.public_key, None) is None


def test_a_config_encryption_key_must_be_hex(tmp_path: Path) -> None:
    write_bundle(BUNDLE, tmp_path, password="pw", scrypt_n=TESTNET_SCRYPT_N)
    path = tmp_path / "nodes" / BUNDLE.validators[0].name / "config.toml"
    text = path.read_text().replace('encryption_key = "', 'encryption_key = "zz')
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"node\.encryption_key"):
        load_config(path)


# --- sealed-read checks and the replay memory -------------------------------------------------

OWNER = BUNDLE.participants[0].key
OTHER = BUNDLE.participants[1].key


def _read(signer: Any = OWNER, *, account: bytes | None = None, until: int = NOW + 30_000,
          reply: bytes | None = None, kind: int = 0) -> SignedRead:  # fmt: skip
    query = ReadQuery(
        account=address_of(OWNER.public_key) if account is None else account,
        kind=kind,
        meter_id="",
        request_id=b"\x07" * 16,
        valid_until_ms=until,
        reply_key=public_bytes(det_encryption_key("reply")) if reply is None else reply,
    )
    return sign_read(signer, CHAIN, query)


def test_a_good_request_passes() -> None:
    check_read(_read(), CHAIN, NOW)


def test_read_refusals_are_typed() -> None:
    with pytest.raises(NotOwnerReadError):
        check_read(_read(OTHER), CHAIN, NOW)
    with pytest.raises(ReadExpiredError):
        check_read(_read(until=NOW - 1), CHAIN, NOW)
    with pytest.raises(ReadWindowError):
        check_read(_read(until=NOW + MAX_READ_WINDOW_MS + 1), CHAIN, NOW)
    with pytest.raises(BadX25519KeyError):
        check_read(_read(reply=bytes(32)), CHAIN, NOW)
    with pytest.raises(ReadRefusedError):
        check_read(_read(kind=99), CHAIN, NOW)
    with pytest.raises(SignatureError):
        check_read(_read(), small_bundle().genesis.chain_id, NOW)  # another chain
    stranger = det_key("stranger")
    forged = SignedRead(stranger.public_key, _read().query, _read().signature)
    with pytest.raises(SignatureError):
        check_read(forged, CHAIN, NOW)


def test_the_replay_memory_refuses_a_live_id_and_forgets_an_expired_one() -> None:
    cache = ReplayCache(capacity=2)
    cache.admit(b"a" * 16, NOW + 10, NOW)
    with pytest.raises(ReadReplayedError):
        cache.admit(b"a" * 16, NOW + 10, NOW + 5)
    cache.admit(b"b" * 16, NOW + 100, NOW)
    with pytest.raises(ReadsBusyError):
        cache.admit(b"c" * 16, NOW + 100, NOW + 5)  # full of live ids: refuse, forget nothing
    cache.admit(b"a" * 16, NOW + 200, NOW + 11)  # a's validity ended: its id may be used again
    assert len(cache) == 2

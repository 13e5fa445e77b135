"""Keystore files: round trip, 0600 from the start, never overwritten without --force."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gridchain.protocol.address import address_of, format_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import TESTNET_SCRYPT_N, WrongPasswordError, open_keystore, seal
from gridchain.wallet.keystore_file import (
    WalletExistsError,
    WalletFileError,
    WalletNotFoundError,
    _move_into_place,
    default_wallet_path,
    keystore_address,
    read_keystore,
    write_keystore,
)

KEY = SigningKey(bytes([1]) * 32)
OTHER = SigningKey(bytes([2]) * 32)


def sealed(key: SigningKey = KEY, password: str = "pw") -> dict[str, object]:
    return seal(key, password, name="test", n=TESTNET_SCRYPT_N)


def test_write_then_read_then_open_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    write_keystore(path, sealed())
    doc = read_keystore(path)
    assert open_keystore(doc, "pw").seed == KEY.seed
    assert keystore_address(doc, path) == format_address(address_of(KEY.public_key))


def test_file_is_0600_and_new_directory_0700(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "dir" / "w.json"
    write_keystore(path, sealed())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_file_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        path = tmp_path / "w.json"
        write_keystore(path, sealed())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_refuses_to_overwrite_and_leaves_the_old_key(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    write_keystore(path, sealed(KEY))
    before = path.read_bytes()
    with pytest.raises(WalletExistsError, match="--force") as info:
        write_keystore(path, sealed(OTHER))
    assert info.value.code == "wallet_exists"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json"]  # no temp file left


def test_force_replaces(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    write_keystore(path, sealed(KEY))
    write_keystore(path, sealed(OTHER), force=True)
    assert open_keystore(read_keystore(path), "pw").seed == OTHER.seed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json"]


def test_file_that_appears_after_the_check_is_still_not_overwritten(tmp_path: Path) -> None:
    """The final step is a hard link, which fails if another process created the file."""
    tmp = tmp_path / ".tmp"
    tmp.write_text("new")
    target = tmp_path / "w.json"
    target.write_text("theirs")
    with pytest.raises(WalletExistsError):
        _move_into_place(tmp, target, force=False)
    assert target.read_text() == "theirs"


def test_wrong_password_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    write_keystore(path, sealed(password="right"))
    with pytest.raises(WrongPasswordError, match="wrong password for this keystore"):
        open_keystore(read_keystore(path), "wrong")


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(WalletNotFoundError, match="gridchain wallet new") as info:
        read_keystore(path)
    assert str(path) in info.value.message


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[1, 2]",
        b'{"address": 5}',
        b"\xff\xfe",
        b'{"address": "gc1", "public_key": ""}',
    ],
)
def test_malformed_files_are_typed_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "w.json"
    path.write_bytes(content)
    with pytest.raises(WalletFileError):
        read_keystore(path)


def test_a_duplicate_key_is_refused_naming_it(tmp_path: Path) -> None:
    """Failed before: json kept the last "public_key", so the file shown to a reviewer (first
    occurrence) was not the key the wallet used."""
    text = json.dumps(sealed(KEY))
    doubled = text.replace(
        '"public_key": ', f'"public_key": "{OTHER.public_key.hex()}", "public_key": ', 1
    )
    path = tmp_path / "w.json"
    path.write_text(doubled)
    with pytest.raises(WalletFileError, match="key 'public_key' appears twice"):
        read_keystore(path)


def test_address_not_matching_the_public_key_is_refused(tmp_path: Path) -> None:
    """An edited visible address must not be shown as the wallet's address."""
    doc = sealed(KEY)
    doc["address"] = format_address(address_of(OTHER.public_key))
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(WalletFileError, match="does not belong"):
        read_keystore(path)


def test_directory_in_place_of_the_file(tmp_path: Path) -> None:
    with pytest.raises(WalletFileError, match="directory"):
        read_keystore(tmp_path)


def test_unwritable_location_is_a_typed_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WalletFileError, match="cannot create"):
        write_keystore(blocker / "w.json", sealed())


def test_default_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_wallet_path({}) == tmp_path / ".gridchain" / "wallet.json"
    assert default_wallet_path({"GRIDCHAIN_WALLET": ""}) == tmp_path / ".gridchain" / "wallet.json"
    assert default_wallet_path({"GRIDCHAIN_WALLET": "~/w.json"}) == tmp_path / "w.json"

"""Keystore files on disk: where they live, how they are read, and how they are written safely.

:mod:`protocol.keystore` turns keys into JSON-able dictionaries and back; this module owns the
file.  Two things matter for a file that holds a key:

* **Nobody else may read it.**  The file is created with mode 0600 from the first byte (the
  temporary file is opened with that mode, never chmod-ed after the content is in it), and the
  directory the wallet creates is 0700.
* **A crash or a second command never leaves half a key or destroys one.**  The content is
  written to a temporary file in the same directory, fsync-ed, then moved into place in one
  step.  Without ``force`` the move is a hard link, which the kernel refuses if the target
  exists, so two ``wallet new`` racing each other cannot overwrite a key even between our
  check and our write.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gridchain.protocol.address import address_of, format_address, parse_address
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.json_document import JsonDocumentError, load_object

WALLET_ENV = "GRIDCHAIN_WALLET"
DEFAULT_WALLET = Path("~/.gridchain/wallet.json")
FILE_MODE = 0o600
DIR_MODE = 0o700
#: A keystore is a few hundred bytes; anything much larger is not one.
MAX_KEYSTORE_BYTES = 64 * 1024


class WalletFileError(GridchainError):
    """A keystore file that cannot be read, parsed or written."""

    code = "wallet_file"


class WalletNotFoundError(WalletFileError):
    code = "wallet_not_found"


class WalletExistsError(WalletFileError):
    code = "wallet_exists"


def default_wallet_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$GRIDCHAIN_WALLET`` if set and non-empty, else ``~/.gridchain/wallet.json``."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    value = env.get(WALLET_ENV, "")
    return Path(value).expanduser() if value else DEFAULT_WALLET.expanduser()


def read_keystore(path: Path) -> dict[str, Any]:
    """Read and minimally check a keystore file (no password needed).

    The visible ``address`` is checked against ``public_key`` here so that ``wallet address``
    never prints an address the key cannot sign for; the cipher fields are checked by
    :func:`protocol.keystore.open_keystore` when the key is needed.
    """
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_KEYSTORE_BYTES + 1)
    except FileNotFoundError:
        raise WalletNotFoundError(
            f"no wallet at {path}: create one with `gridchain wallet new` "
            f"or point --wallet (or ${WALLET_ENV}) at an existing keystore"
        ) from None
    except IsADirectoryError:
        raise WalletFileError(f"{path} is a directory, not a keystore file") from None
    except OSError as exc:
        raise WalletFileError(f"cannot read wallet {path}: {exc.strerror or exc}") from None
    return parse_keystore(raw, path)


def parse_keystore(raw: bytes, path: Path) -> dict[str, Any]:
    """The keystore JSON object in ``raw`` (the content of ``path``), with its address checked.

    Split from the file reading so the parser can be fuzzed on bytes (tests/fuzz).
    """
    if len(raw) > MAX_KEYSTORE_BYTES:
        raise WalletFileError(f"{path} is too large to be a keystore")
    try:
        doc = load_object(raw)
    except JsonDocumentError as exc:  # not UTF-8, not JSON, not an object, a duplicate key
        raise WalletFileError(f"{path} is not a keystore ({exc.message})") from None
    keystore_address(doc, path)
    return doc


def keystore_address(doc: dict[str, Any], path: Path) -> str:
    """The keystore's ``gc1...`` address, checked against its public key."""
    address_text = doc.get("address")
    public_hex = doc.get("public_key")
    if not isinstance(address_text, str) or not isinstance(public_hex, str):
        raise WalletFileError(f"{path} is not a keystore (no address or public_key)")
    try:
        address = parse_address(address_text)
        public_key = bytes.fromhex(public_hex)
        derived = address_of(public_key)
    except ValueError:
        raise WalletFileError(f"{path}: public_key is not hex") from None
    except GridchainError as exc:
        raise WalletFileError(f"{path}: {exc.message}") from None
    if derived != address:
        raise WalletFileError(f"{path}: address does not belong to the keystore's public key")
    return format_address(address)


def write_keystore(path: Path, doc: dict[str, Any], *, force: bool = False) -> None:
    """Write ``doc`` to ``path`` atomically with mode 0600; refuse to replace unless ``force``."""
    if not force and path.exists():
        raise WalletExistsError(_exists_message(path))
    directory = path.parent
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise WalletFileError(f"cannot create {directory}: {exc.strerror or exc}") from None
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise WalletFileError(f"cannot write in {directory}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        try:
            # mkstemp already creates the file 0600; fchmod makes that explicit and independent
            # of the platform's mkstemp, before a single byte of the key is written.
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _move_into_place(tmp, path, force=force)
        except OSError as exc:
            raise WalletFileError(f"cannot write wallet {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_directory(directory)


def _move_into_place(tmp: Path, path: Path, *, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise WalletExistsError(_exists_message(path)) from None
    except OSError as exc:
        # Some filesystems (FAT on a USB stick, some network mounts) have no hard links; the
        # check above is then the only guard, which is still right for a single user.
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if path.exists():
            raise WalletExistsError(_exists_message(path)) from None
        os.replace(tmp, path)


def _fsync_directory(directory: Path) -> None:
    """Persist the new directory entry, so a power cut right after `new` keeps the file."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _exists_message(path: Path) -> str:
    return (
        f"a wallet already exists at {path}; pass --force to replace it "
        "(its key is lost unless you have a copy) or choose another --wallet"
    )

"""Where the keystore password comes from: the environment, a prompt, or a clear refusal.

Order: ``$GRIDCHAIN_PASSWORD`` (scripts, testnets: DESIGN.md section 10) wins; otherwise the
user is prompted without echo, but only when stdin is a terminal.  A wallet run from cron or a
pipe with no password set must not hang on a prompt nobody sees, nor read a password from the
piped data, so it stops with an error that names the variable to set.

When a new keystore is sealed on a terminal the password is asked twice: a typo there locks the
key away for good.  An empty password is refused for a new keystore for the same reason.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping

from gridchain.protocol.errors import GridchainError

PASSWORD_ENV = "GRIDCHAIN_PASSWORD"  # noqa: S105 - the variable's name, not a password

Prompt = Callable[[str], str]


class PasswordError(GridchainError):
    """No usable password could be obtained."""

    code = "password_unavailable"


class PasswordMismatchError(PasswordError):
    code = "password_mismatch"


class EmptyPasswordError(PasswordError):
    code = "password_empty"


class PasswordNotUtf8Error(PasswordError):
    """A password that is not UTF-8 text: keystores derive their key from its UTF-8 bytes, so
    such a password could never seal or open one the same way twice (ADR 0021)."""

    code = "password_not_utf8"


def _require_utf8(password: str, source: str) -> str:
    # os.environ and getpass turn bytes that are not UTF-8 into lone surrogates.
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise PasswordNotUtf8Error(f"{source} is not valid UTF-8 text") from None
    return password


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stdin
        return False


def read_password(
    *,
    new: bool = False,
    environ: Mapping[str, str] | None = None,
    is_tty: Callable[[], bool] = _stdin_is_tty,
    prompt: Prompt = getpass.getpass,
) -> str:
    """Return the password for opening (or, with ``new``, sealing) a keystore.

    ``environ``, ``is_tty`` and ``prompt`` exist so tests can drive every branch without a
    terminal; the CLI uses the defaults.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    if PASSWORD_ENV in env:
        password = _require_utf8(env[PASSWORD_ENV], f"${PASSWORD_ENV}")
        if new and not password:
            raise EmptyPasswordError(
                f"${PASSWORD_ENV} is empty; a new keystore needs a non-empty password"
            )
        return password
    if not is_tty():
        raise PasswordError(
            f"no password: set {PASSWORD_ENV} (stdin is not a terminal, so the wallet "
            "cannot prompt for it)"
        )
    try:
        if not new:
            return _require_utf8(prompt("Keystore password: "), "the password")
        password = _require_utf8(prompt("New keystore password: "), "the password")
        if not password:
            raise EmptyPasswordError("a new keystore needs a non-empty password")
        if prompt("Repeat the password: ") != password:
            raise PasswordMismatchError("the two passwords differ; nothing was written")
    except EOFError:
        raise PasswordError("no password entered") from None
    return password

"""Password precedence: environment, then a prompt on a terminal, else a typed refusal."""

from __future__ import annotations

import io
import sys

import pytest

from gridchain.wallet.password import (
    PASSWORD_ENV,
    EmptyPasswordError,
    PasswordError,
    PasswordMismatchError,
    read_password,
)


class Prompts:
    """Answers prompts from a list and records what was asked."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def __call__(self, text: str) -> str:
        self.asked.append(text)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)


def tty() -> bool:
    return True


def no_tty() -> bool:
    return False


def test_environment_wins_over_the_prompt() -> None:
    prompts = Prompts("typed")
    got = read_password(environ={PASSWORD_ENV: "from-env"}, is_tty=tty, prompt=prompts)
    assert got == "from-env"
    assert prompts.asked == []


def test_environment_is_used_for_a_new_keystore_without_confirmation() -> None:
    prompts = Prompts()
    assert read_password(new=True, environ={PASSWORD_ENV: "pw"}, is_tty=tty, prompt=prompts)
    assert prompts.asked == []


def test_empty_environment_password_opens_but_does_not_seal() -> None:
    assert read_password(environ={PASSWORD_ENV: ""}, is_tty=no_tty) == ""
    with pytest.raises(EmptyPasswordError):
        read_password(new=True, environ={PASSWORD_ENV: ""}, is_tty=no_tty)


def test_no_environment_and_no_terminal_names_the_variable() -> None:
    prompts = Prompts("never read")
    with pytest.raises(PasswordError, match="GRIDCHAIN_PASSWORD") as info:
        read_password(environ={}, is_tty=no_tty, prompt=prompts)
    assert info.value.code == "password_unavailable"
    assert prompts.asked == []


def test_terminal_prompts_once_to_open() -> None:
    prompts = Prompts("secret")
    assert read_password(environ={}, is_tty=tty, prompt=prompts) == "secret"
    assert len(prompts.asked) == 1


def test_terminal_asks_twice_for_a_new_keystore() -> None:
    prompts = Prompts("secret", "secret")
    assert read_password(new=True, environ={}, is_tty=tty, prompt=prompts) == "secret"
    assert len(prompts.asked) == 2


def test_differing_repeat_is_refused() -> None:
    with pytest.raises(PasswordMismatchError):
        read_password(new=True, environ={}, is_tty=tty, prompt=Prompts("secret", "secreT"))


def test_empty_typed_password_is_refused_for_a_new_keystore() -> None:
    prompts = Prompts("", "")
    with pytest.raises(EmptyPasswordError):
        read_password(new=True, environ={}, is_tty=tty, prompt=prompts)
    assert len(prompts.asked) == 1


def test_end_of_input_at_the_prompt_is_a_typed_error() -> None:
    with pytest.raises(PasswordError, match="no password entered"):
        read_password(environ={}, is_tty=tty, prompt=Prompts())


def test_default_terminal_check_reads_the_real_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("piped data is not a password\n"))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(PasswordError, match="not a terminal"):
        read_password()


@pytest.mark.parametrize("new", [False, True])
def test_a_password_that_is_not_utf8_is_refused_naming_its_source(new: bool) -> None:
    """Failed before: returned, then crashed in the KDF with UnicodeEncodeError.  os.environ
    decodes bytes that are not UTF-8 (here b"caf\\xe9", Latin-1) to lone surrogates."""
    with pytest.raises(PasswordError) as caught:
        read_password(new=new, environ={PASSWORD_ENV: "caf\udce9"}, is_tty=no_tty)
    assert caught.value.code == "password_not_utf8"
    assert PASSWORD_ENV in caught.value.message
    with pytest.raises(PasswordError) as typed:
        read_password(new=new, environ={}, is_tty=tty, prompt=Prompts("caf\udce9", "caf\udce9"))
    assert typed.value.code == "password_not_utf8"

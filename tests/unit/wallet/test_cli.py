"""``gridchain wallet ...`` end to end through gridchain.cli.main against the canned node."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from gridchain.cli import main
from gridchain.protocol.address import address_of, format_address, parse_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import open_keystore
from gridchain.protocol.tx import Transfer
from gridchain.wallet.commands import format_table
from gridchain.wallet.keystore_file import read_keystore
from tests.unit.wallet.conftest import (
    CHAIN_ID,
    PASSWORD,
    CliRunner,
    FakeNode,
    Wallet,
    account_doc,
    addr,
)

BOB = addr(SigningKey(bytes([9]) * 32))


def typo(address: str) -> str:
    """The same address with one hex digit changed: the checksum must catch it."""
    i = 10
    return address[:i] + ("0" if address[i] != "0" else "1") + address[i + 1 :]


# --- new ---------------------------------------------------------------------------------


async def test_new_writes_a_0600_keystore_and_prints_address_and_path(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "s3cret")
    path = tmp_path / "k" / "w.json"
    run = await cli(["wallet", "new", "--wallet", str(path), "--name", "alice"])
    assert run.code == 0, run.err
    doc = read_keystore(path)
    key = open_keystore(doc, "s3cret")
    address = format_address(address_of(key.public_key))
    assert doc["address"] == address
    assert doc["name"] == "alice"
    assert doc["crypto"]["kdfparams"]["n"] == 2**15  # protocol.keystore's default cost
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert address in run.out
    assert str(path) in run.out


async def test_new_json_and_default_path_from_environment(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env-wallet.json"
    monkeypatch.setenv("GRIDCHAIN_WALLET", str(path))
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "pw")
    run = await cli(["wallet", "new", "--json"])
    assert run.code == 0, run.err
    out = json.loads(run.out)
    assert out["file"] == str(path)
    assert out["address"] == read_keystore(path)["address"]
    parse_address(out["address"])


async def test_new_defaults_to_home(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "pw")  # clean_env set HOME to tmp_path / "home"
    run = await cli(["wallet", "new", "--json"])
    assert run.code == 0, run.err
    out = json.loads(run.out)
    expected = tmp_path / "home" / ".gridchain" / "wallet.json"
    assert out["file"] == str(expected)
    assert read_keystore(expected)["address"] == out["address"]


async def test_new_refuses_to_overwrite_without_force(cli: CliRunner, wallet: Wallet) -> None:
    before = wallet.path.read_bytes()
    run = await cli(["wallet", "new", "--wallet", str(wallet.path)])
    assert run.code == 1
    assert "already exists" in run.err
    assert "--force" in run.err
    assert wallet.path.read_bytes() == before

    run = await cli(["wallet", "new", "--wallet", str(wallet.path), "--force", "--json"])
    assert run.code == 0, run.err
    assert json.loads(run.out)["address"] != wallet.address
    assert open_keystore(read_keystore(wallet.path), PASSWORD).seed != wallet.key.seed


async def test_new_without_password_or_terminal_writes_nothing(
    cli: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "w.json"
    run = await cli(["wallet", "new", "--wallet", str(path)])
    assert run.code == 1
    assert "set GRIDCHAIN_PASSWORD" in run.err
    assert "Traceback" not in run.err
    assert not path.exists()


# --- address -----------------------------------------------------------------------------


async def test_address_needs_no_password(
    cli: CliRunner, wallet: Wallet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRIDCHAIN_PASSWORD")
    run = await cli(["wallet", "address", "--wallet", str(wallet.path)])
    assert (run.code, run.out) == (0, wallet.address + "\n")
    run = await cli(["wallet", "address", "--wallet", str(wallet.path), "--json"])
    out = json.loads(run.out)
    assert out["address"] == wallet.address
    assert out["name"] == "alice"


async def test_address_of_a_missing_wallet(cli: CliRunner, tmp_path: Path) -> None:
    run = await cli(["wallet", "address", "--wallet", str(tmp_path / "none.json"), "--json"])
    assert run.code == 1
    assert json.loads(run.out)["error"]["code"] == "wallet_not_found"


# --- balance -----------------------------------------------------------------------------


async def test_balance_table(cli: CliRunner, wallet: Wallet, node: FakeNode) -> None:
    node.accounts[wallet.address] = account_doc(wallet.address)
    run = await cli(["wallet", "balance", "--wallet", str(wallet.path), "--node", node.url])
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0].split() == ["address", wallet.address]
    assert lines[2].split() == ["registered", "yes"]
    assert lines[3].split() == ["nonce", "3", "(next", "5)"]
    money = {
        line.split()[0]: line
        for line in lines
        if line.split()[:1] in (["balance"], ["locked"], ["spendable"])
    }
    assert money["balance"].split()[1:] == ["1000.000", "1000000"]
    assert money["locked"].split()[1:] == ["250.000", "250000"]
    assert money["spendable"].split()[1:] == ["750.000", "750000"]
    # Right-aligned: every amount row and the header end in the same column.
    header = next(line for line in lines if line.split() == ["credits", "mc"])
    widths = {len(line) for line in [header, *money.values()]}
    assert len(widths) == 1
    assert node.requests == [f"GET /v1/accounts/{wallet.address}"]


async def test_balance_json_of_another_address_via_environment(
    cli: CliRunner, node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.accounts[BOB] = account_doc(BOB, balance_mc=12_500, locked_mc=0, name=None)
    monkeypatch.setenv("GRIDCHAIN_NODE", node.url)
    run = await cli(["wallet", "balance", BOB, "--json"])
    assert run.code == 0, run.err
    out = json.loads(run.out)
    assert out["address"] == BOB
    assert (out["balance_mc"], out["spendable_mc"], out["locked_mc"]) == (12_500, 12_500, 0)
    assert (out["balance"], out["spendable"]) == ("12.500", "12.500")
    assert (out["nonce"], out["pending_nonce"], out["registered"]) == (3, 5, True)
    assert out["name"] is None


async def test_balance_with_a_mistyped_address_asks_nothing_of_the_node(
    cli: CliRunner, node: FakeNode
) -> None:
    run = await cli(["wallet", "balance", typo(BOB), "--node", node.url])
    assert run.code == 1
    assert "checksum does not match (a typo?)" in run.err
    assert node.requests == []
    run = await cli(["wallet", "balance", typo(BOB), "--node", node.url, "--json"])
    assert json.loads(run.out)["error"]["code"] == "bad_address_checksum"


async def test_balance_against_a_closed_port_names_the_url(cli: CliRunner, wallet: Wallet) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    run = await cli(["wallet", "balance", "--wallet", str(wallet.path), "--node", url])
    assert run.code == 1
    assert f"cannot reach the node at {url}" in run.err
    assert "Traceback" not in run.err


# --- transfer ----------------------------------------------------------------------------


def transfer_argv(wallet: Wallet, node: FakeNode, *extra: str) -> list[str]:
    return ["wallet", "transfer", "--wallet", str(wallet.path), "--node", node.url, *extra]


async def test_transfer_signs_with_pending_nonce_and_waits_for_commit(
    cli: CliRunner, wallet: Wallet, node: FakeNode
) -> None:
    node.accounts[wallet.address] = account_doc(wallet.address, nonce=3, pending_nonce=5)
    run = await cli(
        transfer_argv(wallet, node, "--to", BOB, "--amount", "12.5", "--memo", "PV share")
    )
    assert run.code == 0, run.err
    [tx] = node.submitted
    tx.verify_signature(CHAIN_ID)  # raises SignatureError if not signed for this chain
    assert tx.sender == wallet.key.public_key
    assert tx.nonce == 5
    assert tx.body == Transfer(parse_address(BOB), 12_500, "PV share")
    tx_hash = tx.hash().hex()
    assert node.polls[tx_hash] == node.polls_before_commit + 1
    assert node.requests[:3] == [
        "GET /v1/status",
        f"GET /v1/accounts/{wallet.address}",
        "POST /v1/txs",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in run.out.splitlines()}
    assert rows["status"] == ["committed"]
    assert rows["hash"] == [tx_hash]
    assert rows["height"] == ["42"]
    assert rows["amount"] == ["12.500", "credits", "(12500", "mc)"]


async def test_transfer_json_no_wait(cli: CliRunner, wallet: Wallet, node: FakeNode) -> None:
    node.accounts[wallet.address] = account_doc(wallet.address)
    run = await cli(
        transfer_argv(wallet, node, "--to", BOB, "--amount", "1", "--no-wait", "--json")
    )
    assert run.code == 0, run.err
    out = json.loads(run.out)
    [tx] = node.submitted
    assert out["hash"] == tx.hash().hex()
    assert (out["status"], out["height"]) == ("pending", None)
    assert (out["amount_mc"], out["amount"], out["nonce"]) == (1_000, "1.000", 5)
    assert (out["from"], out["to"]) == (wallet.address, BOB)
    assert out["chain_id"] == CHAIN_ID.hex()
    assert not any(r.startswith("GET /v1/txs/") for r in node.requests)


async def test_transfer_with_a_wrong_password_sends_nothing(
    cli: CliRunner, wallet: Wallet, node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDCHAIN_PASSWORD", "not it")
    run = await cli(transfer_argv(wallet, node, "--to", BOB, "--amount", "1"))
    assert run.code == 1
    assert run.err == "error: wrong password for this keystore\n"
    assert node.requests == []
    run = await cli(transfer_argv(wallet, node, "--to", BOB, "--amount", "1", "--json"))
    assert json.loads(run.out)["error"]["code"] == "wrong_password"


async def test_transfer_above_spendable_is_refused_locally(
    cli: CliRunner, wallet: Wallet, node: FakeNode
) -> None:
    node.accounts[wallet.address] = account_doc(wallet.address)  # 750.000 spendable
    run = await cli(transfer_argv(wallet, node, "--to", BOB, "--amount", "750.001", "--json"))
    assert run.code == 1
    error = json.loads(run.out)["error"]
    assert error["code"] == "insufficient_balance"
    assert "750.000" in error["message"]
    assert node.submitted == []


async def test_transfer_of_exactly_spendable_is_sent(
    cli: CliRunner, wallet: Wallet, node: FakeNode
) -> None:
    node.accounts[wallet.address] = account_doc(wallet.address)
    run = await cli(transfer_argv(wallet, node, "--to", BOB, "--amount", "750", "--no-wait"))
    assert run.code == 0, run.err
    assert node.submitted[0].body == Transfer(parse_address(BOB), 750_000, "")


async def test_transfer_from_an_unregistered_account_is_refused_locally(
    cli: CliRunner, wallet: Wallet, node: FakeNode
) -> None:
    run = await cli(transfer_argv(wallet, node, "--to", BOB, "--amount", "1", "--json"))
    assert run.code == 1
    assert json.loads(run.out)["error"]["code"] == "unregistered_sender"
    assert node.submitted == []


async def test_node_refusal_keeps_the_nodes_code(
    cli: CliRunner, wallet: Wallet, node: FakeNode
) -> None:
    node.accounts[wallet.address] = account_doc(wallet.address)
    node.refuse_submit = (400, "nonce_gap", "expected nonce 4, got 5")
    run = await cli(transfer_argv(wallet, node, "--to", BOB, "--amount", "1"))
    assert run.code == 1
    assert run.err == "error: the node refused: expected nonce 4, got 5 [nonce_gap]\n"
    run = await cli(transfer_argv(wallet, node, "--to", BOB, "--amount", "1", "--json"))
    assert run.code == 1
    error = json.loads(run.out)["error"]
    assert error["code"] == "nonce_gap"
    assert error["message"] == "expected nonce 4, got 5"
    assert error["http_status"] == 400


async def test_transfer_commit_timeout_reports_the_hash(
    cli: CliRunner, wallet: Wallet, node: FakeNode
) -> None:
    node.accounts[wallet.address] = account_doc(wallet.address)
    node.polls_before_commit = 10**9
    run = await cli(
        transfer_argv(wallet, node, "--to", BOB, "--amount", "1", "--timeout", "0.4", "--json")
    )
    assert run.code == 1
    error = json.loads(run.out)["error"]
    assert error["code"] == "commit_timeout"
    assert error["hash"] == node.submitted[0].hash().hex()


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--to", BOB, "--amount", "1.0005"], "bad_amount"),
        (["--to", BOB, "--amount", "-1"], "bad_amount"),
        (["--to", BOB, "--amount", "0"], "bad_amount"),
        (["--to", BOB, "--amount", "lots"], "bad_amount"),
        (["--to", typo(BOB), "--amount", "1"], "bad_address_checksum"),
        (["--to", "bob", "--amount", "1"], "bad_address"),
        (["--to", BOB, "--amount", "1", "--memo", "x" * 141], "bad_argument"),
    ],
)
async def test_transfer_bad_values_are_typed_and_send_nothing(
    cli: CliRunner, wallet: Wallet, node: FakeNode, extra: list[str], code: str
) -> None:
    run = await cli(transfer_argv(wallet, node, *extra, "--json"))
    assert run.code == 1
    assert json.loads(run.out)["error"]["code"] == code
    assert node.requests == []


@pytest.mark.parametrize(
    "argv",
    [
        ["wallet"],
        ["wallet", "spend"],
        ["wallet", "transfer", "--amount", "1"],
        ["wallet", "transfer", "--to", BOB],
        ["wallet", "transfer", "--to", BOB, "--amount", "1", "--timeout", "-1"],
        ["wallet", "transfer", "--to", BOB, "--amount", "1", "--timeout", "soon"],
        ["wallet", "balance", BOB, BOB],
        ["wallet", "address", "--force"],
    ],
)
def test_argument_errors_exit_2_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    # Unrecognised extras are reported by the top-level parser, hence "usage: gridchain".
    assert err.startswith("usage: gridchain")
    assert "error:" in err
    assert "Traceback" not in err


def test_format_table_aligns_columns() -> None:
    table = format_table([["a", "1", "x"], ["long", "100", "y"]], right=frozenset({1}))
    assert table.splitlines() == ["a       1  x", "long  100  y"]

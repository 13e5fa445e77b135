"""What every wallet command shares: the errors, the output, the keystore, the one path that
signs and submits a transaction.

wallet/cli.py (new, address, balance, transfer), wallet/trading.py (orders, book, trades,
receipts) and wallet/cd.py (C&D requests, schedule) import these public helpers; none of them
imports another's private ones.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gridchain.api.client import CommitTimeoutError, NodeClient, NodeRefusedError
from gridchain.protocol.address import format_address, parse_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.keystore import open_keystore
from gridchain.protocol.tx import TxBody, sign_tx
from gridchain.wallet.keystore_file import default_wallet_path, keystore_address, read_keystore
from gridchain.wallet.password import read_password
from gridchain.wallet.sealing import sealed_tx

Handler = Callable[[argparse.Namespace], int]
#: How the wallet names itself to the node (its requests show in the node's access log).
USER_AGENT = "gridchain-wallet/0.1"


def connect(node_url: str, ca_file: Path | None = None) -> NodeClient:
    """The node client of a wallet command (use it as ``async with connect(url) as node``);
    ``ca_file`` (``--ca``) pins the community CA of an https gateway."""
    return NodeClient(node_url, user_agent=USER_AGENT, ca_file=ca_file)


DEFAULT_COMMIT_TIMEOUT_S = 30.0


class WalletArgumentError(GridchainError):
    """A value on the command line that the wallet cannot use."""

    code = "bad_argument"


class InsufficientBalanceError(GridchainError):
    """The amount exceeds what the node reports as spendable (checked before signing)."""

    code = "insufficient_balance"


class SenderNotRegisteredError(GridchainError):
    """The wallet's account is not admitted to the chain, so the node would refuse its tx."""

    code = "unregistered_sender"


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"between 0 and 86400 seconds: {text!r}")
    return value


def format_table(rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()) -> str:
    """Align columns with two spaces between them; columns in ``right`` align right."""
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


async def sign_and_submit(
    args: argparse.Namespace,
    node: NodeClient,
    own: str,
    key: SigningKey,
    body: TxBody,
    *,
    spend_mc: int,
    action: str,
    refusal: Callable[[int], str],
    sealed: bool = False,
) -> dict[str, Any]:
    """Sign ``body`` with the wallet's key, submit it and (unless --no-wait) wait for it.

    Every command that sends a transaction goes through here: the sender must be registered
    and able to spend ``spend_mc`` (``refusal`` words the error from the spendable amount), the
    nonce is the account's pending one, and ``args.no_wait``/``args.timeout`` decide the wait.
    ``sealed`` seals the body to the validators (wallet/sealing.py).
    """
    status = await node.status()
    account = await node.account(own)
    if not account.registered:
        raise SenderNotRegisteredError(
            f"{own} is not registered on chain {status.chain_name!r}; "
            f"the chain's governance must register it before it can {action}"
        )
    if spend_mc > account.spendable_mc:
        raise InsufficientBalanceError(refusal(account.spendable_mc))
    if sealed:
        tx = await sealed_tx(node, key, status.chain_id, account.pending_nonce, body)
    else:
        tx = sign_tx(key, status.chain_id, account.pending_nonce, body)
    tx_hash = await node.submit_tx(tx)
    result: dict[str, Any] = {
        "hash": tx_hash,
        "status": "pending",
        "height": None,
        "index": None,
        "nonce": account.pending_nonce,
        "chain_id": status.chain_id.hex(),
        "node": node.url,
    }
    if sealed:
        result["sealed"] = True
    if not args.no_wait:
        committed = await node.wait_committed(tx_hash, timeout_s=args.timeout)
        result.update(status=committed.status, height=committed.height, index=committed.index)
    return result


def emit(args: argparse.Namespace, data: dict[str, Any], human: str) -> None:
    print(json.dumps(data) if args.json else human)


def json_errors(handler: Handler) -> Handler:
    """In ``--json`` mode, report a node refusal under the node's own code.

    ``gridchain.cli.main`` prints ``{"error": {"code", "message"}}`` for any GridchainError with
    the exception's class code; for a refusal the useful code is the node's
    (``insufficient_balance``, ``nonce_gap``...), and for a commit timeout the hash matters.
    """

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except NodeRefusedError as exc:
            if not args.json:
                raise
            error: dict[str, Any] = {
                "code": exc.node_code,
                "message": exc.node_message,
                "node": exc.url,
                "http_status": exc.status,
            }
        except CommitTimeoutError as exc:
            if not args.json:
                raise
            error = {"code": exc.code, "message": exc.message, "hash": exc.tx_hash}
        print(json.dumps({"error": error}))
        return 1

    return wrapper


def wallet_path(args: argparse.Namespace) -> Path:
    path: Path | None = args.wallet
    return path.expanduser() if path is not None else default_wallet_path()


def parse_address_arg(text: str, what: str) -> str:
    """Canonical text of a typed address; AddressChecksumError's message says 'a typo?'."""
    try:
        return format_address(parse_address(text))
    except GridchainError as exc:
        raise type(exc)(f"{what}: {exc.message}") from None


def open_key(args: argparse.Namespace) -> tuple[str, SigningKey]:
    """The wallet's address and key: opened before any network traffic, so a wrong password
    costs nothing (the same order of work as ``transfer``)."""
    path = wallet_path(args)
    doc = read_keystore(path)
    return keystore_address(doc, path), open_keystore(doc, read_password())


def tx_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = [["status", str(result["status"])], ["hash", str(result["hash"])]]
    if result["height"] is not None:
        rows.append(["height", str(result["height"])])
    return rows

"""``gridchain wallet new | address | balance | transfer``: a key on disk and the node's API.

The market commands (``order``, ``orders``, ``book``, ``trades``) are in wallet/trading.py,
``market``, ``offers`` and ``take`` in wallet/offers.py;
the C&D commands (``cd charge|discharge|status|list``, ``schedule``) in wallet/cd.py.

Each subcommand takes ``--wallet FILE``, ``--node URL`` and ``--json`` (DESIGN.md section 10),
so scripts can rely on them everywhere even where one is unused (``new`` talks to no node).
Human output is a small aligned table; ``--json`` prints exactly one JSON object on stdout, and
on failure ``{"error": {"code", "message"}}``, so a script never has to scrape text.

The order of work in ``transfer`` is deliberate: arguments are checked first (a typo costs
nothing), then the keystore is opened (a wrong password fails before any network traffic), then
the node is asked for the chain id and the account's ``pending_nonce``.  The wallet refuses an
amount above the spendable balance itself, because that is the common mistake and the node's
answer would come later and less clearly; but the node remains the authority, and its own
refusals are passed through with the node's code.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridchain.api.client import NodeResponseError, resolve_node_url
from gridchain.api.models import Account
from gridchain.protocol.address import parse_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import open_keystore, seal
from gridchain.protocol.tx import Transfer
from gridchain.wallet.commands import (
    DEFAULT_COMMIT_TIMEOUT_S,
    WalletArgumentError,
    connect,
    emit,
    format_table,
    json_errors,
    parse_address_arg,
    positive_seconds,
    sign_and_submit,
    wallet_path,
)
from gridchain.wallet.keystore_file import (
    WalletExistsError,
    keystore_address,
    read_keystore,
    write_keystore,
)
from gridchain.wallet.password import read_password
from gridchain.wallet.units import AmountError, format_credits, parse_credits

#: protocol.tx.Memo's bound, checked here so the user sees a sentence, not an encoder error.
MAX_MEMO_CHARS = 140
MAX_NAME_CHARS = 64

Handler = Callable[[argparse.Namespace], int]


# --- parser ------------------------------------------------------------------------------


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> None:
    """Add ``gridchain <name>`` with its four subcommands to the top-level parser."""
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Create a key, show its address and balance, send credits, trade "
        "energy in the order books, and ask the chain to charge or discharge an EV or battery.",
    )
    actions = parser.add_subparsers(dest="wallet_command", required=True, metavar="ACTION")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--wallet",
        metavar="FILE",
        type=Path,
        default=None,
        help="keystore file (default: $GRIDCHAIN_WALLET, else ~/.gridchain/wallet.json)",
    )
    common.add_argument(
        "--node",
        "--gateway",
        dest="node",
        metavar="URL",
        default=None,
        help="a node's or a gateway's API, e.g. https://gateway:8443 "
        "(default: $GRIDCHAIN_NODE, else http://127.0.0.1:8700)",
    )
    common.add_argument(
        "--ca",
        metavar="FILE",
        type=Path,
        default=None,
        help="pin this CA (PEM) for an https URL: the gateway's certificate must be signed by "
        "it and by nothing else (a testnet writes DIR/ca/ca.pem)",
    )
    common.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )

    new = actions.add_parser(
        "new",
        parents=[common],
        help="generate a key and write an encrypted keystore",
        description="Generate an Ed25519 key and seal it with the password from "
        "$GRIDCHAIN_PASSWORD or a prompt (asked twice).",
    )
    new.add_argument("--name", default="", help="a label stored in the keystore")
    new.add_argument("--force", action="store_true", help="replace an existing keystore file")
    new.set_defaults(handler=cmd_new)

    address = actions.add_parser(
        "address",
        parents=[common],
        help="print the wallet's address (no password needed)",
        description="Print the gc1... address of the keystore.",
    )
    address.set_defaults(handler=cmd_address)

    balance = actions.add_parser(
        "balance",
        parents=[common],
        help="show an account's balance, locked and spendable credits",
        description="Show the balance of ADDRESS, or of the wallet's own address.",
    )
    balance.add_argument("address", nargs="?", metavar="ADDRESS", help="gc1... address")
    balance.set_defaults(handler=cmd_balance)

    transfer = actions.add_parser(
        "transfer",
        parents=[common],
        help="send credits to an address and wait until committed",
        description="Sign a Transfer with the wallet's key, submit it, and (unless "
        "--no-wait) wait until a block commits it.",
    )
    transfer.add_argument("--to", required=True, metavar="ADDRESS", help="recipient gc1...")
    transfer.add_argument(
        "--amount", required=True, metavar="CREDITS", help="credits, up to 3 decimals: 12.5"
    )
    transfer.add_argument("--memo", default="", metavar="TEXT", help="up to 140 characters")
    transfer.add_argument(
        "--no-wait", action="store_true", help="return once the node accepted the transaction"
    )
    transfer.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_COMMIT_TIMEOUT_S,
        metavar="S",
        help="seconds to wait for the commit (default: %(default)g)",
    )
    transfer.set_defaults(handler=cmd_transfer)

    # The market commands live in wallet.trading, which builds on this module's helpers.
    from gridchain.wallet.trading import add_commands  # noqa: PLC0415 - wallet.trading imports this module

    add_commands(actions, common)

    # The C&D requests and the schedule (wallet.cd, built on wallet.trading's helpers).
    from gridchain.wallet.cd import add_commands as add_cd_commands  # noqa: PLC0415 - imports this module

    add_cd_commands(actions, common)

    # The market at a glance, a book's offers and taking one (wallet.offers).
    from gridchain.wallet.offers import add_commands as add_offer_commands  # noqa: PLC0415 - imports this module

    add_offer_commands(actions, common)


# --- output ------------------------------------------------------------------------------


# --- new ---------------------------------------------------------------------------------


def cmd_new(args: argparse.Namespace) -> int:
    path = wallet_path(args)
    name: str = args.name
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise WalletArgumentError(f"--name is up to {MAX_NAME_CHARS} printable characters")
    # Checked before the password prompt so nobody types a password twice for nothing;
    # write_keystore checks again atomically.
    if path.exists() and not args.force:
        raise WalletExistsError(
            f"a wallet already exists at {path}; pass --force to replace it "
            "(its key is lost unless you have a copy) or choose another --wallet"
        )
    password = read_password(new=True)
    key = SigningKey.generate()
    doc = seal(key, password, name=name)
    write_keystore(path, doc, force=args.force)
    address = str(doc["address"])
    rows = [["address", address], ["file", str(path)]]
    if name:
        rows.append(["name", name])
    human = (
        format_table(rows)
        + "\nKeep a copy of this file and its password: neither can be recovered."
    )
    emit(
        args,
        {"address": address, "file": str(path), "name": name, "public_key": key.public_key.hex()},
        human,
    )
    return 0


# --- address -----------------------------------------------------------------------------


def cmd_address(args: argparse.Namespace) -> int:
    path = wallet_path(args)
    doc = read_keystore(path)
    address = keystore_address(doc, path)
    name = doc.get("name") if isinstance(doc.get("name"), str) else ""
    emit(
        args,
        {"address": address, "name": name, "public_key": doc["public_key"], "file": str(path)},
        address,
    )
    return 0


# --- balance -----------------------------------------------------------------------------


@json_errors
def cmd_balance(args: argparse.Namespace) -> int:
    if args.address is not None:
        address = parse_address_arg(args.address, "ADDRESS")
    else:
        path = wallet_path(args)
        address = keystore_address(read_keystore(path), path)
    node_url = resolve_node_url(args.node)

    async def fetch() -> tuple[str, Account]:
        async with connect(node_url, args.ca) as node:
            return node.url, await node.account(address)

    url, account = asyncio.run(fetch())
    if account.address != address:
        raise NodeResponseError(f"asked for account {address}, the node answered {account.address}")
    data = {
        "address": address,
        "name": account.name,
        "registered": account.registered,
        "nonce": account.nonce,
        "pending_nonce": account.pending_nonce,
        "balance_mc": account.balance_mc,
        "locked_mc": account.locked_mc,
        "spendable_mc": account.spendable_mc,
        "balance": format_credits(account.balance_mc),
        "locked": format_credits(account.locked_mc),
        "spendable": format_credits(account.spendable_mc),
        "node": url,
    }
    facts = [
        ["address", address],
        ["name", account.name or "-"],
        ["registered", "yes" if account.registered else "no"],
        ["nonce", f"{account.nonce} (next {account.pending_nonce})"],
    ]
    money = [["", "credits", "mc"]] + [
        [label, format_credits(mc), str(mc)]
        for label, mc in (
            ("balance", account.balance_mc),
            ("locked", account.locked_mc),
            ("spendable", account.spendable_mc),
        )
    ]
    # Two tables sharing one label width: in a single table the 51-character address would
    # widen the credits column and push the numbers far from their labels.
    width = max(len(row[0]) for row in facts + money)
    head = format_table([[row[0].ljust(width), *row[1:]] for row in facts])
    body = format_table([[row[0].ljust(width), *row[1:]] for row in money], right=frozenset({1, 2}))
    emit(args, data, f"{head}\n\n{body}")
    return 0


# --- transfer ----------------------------------------------------------------------------


@json_errors
def cmd_transfer(args: argparse.Namespace) -> int:
    to_text = parse_address_arg(args.to, "--to")
    amount_mc = parse_credits(args.amount)
    if amount_mc == 0:
        raise AmountError("a transfer moves a positive amount")
    memo: str = args.memo
    if len(memo) > MAX_MEMO_CHARS:
        raise WalletArgumentError(f"--memo is at most {MAX_MEMO_CHARS} characters")
    path = wallet_path(args)
    doc = read_keystore(path)
    own = keystore_address(doc, path)
    key = open_keystore(doc, read_password())
    node_url = resolve_node_url(args.node)
    body = Transfer(parse_address(to_text), amount_mc, memo)

    def refusal(spendable_mc: int) -> str:
        return (
            f"cannot send {format_credits(amount_mc)} credits: {own} can spend "
            f"{format_credits(spendable_mc)} ({spendable_mc} mc)"
        )

    async def run() -> dict[str, Any]:
        async with connect(node_url, args.ca) as node:
            result = await sign_and_submit(
                args, node, own, key, body, spend_mc=amount_mc, action="send", refusal=refusal
            )
            result.update(
                {
                    "from": own,
                    "to": to_text,
                    "amount_mc": amount_mc,
                    "amount": format_credits(amount_mc),
                    "memo": memo,
                }
            )
            return result

    result = asyncio.run(run())
    rows = [
        ["status", str(result["status"])],
        ["hash", str(result["hash"])],
    ]
    if result["height"] is not None:
        rows.append(["height", str(result["height"])])
    rows += [
        ["from", own],
        ["to", to_text],
        ["amount", f"{result['amount']} credits ({amount_mc} mc)"],
        ["nonce", str(result["nonce"])],
    ]
    if memo:
        rows.append(["memo", memo])
    emit(args, result, format_table(rows))
    return 0

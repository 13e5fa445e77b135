"""``gridchain gov propose | approve | list | show``: the council's commands (docs/governance.md).

A council member's keystore is an ordinary wallet keystore (``genesis init --council N`` writes
DIR/wallets/council-<i>.json); these commands reuse the wallet's keystore, password, node
client, ``--json`` and table printing (wallet/commands.py).  A proposal is one transaction that
carries one governance record and counts as the proposer's approval; ``approve`` adds another
member's; at the council's threshold the chain applies the record in that block.  The output
says where the proposal stands (approvals k of n, applied, failed with the chain's error code),
read back from GET /v1/proposals/{id} after the transaction committed.

The order of work is the wallet's: arguments first, then the keystore (a wrong password costs
no network traffic), then the node.  A council member need not be a registered participant,
so, unlike ``wallet transfer``, nothing here asks that the sender be registered: the chain
refuses a non-member with ``not_council_member``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from gridchain.api.client import NodeClient, resolve_node_url
from gridchain.api.models import ChainParameters, Proposal
from gridchain.protocol.address import parse_address
from gridchain.protocol.crypto import SigningKey, check_public_key
from gridchain.protocol.encoding import Record
from gridchain.protocol.errors import BadKeyError, GridchainError
from gridchain.protocol.governance import (
    DEVICE_ID_PATTERN,
    MAX_DEVICE_ID_CHARS,
    LinkDevice,
    RemoveParticipant,
    ReplaceBridgeKey,
    SetParameter,
    SetTariffs,
    TariffBand,
    UpdateCouncil,
    UpdateGateways,
)
from gridchain.protocol.meter import MeterType
from gridchain.protocol.tx import (
    Approve,
    Burn,
    Mint,
    Propose,
    RegisterMeter,
    RegisterParticipant,
    TxBody,
    sign_tx,
)
from gridchain.wallet.commands import (
    DEFAULT_COMMIT_TIMEOUT_S,
    WalletArgumentError,
    connect,
    emit,
    format_table,
    json_errors,
    open_key,
    parse_address_arg,
    positive_seconds,
)
from gridchain.wallet.units import AmountError, format_credits, parse_credits

#: How long a proposal stays open by default, in blocks (``--expires-in``).
DEFAULT_EXPIRES_IN_BLOCKS = 10_000
MAX_NAME_CHARS = 64
METER_TYPES: dict[str, MeterType] = {
    "PV": MeterType.PV,
    "ExternalGenerator": MeterType.EXTERNAL_GENERATOR,
    "EV": MeterType.EV,
    "Battery": MeterType.BATTERY,
    "Loadmeter": MeterType.LOADMETER,
    "Netmeter": MeterType.NETMETER,
}


class ProposalNotFoundError(GridchainError):
    code = "unknown_proposal"


# --- parser ------------------------------------------------------------------------------


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> None:
    """Add ``gridchain gov`` (propose, approve, list, show) to the top-level parser."""
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Propose governance actions as a council member, approve them, and list "
        "what the council decided. A proposal applies when the genesis threshold of council "
        "members approved it (proposing counts as approving).",
    )
    actions = parser.add_subparsers(dest="gov_command", required=True, metavar="ACTION")
    common = _common()
    sending = argparse.ArgumentParser(add_help=False)
    sending.add_argument(
        "--no-wait", action="store_true", help="return once the node accepted the transaction"
    )
    sending.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_COMMIT_TIMEOUT_S,
        help="seconds to wait for the block (default 30)",
    )

    propose = actions.add_parser(
        "propose",
        help="propose a governance action (counts as your approval)",
        description="Each action is one governance record; the proposal id printed is what "
        "the other members approve.",
    )
    kinds = propose.add_subparsers(dest="action", required=True, metavar="ACTION")
    proposing = argparse.ArgumentParser(add_help=False)
    proposing.add_argument(
        "--expires-in",
        type=int,
        default=DEFAULT_EXPIRES_IN_BLOCKS,
        metavar="BLOCKS",
        help=f"blocks from the head during which it can be approved (default "
        f"{DEFAULT_EXPIRES_IN_BLOCKS})",
    )
    parents = [common, sending, proposing]

    admit = kinds.add_parser("admit", parents=parents, help="admit a participant (household)")
    admit.add_argument("--public-key", required=True, help="its Ed25519 key, 64 hex digits")
    admit.add_argument("--name", required=True, help="its name on chain (1-64 characters)")
    admit.set_defaults(handler=cmd_propose, build=_admit)

    remove = kinds.add_parser("remove", parents=parents, help="remove a participant")
    remove.add_argument("--address", required=True, help="the participant's gc1 address")
    remove.set_defaults(handler=cmd_propose, build=_remove)

    meter = kinds.add_parser("meter", parents=parents, help="register a meter and its bridge key")
    meter.add_argument("--meter-id", required=True)
    meter.add_argument("--owner", required=True, help="the owning participant's gc1 address")
    meter.add_argument("--type", required=True, choices=sorted(METER_TYPES), dest="meter_type")
    meter.add_argument("--bridge-key", required=True, help="the bridge's Ed25519 key (hex)")
    meter.add_argument("--profile", default="generic", help="the bridge's meter profile")
    meter.set_defaults(handler=cmd_propose, build=_meter)

    rekey = kinds.add_parser(
        "replace-bridge", parents=parents, help="let a new bridge key sign a meter's readings"
    )
    rekey.add_argument("--meter-id", required=True)
    rekey.add_argument("--bridge-key", required=True, help="the new bridge's Ed25519 key (hex)")
    rekey.set_defaults(handler=cmd_propose, build=_rekey)

    mint = kinds.add_parser("mint", parents=parents, help="create credits for a participant")
    mint.add_argument("--to", required=True, help="gc1 address")
    mint.add_argument("--amount", required=True, help="credits, e.g. 12.5")
    mint.set_defaults(handler=cmd_propose, build=_mint)

    burn = kinds.add_parser("burn", parents=parents, help="destroy credits an account holds")
    burn.add_argument("--account", required=True, help="gc1 address")
    burn.add_argument("--amount", required=True, help="credits, e.g. 12.5")
    burn.set_defaults(handler=cmd_propose, build=_burn)

    param = kinds.add_parser(
        "param",
        parents=parents,
        help="change a chain parameter from a future height",
        description="The parameter takes VALUE from block --effective-height on, on every "
        "validator (at least 2 blocks after the block that applies the proposal). "
        "`gridchain gov params` lists the changeable ones; slot_length_ms is not.",
    )
    param.add_argument("--name", required=True, help="e.g. penalty_mc_per_kwh, gate_closure_ms")
    param.add_argument("--value", required=True, type=_non_negative, help="an integer")
    param.add_argument("--effective-height", required=True, type=_non_negative, metavar="H")
    param.set_defaults(handler=cmd_propose, build=_param)

    tariffs = kinds.add_parser(
        "tariffs",
        parents=parents,
        help="change the time-of-use tariffs from a future height",
        description="Give one --band START-END:RETAIL:FEED_IN per band (hours UTC, mc/kWh), "
        "in order, covering 0-24 h.",
    )
    tariffs.add_argument(
        "--band",
        required=True,
        action="append",
        dest="bands",
        metavar="START-END:RETAIL:FEED_IN",
        help="e.g. 0-7:180000:60000 (repeat for each band)",
    )
    tariffs.add_argument("--effective-height", required=True, type=_non_negative, metavar="H")
    tariffs.set_defaults(handler=cmd_propose, build=_tariffs)

    council = kinds.add_parser(
        "council",
        parents=parents,
        help="replace the council: its members and threshold",
        description="The council becomes the --member keys (in order) approving by "
        "--threshold, in the block that applies the proposal; from then on only the new "
        "members propose and approve, and open proposals count only their approvals.",
    )
    council.add_argument(
        "--member",
        required=True,
        action="append",
        dest="members",
        metavar="KEY",
        help="a member's Ed25519 public key, 64 hex digits (repeat for each member)",
    )
    council.add_argument("--threshold", required=True, type=_non_negative, metavar="K")
    council.set_defaults(handler=cmd_propose, build=_council)

    gateways = kinds.add_parser(
        "gateways",
        parents=parents,
        help="admit or remove gateways (ADR 0025)",
        description="Validators accept links from an added gateway key and close a removed "
        "one's, from the block that applies the proposal.",
    )
    gateways.add_argument("--add", action="append", default=[], metavar="KEY", help="hex key")
    gateways.add_argument("--remove", action="append", default=[], metavar="KEY", help="hex key")
    gateways.set_defaults(handler=cmd_propose, build=_gateways)

    link = kinds.add_parser(
        "link",
        parents=parents,
        help="link a device (charger, inverter) to the meter that measures it",
        description="Record on chain that --meter (an EV or Battery meter) measures the "
        "device --device (a charger's OCPP charge point id, an inverter's id). A charger "
        "whose bridge config names no meter then follows that meter's C&D requests "
        "(ADR 0048). To link the meter to another device, unlink it first.",
    )
    link.add_argument("--meter", required=True, help="the registered meter's id")
    link.add_argument(
        "--device",
        required=True,
        help=f"the device id: 1-{MAX_DEVICE_ID_CHARS} characters of A-Z a-z 0-9 . _ : -",
    )
    link.set_defaults(handler=cmd_propose, build=_link)

    unlink = kinds.add_parser(
        "unlink", parents=parents, help="remove the link of a meter to its device"
    )
    unlink.add_argument("--meter", required=True, help="the linked meter's id")
    unlink.set_defaults(handler=cmd_propose, build=_unlink)

    approve = actions.add_parser(
        "approve", parents=[common, sending], help="approve an open proposal by its id"
    )
    approve.add_argument("id", help="the proposal id (64 hex digits)")
    approve.set_defaults(handler=cmd_approve)

    listing = actions.add_parser("list", parents=[common], help="the chain's proposals")
    listing.add_argument("--status", choices=["open", "applied", "expired", "failed"], default=None)
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=cmd_list)

    params = actions.add_parser(
        "params", parents=[common], help="the chain parameters in force and the changes"
    )
    params.set_defaults(handler=cmd_params)

    show = actions.add_parser("show", parents=[common], help="one proposal in full")
    show.add_argument("id", help="the proposal id (64 hex digits)")
    show.set_defaults(handler=cmd_show)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--wallet",
        metavar="FILE",
        type=Path,
        default=None,
        help="the council member's keystore (default: $GRIDCHAIN_WALLET, else "
        "~/.gridchain/wallet.json)",
    )
    common.add_argument(
        "--node",
        "--gateway",
        dest="node",
        metavar="URL",
        default=None,
        help="a node's or a gateway's API (default: $GRIDCHAIN_NODE, else http://127.0.0.1:8700)",
    )
    common.add_argument("--ca", metavar="FILE", type=Path, default=None, help="pin this CA (PEM)")
    common.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    return common


# --- records from arguments ----------------------------------------------------------------


def parse_public_key(text: str, what: str) -> bytes:
    """A 32-byte Ed25519 key from hex, refused here as the chain would refuse it."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise WalletArgumentError(f"{what}: not hex") from None
    if len(raw) != 32:
        raise WalletArgumentError(f"{what}: an Ed25519 public key is 64 hex digits")
    try:
        check_public_key(raw, what=what)
    except BadKeyError as exc:
        raise WalletArgumentError(exc.message) from None
    return raw


def _amount(text: str) -> int:
    amount_mc = parse_credits(text)
    if amount_mc == 0:
        raise AmountError("--amount must be positive")
    return amount_mc


def _admit(args: argparse.Namespace) -> Record:
    name: str = args.name
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise WalletArgumentError(f"--name is 1 to {MAX_NAME_CHARS} characters")
    return RegisterParticipant(parse_public_key(args.public_key, "--public-key"), name)


def _remove(args: argparse.Namespace) -> Record:
    return RemoveParticipant(parse_address(parse_address_arg(args.address, "--address")))


def _meter(args: argparse.Namespace) -> Record:
    return RegisterMeter(
        meter_id=args.meter_id,
        owner=parse_address(parse_address_arg(args.owner, "--owner")),
        meter_type=int(METER_TYPES[args.meter_type]),
        bridge_key=parse_public_key(args.bridge_key, "--bridge-key"),
        profile=args.profile,
    )


def _rekey(args: argparse.Namespace) -> Record:
    return ReplaceBridgeKey(args.meter_id, parse_public_key(args.bridge_key, "--bridge-key"))


def _meter_arg(text: str) -> str:
    if not 1 <= len(text) <= MAX_NAME_CHARS:
        raise WalletArgumentError(f"--meter is 1 to {MAX_NAME_CHARS} characters")
    return text


def _link(args: argparse.Namespace) -> Record:
    device: str = args.device
    if DEVICE_ID_PATTERN.fullmatch(device) is None:
        raise WalletArgumentError(
            f"--device is 1 to {MAX_DEVICE_ID_CHARS} characters of A-Z a-z 0-9 . _ : -"
        )
    return LinkDevice(_meter_arg(args.meter), device)


def _unlink(args: argparse.Namespace) -> Record:
    return LinkDevice(_meter_arg(args.meter), "")


def _mint(args: argparse.Namespace) -> Record:
    return Mint(parse_address(parse_address_arg(args.to, "--to")), _amount(args.amount))


def _burn(args: argparse.Namespace) -> Record:
    return Burn(parse_address(parse_address_arg(args.account, "--account")), _amount(args.amount))


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"{value} is not 0 to 2**64 - 1")
    return value


def _param(args: argparse.Namespace) -> Record:
    name: str = args.name
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise WalletArgumentError(f"--name is 1 to {MAX_NAME_CHARS} characters")
    return SetParameter(name, args.value, args.effective_height)


def _tariffs(args: argparse.Namespace) -> Record:
    bands = []
    for text in args.bands:
        try:
            hours, retail, feed_in = text.split(":")
            start, end = hours.split("-")
            band = TariffBand(int(start), int(end), int(retail), int(feed_in))
        except ValueError:
            raise WalletArgumentError(
                f"--band {text!r}: expected START-END:RETAIL:FEED_IN, e.g. 0-7:180000:60000"
            ) from None
        if not 0 <= band.start_hour < band.end_hour <= 24:
            raise WalletArgumentError(f"--band {text!r}: hours are 0 <= START < END <= 24")
        if min(band.retail_mc_per_kwh, band.feed_in_mc_per_kwh) < 0:
            raise WalletArgumentError(f"--band {text!r}: prices are not negative")
        bands.append(band)
    if len(bands) > 24:
        raise WalletArgumentError("at most 24 --band")
    return SetTariffs(tuple(bands), args.effective_height)


def _council(args: argparse.Namespace) -> Record:
    members = tuple(parse_public_key(k, "--member") for k in args.members)
    if len(members) > 64:
        raise WalletArgumentError("a council has at most 64 members")
    if not 1 <= args.threshold <= 255:
        raise WalletArgumentError("--threshold is 1 to 255")
    # duplicates and a threshold above the members are the chain's to refuse, with its code
    return UpdateCouncil(members, args.threshold)


def _gateways(args: argparse.Namespace) -> Record:
    add = tuple(parse_public_key(k, "--add") for k in args.add)
    remove = tuple(parse_public_key(k, "--remove") for k in args.remove)
    if not add and not remove:
        raise WalletArgumentError("give at least one --add or --remove")
    if max(len(add), len(remove)) > 64:
        raise WalletArgumentError("at most 64 --add and 64 --remove")
    return UpdateGateways(add, remove)


def _proposal_id(text: str) -> str:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise WalletArgumentError("the proposal id is 64 hex digits") from None
    if len(raw) != 32:
        raise WalletArgumentError("the proposal id is 64 hex digits")
    return raw.hex()


# --- sending -------------------------------------------------------------------------------


async def _send(
    args: argparse.Namespace, node: NodeClient, own: str, key: SigningKey, body: TxBody
) -> dict[str, Any]:
    """Sign with the account's pending nonce, submit, and (unless --no-wait) wait."""
    status = await node.status()
    account = await node.account(own)
    tx = sign_tx(key, status.chain_id, account.pending_nonce, body)
    tx_hash = await node.submit_tx(tx)
    result: dict[str, Any] = {
        "hash": tx_hash,
        "status": "pending",
        "height": None,
        "nonce": account.pending_nonce,
        "member": own,
        "node": node.url,
    }
    if not args.no_wait:
        committed = await node.wait_committed(tx_hash, timeout_s=args.timeout)
        result.update(status=committed.status, height=committed.height)
    return result


@json_errors
def cmd_propose(args: argparse.Namespace) -> int:
    record: Record = args.build(args)
    if not 1 <= args.expires_in <= 1_000_000:
        raise WalletArgumentError("--expires-in is 1 to 1000000 blocks")
    own, key = open_key(args)
    node_url = resolve_node_url(args.node)

    async def run() -> dict[str, Any]:
        async with connect(node_url, args.ca) as node:
            head = (await node.status()).height
            body = Propose(record.encode(), head + args.expires_in)
            result = await _send(args, node, own, key, body)
            result["proposal_id"] = result["hash"]
            result["expires_at_height"] = body.expires_at_height
            return await _with_proposal(node, result, result["hash"])

    result = asyncio.run(run())
    emit(args, result, _sent_table(result))
    return 0


@json_errors
def cmd_approve(args: argparse.Namespace) -> int:
    proposal_id = _proposal_id(args.id)
    own, key = open_key(args)
    node_url = resolve_node_url(args.node)

    async def run() -> dict[str, Any]:
        async with connect(node_url, args.ca) as node:
            if await node.proposal(proposal_id) is None:
                raise ProposalNotFoundError(f"the chain has no proposal {proposal_id}")
            result = await _send(args, node, own, key, Approve(bytes.fromhex(proposal_id)))
            result["proposal_id"] = proposal_id
            return await _with_proposal(node, result, proposal_id)

    result = asyncio.run(run())
    emit(args, result, _sent_table(result))
    return 0


async def _with_proposal(
    node: NodeClient, result: dict[str, Any], proposal_id: str
) -> dict[str, Any]:
    """Add the proposal as the chain holds it now (absent while the tx is pending)."""
    proposal = None if result["status"] == "pending" else await node.proposal(proposal_id)
    result["proposal"] = None if proposal is None else proposal.model_dump(mode="json")
    return result


def _sent_table(result: dict[str, Any]) -> str:
    rows = [["transaction", str(result["status"])], ["hash", str(result["hash"])]]
    if result["height"] is not None:
        rows.append(["height", str(result["height"])])
    rows.append(["proposal", str(result["proposal_id"])])
    proposal = result.get("proposal")
    if proposal is not None:
        rows += [
            ["action", f"{proposal['kind']} {_summary(proposal['record'])}".rstrip()],
            ["outcome", _outcome(proposal)],
            ["approvals", f"{len(proposal['approvals'])} of {proposal['threshold']}"],
            ["expires at", f"height {proposal['expires_at_height']}"],
        ]
    return format_table(rows)


# --- reading -------------------------------------------------------------------------------


def _summary(record: dict[str, Any]) -> str:
    """The one or two fields that say what a record does, for the table."""
    kind = record.get("type")
    if kind == "RegisterParticipant":
        return f"{record['name']} {str(record['public_key'])[:16]}..."
    if kind == "RegisterMeter":
        return f"{record['meter_id']} of {record['owner']}"
    if kind == "ReplaceBridgeKey":
        return f"{record['meter_id']} -> {str(record['bridge_key'])[:16]}..."
    if kind == "Mint":
        return f"{format_credits(record['amount_mc'])} to {record['to']}"
    if kind == "Burn":
        return f"{format_credits(record['amount_mc'])} from {record['account']}"
    if kind == "RemoveParticipant":
        return str(record["address"])
    if kind == "SetParameter":
        return f"{record['name']} = {record['value']} from height {record['effective_height']}"
    if kind == "UpdateGateways":
        return f"+{len(record['add'])} -{len(record['remove'])} gateways"
    if kind == "UpdateCouncil":
        return f"{len(record['members'])} members, threshold {record['threshold']}"
    if kind == "SetTariffs":
        return f"{len(record['tariffs'])} bands from height {record['effective_height']}"
    if kind == "LinkDevice":
        if not record["device_id"]:
            return f"unlink {record['meter_id']}"
        return f"{record['meter_id']} -> {record['device_id']}"
    return ""


def _outcome(proposal: dict[str, Any]) -> str:
    status = str(proposal["status"])
    if status == "failed":
        return f"failed ({proposal['error']}) at height {proposal['closed_height']}"
    if status in ("applied", "expired"):
        return f"{status} at height {proposal['closed_height']}"
    return status


@json_errors
def cmd_list(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        raise WalletArgumentError("--limit is 1 to 1000")
    node_url = resolve_node_url(args.node)

    async def fetch() -> tuple[str, dict[str, Any]]:
        async with connect(node_url, args.ca) as node:
            found = await node.proposals(status=args.status, limit=args.limit)
            return node.url, found.model_dump(mode="json")

    url, data = asyncio.run(fetch())
    data["node"] = url
    rows = [["ID", "ACTION", "STATUS", "APPROVALS", "EXPIRES", "WHAT"]]
    for p in data["proposals"]:
        rows.append(
            [
                str(p["id"])[:16],
                str(p["kind"]),
                _outcome(p),
                f"{len(p['approvals'])}/{p['threshold']}",
                str(p["expires_at_height"]),
                _summary(p["record"]),
            ]
        )
    council = f"council: {len(data['council'])} members, threshold {data['threshold']}"
    table = format_table(rows) if len(rows) > 1 else "no proposals"
    emit(args, data, f"{table}\n\n{council}")
    return 0


@json_errors
def cmd_params(args: argparse.Namespace) -> int:
    node_url = resolve_node_url(args.node)

    async def fetch() -> tuple[str, ChainParameters]:
        async with connect(node_url, args.ca) as node:
            return node.url, await node.params()

    url, found = asyncio.run(fetch())
    data = found.model_dump(mode="json")
    data["node"] = url
    emit(args, data, _params_table(found))
    return 0


def _params_table(found: ChainParameters) -> str:
    values = found.in_force.model_dump(mode="json")
    rows = [["PARAMETER", f"AT HEIGHT {found.height}", "CHANGEABLE"]]
    for name, value in values.items():
        if name != "tariffs":
            rows.append([name, str(value), "yes" if name in found.changeable else "no"])
    for band in found.in_force.tariffs:
        rows.append(
            [
                f"tariff {band.start_hour:02d}-{band.end_hour:02d} h",
                f"retail {band.retail_mc_per_kwh} feed-in {band.feed_in_mc_per_kwh}",
                "yes",
            ]
        )
    changes = [["FROM HEIGHT", "CHANGE", "IN FORCE"]]
    for c in found.changes:
        what = f"{c.name} = {c.value}" if c.tariffs is None else f"tariffs: {len(c.tariffs)} bands"
        changes.append([str(c.effective_height), what, "yes" if c.in_force else "no"])
    tail = format_table(changes) if len(changes) > 1 else "no council changes"
    return f"{format_table(rows)}\n\n{tail}"


@json_errors
def cmd_show(args: argparse.Namespace) -> int:
    proposal_id = _proposal_id(args.id)
    node_url = resolve_node_url(args.node)

    async def fetch() -> Proposal | None:
        async with connect(node_url, args.ca) as node:
            return await node.proposal(proposal_id)

    found = asyncio.run(fetch())
    if found is None:
        raise ProposalNotFoundError(f"the chain has no proposal {proposal_id}")
    data = found.model_dump(mode="json")
    rows = [
        ["proposal", found.id],
        ["action", f"{found.kind} {_summary(data['record'])}".rstrip()],
        ["outcome", _outcome(data)],
        ["proposed at", f"height {found.proposed_height}"],
        ["expires at", f"height {found.expires_at_height}"],
        ["approvals", f"{len(found.approvals)} of {found.threshold}"],
        *[["", key] for key in found.approvals],
    ]
    emit(args, data, format_table(rows))
    return 0

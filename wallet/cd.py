"""``gridchain wallet cd charge|discharge|status|list`` and ``gridchain wallet schedule``.

An EV or a home battery asks the chain to charge or discharge it while it is connected
(docs/scheduling.md, "On chain"): the wallet signs a ``CDRequest`` with the connection window
in block time, the energy in Wh and the charger's maximum rate in W.  The chain maps the window
to whole scheduling intervals and, interval by interval, commits a setpoint for every live
request; ``schedule`` shows those setpoints.

Times a person types: ``now``, ``+SECONDS`` from now (``+3600``), an ISO 8601 time with a zone
(``2024-05-01T18:30Z``) or milliseconds since the epoch.  Everything the wallet can check is
checked before the password is asked for and before anything is sent: a positive energy and
rate, a known device, a departure after the arrival and in the future.  The node remains the
authority on the window (whole intervals, not yet decided) and on feasibility; its refusals
(``cd_window``, ``cd_infeasible``, ``cd_capacity``...) are passed through with its own code.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from gridchain.api import models as m
from gridchain.api.client import resolve_node_url
from gridchain.protocol.tx import CD_KIND_BY_LABEL, DEVICE_BY_LABEL, CDRequest
from gridchain.wallet.commands import (
    DEFAULT_COMMIT_TIMEOUT_S,
    WalletArgumentError,
    connect,
    emit,
    format_table,
    json_errors,
    open_key,
    positive_seconds,
    sign_and_submit,
    tx_rows,
    wallet_path,
)
from gridchain.wallet.ids import id_text, is_full, resolve
from gridchain.wallet.keystore_file import keystore_address, read_keystore
from gridchain.wallet.trading import iso_ms, parse_time_ms

#: The devices that take C&D requests (the chain refuses the others).
CD_DEVICES = ("EV", "Battery")
#: The chain's bound on a C&D request's rate (market.cd_requests.MAX_RATE_W): 10 MW.
MAX_RATE_W = 10_000_000
U64_MAX = 2**64 - 1
#: Requests ``cd list`` asks for (the node's most per request).
LIST_LIMIT = 1000
#: Decisions ``schedule`` shows by default, and the node's most per request.
SCHEDULE_DEFAULT = 10
SCHEDULE_MAX = 100


class CDArgumentError(WalletArgumentError):
    """A C&D request the chain would refuse for its own fields (checked before sending)."""

    code = "invalid_cd_request"


# --- arguments -----------------------------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_when(text: str, what: str, now: int) -> int:
    """``now``, ``+SECONDS`` after ``now``, an ISO 8601 time with a zone, or epoch ms."""
    stripped = text.strip()
    if stripped.lower() == "now":
        return now
    if stripped.startswith("+"):
        seconds = stripped[1:]
        whole, _, frac = seconds.partition(".")
        if not (whole.isascii() and whole.isdigit()) or not (
            frac == "" or (frac.isascii() and frac.isdigit() and len(frac) <= 3)
        ):
            raise WalletArgumentError(
                f"{what}: +SECONDS is a number of seconds from now like +3600 or +1.5: {text!r}"
            )
        if len(whole) > 10:
            raise WalletArgumentError(f"{what}: {text!r} is too far ahead")
        return now + int(whole) * 1000 + int(frac.ljust(3, "0") or "0")
    return parse_time_ms(stripped, what)


def _positive_int(text: str, what: str, *, most: int = U64_MAX) -> int:
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 20:
        raise CDArgumentError(f"{what} is a positive whole number, got {text!r}")
    value = int(stripped)
    if not 0 < value <= most:
        raise CDArgumentError(f"{what} must be 1 to {most}, got {value}")
    return value


def _device(text: str) -> str:
    by_lower = {d.lower(): d for d in CD_DEVICES}
    found = by_lower.get(text.strip().lower())
    if found is None:
        known = ", ".join(sorted(DEVICE_BY_LABEL))
        if text.strip().lower() in {d.lower() for d in DEVICE_BY_LABEL}:
            raise CDArgumentError(f"a {text} takes no C&D requests: --device is EV or Battery")
        raise CDArgumentError(f"unknown device {text!r}: --device is EV or Battery (of {known})")
    return found


def _limit_price(text: str | None, *, charge: bool) -> int:
    if text is None:
        # No limit: a charge takes any price, a discharge accepts any price.
        return U64_MAX if charge else 0
    stripped = text.strip()
    number = stripped.removesuffix("mc").strip()
    if not (number.isascii() and number.isdigit()) or len(number) > 20:
        raise CDArgumentError(f"--limit-price is whole mc per kWh (120000), got {text!r}")
    value = int(number)
    if value > U64_MAX:
        raise CDArgumentError(f"--limit-price is at most {U64_MAX} mc/kWh")
    return value


def build_request(args: argparse.Namespace, now: int) -> CDRequest:
    """The CDRequest the command line asks for, or a typed error (nothing sent yet)."""
    energy = _positive_int(args.energy_wh, "--energy-wh")
    rate = _positive_int(args.max_rate_w, "--max-rate-w", most=MAX_RATE_W)
    device = _device(args.device)
    arrival = parse_when(args.arrive, "--arrive", now)
    departure = parse_when(args.depart, "--depart", now)
    if departure <= arrival:
        raise CDArgumentError(
            f"departure ({iso_ms(departure)}) must come after arrival ({iso_ms(arrival)})"
        )
    if departure <= now:
        raise CDArgumentError(f"departure ({iso_ms(departure)}) is in the past")
    if arrival > U64_MAX or departure > U64_MAX:
        raise CDArgumentError("--arrive and --depart are too far in the future")
    return CDRequest(
        kind=int(CD_KIND_BY_LABEL[args.kind]),
        device=int(DEVICE_BY_LABEL[device]),
        arrival_ms=arrival,
        departure_ms=departure,
        energy_wh=energy,
        max_rate_w=rate,
        limit_price_mc_per_kwh=_limit_price(args.limit_price, charge=args.kind == "charge"),
        meter_id=_meter_id(args.meter),
    )


#: A meter id's bound on the wire (protocol.meter.MeterId); the node checks the rest.
METER_ID_MAX = 64


def _meter_id(text: str) -> str:
    value = text.strip()
    if not 0 < len(value) <= METER_ID_MAX:
        raise CDArgumentError(f"--meter is a registered meter id (1-{METER_ID_MAX}), got {text!r}")
    return value


# --- parser --------------------------------------------------------------------------------


def add_commands(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``cd`` (charge, discharge, status, list) and ``schedule`` to ``gridchain wallet``."""
    cd = actions.add_parser(
        "cd",
        help="ask the chain to charge or discharge an EV or battery; follow the requests",
        description="C&D requests: the chain schedules a rate for the device in every "
        "interval of its connection window (docs/scheduling.md).",
    )
    kinds = cd.add_subparsers(dest="cd_command", required=True, metavar="ACTION")

    for kind in ("charge", "discharge"):
        what = (
            "receive ENERGY by departure"
            if kind == "charge"
            else "give at most ENERGY while connected (V2G)"
        )
        request = kinds.add_parser(
            kind,
            parents=[common],
            help=f"request to {kind} a device: {what}",
            description=f"Sign and send a C&D request to {kind} an EV or a battery between "
            "--arrive and --depart, and wait until a block commits it.",
        )
        request.add_argument("--energy-wh", required=True, metavar="WH", help="energy in Wh")
        request.add_argument(
            "--max-rate-w", required=True, metavar="W", help="the charger's (inverter's) limit"
        )
        request.add_argument(
            "--arrive", required=True, metavar="TIME", help="now, +SECONDS, ISO 8601 or epoch ms"
        )
        request.add_argument(
            "--depart", required=True, metavar="TIME", help="now, +SECONDS, ISO 8601 or epoch ms"
        )
        request.add_argument(
            "--device", default="EV", metavar="DEVICE", help="EV or Battery (default: EV)"
        )
        request.add_argument(
            "--limit-price",
            metavar="MC_PER_KWH",
            help="the most paid per kWh charged, or the least taken per kWh discharged, in "
            "mc/kWh: the chain plans the device only in intervals priced within it (default: "
            "no limit)",
        )
        request.add_argument(
            "--meter",
            required=True,
            metavar="ID",
            help="the registered meter that measures the device (yours, EV or Battery)",
        )
        request.add_argument(
            "--no-wait", action="store_true", help="return once the node accepted the request"
        )
        request.add_argument(
            "--timeout",
            type=positive_seconds,
            default=DEFAULT_COMMIT_TIMEOUT_S,
            metavar="S",
            help="seconds to wait for the commit (default: %(default)g)",
        )
        request.set_defaults(handler=cmd_cd_request, kind=kind)

    status = kinds.add_parser(
        "status",
        parents=[common],
        help="show one C&D request",
        description="A C&D request: its window in intervals, energy delivered and status.",
    )
    status.add_argument(
        "request_id",
        metavar="ID",
        help="the request's id: 64 hex digits or a unique prefix (the lists show 16)",
    )
    status.set_defaults(handler=cmd_cd_status)

    listing = kinds.add_parser(
        "list",
        parents=[common],
        help="list the wallet's C&D requests",
        description="The wallet's open C&D requests, newest first; --all adds the complete "
        "and ended ones.",
    )
    listing.add_argument("--all", action="store_true", help="also complete and ended requests")
    listing.set_defaults(handler=cmd_cd_list)

    schedule = actions.add_parser(
        "schedule",
        parents=[common],
        help="show the committed C&D setpoints",
        description="The setpoints the chain decided: the latest intervals (newest first), "
        "or one interval's.",
    )
    which = schedule.add_mutually_exclusive_group()
    which.add_argument("--interval", type=int, metavar="N", help="only this interval")
    which.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help=f"how many of the latest intervals (1-{SCHEDULE_MAX}, default {SCHEDULE_DEFAULT})",
    )
    schedule.set_defaults(handler=cmd_schedule)


# --- output --------------------------------------------------------------------------------


def _window_text(info: m.CDRequest) -> str:
    count = info.end_interval - info.first_interval
    return (
        f"intervals {info.first_interval} to {info.end_interval - 1} ({count}), "
        f"{iso_ms(info.window_start_ms)} to {iso_ms(info.window_end_ms)}"
    )


def _cd_rows(info: m.CDRequest) -> list[list[str]]:
    verb = "receive" if info.kind == "charge" else "give at most"
    return [
        ["request", info.id],
        ["owner", info.owner],
        [
            "what",
            f"{info.kind} {info.device}: {verb} {info.energy_wh} Wh at up to {info.max_rate_w} W",
        ],
        ["window", _window_text(info)],
        ["delivered", f"{info.delivered_wh} Wh"],
        ["remaining", f"{info.remaining_wh} Wh"],
        ["state", info.status],
    ]


# --- cd charge / discharge -----------------------------------------------------------------


@json_errors
def cmd_cd_request(args: argparse.Namespace) -> int:
    body = build_request(args, now_ms())
    own, key = open_key(args)
    node_url = resolve_node_url(args.node)

    async def run() -> tuple[dict[str, Any], m.CDRequest | None]:
        node = connect(node_url, args.ca)
        async with node:
            result = await sign_and_submit(
                args,
                node,
                own,
                key,
                body,
                spend_mc=0,
                action="send C&D requests",
                refusal=lambda spendable: f"{own} can spend {spendable} mc",
            )
            info = None if result["height"] is None else await node.cd_request(result["hash"])
            return result, info

    result, info = asyncio.run(run())
    result["request_id"] = result["hash"]
    result["request"] = None if info is None else info.model_dump(mode="json")
    rows = tx_rows(result)
    if info is not None:
        rows += _cd_rows(info)
    else:
        rows.append(["request", str(result["hash"])])
    emit(args, result, format_table(rows))
    return 0


# --- cd status / list ----------------------------------------------------------------------


@json_errors
def cmd_cd_status(args: argparse.Namespace) -> int:
    typed = id_text(args.request_id, "ID")
    node_url = resolve_node_url(args.node)

    async def run() -> tuple[m.CDRequest, list[m.CDReceipt]]:
        node = connect(node_url, args.ca)
        async with node:
            request_id = typed
            if not is_full(typed):
                known = [r.id for r in await node.cd_requests(None)]
                request_id = resolve(typed, known, "request id", "the chain's C&D requests")
            return await node.cd_request(request_id), await node.cd_receipts(request_id)

    info, receipts = asyncio.run(run())
    doc = info.model_dump(mode="json")
    doc["receipts"] = [r.model_dump(mode="json") for r in receipts]
    human = format_table(_cd_rows(info))
    if receipts:
        human += "\n\n" + format_table(_receipt_rows(receipts), right=frozenset(range(1, 7)))
    emit(args, doc, human)
    return 0


def _receipt_rows(receipts: list[m.CDReceipt]) -> list[list[str]]:
    """One row per settled interval: setpoint, scheduled and metered Wh, price and money."""
    rows = [
        ["interval", "setpoint W", "scheduled Wh", "metered Wh", "mc/kWh", "paid mc", "penalty mc"]
    ]
    for r in receipts:
        rows.append(
            [
                str(r.interval),
                str(r.setpoint_w),
                str(r.scheduled_wh),
                str(r.metered_wh) + ("" if r.metering == "complete" else f" ({r.metering})"),
                str(r.price_mc_per_kwh),
                str(r.paid_mc if r.kind == "charge" else -r.paid_mc),
                str(r.penalty_paid_mc),
            ]
        )
    return rows


@json_errors
def cmd_cd_list(args: argparse.Namespace) -> int:
    path = wallet_path(args)
    own = keystore_address(read_keystore(path), path)
    status = None if args.all else "open"
    node_url = resolve_node_url(args.node)

    async def run() -> list[m.CDRequest]:
        node = connect(node_url, args.ca)
        async with node:
            return await node.cd_requests(own, status=status)

    found = asyncio.run(run())
    rows = [["request", "kind", "device", "Wh", "max W", "intervals", "delivered", "state"]]
    for info in found:
        rows.append(
            [
                info.id[:16],
                info.kind,
                info.device,
                str(info.energy_wh),
                str(info.max_rate_w),
                f"{info.first_interval}-{info.end_interval - 1}",
                str(info.delivered_wh),
                info.status,
            ]
        )
    none = "no C&D requests" if args.all else "no open C&D requests (--all shows closed ones)"
    human = format_table(rows, right=frozenset({3, 4, 6})) if found else none
    emit(args, {"owner": own, "requests": [i.model_dump(mode="json") for i in found]}, human)
    return 0


# --- schedule ------------------------------------------------------------------------------


@json_errors
def cmd_schedule(args: argparse.Namespace) -> int:
    if args.interval is not None and args.interval < 0:
        raise WalletArgumentError(f"--interval is a non-negative index, got {args.interval}")
    if args.limit is not None and not 1 <= args.limit <= SCHEDULE_MAX:
        raise WalletArgumentError(f"--limit is 1 to {SCHEDULE_MAX}, got {args.limit}")
    node_url = resolve_node_url(args.node)

    async def run() -> m.Schedule:
        node = connect(node_url, args.ca)
        async with node:
            return await node.schedule(interval=args.interval, limit=args.limit)

    info = asyncio.run(run())
    head = f"next interval {info.next_interval}, {info.open_requests} open request(s)"
    rows = [["interval", "start", "height", "load W", "benefit", "request", "kind", "rate W"]]
    for d in info.decisions:
        for i, e in enumerate(d.entries):
            first = i == 0
            rows.append(
                [
                    str(d.interval) if first else "",
                    iso_ms(d.start_ms) if first else "",
                    str(d.height) if first else "",
                    str(d.load_w) if first else "",
                    d.benefit if first else "",
                    e.request_id[:16],
                    e.kind or "-",
                    str(e.rate_w),
                ]
            )
    right = frozenset({0, 2, 3, 4, 7})
    body = format_table(rows, right=right) if info.decisions else "no decisions"
    emit(args, info.model_dump(mode="json"), f"{head}\n{body}")
    return 0

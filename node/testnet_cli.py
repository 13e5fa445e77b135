"""``gridchain testnet up | status | down | run | faults``: a local testnet without Docker.

``run`` is the README's main job: it starts the testnet, runs a short scripted wallet session
(the source's three peers paying each other) so a newcomer sees transfers commit, then keeps
the validators running and prints each new block until Ctrl-C, when it stops them.  ``run``
puts the validators behind a gateway (``--gateways 1``): every wallet command of the demo goes
to the gateway over HTTPS with the testnet's community CA pinned, as a household's would.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gridchain.api.client import NodeClient, NodeError
from gridchain.cli import main as gridchain_main
from gridchain.genesis.cli import DEFAULT_BRIDGE_INTERVAL_S, METER_SIM_PORT
from gridchain.node.faults.cli import add_parser as add_faults_parser
from gridchain.node.testnet import (
    BASE_API_PORT,
    BASE_P2P_PORT,
    StopReport,
    TestnetError,
    ask,
    down,
    ensure_genesis,
    load_gateway_state,
    status,
    stop,
    testnet_password,
    up,
)
from gridchain.node.testnet_checks import Asked, refuse_conflicting_flags
from gridchain.node.testnet_gateways import BASE_GATEWAY_PORT, ca_file, setup_gateways
from gridchain.node.testnet_status import format_overview, overview

DEFAULT_DIR = ".testnet"


def _announce_password(*, to_stderr: bool) -> None:
    _, is_default = testnet_password()
    if is_default:
        print(
            "wallets use the documented testnet password 'testnet' "
            "(set GRIDCHAIN_PASSWORD to choose another)",
            file=sys.stderr if to_stderr else sys.stdout,
        )


#: The creation flags' values when a command line leaves them out (None there means "what the
#: directory has", so a flag given for an existing testnet can be compared with it).
DEFAULT_CONSENSUS = "pbft"
DEFAULT_PARTICIPANTS = 3


def _up(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if (directory / "genesis.json").exists():
        refuse_conflicting_flags(
            directory,
            Asked(
                validators=args.validators,
                consensus=args.consensus,
                participants=args.participants,
                gateways=args.gateways,
                with_meters=args.with_meters,
            ),
        )
    consensus = args.consensus or DEFAULT_CONSENSUS
    validators = args.validators or (1 if consensus == "solo" else 4)
    created = ensure_genesis(
        directory,
        validators=validators,
        participants=args.participants or DEFAULT_PARTICIPANTS,
        consensus=consensus,
        block_interval_ms=args.block_interval_ms,
        slot_seconds=args.slot_seconds,
        base_api_port=args.base_api_port,
        base_p2p_port=args.base_p2p_port,
        with_meters=bool(args.with_meters),
        meter_sim_port=args.meter_sim_port,
        bridge_interval_s=args.meter_interval_s,
        gate_closure_s=args.gate_closure_seconds,
        settlement_grace_s=args.grace_seconds,
        schedule_interval_ms=args.schedule_interval_ms,
        round_ms=args.round_ms,
        gateways=args.gateways or 0,
        base_gateway_port=args.base_gateway_port,
    )
    _announce_password(to_stderr=args.json)
    with_meters = args.with_meters
    if with_meters is None:  # not given: the testnet's meters run if it was made with them
        with_meters = bool(json.loads((directory / "genesis.json").read_text()).get("meters"))
    procs = up(
        directory,
        with_meters=with_meters,
        meter_speed=args.meter_speed,
        meter_daylight=args.meter_clock == "daylight",
    )
    if args.json:
        print(json.dumps({"created": created, "validators": [asdict(p) for p in procs]}))
        return 0
    print(f"testnet {'created' if created else 'reused'} in {directory}")
    for p in procs:
        print(f"  {p.name:<10} {p.api_url:<26} pid {p.pid:<8} log {p.log}")
    return 0


def _gateways(args: argparse.Namespace) -> int:
    """Complete a chain directory's gateways (compose runs this after ``genesis init``)."""
    endpoints = setup_gateways(
        Path(args.dir),
        host=args.host,
        base_port=args.base_port,
        cert_hosts=args.cert_host,
        relay_host=args.relay_host,
        bridge_host=args.bridge_host,
    )
    if args.json:
        print(json.dumps({"gateways": [{"name": e.name, "url": e.url} for e in endpoints]}))
    else:
        for e in endpoints:
            print(f"gateway    {e.name:<12} {e.url}  {e.config}")
        print(f"community CA {ca_file(Path(args.dir))} (wallets pin it with --ca)")
    return 0


def _format_rows(rows: list[dict[str, Any]]) -> str:
    header = f"{'validator':<10} {'api':<26} {'height':>7} {'view':>5} {'peers':>5}  head hash"
    lines = [header]
    for r in rows:
        if r["height"] is None:
            lines.append(f"{r['name']:<10} {r['api_url']:<26} {'down':>7}")
            continue
        lines.append(
            f"{r['name']:<10} {r['api_url']:<26} {r['height']:>7} {r['view']:>5} "
            f"{r['peers']:>5}  {r['head_hash'][:16]}  state {r['state_root'][:16]}"
        )
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    doc = overview(Path(args.dir))
    if args.json:
        print(json.dumps(doc, indent=2))
    elif not doc["validators"]:
        print(f"no testnet is running in {args.dir}")
    else:
        print(format_overview(doc, _format_rows(doc["validators"])))
    return 0


def _down(args: argparse.Namespace) -> int:
    report = stop(Path(args.dir))
    if args.json:
        print(json.dumps({"stopped": report.stopped, "killed": report.killed}))
    else:
        print(_stopped_line(report))
    return 0


def _stopped_line(report: StopReport) -> str:
    if not report.stopped:
        return "nothing was running"
    line = f"stopped {', '.join(report.stopped)}"
    if report.killed:
        line += f" (SIGKILL after SIGTERM went unanswered: {', '.join(report.killed)})"
    return line


def _wallet(directory: Path, name: str, node: str, *argv: str) -> None:
    wallet = str(directory / "wallets" / f"{name}.json")
    pin = ["--ca", str(ca_file(directory))] if node.startswith("https://") else []
    code = gridchain_main(["wallet", *argv, "--wallet", wallet, "--node", node, *pin])
    if code != 0:
        raise TestnetError(f"demo step 'wallet {' '.join(argv)}' for {name} failed")


def client_urls(directory: Path, api_urls: list[str]) -> list[str]:
    """Where the demo's wallets send their commands: the gateways if the testnet has any
    (its validators then take no client transaction directly), else the validators."""
    gateways = [p.api_url for p in load_gateway_state(directory)]
    return gateways or api_urls


def run_demo(directory: Path, api_urls: list[str]) -> None:
    """The scripted session: three transfers around the ring, each sent to another validator
    (or through the gateway), then the ledger as every validator sees it."""
    password, _ = testnet_password()
    os.environ.setdefault("GRIDCHAIN_PASSWORD", password)
    genesis = json.loads((directory / "genesis.json").read_text())
    peers = [p["name"] for p in genesis["participants"]]
    addresses = {p["name"]: p["address"] for p in genesis["participants"]}
    clients = client_urls(directory, api_urls)
    print("\n== balance of peer-a before ==")
    _wallet(directory, peers[0], clients[0], "balance")
    where = "a gateway" if clients != api_urls else "a different validator"
    print(f"\n== transfers (each sent through {where}, waiting until committed) ==")
    ring = list(zip(peers, peers[1:] + peers[:1], strict=True))
    for i, (payer, payee) in enumerate(ring):
        amount = f"{12.5 + 5 * i:.3f}"
        node = clients[i % len(clients)]
        print(f"-- {payer} pays {payee} {amount} credits through {node}")
        _wallet(directory, payer, node, "transfer", "--to", addresses[payee], "--amount", amount)
    print("\n== the ledger on every validator ==")
    print(ledger_table(api_urls, peers, addresses))


def ledger_table(api_urls: list[str], peers: list[str], addresses: dict[str, str]) -> str:
    """Height, head, state root and each peer's balance as every validator reports them,
    once all validators reached the same height (or after 15 s)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        heights = {ask(url, NodeClient.status).height for url in api_urls}
        if len(heights) == 1:
            break
        time.sleep(0.1)
    header = f"{'api':<24} {'height':>6}  {'head':<12} {'state root':<12}"
    header += "".join(f" {name:>12}" for name in peers)
    lines = [header]
    for url in api_urls:
        st = ask(url, NodeClient.status)
        row = f"{url:<24} {st.height:>6}  {st.head_hash.hex()[:12]} {st.state_root.hex()[:12]}"
        for name in peers:
            account = functools.partial(NodeClient.account, address_text=addresses[name])
            balance = ask(url, account).balance_mc
            row += f" {balance / 1000:>12.3f}"
        lines.append(row)
    return "\n".join(lines)


def _follow(directory: Path, api_url: str) -> None:
    """Print each new block until Ctrl-C or SIGTERM."""
    stop = {"now": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("\ntestnet running; Ctrl-C stops it. New blocks:")
    seen = ask(api_url, NodeClient.status).height
    while not stop["now"]:
        time.sleep(0.5)
        try:
            height = ask(api_url, NodeClient.status).height
        except NodeError:
            continue
        while seen < height:
            seen += 1
            block = ask(api_url, functools.partial(NodeClient.block, height=seen))
            print(f"  block {seen:>6}  {block.hash[:16]}  {len(block.txs)} txs")


def run_cd_demo(directory: Path, api_urls: list[str]) -> None:
    """Peer B's EV asks to be charged; the chain schedules it interval by interval and every
    validator holds the same setpoints."""
    genesis = json.loads((directory / "genesis.json").read_text())
    interval_s = int(genesis["params"]["schedule_interval_ms"]) / 1000
    minutes = int(genesis["params"]["schedule_interval_minutes"])
    print(
        f"\n== EV charging scheduled on chain ({genesis['params']['scheduler']} scheduler; "
        f"an interval is {interval_s:g} s standing for {minutes} min) =="
    )
    meter = "peer-b-ev"
    if not any(m["meter_id"] == meter for m in genesis.get("meters", [])):
        # A request names the meter that measures its device (ADR 0030).
        print(f"-- skipped: peer-b's EV meter {meter} is not registered (created without meters)")
        return
    print("-- peer-b's EV asks for 2 kWh at up to 11 kW before it leaves in 40 s")
    wallet = str(directory / "wallets" / "peer-b.json")
    argv = ["wallet", "cd", "charge", "--energy-wh", "2000", "--max-rate-w", "11000"]
    clients = client_urls(directory, api_urls)
    argv += ["--arrive", "now", "--depart", "+40", "--meter", meter]
    argv += ["--wallet", wallet, "--node", clients[-1]]
    if clients != api_urls:
        argv += ["--ca", str(ca_file(directory))]
    if gridchain_main(argv) != 0:
        raise TestnetError("demo step 'wallet cd charge' for peer-b failed")
    deadline = time.monotonic() + 20 * interval_s + 30
    while time.monotonic() < deadline:
        decided = ask(api_urls[-1], lambda c: c.schedule(limit=3)).decisions
        if len(decided) >= 3:
            break
        time.sleep(interval_s / 2)
    print(f"-- the setpoints the chain decided, as {api_urls[-1]} shows them:")
    _wallet(directory, "peer-b", clients[-1], "schedule", "--limit", "3")


def run_market_demo(directory: Path, api_urls: list[str]) -> None:
    """Peer A sells PV energy to peer C for a slot a few seconds ahead; the bridges meter it;
    after the slot and its grace period the chain settles the trade from the readings."""
    genesis = json.loads((directory / "genesis.json").read_text())
    slot_ms = int(genesis["params"]["slot_length_ms"])
    grace_ms = int(genesis["params"]["settlement_grace_ms"])
    gate_ms = int(genesis["params"]["gate_closure_ms"])
    now_ms = time.time_ns() // 1_000_000
    slot = (now_ms + gate_ms) // slot_ms + 2
    settle_at_ms = (slot + 1) * slot_ms + grace_ms
    clients = client_urls(directory, api_urls)
    print(f"\n== a trade for slot {slot}, settled from meter readings ==")
    common = ["--slot", str(slot), "--quantity", "5Wh"]
    print("-- peer-a offers 5 Wh of PV energy at 120 credits/kWh")
    _wallet(
        directory,
        "peer-a",
        clients[0],
        "order",
        "sell",
        "--price",
        "120",
        "--device",
        "PV",
        *common,
    )
    print("-- peer-c bids for 5 Wh at up to 130 credits/kWh (trades at the resting 120)")
    _wallet(
        directory,
        "peer-c",
        clients[-1],
        "order",
        "buy",
        "--price",
        "130",
        "--device",
        "Load",
        *common,
    )
    wait_s = max(0.0, (settle_at_ms - time.time_ns() // 1_000_000) / 1000)
    print(f"-- the bridges meter the slot; settlement in about {wait_s:.0f} s")
    deadline = time.monotonic() + wait_s + 60
    time.sleep(wait_s)
    while time.monotonic() < deadline:
        receipts = ask(api_urls[0], lambda c: c.receipts())
        if any(r.slot == slot for r in receipts):
            break
        time.sleep(1)
    print("-- peer-c's receipts (delivery is what peer-a's simulated PV meter measured):")
    _wallet(directory, "peer-c", clients[-1], "receipts")


def _run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if args.fresh and directory.exists():
        down(directory)
        import shutil  # noqa: PLC0415

        shutil.rmtree(directory)
    _up(args)
    api_urls = [row["api_url"] for row in status(directory)]
    try:
        run_demo(directory, api_urls)
        run_cd_demo(directory, api_urls)
        if args.with_meters:
            run_market_demo(directory, api_urls)
        print()
        print(_format_rows(status(directory)))
        if not args.exit_after_demo:
            _follow(directory, api_urls[0])
    finally:
        print(_stopped_line(stop(directory)))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"testnet directory (default {DEFAULT_DIR})")
    p.add_argument("--json", action="store_true")


def _creation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--validators", type=int, default=None, help="default: 1 for solo, else 4")
    p.add_argument(
        "--consensus", choices=["solo", "pbft", "pob", "epob"], default=None, help="default pbft"
    )
    p.add_argument("--participants", type=int, default=None, help="default 3")
    p.add_argument("--block-interval-ms", type=int, default=500)
    p.add_argument("--slot-seconds", type=int, default=None, help="market slot length (genesis)")
    p.add_argument(
        "--gate-closure-seconds", type=int, default=None, help="order gate closure before a slot"
    )
    p.add_argument(
        "--grace-seconds", type=int, default=None, help="wait for readings after a slot ends"
    )
    p.add_argument(
        "--gateways",
        type=int,
        default=None,
        help="a new testnet's gateways: its validators then take client transactions only "
        "through them (HTTPS, the community CA in DIR/ca/ca.pem)",
    )
    p.add_argument("--base-gateway-port", type=int, default=BASE_GATEWAY_PORT)
    p.add_argument("--base-api-port", type=int, default=BASE_API_PORT)
    p.add_argument("--base-p2p-port", type=int, default=BASE_P2P_PORT)
    p.add_argument(
        "--with-meters",
        action="store_true",
        default=None,
        help="also run the Modbus meter simulator and one meter bridge per participant "
        "(a new testnet registers their meters in genesis; an existing one made with meters "
        "runs them unless --no-meters)",
    )
    p.add_argument(
        "--no-meters",
        dest="with_meters",
        action="store_false",
        help="do not run the meter simulator and bridges (with run: skip the settlement demo)",
    )
    p.add_argument(
        "--meter-clock",
        choices=["utc", "daylight"],
        default="utc",
        help="the simulated meters' hour of day: utc (the sun follows UTC) or daylight "
        "(shifted by whole hours into the day, so PV produces at any hour; run's default)",
    )
    p.add_argument(
        "--meter-interval-s",
        type=float,
        default=DEFAULT_BRIDGE_INTERVAL_S,
        help=f"bridges' reading interval for a new testnet (default {DEFAULT_BRIDGE_INTERVAL_S:g})",
    )
    p.add_argument(
        "--meter-speed", type=float, default=1.0, help="simulated seconds per second of the meters"
    )
    p.add_argument("--meter-sim-port", type=int, default=METER_SIM_PORT)
    p.add_argument(
        "--schedule-interval-ms",
        type=int,
        default=5000,
        help="block time of one C&D scheduling interval, which stands for 10 minutes of the "
        "day (default 5000: an accelerated day)",
    )
    p.add_argument("--round-ms", type=int, default=1000, help="PoB/ePoB round length (ROUNDTIME)")


def register(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text)
    tsub = parser.add_subparsers(dest="testnet_command", required=True, metavar="SUBCOMMAND")
    p_up = tsub.add_parser("up", help="create (if needed) and start the validators")
    _common(p_up)
    _creation(p_up)
    p_up.set_defaults(handler=_up)
    p_gw = tsub.add_parser(
        "gateways",
        help="give a chain's gateways a community CA, certificates and API tables, and put "
        "its validators behind them (run once, after genesis init --gateways N)",
    )
    _common(p_gw)
    p_gw.add_argument("--host", default="127.0.0.1", help="the gateways' listen address")
    p_gw.add_argument("--base-port", type=int, default=BASE_GATEWAY_PORT)
    p_gw.add_argument(
        "--cert-host",
        action="append",
        default=[],
        help="a name clients use for a gateway, in its certificate ({name}: the gateway's)",
    )
    p_gw.add_argument(
        "--relay-host", default=None, help="how gateways reach validator APIs ({name}: the node's)"
    )
    p_gw.add_argument(
        "--bridge-host",
        default=None,
        help="how meter bridges reach the first gateway ({name}: the gateway's; default: its "
        "listen address)",
    )
    p_gw.set_defaults(handler=_gateways)
    p_status = tsub.add_parser("status", help="height, view, peers and head of each validator")
    _common(p_status)
    p_status.set_defaults(handler=_status)
    p_down = tsub.add_parser("down", help="stop exactly the validators `up` started")
    _common(p_down)
    p_down.set_defaults(handler=_down)
    p_run = tsub.add_parser("run", help="up, a scripted wallet session, follow blocks, down")
    _common(p_run)
    _creation(p_run)
    p_run.add_argument("--fresh", action="store_true", help="start from a new genesis")
    p_run.add_argument("--exit-after-demo", action="store_true", help="stop after the demo")
    # The demo's market runs in seconds so a trade settles from meter readings within a minute.
    p_run.set_defaults(
        handler=_run,
        with_meters=True,
        slot_seconds=12,
        gate_closure_seconds=3,
        grace_seconds=6,
        meter_interval_s=2.0,
        schedule_interval_ms=2000,
        gateways=1,
        meter_clock="daylight",
    )
    add_faults_parser(tsub)

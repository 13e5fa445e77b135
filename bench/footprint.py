"""What a community's processes cost at rest once the chain is old: RSS and idle CPU.

A peer device runs a validator, a meter bridge and perhaps a gateway for years, so what they
hold and burn when nothing much happens matters as much as throughput.  This benchmark plays
``--days`` of a ``--households`` community (``gridchain bench state``'s year: readings every
slot, orders, settlement, C&D requests, pruning) into a validator's ledger through the real
application and LevelDB store, then starts, as real processes on loopback:

* that validator (solo, the community's one) on the aged ledger,
* the community's gateway (``gridchain gateway run``) linked to it,
* the meter simulator and the first household's bridge (``gridchain meterbridge run``), which
  reads its meters every few seconds and sends what the chain does not have yet,

waits until the gateway has followed the whole chain from genesis (as one that joins an old
chain does), reads the last day's blocks through the validator's API (so its decode memories
are those of a validator that serves its recent days), lets them settle, then samples each
process's RSS (``VmRSS``) and CPU time (``/proc/PID/stat``)
over ``--idle-s`` seconds.  RSS is split as the kernel counts it: anonymous memory (the
process's own heap), file-backed pages (shared libraries, and LevelDB's table files, which
LevelDB maps into memory on 64-bit systems), and of those the pages of mapped ``.ldb`` tables
alone: clean pages of the ledger's files, which the kernel drops under memory pressure and a
validator pages out once its commits pause (ADR 0054; before that they grew with the ledger
the process read).  Idle CPU is CPU seconds over wall seconds, as
a percentage of one core.  It also reports what a joining validator would fetch to start from
this ledger's state (state sync, ADR 0039): the snapshot's entries and bytes, and the time to
serve and verify it in one process.  Every child is stopped when the bench ends, also on
SIGTERM or SIGINT.  Benchmarks measure; tests never assert these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from gridchain.api.client import NodeClient, NodeError
from gridchain.bench import cluster
from gridchain.bench.conditions import conditions
from gridchain.bench.footprint_played import (
    MAX_TOP_UP_DAYS,
    clone_ledger,
    top_up,
)
from gridchain.bench.soak import read_memory_kib
from gridchain.bench.state import (
    SLOTS_PER_DAY,
    Community,
    Ledger,
    _du,
    community,
    play,
    recent_genesis_ms,
)
from gridchain.bench.state_progress import ProgressError
from gridchain.consensus.certificates import check_certificate, genesis_commit_rule
from gridchain.genesis.builder import GenesisBundle
from gridchain.genesis.cli import write_bundle
from gridchain.node.faults.cluster import _die_with_parent
from gridchain.node.p2p.frames import STATE_CHUNK_OVERHEAD, StateChunk
from gridchain.node.state_sync import SnapshotServer, fetch_snapshot
from gridchain.node.store import Store
from gridchain.node.testnet import ask, down, up
from gridchain.node.testnet_gateways import ca_file, gateway_endpoints, setup_gateways
from gridchain.protocol.block import CommittedBlock
from gridchain.protocol.keystore import TESTNET_SCRYPT_N

#: The frame bound a validator's peer links use by default (node.p2p.PeerNetwork).
FRAME_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Proc:
    name: str
    pid: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mapped_table_kib(pid: int) -> int:
    """Resident KiB of ``pid``'s mappings of LevelDB table files (``*.ldb`` in
    /proc/PID/smaps): LevelDB reads its tables through mmap, so pages of the ledger it
    touched count in VmRSS as file-backed memory."""
    total, in_table = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            in_table = len(head) >= 6 and head[-1].endswith(".ldb")
        elif in_table and head and head[0] == "Rss:":
            total += int(head[1])
    return total


def measure_idle(procs: list[Proc], seconds: float) -> dict[str, dict[str, float]]:
    """RSS at the end (with its anonymous, file-backed and mapped-ledger parts) and CPU % of
    one core over ``seconds`` for each process."""
    before = {p.name: cpu_seconds(p.pid) for p in procs}
    began = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - began
    out = {}
    for p in procs:
        used = cpu_seconds(p.pid) - before[p.name]
        memory = read_memory_kib(p.pid)
        out[p.name] = {
            "rss_mib": round(memory["rss_kib"] / 1024, 1),
            "rss_anon_mib": round(memory.get("rss_anon_kib", 0) / 1024, 1),
            "rss_file_mib": round(memory.get("rss_file_kib", 0) / 1024, 1),
            "ledger_mapped_mib": round(mapped_table_kib(p.pid) / 1024, 1),
            "cpu_percent": round(100 * used / wall, 2),
            "cpu_s": round(used, 2),
        }
    return out


class _LocalPeer:
    """The joiner's view of one peer serving ``server`` (no sockets: the transfer's cost is
    measured apart from the network's)."""

    def __init__(self, server: SnapshotServer, store: Store) -> None:
        self._server = server
        self._store = store
        self.chunks = 0

    def peer_heights(self) -> dict[bytes, int]:
        return {b"peer": self._store.head_height()}

    async def fetch_state(self, peer: bytes, height: int, after: bytes) -> StateChunk:
        self.chunks += 1
        served, entries, last = self._server.state_chunk(
            height, after, FRAME_BYTES - STATE_CHUNK_OVERHEAD
        )
        keys = tuple(k for k, _ in entries)
        return StateChunk(self.chunks, served, keys, tuple(v for _, v in entries), last)

    async def fetch_blocks(self, from_height: int, count: int) -> list[bytes]:
        raw = self._store.get_block_raw(from_height)
        return [] if raw is None else [raw]


def measure_snapshot(store: Store, genesis: Any) -> dict[str, Any]:
    """Serve and verify a snapshot of ``store``'s state in this process (ADR 0039)."""
    server = SnapshotServer(store)
    peer = _LocalPeer(server, store)

    def check(committed: CommittedBlock) -> None:
        rule = genesis_commit_rule(genesis, committed.block)
        check_certificate(committed.certificate, committed.block, rule, genesis.chain_id)

    began = time.perf_counter()
    snapshot = asyncio.run(fetch_snapshot(peer, b"peer", check))
    seconds = time.perf_counter() - began
    server.close()
    return {
        "height": snapshot.height,
        "entries": len(snapshot.entries),
        "bytes": sum(len(k) + len(v) for k, v in snapshot.entries.items()),
        "chunks": peer.chunks,
        "serve_and_verify_s": round(seconds, 2),
    }


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A ``gridchain`` child in its own session that gets SIGTERM if the bench dies."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gridchain", *argv],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, before exec
        )


def _first_bridge(directory: Path) -> tuple[list[str], list[str], Path]:
    """argv of the simulator (the first household only) and of that household's bridge."""
    genesis = json.loads((directory / "genesis.json").read_text())
    first = genesis["participants"][0]
    config = directory / "bridges" / first["name"] / "config.toml"
    port = int(tomllib.loads(config.read_text(encoding="utf-8"))["buses"][0]["port"])
    simulate = [
        "meterbridge",
        "simulate",
        "--tcp",
        f"127.0.0.1:{port}",
        "--household",
        ",".join(first.get("devices", [])) or "Load",
        "--registers",
        str(directory / "bridges" / "registers.json"),
    ]
    return simulate, ["meterbridge", "run", "--config", str(config)], config.parent


def _free_base(count: int) -> int:
    """The first of ``count`` free ports in a row (the benchmark's own range, bench.cluster)."""
    return cluster._base_port(count)


def build_ledger(bundle: GenesisBundle, people: Community, days: int, data: Path) -> dict[str, Any]:
    """Play ``days`` of the community into the validator's data dir ``data`` in this process:
    bench state's generator (``play``) through the real Application and the LevelDB Store, as
    that validator would have committed them.  What was built, for the report."""
    ledger = Ledger.open(bundle.genesis, data)
    began = time.perf_counter()
    done = 0
    try:
        for block in play(bundle, people, ledger, days):
            day = block.day
            if day > done:  # a long build says how far it is (stderr: --json stays clean)
                done = day
                elapsed = time.perf_counter() - began
                print(f"played day {day} of {days} in {elapsed:.0f} s", file=sys.stderr)
        entries, blocks = len(ledger.state), ledger.height
    finally:
        ledger.store.close()
    return {
        "blocks": blocks,
        "live_state_entries": entries,
        "play_s": round(time.perf_counter() - began, 1),
        "ledger_bytes": _du(data),
        "built": BUILT_HOW,
    }


#: How the aged ledger is made (printed with the figures).
BUILT_HOW = (
    "in this process, by bench state's generator through the real Application and LevelDB "
    "Store into the validator's data dir; then the validator, gateway and bridge start on it "
    "as real processes"
)


def run(
    households: int,
    days: int,
    idle_s: float,
    settle_s: float,
    directory: Path,
    *,
    base_port: int | None = None,
    warm_blocks: int = SLOTS_PER_DAY * 3,
    catch_up_s: float = 1800.0,
    played: Path | None = None,
    max_top_up_days: int = MAX_TOP_UP_DAYS,
) -> dict[str, Any]:
    """Build the aged ledger (or, with ``played``, take bench state's play in that directory:
    bench/footprint_played.py), start the processes on it, measure them at rest.

    Every child is stopped on the way out, whatever ends the run (an error, SIGINT, or
    SIGTERM, which the bench CLI turns into SystemExit): the launcher records each validator
    and gateway in the directory before waiting for it (``node.testnet.up``), so
    ``node.testnet.down`` finds one that was still starting; the bench's own children are
    listed as soon as they exist and die with the bench if it is killed outright."""
    base = _free_base(PORTS_USED) if base_port is None else base_port
    if played is None:
        genesis_ms = recent_genesis_ms(days, int(time.time() * 1000))
        people = community(households, gateways=1, engine="pbft", genesis_time_ms=genesis_ms)
        bundle = people.bundle
        _write_chain(bundle, directory, base)
        setup_gateways(directory, base_port=base + 3)
        data = directory / "nodes" / bundle.validators[0].name / "data"
        built = build_ledger(bundle, people, days, data)
    else:
        bundle, built = _take_played(played, directory, base, max_top_up_days)
        households, days = built["households"], built["days"]
        data = directory / "nodes" / bundle.validators[0].name / "data"
    has_gateway = bool(bundle.gateways)
    store = Store(data)
    try:
        snapshot = measure_snapshot(store, bundle.genesis)
    finally:
        store.close()
    report: dict[str, Any] = {
        "households": households,
        "days": days,
        **built,
        "state_snapshot": snapshot,
        "idle_s": idle_s,
    }
    extra: list[subprocess.Popen[bytes]] = []

    def stop_children() -> None:
        with _signals_held():
            for proc in extra:
                _stop_child(proc)
            down(directory)

    with _stopping_on_signal(stop_children):
        try:
            procs = [
                Proc("validator" if p.name.startswith("node") else "gateway", p.pid)
                for p in up(directory)
            ]
            simulate, bridge, bridge_dir = _first_bridge(directory)
            extra.append(_spawn(simulate, bridge_dir / "simulator.log"))
            time.sleep(2.0)  # the simulator binds its port before the bridge dials it
            extra.append(_spawn(bridge, bridge_dir / "bridge.log"))
            if has_gateway:
                report["caught_up_s"] = wait_caught_up(directory, built["blocks"], catch_up_s)
            else:
                report["no_gateway"] = NO_GATEWAY
            report["warmed_blocks"] = warm_validator(directory, built["blocks"], warm_blocks)
            time.sleep(settle_s)
            watched = [*procs, Proc("bridge", extra[-1].pid)]
            report["processes"] = measure_idle(watched, idle_s)
            report["validator_height_after"] = _height_of(directory)
        finally:
            stop_children()
    report["conditions"] = conditions()
    return report


def _write_chain(bundle: GenesisBundle, directory: Path, base: int) -> None:
    write_bundle(
        bundle,
        directory,
        password="bench",  # noqa: S106 - throwaway keystores in a temporary directory
        scrypt_n=TESTNET_SCRYPT_N,
        base_api_port=base,
        base_p2p_port=base + 1,
        meter_sim_port=base + 2,
        base_agent_port=base + 4,
    )


#: Why a played chain may have no gateway to measure (printed in its place).
NO_GATEWAY = (
    "the play's genesis names no gateway and its one validator is solo: the application "
    "refuses to admit one later on such a chain (UpdateGateways: gateway_change_unsupported, "
    "no peer network to link it); a play made with `bench state --gateway` has one"
)


def _take_played(
    played: Path, directory: Path, base: int, max_top_up_days: int
) -> tuple[GenesisBundle, dict[str, Any]]:
    """Top the play in ``played`` up to now, write its chain's configs into ``directory`` and
    clone its ledger into the validator's data dir (bench/footprint_played.py); what was
    taken, for the report."""
    topped = top_up(played, int(time.time() * 1000), max_days=max_top_up_days)
    bundle = community(
        topped.households, gateways=topped.gateways, genesis_time_ms=topped.genesis_time_ms
    ).bundle
    _write_chain(bundle, directory, base)
    if bundle.gateways:
        setup_gateways(directory, base_port=base + 3)
    data = directory / "nodes" / bundle.validators[0].name / "data"
    began = time.perf_counter()
    clone = clone_ledger(played / "ledger", data)
    clone_s = time.perf_counter() - began
    return bundle, {
        "households": topped.households,
        "days": topped.days_after,
        "blocks": topped.height_after,
        "live_state_entries": topped.live_state_entries,
        "play_s": topped.seconds,
        "ledger_bytes": _du(data),
        "built": PLAYED_HOW,
        "played": {
            "directory": str(played),
            "days_before": topped.days_before,
            "days_after": topped.days_after,
            "height_before": topped.height_before,
            "height_after": topped.height_after,
            "partial_blocks": topped.partial_blocks,
            "head_age_s": round(time.time() - topped.head_time_ms / 1000, 1),
            "top_up_s": topped.seconds,
            "clone": {
                "linked_files": clone.linked_files,
                "linked_bytes": clone.linked_bytes,
                "copied_files": clone.copied_files,
                "copied_bytes": clone.copied_bytes,
                "seconds": round(clone_s, 2),
            },
        },
    }


#: How a played ledger is taken (printed with the figures).
PLAYED_HOW = (
    "bench state's play in --played, topped up to now (a resumed run), its ledger cloned by "
    "hard links into the validator's data dir (the play's own files untouched); then the "
    "validator, its gateway if the play's genesis names one, and a bridge start on the clone "
    "as real processes"
)


#: Ports from the base: validator API, its peer port, the meter simulator, the gateway, the
#: first household's agent port (in the bridge's config; no agent runs).
PORTS_USED = 5


@contextlib.contextmanager
def _stopping_on_signal(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM or SIGINT runs ``stop`` at once, in the handler, then unwinds (SystemExit).

    Unwinding alone is not enough: a signal that lands inside an event loop (the waits for the
    gateway, the warm-up reads) unwinds through that loop's shutdown, which can wait on what
    the interrupted loop no longer drives; the children must not depend on it.  ``stop`` must
    be safe to call again (the ``finally`` calls it too)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop()
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT wait until the block ends: a second signal (``timeout`` then Ctrl-C)
    must not cut the stopping of the children short."""
    held = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_child(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not stop within 15 s (as ``node.testnet.stop``)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_caught_up(directory: Path, height: int, timeout_s: float) -> float:
    """Seconds until the gateway's followed head reached ``height`` (the built ledger's last
    block; it follows from genesis over its links, as a gateway that joins an old chain
    does)."""
    url = gateway_endpoints(directory)[0].url
    ca = ca_file(directory)
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        try:
            if ask(url, NodeClient.health, ca=ca).height >= height:
                return round(time.monotonic() - began, 1)
        except NodeError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"the gateway did not follow to block {height} within {timeout_s:.0f} s")


def warm_validator(directory: Path, height: int, count: int) -> int:
    """Read the last ``count`` blocks through the validator's API, as explorers, agents and
    operator pages read a live chain's recent days: its decode memories hold what a running
    validator's hold, not a fresh start's.  The number of blocks read."""
    config = directory / "nodes" / "node-1" / "config.toml"
    url = f"http://127.0.0.1:{tomllib.loads(config.read_text())['api']['port']}"
    first = max(1, height - count + 1)

    async def read_all() -> int:
        async with NodeClient(url, request_timeout_s=10.0, retries=1) as client:
            for h in range(first, height + 1):
                await client.block(h)
        return height - first + 1

    return asyncio.run(read_all())


def _height_of(directory: Path) -> int | None:
    """The validator's head after the idle window (blocks the bridge's readings made)."""
    import urllib.request  # noqa: PLC0415 - only this read

    config = tomllib.loads((directory / "nodes" / "node-1" / "config.toml").read_text())
    url = f"http://127.0.0.1:{config['api']['port']}/v1/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(json.loads(resp.read())["height"])
    except (OSError, ValueError, KeyError):
        return None


def format_report(r: dict[str, Any]) -> list[str]:
    snap = r["state_snapshot"]
    lines = [
        f"community: {r['households']} households, {r['days']} day(s) of block time "
        f"({r['blocks']:,} blocks, {r['days'] * SLOTS_PER_DAY:,} slots) "
        + ("topped up" if "played" in r else "played")
        + f" in {r['play_s']} s",
        f"how: {r['built']}",
        *_played_lines(r),
        f"at the end: {r['live_state_entries']:,} live state entries, ledger (LevelDB: blocks, "
        f"state, tree, archive) {r['ledger_bytes'] / 1e6:.1f} MB",
        f"state snapshot a joiner fetches: {snap['entries']:,} entries, "
        f"{snap['bytes'] / 1e6:.1f} MB in {snap['chunks']} chunks, served and verified in "
        f"{snap['serve_and_verify_s']} s (one process)",
        (
            f"gateway followed from genesis to block {r['blocks']:,} in {r['caught_up_s']} s; "
            if "caught_up_s" in r
            else ""
        )
        + f"the validator served its last {r.get('warmed_blocks')} blocks over its API",
        f"idle window: {r['idle_s']} s (bridge reading its meters, validator head "
        f"{r.get('validator_height_after')})",
        f"{'process':<10} {'RSS MiB':>8} {'anon':>7} {'file':>7} {'of it ledger':>13} "
        f"{'CPU %':>7} {'CPU s':>7}",
    ]
    for name, row in r["processes"].items():
        lines.append(
            f"{name:<10} {row['rss_mib']:>8} {row['rss_anon_mib']:>7} {row['rss_file_mib']:>7} "
            f"{row['ledger_mapped_mib']:>13} {row['cpu_percent']:>7} {row['cpu_s']:>7}"
        )
    return lines


def _played_lines(r: dict[str, Any]) -> list[str]:
    if "played" not in r:
        return []
    p, c = r["played"], r["played"]["clone"]
    partial = f" and {p['partial_blocks']} blocks of day {p['days_after'] + 1}"
    return [
        f"aged ledger: {p['directory']}, {p['days_after']} whole days{partial} "
        f"({p['height_after']:,} blocks; topped up from {p['days_before']} days, block "
        f"{p['height_before']:,}, in {p['top_up_s']} s); its last block was "
        f"{p['head_age_s']} s old when cloned",
        f"clone: {c['linked_files']:,} table files ({c['linked_bytes'] / 1e6:.1f} MB) "
        f"hard-linked, {c['copied_files']} files ({c['copied_bytes'] / 1e6:.1f} MB) copied, in "
        f"{c['seconds']} s",
        *([f"no gateway: {r['no_gateway']}"] if "no_gateway" in r else []),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench footprint", description=__doc__)
    parser.add_argument("--households", type=int, default=200)
    parser.add_argument("--days", type=int, default=1, help="days of block time to play first")
    parser.add_argument("--idle-s", type=float, default=60.0, help="length of the idle window")
    parser.add_argument(
        "--settle-s", type=float, default=15.0, help="wait after catching up and warming"
    )
    parser.add_argument(
        "--warm-blocks",
        type=int,
        default=SLOTS_PER_DAY * 3,
        help="the last blocks read through the validator's API before the window (one day)",
    )
    parser.add_argument(
        "--base-port", type=int, help=f"first of {PORTS_USED} ports in a row (default: free)"
    )
    parser.add_argument(
        "--played",
        type=Path,
        help="measure on the ledger of the bench state play in this directory (made with "
        "--end-now; topped up to now, then cloned by hard links) instead of playing "
        "--days of --households here",
    )
    parser.add_argument(
        "--max-top-up-days",
        type=int,
        default=MAX_TOP_UP_DAYS,
        help="with --played: refuse a play that is more days behind now (default %(default)s)",
    )
    parser.add_argument(
        "--catch-up-s",
        type=float,
        default=1800.0,
        help="how long the gateway may take to follow the chain from genesis",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.days < 1 or args.households < 1:
        parser.error("--days and --households must be at least 1")
    if args.played is not None and not (args.played / "ledger").is_dir():
        parser.error(f"{args.played} holds no bench state ledger")
    # A played ledger is cloned by hard links: its working directory is on the same file
    # system, inside the play's directory (hidden, removed at the end).
    where = None if args.played is None else args.played
    with tempfile.TemporaryDirectory(prefix=".footprint-", dir=where) as tmp:
        try:
            report = run(
                args.households,
                args.days,
                args.idle_s,
                args.settle_s,
                Path(tmp),
                base_port=args.base_port,
                warm_blocks=args.warm_blocks,
                catch_up_s=args.catch_up_s,
                played=args.played,
                max_top_up_days=args.max_top_up_days,
            )
        except ProgressError as exc:
            parser.error(str(exc))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(format_report(report)))
        print("conditions:", json.dumps(report["conditions"]))
    return 0

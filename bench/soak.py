"""A soak run: a 4-validator PBFT testnet under a steady load for a long time, watched for leaks.

The launcher starts every validator as its own process (bench/cluster.py).  First a closed-loop
burst of pre-signed transfers measures the cluster's saturation (committed tx/s, as ``bench
consensus`` measures it); then signed transfers are offered at a steady rate (default: half of
that saturation) through the typed node client, each sender to its own validator and in nonce
order, for ``--minutes``.  Every ``--sample-seconds`` (a minute) the resident set size and the
number of open file descriptors of each validator process are read from ``/proc/PID/status``
and ``/proc/PID/fd`` and printed; at the end, the least-squares slope of each per hour, and the
conditions (machine, rate, duration, commit).

The goal is flat: a slope that stays positive over a long run is a leak.  A refused transfer
(a full mempool) is counted by its code and the sender resynchronised from the node's
``pending_nonce``, so one refusal never stalls a sender for the rest of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gridchain.api import models as m
from gridchain.api.client import NodeClient, NodeError
from gridchain.bench.cluster import bench_bundle, running_validators, transfer_streams
from gridchain.bench.conditions import conditions
from gridchain.bench.consensus import _drive
from gridchain.genesis.builder import GenesisBundle
from gridchain.protocol.address import parse_address
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.tx import Transfer, sign_tx

VALIDATORS = 4
SENDERS = 16
#: Transfers of the closed-loop burst that measures saturation before the soak.
SATURATION_TXS = 4000
#: Seconds between two batches a submitter sends (its share of the rate is spread over them).
TICK_S = 0.2
#: Largest batch one POST /v1/txs carries (api/models.py SubmitBatch).
MAX_BATCH = 1000
SECONDS_PER_HOUR = 3600.0


#: /proc/PID/status lines read at each sample: all resident memory, and its split into
#: anonymous (the heap: Python objects, LevelDB's caches) and file-backed pages (mapped code
#: and LevelDB's table files, which grow with the ledger and are not a leak).
MEMORY_FIELDS = {"VmRSS": "rss_kib", "RssAnon": "rss_anon_kib", "RssFile": "rss_file_kib"}


def read_memory_kib(pid: int) -> dict[str, int]:
    """``rss_kib``, ``rss_anon_kib`` and ``rss_file_kib`` of ``pid`` from /proc/PID/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in MEMORY_FIELDS:
            out[MEMORY_FIELDS[name]] = int(rest.split()[0])
    if "rss_kib" not in out:
        raise ValueError(f"/proc/{pid}/status has no VmRSS line")
    return out


def read_rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (the ``VmRSS`` line of /proc/PID/status)."""
    return read_memory_kib(pid)["rss_kib"]


def count_open_files(pid: int) -> int:
    """Open file descriptors of ``pid`` (entries of /proc/PID/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _add_mempools(
    row: dict[str, Any], procs: Sequence[Process], clients: Sequence[NodeClient]
) -> None:
    """Each validator's pending transactions (GET /v1/status): a backlog that grows means the
    offered rate is above what the cluster commits, and memory grows with it (bounded by the
    mempool's limits), which is not a leak."""
    for p, client in zip(procs, clients, strict=True):
        try:
            status = await client.status()
        except NodeError:
            row["processes"][p.name]["mempool_txs"] = None
        else:
            row["processes"][p.name]["mempool_txs"] = status.mempool.txs


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(seconds, value)`` points, in value per hour.

    None with fewer than two distinct times: no slope was measured.
    """
    if len({t for t, _ in points}) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * SECONDS_PER_HOUR


def git_commit() -> str | None:
    """The commit of the checkout this module runs from, or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


class Process(Protocol):
    """What the soak reads of a launched validator (node/testnet.py ValidatorProcess)."""

    @property
    def name(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def api_url(self) -> str: ...


@dataclass(slots=True)
class _Sender:
    key: SigningKey
    address: str
    nonce: int


@dataclass(slots=True)
class _Load:
    """What the steady phase offered, what was admitted and refused, and what committed."""

    offered: int = 0
    admitted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0
    committed: int = 0
    height: int = 0


def sample(procs: Sequence[Process], t_s: float) -> dict[str, Any]:
    """One reading of every validator: ``{"t_s", "processes": {name: {rss_kib, rss_anon_kib,
    rss_file_kib, open_files}}}`` (None for a process that is gone)."""
    readings: dict[str, Any] = {}
    for p in procs:
        try:
            readings[p.name] = {**read_memory_kib(p.pid), "open_files": count_open_files(p.pid)}
        except (OSError, ValueError):  # the process is gone: say so rather than stop the soak
            readings[p.name] = {"rss_kib": None, "open_files": None}
    return {"t_s": round(t_s, 1), "processes": readings}


async def _submit_steady(
    client: NodeClient,
    *,
    senders: list[_Sender],
    sink: Any,
    chain_id: bytes,
    rate: float,
    started: float,
    seconds: float,
    load: _Load,
) -> None:
    """Offer ``rate`` tx/s to one validator from its ``senders`` (round robin) until the end."""
    sent = 0
    turn = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        due = min(MAX_BATCH, int(rate * elapsed) - sent)
        if due > 0:
            chunk = []
            for _ in range(due):
                s = senders[turn % len(senders)]
                turn += 1
                chunk.append(
                    (s, sign_tx(s.key, chain_id, s.nonce, Transfer(sink, 1 + s.nonce % 5)))
                )
                s.nonce += 1
            sent += due
            load.offered += due
            resync = False
            try:
                answer = await client.submit_batch([tx.encode().hex() for _, tx in chunk])
            except NodeError:
                load.transport_errors += 1
                resync = True
            else:
                for result in answer.results:
                    if isinstance(result, m.Error):
                        load.refused[result.error.code] += 1
                        resync = True
                    else:
                        load.admitted += 1
            if resync:  # continue each sender from the nonce the node expects next
                for s in {id(s): s for s, _ in chunk}.values():
                    with contextlib.suppress(NodeError):
                        s.nonce = (await client.account(s.address)).pending_nonce
        await asyncio.sleep(TICK_S)


async def _listen(url: str, load: _Load) -> None:
    async with NodeClient(url) as client:
        async for event in client.events():
            if isinstance(event, m.BlockCommittedEvent):
                load.committed += len(event.txs)
                load.height = event.height


async def _soak(
    procs: Sequence[Process],
    *,
    bundle: GenesisBundle,
    first_nonce: int,
    rate: float,
    seconds: float,
    sample_s: float,
    emit: Callable[[dict[str, Any]], None],
) -> tuple[list[dict[str, Any]], _Load]:
    chain_id = bundle.genesis.chain_id
    sink = parse_address(bundle.participants[-1].address)
    senders = [_Sender(p.key, p.address, first_nonce) for p in bundle.participants[:-1]]
    load = _Load()
    samples: list[dict[str, Any]] = []
    urls = [p.api_url for p in procs]
    listener = asyncio.create_task(_listen(urls[0], load))
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(NodeClient(u)) for u in urls]
        started = time.perf_counter()
        share = rate / len(clients)
        submitters = [
            asyncio.create_task(
                _submit_steady(
                    c,
                    senders=senders[i :: len(clients)],
                    sink=sink,
                    chain_id=chain_id,
                    rate=share,
                    started=started,
                    seconds=seconds,
                    load=load,
                )
            )
            for i, c in enumerate(clients)
        ]
        next_sample = 0.0
        while True:
            elapsed = time.perf_counter() - started
            if elapsed >= next_sample or elapsed >= seconds:
                row = sample(procs, elapsed)
                row.update(offered=load.offered, committed=load.committed, height=load.height)
                await _add_mempools(row, procs, clients)
                samples.append(row)
                emit(row)
                next_sample += sample_s
            if elapsed >= seconds:
                break
            await asyncio.sleep(max(0.0, min(next_sample, seconds) - elapsed))
        await asyncio.gather(*submitters)
    await asyncio.sleep(2.0)  # the last blocks commit
    listener.cancel()
    with contextlib.suppress(asyncio.CancelledError, NodeError):
        await listener
    return samples, load


#: Each reported series: (its name in the report, the sample field, the factor to its unit).
SERIES = (
    ("rss_mib", "rss_kib", 1 / 1024),
    ("anon_mib", "rss_anon_kib", 1 / 1024),
    ("open_files", "open_files", 1.0),
)


def slopes(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per validator and series: first, last and the least-squares slope per hour, over the
    whole run and over its second half.

    The first minutes fill caches and the allocator's arenas: the second half's slope tells a
    steady leak from that warm-up.
    """
    half = samples[-1]["t_s"] / 2
    out: dict[str, dict[str, Any]] = {}
    for name in samples[0]["processes"]:
        row: dict[str, Any] = {}
        for series, field_name, factor in SERIES:
            points = [
                (s["t_s"], s["processes"][name][field_name] * factor)
                for s in samples
                if s["processes"][name].get(field_name) is not None
            ]
            whole = slope_per_hour(points)
            late = slope_per_hour([p for p in points if p[0] >= half])
            row[f"{series}_first"] = round(points[0][1], 1) if points else None
            row[f"{series}_last"] = round(points[-1][1], 1) if points else None
            row[f"{series}_per_hour"] = None if whole is None else round(whole, 2)
            row[f"{series}_per_hour_second_half"] = None if late is None else round(late, 2)
        out[name] = row
    return out


def measure_saturation(urls: list[str], bundle: GenesisBundle, txs: int) -> dict[str, Any]:
    """Committed tx/s of a closed-loop burst of ``txs`` transfers (what ``bench consensus``
    measures), on the cluster the soak then runs on."""
    per_sender = max(1, txs // SENDERS)
    streams = transfer_streams(bundle, per_sender)
    result = asyncio.run(_drive(urls, streams, timeout_s=120.0, batch=50, rate=0.0))
    return {**result, "per_sender": per_sender}


def _print_row(row: dict[str, Any]) -> None:
    cells = "  ".join(
        f"{name} {_mib(r.get('rss_kib'))} MiB (anon {_mib(r.get('rss_anon_kib'))}) "
        f"{_num(r['open_files'])} fds"
        for name, r in row["processes"].items()
    )
    minute = row["t_s"] / 60
    pending = [r.get("mempool_txs") for r in row["processes"].values()]
    mempool = "/".join(_num(n) for n in pending)
    print(
        f"t={minute:6.1f} min  height {row['height']:>6}  committed {row['committed']:>8}  "
        f"mempools {mempool}  {cells}",
        flush=True,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the steady phase")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="offered transfers/s (default: half of the saturation measured first)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="selects the chain's keys (and so the transfers)"
    )
    parser.add_argument(
        "--sample-seconds",
        type=float,
        default=60.0,
        help="seconds between two readings of RSS and open files",
    )
    parser.add_argument(
        "--saturation-txs",
        type=int,
        default=SATURATION_TXS,
        help="transfers of the closed-loop burst that measures saturation",
    )
    parser.add_argument(
        "--block-interval-ms",
        type=int,
        default=None,
        help="genesis params.block_interval_ms (default: the genesis default, as a testnet)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.sample_seconds <= 0 or args.saturation_txs < SENDERS:
        parser.error("--minutes and --sample-seconds are positive; --saturation-txs >= 16")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate is positive")

    commit = git_commit()  # the code that runs, before anyone changes the checkout
    bundle = bench_bundle(
        f"bench-soak-{args.seed}",
        engine="pbft",
        validators=VALIDATORS,
        participants=SENDERS + 1,
        block_interval_ms=args.block_interval_ms,
        balance_mc=10**12,
    )
    emit: Callable[[dict[str, Any]], None] = (
        (lambda row: print(json.dumps(row), file=sys.stderr, flush=True))
        if args.json
        else _print_row
    )
    with running_validators(bundle) as procs:
        saturation = measure_saturation([p.api_url for p in procs], bundle, args.saturation_txs)
        rate = args.rate if args.rate is not None else saturation["tx_per_s"] / 2
        if rate <= 0:
            print("gridchain bench soak: nothing committed while measuring saturation")
            return 1
        if not args.json:
            print(
                f"gridchain bench soak: pbft x{VALIDATORS}, saturation "
                f"{saturation['tx_per_s']:.0f} tx/s ({saturation['committed']}/"
                f"{saturation['submitted']} committed, closed loop); offering {rate:.0f} tx/s "
                f"for {args.minutes:g} min; RSS and open files every {args.sample_seconds:g} s",
                flush=True,
            )
            print("pids: " + ", ".join(f"{p.name} {p.pid}" for p in procs), flush=True)
        samples, load = asyncio.run(
            _soak(
                procs,
                bundle=bundle,
                first_nonce=saturation["per_sender"],
                rate=rate,
                seconds=args.minutes * 60,
                sample_s=args.sample_seconds,
                emit=emit,
            )
        )
    report = {
        "engine": "pbft",
        "validators": VALIDATORS,
        "senders": SENDERS,
        "seed": args.seed,
        "minutes": args.minutes,
        "sample_seconds": args.sample_seconds,
        "block_interval_ms": bundle.genesis.params.block_interval_ms,
        "saturation": {k: saturation[k] for k in ("submitted", "committed", "tx_per_s")},
        "rate_tx_per_s": rate,
        "rate_source": "--rate" if args.rate is not None else "half of measured saturation",
        "load": {
            "offered": load.offered,
            "admitted": load.admitted,
            "refused": dict(load.refused),
            "transport_errors": load.transport_errors,
            "committed": load.committed,
            "final_height": load.height,
        },
        "samples": samples,
        "slopes": slopes(samples),
        "conditions": {**conditions(), "commit": commit},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"offered {load.offered}, admitted {load.admitted}, refused {dict(load.refused)}, "
        f"transport errors {load.transport_errors}, committed {load.committed}, "
        f"height {load.height}"
    )
    print(
        f"{'validator':<10}{'RSS MiB':>8}{'->':>7}{'MiB/h':>8}{'2nd half':>9}"
        f"{'anon MiB':>9}{'->':>7}{'MiB/h':>8}{'2nd half':>9}"
        f"{'fds':>5}{'->':>4}{'fds/h':>7}{'2nd half':>9}"
    )
    for name, r in report["slopes"].items():
        print(
            f"{name:<10}{_num(r['rss_mib_first']):>8}{_num(r['rss_mib_last']):>7}"
            f"{_num(r['rss_mib_per_hour']):>8}{_num(r['rss_mib_per_hour_second_half']):>9}"
            f"{_num(r['anon_mib_first']):>9}{_num(r['anon_mib_last']):>7}"
            f"{_num(r['anon_mib_per_hour']):>8}{_num(r['anon_mib_per_hour_second_half']):>9}"
            f"{_num(r['open_files_first']):>5}{_num(r['open_files_last']):>4}"
            f"{_num(r['open_files_per_hour']):>7}{_num(r['open_files_per_hour_second_half']):>9}"
        )
    print(
        "slopes: least squares over all samples, and over the second half (after warm-up); "
        "anon = RssAnon (heap), the rest of RSS is file-backed (code, LevelDB tables)"
    )
    print(f"conditions: {json.dumps(report['conditions'])}")
    return 0


def _num(value: float | int | None) -> str:
    return "-" if value is None else f"{value:g}"


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"

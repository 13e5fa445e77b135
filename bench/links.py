"""What one peer link costs: handshakes/s and frames/s between two PeerNetworks on loopback.

``bench consensus`` measures the links inside a whole cluster (processes, HTTP, signatures,
LevelDB), where their cost is a small part that the machine's noise can hide.  This bench
isolates them: two validators' :class:`PeerNetwork` objects in one process link over a real
loopback socket; one sends ``--frames`` engine payloads of ``--size`` bytes to the other, which
counts them (the network's own framing, queueing, sealing and opening, nothing else).  A
second figure dials and completes ``--handshakes`` full handshakes one after another.

Both sides share one event loop and one core, so frames/s is the rate of the whole link stack
(send + receive); CPU seconds are the process's.  ADR 0024 compares this figure for the
encrypted links against the plaintext ones of ADR 0008.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from gridchain.bench.conditions import conditions
from gridchain.logs import configure_logging
from gridchain.node.p2p import NetworkTuning, PeerAddress, PeerNetwork
from gridchain.node.p2p.handshake import handshake
from gridchain.ports import free_port
from gridchain.protocol.crypto import SigningKey, sha256

CHAIN = sha256(b"gridchain/bench-links")


class _Counter:
    """A NetworkHandler that counts engine payloads and wakes the bench at the target."""

    def __init__(self, target: int) -> None:
        self.received = 0
        self.target = target
        self.done = asyncio.Event()

    def on_consensus(self, sender: bytes, payload: bytes) -> None:
        self.received += 1
        if self.received >= self.target:
            self.done.set()

    def on_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        return None

    def get_blocks(self, from_height: int, count: int) -> list[bytes]:
        return []

    def on_peer_height(self, sender: bytes, height: int) -> None:
        return None

    def on_client_tx(self, sender: bytes, tx_bytes: bytes) -> None:
        return None


def _network(
    key: SigningKey, keys: list[bytes], port: int, handler: _Counter, peers: list[PeerAddress]
) -> PeerNetwork:
    return PeerNetwork(
        key=key,
        chain_id=CHAIN,
        validators=keys,
        listen_host="127.0.0.1",
        listen_port=port,
        peers=peers,
        handler=handler,
        tuning=NetworkTuning(max_queue_frames=10_000_000, max_queue_bytes=2**31),
    )


async def _frames(count: int, size: int) -> dict[str, float]:
    a_key, b_key = SigningKey.generate(), SigningKey.generate()
    keys = [a_key.public_key, b_key.public_key]
    a_port, b_port = free_port(), free_port()
    receiver = _Counter(count)
    a = _network(a_key, keys, a_port, _Counter(0), [])
    b = _network(
        b_key, keys, b_port, receiver, [PeerAddress("a", a_key.public_key, "127.0.0.1", a_port)]
    )
    await a.start()
    await b.start()
    try:
        while not a.connected_peers():  # noqa: ASYNC110 - the link forms in other tasks
            await asyncio.sleep(0.01)
        # Distinct payloads: the receiver drops a sender's repeated payload.
        payloads = [i.to_bytes(8, "big") + bytes(size - 8) for i in range(count)]
        cpu, wall = time.process_time(), time.perf_counter()
        for i, payload in enumerate(payloads):
            a.broadcast_consensus(payload)
            if i % 256 == 255:
                await asyncio.sleep(0)  # let the writer and the reader run
        await receiver.done.wait()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await b.stop()
        await a.stop()
    return {
        "frames": count,
        "size": size,
        "seconds": wall,
        "cpu_seconds": cpu,
        "frames_per_s": count / wall,
        "mb_per_s": count * size / wall / 1e6,
        "cpu_us_per_frame": cpu / count * 1e6,
    }


async def _handshakes(count: int) -> dict[str, float]:
    a_key, b_key = SigningKey.generate(), SigningKey.generate()
    keys = [a_key.public_key, b_key.public_key]
    port = free_port()
    a = _network(a_key, keys, port, _Counter(0), [])
    await a.start()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await handshake(
                reader,
                writer,
                key=b_key,
                chain_id=CHAIN,
                initiator=True,
                admit=lambda _: None,
                expected_key=a_key.public_key,
                height=0,
                max_frame_bytes=8 * 1024 * 1024,
                timeout_s=10.0,
            )
            writer.transport.abort()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await a.stop()
    return {
        "handshakes": count,
        "handshakes_per_s": count / wall,
        "cpu_ms_per_handshake": cpu / count * 1000,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridchain bench links", description=__doc__)
    parser.add_argument("--frames", type=int, default=50_000, help="payloads per size")
    parser.add_argument(
        "--sizes", default="200,2000,65536", help="comma-separated payload sizes in bytes"
    )
    parser.add_argument("--handshakes", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("bench-links", "warning")  # JSON lines on stderr; the table on stdout
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if any(s < 8 for s in sizes) or args.frames < 1:
        parser.error("sizes are at least 8 bytes and --frames at least 1")
    results: dict[str, Any] = {
        "frames": [asyncio.run(_frames(args.frames, size)) for size in sizes],
        "handshakes": asyncio.run(_handshakes(args.handshakes)),
        "conditions": conditions(),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"gridchain bench links: {args.frames} engine payloads per size over one loopback link")
    print(f"{'size B':>8} {'frames/s':>10} {'MB/s':>8} {'CPU us/frame':>13}")
    for row in results["frames"]:
        print(
            f"{row['size']:>8} {row['frames_per_s']:>10.0f} {row['mb_per_s']:>8.1f} "
            f"{row['cpu_us_per_frame']:>13.1f}"
        )
    hs = results["handshakes"]
    print(
        f"handshakes: {hs['handshakes_per_s']:.0f}/s, {hs['cpu_ms_per_handshake']:.2f} ms CPU each "
        f"(both ends in this process)"
    )
    print("conditions:", json.dumps(results["conditions"]))
    return 0

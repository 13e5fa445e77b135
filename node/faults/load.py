"""Steady load for a fault run: signed transfers between participants through the API client.

Each sender keeps its own nonce sequence and at most ``WINDOW`` transactions in flight; it
submits to a validator the runner reports reachable, chosen by the run's seeded generator.
A validator killed or cut off before gossiping a transaction takes it with its mempool
(mempools are not durable, by design); a sender whose oldest transaction has not committed
within ``stall_s`` therefore re-reads its committed nonce from a reachable validator and goes
on from there, and one whose transaction is refused (that nonce is already pending or used
there) goes on from the nonce that validator expects next.  What was accepted but never
committed is counted, not treated as a loss: the invariant is about transactions the chain
reported committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gridchain.api.client import NodeClient, NodeError, NodeRefusedError
from gridchain.genesis.builder import GenesisBundle
from gridchain.protocol.address import parse_address
from gridchain.protocol.tx import Transfer, sign_tx

#: Transactions one sender may have submitted and not yet seen committed.
WINDOW = 4


@dataclass
class LoadFigures:
    submitted: int = 0
    refused: int = 0
    #: the node's refusal code -> count (a resend of a nonce that had committed, ...)
    refused_codes: dict[str, int] = field(default_factory=dict)
    unreachable: int = 0
    resyncs: int = 0
    #: tx hash -> the sender's nonce, for everything a validator accepted (202)
    accepted: dict[str, int] = field(default_factory=dict)


class LoadGenerator:
    def __init__(
        self,
        bundle: GenesisBundle,
        *,
        senders: int,
        rate_tps: float,
        stall_s: float,
        rng: random.Random,
        clients: Mapping[str, NodeClient],
        reachable: Callable[[], list[str]],
        committed: Callable[[str], bool],
    ) -> None:
        self.bundle = bundle
        self.senders = min(senders, len(bundle.participants))
        self.interval_s = self.senders / rate_tps
        self.stall_s = stall_s
        self.rng = rng
        self.clients = clients
        self.reachable = reachable
        self.committed = committed
        self.figures = LoadFigures()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._sender(i) for i in range(self.senders)))

    def _pick(self) -> NodeClient | None:
        names = self.reachable()
        return self.clients[self.rng.choice(sorted(names))] if names else None

    async def _sender(self, index: int) -> None:
        participants = self.bundle.participants
        me = participants[index]
        chain_id = self.bundle.genesis.chain_id
        nonce = 0
        in_flight: list[tuple[str, float]] = []  # (hash, submitted at), oldest first
        counter = 0
        while not self._stop.is_set():
            await asyncio.sleep(self.interval_s)
            in_flight = [(h, t) for h, t in in_flight if not self.committed(h)]
            if in_flight and time.monotonic() - in_flight[0][1] > self.stall_s:
                resynced = await self._committed_nonce(me.address)
                if resynced is not None:
                    self.figures.resyncs += 1
                    nonce, in_flight = resynced, []
                continue
            if len(in_flight) >= WINDOW:
                continue
            client = self._pick()
            if client is None:
                continue
            counter += 1
            to = participants[
                (index + 1 + self.rng.randrange(len(participants) - 1)) % len(participants)
            ]
            amount = 1 + self.rng.randrange(1000)
            tx = sign_tx(
                me.key,
                chain_id,
                nonce,
                Transfer(parse_address(to.address), amount, f"load {counter}"),
            )
            try:
                tx_hash = await client.submit_tx(tx)
            except NodeRefusedError as exc:
                self.figures.refused += 1
                codes = self.figures.refused_codes
                codes[exc.node_code] = codes.get(exc.node_code, 0) + 1
                # a nonce the node already has pending or committed (a resend after a
                # stall, a gossip that arrived first): go on from the one it expects next
                with contextlib.suppress(NodeError):
                    nonce = (await client.account(me.address)).pending_nonce
                in_flight = []
                continue
            except NodeError:
                self.figures.unreachable += 1
                continue
            self.figures.submitted += 1
            self.figures.accepted[tx_hash] = nonce
            in_flight.append((tx_hash, time.monotonic()))
            nonce += 1

    async def _committed_nonce(self, address: str) -> int | None:
        client = self._pick()
        if client is None:
            return None
        try:
            return (await client.account(address)).nonce
        except NodeError:
            return None

"""Run one manifest against one engine: a real testnet, steady load, faults, then the checks.

The phases (CometBFT's e2e runner has the same shape: setup, start, load, perturb, wait, test):

1. write a genesis whose keys follow from the seed and start every validator as a process
   (each in its own network namespace if the manifest disconnects nodes);
2. start the load generator and an observer that polls every reachable validator's head and
   the committed blocks (what the chain *reported* is what the checks hold it to);
3. apply the perturbations one after another, each once the chain reached its height, and heal
   each before the next;
4. liveness: every validator commits ``heal_blocks`` past the height at which the last fault
   healed;
5. stop the load and check the invariants (checks.py) over every validator's API.

The run tells the truth about itself: a validator that exits when no fault stopped it, a port
that is taken, a clean stop that was not clean, stops the run with a :class:`FaultRunError`
saying so; the report then has ``error`` set and no check results are claimed.
"""

from __future__ import annotations

import asyncio
import random
import shlex
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridchain.api.client import NodeClient, NodeError
from gridchain.node.faults import checks
from gridchain.node.faults.checks import ChainCopy, Failure
from gridchain.node.faults.cluster import FaultCluster, FaultRunError, seeded_bundle
from gridchain.node.faults.load import LoadGenerator
from gridchain.node.faults.manifest import Manifest, Perturbation, node_names
from gridchain.node.faults.netns import Switch, netns_unusable

POLL_S = 0.25
#: Blocks asked for per page when reading a chain (the API's most).
PAGE = 100


class WaitTimeoutError(Exception):
    """A wait of the run did not end in time (a liveness failure, reported as one)."""


@dataclass
class RunReport:
    manifest: Path
    engine: str
    seed: int
    directory: Path
    failures: list[Failure] = field(default_factory=list)
    #: Set when the run could not be carried out (not a check result).
    error: str | None = None
    timeline: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures

    @property
    def replay(self) -> str:
        argv = ["gridchain", "testnet", "faults", "--manifest", str(self.manifest)]
        argv += ["--engine", self.engine, "--seed", str(self.seed)]
        return shlex.join(argv)

    def text(self, *, timeline: bool = True) -> str:
        """The verdict, (the timeline,) figures, failures, and where to look and how to replay."""
        verdict = "PASS" if self.ok else ("ERROR" if self.error else "FAIL")
        lines = [f"{verdict} {self.manifest.name} engine={self.engine} seed={self.seed}"]
        if timeline:
            lines += [f"  {t}" for t in self.timeline]
        if self.figures:
            lines.append("  figures: " + ", ".join(f"{k}={v}" for k, v in self.figures.items()))
        if self.error:
            lines.append(f"  run stopped: {self.error}")
        lines += [f"  {f}" for f in self.failures]
        if not self.ok:
            lines.append(f"  logs: {self.directory}/nodes/*/node.log")
            lines.append(f"  replay: {self.replay}")
        return "\n".join(lines)


class _Run:
    def __init__(
        self,
        manifest: Manifest,
        engine: str,
        seed: int,
        report: RunReport,
        out: Callable[[str], None],
    ) -> None:
        self.manifest = manifest
        self.engine = engine
        self.rng = random.Random(seed)  # noqa: S311 - a replayable load, not a secret
        self.report = report
        self.out = out
        self.started = time.monotonic()
        self.cluster: FaultCluster
        self.clients: dict[str, NodeClient] = {}
        self.cut: set[str] = set()
        self.heights: dict[str, int] = {}
        #: each validator's last reported PBFT view or PoB/ePoB round (a stall's first clue)
        self.views: dict[str, int] = {}
        self.observed: dict[tuple[str, int], str] = {}
        self.seen_txs: dict[str, tuple[int, str, str]] = {}
        self.next_block = 1
        self.observer_error: BaseException | None = None

    # --- bookkeeping --------------------------------------------------------------------

    def note(self, text: str) -> None:
        line = f"{time.monotonic() - self.started:6.1f}s h={self.top():<4} {text}"
        self.report.timeline.append(line)
        self.out(line)

    def top(self) -> int:
        return max(self.heights.values(), default=0)

    def positions(self) -> str:
        """Each validator's last reported height and view (PBFT) or round (PoB, ePoB)."""
        return ", ".join(
            f"{n} {self.heights.get(n, '-')}/{self.views.get(n, '-')}" for n in sorted(self.clients)
        )

    def reachable(self) -> list[str]:
        return [n for n in self.cluster.up_names() if n not in self.cut]

    def check_alive(self) -> None:
        self.cluster.check_alive()
        if self.observer_error is not None:
            raise self.observer_error

    async def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.check_alive()
            await asyncio.sleep(min(POLL_S, left))
        self.check_alive()

    async def until(self, what: str, predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.manifest.checks.timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise WaitTimeoutError(
                    f"{what}: not within {self.manifest.checks.timeout_s:g} s "
                    f"(height/view or round: {self.positions()})"
                )
            await self.sleep(POLL_S)

    async def reach(self, height: int, what: str) -> None:
        """Wait until the most advanced reachable validator has committed ``height``."""
        await self.until(what, lambda: self.top() >= height)

    async def healthy(self, name: str) -> None:
        client = self.clients[name]

        async def answers() -> bool:
            try:
                await client.health()
            except NodeError:
                return False
            return True

        deadline = time.monotonic() + self.manifest.checks.timeout_s
        while not await answers():
            if time.monotonic() > deadline:
                raise FaultRunError(
                    f"{name} did not answer /health within {self.manifest.checks.timeout_s:g} s "
                    f"of its start; its log ends:\n{self.cluster.members[name].log_tail()}"
                )
            await self.sleep(0.1)

    # --- the observer -------------------------------------------------------------------

    async def observe(self) -> None:
        try:
            while True:
                for name in self.reachable():
                    await self._observe_head(name)
                await self._observe_blocks()
                await asyncio.sleep(POLL_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the run loop, which stops the run
            self.observer_error = exc

    async def _observe_head(self, name: str) -> None:
        try:
            status = await self.clients[name].status()
        except NodeError:
            return  # stopping, starting or paused: the run knows which
        height, head = status.height, status.head_hash.hex()
        self.heights[name] = height
        view = status.consensus.get("view", status.consensus.get("round"))
        if isinstance(view, int):
            self.views[name] = view
        if height == 0:
            return
        before = self.observed.setdefault((name, height), head)
        if before != head:
            self.report.failures.append(
                Failure(
                    "committed blocks kept",
                    f"{name} reported block {before[:16]} and later {head[:16]} at height {height}",
                )
            )

    async def _observe_blocks(self) -> None:
        names = [n for n in self.reachable() if self.heights.get(n, 0) >= self.next_block]
        if not names:
            return
        name = max(names, key=lambda n: self.heights[n])
        try:
            page = await self.clients[name].blocks(self.next_block, PAGE)
        except NodeError:
            return
        for block in page.blocks:
            self.observed.setdefault((name, block.height), block.hash)
            for tx in block.txs:
                self.seen_txs.setdefault(tx.hash, (block.height, block.hash, name))
            self.next_block = block.height + 1

    # --- faults -------------------------------------------------------------------------

    async def apply(self, p: Perturbation) -> None:
        cluster, name = self.cluster, p.node
        self.note(f"{p.describe()}")
        if p.action == "kill":
            cluster.kill9(name)
            await self.sleep(p.for_s)
            cluster.start(name)
            await self.healthy(name)
        elif p.action in ("restart", "skew"):
            code = cluster.terminate(name)
            if code != 0:
                raise FaultRunError(
                    f"{name} exited with code {code} on SIGTERM (a clean stop is 0); its log "
                    f"ends:\n{cluster.members[name].log_tail()}"
                )
            cluster.start(name, clock_offset_ms=p.skew_ms)
            await self.healthy(name)
        elif p.action == "pause":
            cluster.pause(name)
            await self.sleep(p.for_s)
            cluster.resume(name)
        elif p.action == "disconnect":
            assert cluster.switch is not None
            self.cut.add(name)
            cluster.switch.disconnect(name)
            await self.sleep(p.for_s)
            cluster.switch.reconnect(name)
            self.cut.discard(name)
        self.note(f"healed {name} (last reported height/view or round: {self.positions()})")

    # --- the run ------------------------------------------------------------------------

    async def run(self, cluster: FaultCluster) -> None:
        self.cluster = cluster
        m = self.manifest
        async with AsyncExitStack() as stack:
            for name, member in cluster.members.items():
                client = NodeClient(member.api_url, request_timeout_s=2.0, retries=0)
                self.clients[name] = await stack.enter_async_context(client)
            for name in cluster.members:
                cluster.start(name)
            for name in cluster.members:
                await self.healthy(name)
            self.note(f"{len(cluster.members)} validators up ({self.engine})")
            observer = asyncio.create_task(self.observe())
            load = LoadGenerator(
                cluster.bundle,
                senders=m.load.senders,
                rate_tps=m.load.rate_tps,
                stall_s=m.load.stall_s,
                rng=self.rng,
                clients=self.clients,
                reachable=self.reachable,
                committed=lambda h: h in self.seen_txs,
            )
            load_task = asyncio.create_task(load.run())
            try:
                await self._perturb_and_heal()
                load.stop()
                await load_task
                # After a liveness failure the safety checks still run, over what there is.
                if not self.report.failures:
                    await self._converge()
                # The observer stops before the chains are read: what it saw is what the
                # copies are held to, and a head it saw after a copy was read (a block still
                # being committed) would look like one that vanished.
                observer.cancel()
                await asyncio.gather(observer, return_exceptions=True)
                self.check_alive()
                await self._check()
            finally:
                load.stop()
                for task in (observer, load_task):
                    task.cancel()
                await asyncio.gather(observer, load_task, return_exceptions=True)
                f = load.figures
                self.report.figures.update(
                    height=self.top(),
                    txs_committed=len(self.seen_txs),
                    txs_accepted=f.submitted,
                    accepted_not_committed=sum(1 for h in f.accepted if h not in self.seen_txs),
                    refused=f.refused,
                    refused_codes=dict(sorted(f.refused_codes.items())),
                    resyncs=f.resyncs,
                )

    async def _perturb_and_heal(self) -> None:
        m = self.manifest
        try:
            await self.reach(m.checks.warmup_blocks, f"{m.checks.warmup_blocks} blocks under load")
            for p in m.perturbations(self.engine):
                await self.reach(p.at_height, f"height {p.at_height} for {p.describe()}")
                await self.apply(p)
            healed = self.top()
            want = healed + m.checks.heal_blocks
            await self.until(
                f"liveness after healing: every validator at height {want} "
                f"({m.checks.heal_blocks} past {healed})",
                lambda: (
                    len(self.heights) == len(self.clients) and min(self.heights.values()) >= want
                ),
            )
            self.note(f"every validator reached height {want} after healing")
        except WaitTimeoutError as exc:
            self.report.failures.append(Failure("liveness", str(exc)))

    async def _converge(self) -> None:
        """Every validator reaches the highest height a transaction was seen committed at."""
        target = max((h for h, _, _ in self.seen_txs.values()), default=0)
        try:
            await self.until(
                f"every validator at height {target}",
                lambda: min(self.heights.values()) >= target,
            )
        except WaitTimeoutError as exc:
            self.report.failures.append(Failure("liveness", str(exc)))

    async def _chain(self, name: str) -> ChainCopy:
        client = self.clients[name]
        hashes: list[str] = []
        txs: dict[str, int] = {}
        first: int | None = 1
        while first is not None:
            page = await client.blocks(first, PAGE)
            for block in page.blocks:
                hashes.append(block.hash)
                txs.update((tx.hash, block.height) for tx in block.txs)
            first = page.next if page.blocks else None
        return ChainCopy(name, tuple(hashes), txs)

    async def _supply(self, name: str) -> tuple[int, int]:
        """The sum of every genesis account's balance, read between two equal heights."""
        client = self.clients[name]
        genesis = self.cluster.bundle.genesis
        addresses = [b.address for b in genesis.balances] + [genesis.governance_address]
        for _ in range(20):
            before = (await client.status()).height
            total = 0
            for address in addresses:
                total += (await client.account(address)).balance_mc
            if (await client.status()).height == before:
                return before, total
        raise FaultRunError(f"{name}: could not read all balances at one height in 20 tries")

    async def _check(self) -> None:
        names = sorted(self.clients)
        try:
            chains = {n: await self._chain(n) for n in names}
            supply = {n: await self._supply(n) for n in names}
            halted = {n: (await self.clients[n].status()).halted for n in names}
        except NodeError as exc:
            raise FaultRunError(f"reading the validators for the checks failed: {exc}") from None
        genesis_total = sum(b.amount_mc for b in self.cluster.bundle.genesis.balances)
        self.report.failures += [
            *checks.none_halted(halted),
            *checks.same_blocks(list(chains.values())),
            *checks.observations_kept(self.observed, chains),
            *checks.no_tx_lost(self.seen_txs, chains),
            *checks.supply_conserved(supply, genesis_total),
        ]
        common = min(c.height for c in chains.values())
        self.note(
            f"checked {common} common heights on {len(chains)} validators, "
            f"{len(self.seen_txs)} committed txs, supply {genesis_total} mc"
        )


def run_manifest(
    manifest: Manifest,
    manifest_path: Path,
    engine: str,
    *,
    directory: Path,
    base_port: int,
    seed: int | None = None,
    out: Callable[[str], None] = lambda _line: None,
) -> RunReport:
    """Run ``manifest`` with ``engine`` in ``directory`` (API ports from ``base_port``, peer
    ports after them); the report holds the verdict, the timeline and the replay command."""
    seed = manifest.seed if seed is None else seed
    report = RunReport(manifest_path, engine, seed, directory)
    run = _Run(manifest, engine, seed, report, out)
    switch: Switch | None = None
    cluster: FaultCluster | None = None
    try:
        if manifest.needs_netns:
            reason = netns_unusable()
            if reason is not None:
                raise FaultRunError(f"this manifest disconnects validators, which needs {reason}")
            switch = Switch.create(node_names(manifest.chain.validators), random.Random(seed))  # noqa: S311
        bundle = seeded_bundle(manifest, engine, seed)
        n = manifest.chain.validators
        cluster = FaultCluster(
            directory, bundle, base_api_port=base_port, base_p2p_port=base_port + n, switch=switch
        )
        asyncio.run(run.run(cluster))
    except FaultRunError as exc:
        report.error = exc.message
    finally:
        if cluster is not None:
            cluster.stop_all()
        if switch is not None:
            switch.close()
    return report

"""The validator processes of one fault run, and the blunt instruments applied to them.

Every validator runs as ``python -m gridchain node run`` (inside its own network namespace
when the manifest disconnects nodes).  The runner records what it meant each process to be
doing (running, paused, stopped); :meth:`FaultCluster.check_alive` compares that with the
kernel, so a validator that dies when nobody killed it stops the run with its exit code and
the end of its log instead of surfacing later as a mysterious liveness failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gridchain.genesis.builder import GenesisBundle, build_genesis
from gridchain.genesis.cli import node_config_toml, write_bundle, write_private
from gridchain.node.faults.manifest import Manifest
from gridchain.node.faults.netns import Switch
from gridchain.protocol.crypto import SigningKey, sha256
from gridchain.protocol.errors import GridchainError
from gridchain.protocol.keystore import TESTNET_SCRYPT_N

#: The chain name marks the chain as a testnet, which lets a node run a skewed clock.
CHAIN_NAME = "gridchain-faults-testnet"
WALLET_PASSWORD = "testnet"  # noqa: S105 - the documented throwaway testnet password


class FaultRunError(GridchainError):
    """The run could not be carried out as the manifest says (not a failed check)."""

    code = "fault_run_error"


@dataclass
class Member:
    name: str
    index: int
    config: Path
    api_url: str
    proc: subprocess.Popen[bytes] | None = None
    #: What the runner intends: "up", "paused" or "down".
    intent: str = "down"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.config.parent / "node.log"

    def log_tail(self, chars: int = 2500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def seeded_bundle(manifest: Manifest, engine: str, seed: int) -> GenesisBundle:
    """The testnet's genesis; its keys follow from the seed, so a replay signs the same
    transactions (the genesis time is now, so chain ids differ between runs)."""
    counter = iter(range(10**6))
    chain = manifest.chain
    consensus: dict[str, object] = {"engine": engine}
    if engine == "pbft":
        consensus["view_timeout_ms"] = chain.view_timeout_ms
    else:
        consensus["round_ms"] = chain.round_ms
    return build_genesis(
        chain_name=CHAIN_NAME,
        genesis_time_ms=time.time_ns() // 1_000_000 - 1000,
        validators=chain.validators,
        participants=chain.participants,
        engine=engine,
        new_key=lambda: SigningKey(sha256(f"faults-{seed}-{next(counter)}".encode())),
        block_interval_ms=chain.block_interval_ms,
        consensus_params=consensus,
    )


def ports_taken(host: str, ports: range) -> list[int]:
    """Ports of ``ports`` that another socket holds on ``host`` right now.

    SO_REUSEADDR as the node's own listeners use it: a port whose last connections linger in
    TIME_WAIT (a testnet that just stopped) is free for them, one that is bound is not."""
    taken = []
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                taken.append(port)
    return taken


def _die_with_parent() -> None:
    """Run in the child before exec: SIGTERM it if the runner dies (no orphaned validators)."""
    import ctypes  # noqa: PLC0415

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class FaultCluster:
    def __init__(
        self,
        directory: Path,
        bundle: GenesisBundle,
        *,
        base_api_port: int,
        base_p2p_port: int,
        switch: Switch | None,
    ) -> None:
        self.directory = directory
        self.bundle = bundle
        self.switch = switch
        n = len(bundle.validators)
        if switch is None:
            for what, base in (("API", base_api_port), ("peer", base_p2p_port)):
                taken = ports_taken("127.0.0.1", range(base, base + n))
                if taken:
                    raise FaultRunError(
                        f"{what} port(s) {', '.join(map(str, taken))} on 127.0.0.1 are taken by "
                        "another process; choose other ports (--base-port)"
                    )
        write_bundle(
            bundle,
            directory,
            password=WALLET_PASSWORD,
            scrypt_n=TESTNET_SCRYPT_N,
            base_api_port=base_api_port,
            base_p2p_port=base_p2p_port,
        )
        self.members: dict[str, Member] = {}
        for i, v in enumerate(bundle.validators):
            config = directory / "nodes" / v.name / "config.toml"
            host = "127.0.0.1"
            if switch is not None:
                host = switch.node_ip(v.name)
                text = node_config_toml(
                    bundle,
                    i,
                    host=host,
                    base_api_port=base_api_port,
                    base_p2p_port=base_p2p_port,
                    peer_host="{name}",
                )
                for peer in bundle.validators:
                    text = text.replace(
                        f'host = "{peer.name}"', f'host = "{switch.node_ip(peer.name)}"'
                    )
                write_private(config, text)
            self.members[v.name] = Member(v.name, i, config, f"http://{host}:{base_api_port + i}")

    # --- processes --------------------------------------------------------------------

    def start(self, name: str, *, clock_offset_ms: int | None = None) -> None:
        m = self.members[name]
        if clock_offset_ms is not None:
            m.env["GRIDCHAIN_FAULTS__CLOCK_OFFSET_MS"] = str(clock_offset_ms)
        argv = [sys.executable, "-m", "gridchain", "node", "run", "--config", str(m.config)]
        if self.switch is not None:
            argv = [*self.switch.launcher(name), *argv]
        with m.log.open("ab") as log:
            m.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **m.env},
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            )
        m.intent = "up"

    def kill9(self, name: str) -> None:
        m = self._running(name)
        assert m.proc is not None
        m.intent = "down"
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=30)

    def terminate(self, name: str, *, timeout_s: float = 20.0) -> int:
        """SIGTERM and wait; a clean stop is exit code 0 (anything else is reported)."""
        m = self._running(name)
        assert m.proc is not None
        m.intent = "down"
        m.proc.send_signal(signal.SIGTERM)
        try:
            return m.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
            raise FaultRunError(
                f"{name} did not stop within {timeout_s:g} s of SIGTERM (killed); "
                f"its log ends:\n{m.log_tail()}"
            ) from None

    def pause(self, name: str) -> None:
        m = self._running(name)
        assert m.proc is not None
        m.proc.send_signal(signal.SIGSTOP)
        m.intent = "paused"

    def resume(self, name: str) -> None:
        m = self.members[name]
        assert m.proc is not None
        m.proc.send_signal(signal.SIGCONT)
        m.intent = "up"

    def _running(self, name: str) -> Member:
        self.check_alive()
        return self.members[name]

    def check_alive(self) -> None:
        """Raise FaultRunError if a validator the runner did not stop has exited."""
        for m in self.members.values():
            if m.intent != "down" and m.proc is not None and m.proc.poll() is not None:
                m.intent = "down"
                raise FaultRunError(
                    f"{m.name} (pid {m.proc.pid}) exited with code {m.proc.returncode} "
                    f"although no fault stopped it; its log ({m.log}) ends:\n{m.log_tail()}"
                )

    def up_names(self) -> list[str]:
        return [m.name for m in self.members.values() if m.intent == "up"]

    def stop_all(self) -> None:
        """Stop every process still running (a paused one is continued first)."""
        for m in self.members.values():
            if m.proc is None or m.proc.poll() is not None:
                continue
            m.proc.send_signal(signal.SIGCONT)
            m.proc.send_signal(signal.SIGTERM)
        for m in self.members.values():
            if m.proc is None:
                continue
            try:
                m.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
            m.intent = "down"

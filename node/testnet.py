"""A local testnet: validator processes on loopback, started, watched and stopped as a group.

``up`` writes a genesis (if the directory has none), starts each validator as its own
``gridchain node run`` process with its log in its node folder, waits until every API answers
/health, and records what it started in ``DIR/testnet.json``.  ``down`` stops exactly those
processes: a recorded pid is signalled only while its command line still names that node's
config, so a pid the kernel reused for something else is never touched.

With meters (``up --with-meters``) it then starts the meter simulator and one
``gridchain meterbridge run`` per participant (``DIR/bridges/<participant>/config.toml``),
recorded beside the validators and stopped by ``down`` with them.

With gateways (a directory created with ``--gateways N``, see gridchain.node.testnet_gateways)
it starts one ``gridchain gateway run`` per gateway once the validators are healthy, waits
until each answers /health over HTTPS (the community CA pinned), and ``down`` stops them first.

``up`` tells the truth (gridchain.node.testnet_checks): a port another process holds is
refused before anything starts, a process that exits or never answers fails ``up`` naming it,
and whatever was already started is stopped again.  The simulator keeps its meters' registers
in ``DIR/bridges/registers.json`` so a restarted testnet goes on metering where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridchain.api.client import NodeClient, NodeError
from gridchain.genesis.builder import build_genesis
from gridchain.genesis.cli import (
    BASE_API_PORT,
    BASE_P2P_PORT,
    DEFAULT_BRIDGE_INTERVAL_S,
    METER_SIM_PORT,
    write_bundle,
)
from gridchain.node.testnet_checks import (
    TestnetError,
    gateway_listeners,
    meter_listeners,
    refuse_busy_ports,
    validator_listeners,
)
from gridchain.node.testnet_gateways import (
    BASE_GATEWAY_PORT,
    ca_file,
    gateway_endpoints,
    gateway_names,
    setup_gateways,
)
from gridchain.protocol.crypto import SigningKey
from gridchain.protocol.keystore import TESTNET_SCRYPT_N

T = TypeVar("T")

STATE_FILE = "testnet.json"
TESTNET_PASSWORD = "testnet"  # noqa: S105 - the documented throwaway testnet password
#: The simulator's meters keep their cumulative registers here, across down and up.
REGISTERS_FILE = "registers.json"
#: What the simulator prints once its port is bound (meterbridge/cli.py _simulate).
SIMULATOR_READY = "simulating "


@dataclass(frozen=True, slots=True)
class ValidatorProcess:
    name: str
    pid: int
    api_url: str
    config: str
    log: str


def testnet_password() -> tuple[str, bool]:
    """The wallet password and whether it is the documented default."""
    from_env = os.environ.get("GRIDCHAIN_PASSWORD")
    return (from_env, False) if from_env is not None else (TESTNET_PASSWORD, True)


def ensure_genesis(
    directory: Path,
    *,
    validators: int,
    participants: int,
    consensus: str,
    block_interval_ms: int,
    slot_seconds: int | None,
    base_api_port: int,
    base_p2p_port: int,
    with_meters: bool = False,
    meter_sim_port: int = METER_SIM_PORT,
    bridge_interval_s: float = DEFAULT_BRIDGE_INTERVAL_S,
    gate_closure_s: int | None = None,
    settlement_grace_s: int | None = None,
    base_agent_port: int | None = None,
    schedule_interval_ms: int | None = None,
    round_ms: int | None = None,
    gateways: int = 0,
    base_gateway_port: int = BASE_GATEWAY_PORT,
) -> bool:
    """Write a new testnet into ``directory`` unless it already holds one; True if written.

    A testnet runs its market in seconds: slot length, gate closure and the settlement grace
    period can be set here (the genesis defaults are the source's 15 min, 1 h and 5 min).
    """
    extra: dict[str, int] = {}
    consensus_params: dict[str, int] = {}
    if schedule_interval_ms is not None:
        # An accelerated day: each interval still stands for the genesis default of 10 min.
        extra["schedule_interval_ms"] = schedule_interval_ms
    if round_ms is not None:
        consensus_params["round_ms"] = round_ms
    if gate_closure_s is not None:
        extra["gate_closure_ms"] = gate_closure_s * 1000
    if settlement_grace_s is not None:
        extra["settlement_grace_ms"] = settlement_grace_s * 1000
    if (directory / "genesis.json").exists():
        return False
    bundle = build_genesis(
        chain_name="gridchain-testnet",
        genesis_time_ms=time.time_ns() // 1_000_000,
        validators=validators,
        participants=participants,
        engine=consensus,
        new_key=SigningKey.generate,
        new_encryption_key=X25519PrivateKey.generate,
        slot_length_ms=None if slot_seconds is None else slot_seconds * 1000,
        block_interval_ms=block_interval_ms,
        with_meters=with_meters,
        extra_params=extra,
        consensus_params=consensus_params,
        gateways=gateways,
    )
    password, _ = testnet_password()
    write_bundle(
        bundle,
        directory,
        password=password,
        scrypt_n=TESTNET_SCRYPT_N,
        base_api_port=base_api_port,
        base_p2p_port=base_p2p_port,
        # The bridges' agent APIs sit 100 above the peer ports, so two testnets on one machine
        # (each with its own --base-p2p-port) never reach for the same ports.
        base_agent_port=base_p2p_port + 100 if base_agent_port is None else base_agent_port,
        meter_sim_port=meter_sim_port,
        bridge_interval_s=bridge_interval_s,
    )
    if gateways:
        setup_gateways(directory, base_port=base_gateway_port)
    return True


def _api_url(config_path: Path) -> str:
    import tomllib  # noqa: PLC0415

    api = tomllib.loads(config_path.read_text(encoding="utf-8")).get("api", {})
    return f"http://{api.get('host', '127.0.0.1')}:{api.get('port', BASE_API_PORT)}"


def ask(
    api_url: str,
    call: Callable[[NodeClient], Awaitable[T]],
    *,
    timeout_s: float = 2.0,
    ca: Path | None = None,
) -> T:
    """One question to a validator (or, with its CA, a gateway) from the launcher's
    synchronous code, through the one node client (no retries: the launcher's own loops poll
    again)."""

    async def run() -> T:
        async with NodeClient(api_url, request_timeout_s=timeout_s, retries=0, ca_file=ca) as c:
            return await call(c)

    return asyncio.run(run())


def healthy(api_url: str, ca: Path | None = None) -> bool:
    try:
        ask(api_url, NodeClient.health, timeout_s=1.0, ca=ca)
    except NodeError:
        return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode()
    except OSError:
        return ""


def is_ours(proc: ValidatorProcess) -> bool:
    """The pid still runs the node we started (and not a process that reused the pid)."""
    if Path("/proc/self/cmdline").exists():
        return proc.config in _cmdline(proc.pid)
    try:
        os.kill(proc.pid, 0)
    except OSError:
        return False
    return True


def _has_exited(pid: int) -> bool:
    """Whether a process this launcher started has ended.

    Asked of the kernel (waitpid), not of /proc/<pid>/cmdline: a child that has not yet shown
    its new command line is still starting, not gone."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (or already reaped): is the pid still there?
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        return False
    return done != 0


def load_state(directory: Path) -> list[ValidatorProcess]:
    path = directory / STATE_FILE
    if not path.exists():
        return []
    return [ValidatorProcess(**entry) for entry in json.loads(path.read_text())["validators"]]


def _save_state(
    directory: Path,
    procs: list[ValidatorProcess],
    meters: list[ValidatorProcess] | None = None,
    gateways: list[ValidatorProcess] | None = None,
) -> None:
    doc: dict[str, Any] = {"validators": [asdict(p) for p in procs]}
    if meters:
        doc["meters"] = [asdict(p) for p in meters]
    if gateways:
        doc["gateways"] = [asdict(p) for p in gateways]
    (directory / STATE_FILE).write_text(json.dumps(doc, indent=2) + "\n")


def load_meter_state(directory: Path) -> list[ValidatorProcess]:
    """The meter simulator and bridges ``up --with-meters`` started (same record shape)."""
    return _load_group(directory, "meters")


def load_gateway_state(directory: Path) -> list[ValidatorProcess]:
    """The gateways ``up`` started (same record shape; ``api_url`` is the HTTPS URL)."""
    return _load_group(directory, "gateways")


def _load_group(directory: Path, group: str) -> list[ValidatorProcess]:
    path = directory / STATE_FILE
    if not path.exists():
        return []
    return [ValidatorProcess(**e) for e in json.loads(path.read_text()).get(group, [])]


def _spawn(argv: list[str], log_path: Path) -> int:
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridchain", *argv],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    return proc.pid


def meter_configs(directory: Path) -> list[Path]:
    """Each participant's bridge config; refused if the directory was made without meters."""
    bridges_dir = (directory / "bridges").resolve()
    genesis = json.loads((directory / "genesis.json").read_text())
    configs = [bridges_dir / p["name"] / "config.toml" for p in genesis["participants"]]
    if not genesis.get("meters") or not all(c.exists() for c in configs):
        raise TestnetError(
            f"{directory} was created without meters; create it with --with-meters "
            "(a new --dir, or --fresh with run)"
        )
    return configs


def simulator_port(configs: list[Path]) -> int:
    import tomllib  # noqa: PLC0415

    return int(tomllib.loads(configs[0].read_text(encoding="utf-8"))["buses"][0]["port"])


def start_meters(
    directory: Path, *, speed: float = 1.0, daylight: bool = False
) -> list[ValidatorProcess]:
    """Start the simulator (every participant's household) and each participant's bridge.

    The households follow genesis order and the devices each participant declared there, so
    slave ids 4i+1..4i+4 are participant i's, as its bridge config (written by genesis init
    --with-meters) expects.  ``daylight`` runs the simulator with ``--clock daylight`` (its
    hour of day shifted by whole hours into the day, see meterbridge.simulator).
    """
    import tomllib  # noqa: PLC0415

    bridges_dir = (directory / "bridges").resolve()
    genesis = json.loads((directory / "genesis.json").read_text())
    configs = meter_configs(directory)
    sim_port = simulator_port(configs)
    argv = ["meterbridge", "simulate", "--tcp", f"127.0.0.1:{sim_port}", "--speed", str(speed)]
    for p in genesis["participants"]:
        argv += ["--household", ",".join(p.get("devices", [])) or "Load"]
    argv += ["--registers", str(bridges_dir / REGISTERS_FILE)]
    if daylight:
        argv += ["--clock", "daylight"]
    argv += ["--tag", str(bridges_dir)]
    sim_log = bridges_dir / "simulator.log"
    procs = [
        ValidatorProcess(
            "meter-simulator",
            _spawn(argv, sim_log),
            f"tcp://127.0.0.1:{sim_port}",
            str(bridges_dir),
            str(sim_log),
        )
    ]
    for config in configs:
        doc = tomllib.loads(config.read_text(encoding="utf-8"))
        agent = doc.get("agent_api", {})
        log_path = config.parent / "bridge.log"
        # the simulated energy runs `speed` times faster: the bridge's energy bound must know
        run = ["meterbridge", "run", "--config", str(config), "--meter-time-scale", str(speed)]
        pid = _spawn(run, log_path)
        url = f"http://{agent.get('host', '127.0.0.1')}:{agent.get('port', 0)}"
        procs.append(
            ValidatorProcess(f"bridge-{doc['name']}", pid, url, str(config), str(log_path))
        )
    return procs


def _log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _failed(directory: Path, proc: ValidatorProcess, what: str, since: int = 0) -> TestnetError:
    """Stop everything ``up`` started and describe the process that failed, with its log."""
    down(directory)
    log = Path(proc.log)
    tail = log.read_bytes()[since:].decode(errors="replace")[-2000:] if log.exists() else ""
    return TestnetError(
        f"{what} {proc.name} ({proc.api_url}) exited during start; its log ends:\n{tail}"
    )


def _wait_simulator(directory: Path, sim: ValidatorProcess, since: int, timeout_s: float) -> None:
    """Return once the simulator says it listens; a simulator that exits (its port taken
    after all) or stays silent fails ``up``: the bridges must not read someone else's."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = Path(sim.log).read_bytes()[since:].decode(errors="replace")
        if SIMULATOR_READY in text and not _has_exited(sim.pid):
            return
        if _has_exited(sim.pid):
            raise _failed(directory, sim, "the meter simulator", since)
        time.sleep(0.1)
    down(directory)
    raise TestnetError(
        f"the meter simulator ({sim.api_url}) did not start within {timeout_s:.0f} s"
    )


def agent_up(url: str) -> bool:
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(f"{url}/agent/health", timeout=1.0) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


def _wait_bridges(directory: Path, bridges: list[ValidatorProcess], timeout_s: float) -> None:
    """Return once every bridge's agent API answers (a bridge without one: once it runs)."""
    deadline = time.monotonic() + timeout_s
    waiting = list(bridges)
    while waiting and time.monotonic() < deadline:
        for b in waiting:
            if _has_exited(b.pid):
                raise _failed(directory, b, "meter bridge")
        waiting = [b for b in waiting if not b.api_url.endswith(":0") and not agent_up(b.api_url)]
        if waiting:
            time.sleep(0.1)
    if waiting:
        down(directory)
        names = ", ".join(f"{b.name} ({b.api_url})" for b in waiting)
        raise TestnetError(f"meter bridges did not answer within {timeout_s:.0f} s: {names}")


def start_validator(directory: Path, name: str) -> ValidatorProcess:
    config = (directory / "nodes" / name / "config.toml").resolve()
    log_path = config.parent / "node.log"
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridchain", "node", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # Ctrl-C in the launcher's terminal is handled by `down`
    )
    log.close()
    return ValidatorProcess(name, proc.pid, _api_url(config), str(config), str(log_path))


def start_gateways(directory: Path) -> list[ValidatorProcess]:
    """One ``gateway run`` per gateway of a directory set up by setup_gateways."""
    procs = []
    for endpoint in gateway_endpoints(directory):
        config = endpoint.config.resolve()
        log_path = config.parent / "gateway.log"
        pid = _spawn(["gateway", "run", "--config", str(config)], log_path)
        procs.append(ValidatorProcess(endpoint.name, pid, endpoint.url, str(config), str(log_path)))
    return procs


def _wait_healthy(
    directory: Path, procs: list[ValidatorProcess], timeout_s: float, what: str, ca: Path | None
) -> None:
    """Return once every process answers /health; else stop the testnet and raise."""
    deadline = time.monotonic() + timeout_s
    waiting = list(procs)
    while waiting and time.monotonic() < deadline:
        waiting = [p for p in waiting if not healthy(p.api_url, ca)]
        for p in waiting:
            if _has_exited(p.pid):
                raise _failed(directory, p, what)
        if waiting:
            time.sleep(0.1)
    if waiting:
        down(directory)
        names = ", ".join(f"{p.name} ({p.api_url})" for p in waiting)
        raise TestnetError(f"{what}s did not become healthy within {timeout_s:.0f} s: {names}")


def validator_names(directory: Path) -> list[str]:
    genesis = json.loads((directory / "genesis.json").read_text())
    return [v["name"] for v in genesis["validators"]]


def up(
    directory: Path,
    *,
    timeout_s: float = 90.0,  # four validators starting on a busy peer device take time
    with_meters: bool = False,
    meter_speed: float = 1.0,
    meter_daylight: bool = False,
) -> list[ValidatorProcess]:
    """Start the validators, then the gateways (if the directory has any) and, ``with_meters``,
    the simulator and bridges once healthy.

    Every port is checked free before anything starts; a process that exits or never answers
    fails ``up`` with its name, and what was started is stopped again."""
    everything = [
        *load_state(directory),
        *load_meter_state(directory),
        *load_gateway_state(directory),
    ]
    running = [p for p in everything if is_ours(p)]
    if running:
        names = ", ".join(p.name for p in running)
        raise TestnetError(f"a testnet is already running in {directory} ({names}); run down first")
    validators = validator_names(directory)
    listeners = [*validator_listeners(directory, validators), *gateway_listeners(directory)]
    if with_meters:
        configs = meter_configs(directory)
        listeners += meter_listeners(simulator_port(configs), configs)
    refuse_busy_ports(listeners)
    procs = [start_validator(directory, name) for name in validators]
    _save_state(directory, procs)
    _wait_healthy(directory, procs, timeout_s, "validator", None)
    gateways: list[ValidatorProcess] = []
    if gateway_names(directory):
        gateways = start_gateways(directory)
        _save_state(directory, procs, gateways=gateways)
        _wait_healthy(directory, gateways, timeout_s, "gateway", ca_file(directory))
    if with_meters:
        sim_log = (directory / "bridges").resolve() / "simulator.log"
        since = _log_size(sim_log)
        meters = start_meters(directory, speed=meter_speed, daylight=meter_daylight)
        _save_state(directory, procs, meters, gateways)
        _wait_simulator(directory, meters[0], since, timeout_s)
        _wait_bridges(directory, meters[1:], timeout_s)
        return [*procs, *gateways, *meters]
    return [*procs, *gateways]


@dataclass(frozen=True, slots=True)
class StopReport:
    """What ``stop`` did: every process it stopped, and those that needed SIGKILL."""

    stopped: list[str]
    killed: list[str]


def down(directory: Path, *, timeout_s: float = 15.0) -> list[str]:
    """Stop what ``up`` started (see ``stop``); the names that were stopped."""
    return stop(directory, timeout_s=timeout_s).stopped


def stop(directory: Path, *, timeout_s: float = 15.0) -> StopReport:
    """SIGTERM our processes, wait up to ``timeout_s``, SIGKILL the stragglers (reported)."""
    # bridges and gateways first, so none of them logs an outage while the validators stop
    procs = [
        p
        for p in [
            *load_meter_state(directory),
            *load_gateway_state(directory),
            *load_state(directory),
        ]
        if is_ours(p)
    ]
    for p in procs:
        os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(is_ours(p) for p in procs):
        _reap()
        time.sleep(0.05)
    killed = [p for p in procs if is_ours(p)]
    for p in killed:
        os.kill(p.pid, signal.SIGKILL)
    _reap()
    state = directory / STATE_FILE
    if state.exists():
        state.unlink()
    return StopReport([p.name for p in procs], [p.name for p in killed])


def _reap() -> None:
    """Collect exited children of this process so they do not linger as zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def status(directory: Path) -> list[dict[str, Any]]:
    rows = []
    for p in load_state(directory):
        row: dict[str, Any] = {"name": p.name, "api_url": p.api_url, "pid": p.pid}
        row["running"] = is_ours(p)
        try:
            st = ask(p.api_url, NodeClient.status)
            row.update(
                height=st.height,
                view=st.consensus.get("view", st.consensus.get("round", 0)),
                peers=sum(
                    1
                    for peer in st.peers
                    if peer.get("connected") and peer.get("role") != "gateway"
                ),
                head_hash=st.head_hash.hex(),
                state_root=st.state_root.hex(),
            )
        except NodeError:
            row.update(height=None, view=None, peers=None, head_hash=None, state_root=None)
        rows.append(row)
    return rows


__all__ = [
    "BASE_API_PORT",
    "BASE_P2P_PORT",
    "StopReport",
    "TestnetError",
    "ValidatorProcess",
    "down",
    "ensure_genesis",
    "status",
    "stop",
    "up",
]

"""(e) A validator cut off in its own network namespace rejoins and converges after healing.

Three validators run on the host; the fourth runs inside a network namespace joined to the
host by a veth pair on a private /24 made for this test.  Taking the host end of the veth down
partitions it: the other three (a quorum of 4) keep committing.  Bringing it back up heals the
partition; the isolated validator must reconnect, fetch what it missed and reach the same head.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import REPO, Chain, NodeProcess, http_get, make_chain, node_for, submit

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("netns")]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _netns_usable() -> str | None:
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"gcprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except subprocess.CalledProcessError as exc:
        return f"ip netns is not permitted here: {exc.stderr.decode().strip()}"
    return None


@pytest.fixture
def namespace() -> Iterator[dict[str, str]]:
    reason = _netns_usable()
    if reason is not None:
        pytest.skip(reason)
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    subnet = random.randrange(1, 250)
    names = {
        "ns": f"gcns{tag}",
        "host_if": f"gch{tag}",
        "ns_if": f"gcn{tag}",
        "host_ip": f"10.213.{subnet}.1",
        "ns_ip": f"10.213.{subnet}.2",
    }
    _ip("netns", "add", names["ns"])
    try:
        _ip("link", "add", names["host_if"], "type", "veth", "peer", "name", names["ns_if"])
        _ip("link", "set", names["ns_if"], "netns", names["ns"])
        _ip("addr", "add", f"{names['host_ip']}/24", "dev", names["host_if"])
        _ip("link", "set", names["host_if"], "up")
        ns = ["netns", "exec", names["ns"], "ip"]
        _ip(*ns, "addr", "add", f"{names['ns_ip']}/24", "dev", names["ns_if"])
        _ip(*ns, "link", "set", names["ns_if"], "up")
        _ip(*ns, "link", "set", "lo", "up")
        yield names
    finally:
        subprocess.run(["ip", "link", "del", names["host_if"]], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", names["ns"]], check=False, capture_output=True)


def _write_config(path: Path, doc: dict[str, Any]) -> None:
    """Write the flat config layout back as TOML (strings quoted, ints bare)."""

    def value(v: Any) -> str:
        return f'"{v}"' if isinstance(v, str) else str(v)

    lines: list[str] = []
    for section in ("node", "api", "p2p", "log"):
        lines.append(f"[{section}]")
        for key, v in doc.get(section, {}).items():
            if key != "peers":
                lines.append(f"{key} = {value(v)}")
    for peer in doc["p2p"].get("peers", []):
        lines.append("[[p2p.peers]]")
        lines += [f"{k} = {value(v)}" for k, v in peer.items()]
    path.write_text("\n".join(lines) + "\n")


def _place(chain: Chain, names: dict[str, str]) -> None:
    """Validators 1-3 listen on the host's veth address, validator 4 inside the namespace."""
    docs = [tomllib.loads(chain.config_path(i).read_text()) for i in range(4)]
    where = {
        d["node"]["name"]: (names["ns_ip"] if i == 3 else names["host_ip"])
        for i, d in enumerate(docs)
    }
    for i, doc in enumerate(docs):
        doc["p2p"]["host"] = where[doc["node"]["name"]]
        if i == 3:
            doc["api"]["host"] = names["ns_ip"]
        for peer in doc["p2p"]["peers"]:
            peer["host"] = where[peer["name"]]
        _write_config(chain.config_path(i), doc)


def _height(node: NodeProcess) -> int:
    code, body = http_get(node.api_url + "/v1/status", timeout=2.0)
    return int(body["height"]) if code == 200 else -1


def _head(node: NodeProcess, height: int) -> str | None:
    code, body = http_get(f"{node.api_url}/v1/blocks/{height}", timeout=2.0)
    return str(body["hash"]) if code == 200 else None


def _wait(predicate: Any, timeout_s: float, nodes: list[NodeProcess], what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {n.config.parent.name}\n{n.log_tail(1500)}" for n in nodes)
    raise AssertionError(f"{what}: not within {timeout_s} s\n{logs}")


def test_e_partitioned_validator_rejoins(tmp_path: Path, namespace: dict[str, str]) -> None:
    chain = make_chain(tmp_path / "chain", validators=4, engine="pbft", block_interval_ms=100)
    _place(chain, namespace)
    nodes = [node_for(chain, i) for i in range(4)]
    nodes[3].api_url = nodes[3].api_url.replace("127.0.0.1", namespace["ns_ip"])
    isolated = nodes[3]
    launcher = ["ip", "netns", "exec", namespace["ns"], sys.executable, "-m", "gridchain"]
    try:
        for node in nodes[:3]:
            node.start(wait=False)
        isolated.proc = subprocess.Popen(
            [*launcher, "node", "run", "--config", str(isolated.config)],
            stdout=isolated.log.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
        for node in nodes:
            node.wait_healthy()
        nonce = 0

        def send(n: int) -> None:
            nonlocal nonce
            for _ in range(n):
                code, body = submit(nodes[0].api_url, chain.transfer(0, 1, nonce, 1))
                assert code == 202, body
                nonce += 1

        send(3)
        _wait(lambda: all(_height(n) >= 1 for n in nodes), 60, nodes, "first commit everywhere")

        _ip("link", "set", namespace["host_if"], "down")  # partition
        cut_at = _height(nodes[0])
        for _ in range(5):
            send(2)
            time.sleep(0.3)
        _wait(
            lambda: min(_height(n) for n in nodes[:3]) >= cut_at + 3,
            60,
            nodes[:3],
            "majority commits",
        )
        assert _height(isolated) == -1 or _height(isolated) < min(_height(n) for n in nodes[:3])

        _ip("link", "set", namespace["host_if"], "up")  # heal
        send(2)
        target = max(_height(n) for n in nodes[:3])
        _wait(lambda: _height(isolated) >= target, 90, nodes, "isolated validator catches up")
        for h in range(1, target + 1):
            assert len({_head(n, h) for n in nodes}) == 1, f"heads differ at height {h}"
    finally:
        for node in nodes:
            if node.proc is not None:
                node.terminate()

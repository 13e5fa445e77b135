"""A private network for a fault testnet: each validator in its own network namespace.

Layout: a "switch" namespace holds a Linux bridge; every validator's namespace is joined to it
by a veth pair, and the host (where the runner and its load generator live) by one more.  The
bridge sits in its own namespace so the host's firewall (a FORWARD policy of DROP, as Docker
sets, applied to bridged frames by br_netfilter) never sees the testnet's traffic.
``disconnect`` takes a validator's switch-side link down (nothing it sends or is sent arrives;
its sockets stay open, as in a cable cut), ``reconnect`` brings it up.

Needs root and iproute2; :func:`netns_unusable` says why not where that is missing.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field

from gridchain.protocol.errors import GridchainError


class NetnsError(GridchainError):
    code = "netns_error"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def netns_unusable() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"gcfprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except NetnsError as exc:
        return f"ip netns is not permitted here: {exc.message}"
    return None


#: Testnets get addresses 10.214.X.0/24, X from 1 to 249.
SUBNET_PREFIX = "10.214."


def _used_subnets() -> set[int]:
    """The X of every 10.214.X.0/24 an interface or route of the host uses now."""
    done = subprocess.run(
        ["ip", "-4", "route", "show"], check=False, capture_output=True, text=True
    )
    used: set[int] = set()
    for line in done.stdout.splitlines():
        if line.startswith(SUBNET_PREFIX):
            third = line[len(SUBNET_PREFIX) :].split(".", 1)[0]
            if third.isdigit():
                used.add(int(third))
    return used


def free_subnet(used: set[int]) -> int:
    """A subnet number in 1..249 not in ``used``, chosen at random (runs at the same time
    then rarely pick the same one even before either has added its route)."""
    free = sorted(set(range(1, 250)) - used)
    if not free:
        raise NetnsError(f"every {SUBNET_PREFIX}X.0/24 is in use on this host")
    return random.SystemRandom().choice(free)


@dataclass
class Switch:
    """The namespaces and links of one testnet; :meth:`close` removes all of them."""

    tag: str
    subnet: int
    nodes: dict[str, int] = field(default_factory=dict)  # node name -> index (its address)
    _made: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, names: list[str], rng: random.Random) -> Switch:
        """Namespaces for ``names`` on a /24 that no interface of the host uses.

        The subnet is not drawn from the run's seeded ``rng``: two runs of one manifest (or a
        killed run's leftover host link, whose route stays behind) would then get the same
        subnet, and the host would route the runner's requests to the other switch.  Which
        subnet a run gets changes nothing it measures.
        """
        tag = f"{os.getpid() % 10000}{rng.randrange(100)}"
        switch = cls(tag=tag, subnet=free_subnet(_used_subnets()))
        try:
            switch._build(names)
        except BaseException:
            switch.close()
            raise
        return switch

    @property
    def switch_ns(self) -> str:
        return f"gcsw{self.tag}"

    def node_ns(self, name: str) -> str:
        return f"gcv{self.tag}n{self.nodes[name]}"

    def _port(self, name: str) -> str:
        return f"gcp{self.tag}n{self.nodes[name]}"  # the switch side of a node's link

    @property
    def host_ip(self) -> str:
        return f"10.214.{self.subnet}.1"

    def node_ip(self, name: str) -> str:
        return f"10.214.{self.subnet}.{10 + self.nodes[name]}"

    def _build(self, names: list[str]) -> None:
        sw = self.switch_ns
        _ip("netns", "add", sw)
        self._made.append(f"netns:{sw}")
        _ip("-n", sw, "link", "add", "gcbr", "type", "bridge")
        _ip("-n", sw, "link", "set", "gcbr", "up")
        _ip("-n", sw, "link", "set", "lo", "up")
        # the host's own port on the switch, for the runner's API calls
        host_if, host_peer = f"gch{self.tag}", f"gcq{self.tag}"
        _ip("link", "add", host_if, "type", "veth", "peer", "name", host_peer)
        self._made.append(f"link:{host_if}")
        _ip("link", "set", host_peer, "netns", sw)
        _ip("-n", sw, "link", "set", host_peer, "master", "gcbr")
        _ip("-n", sw, "link", "set", host_peer, "up")
        _ip("addr", "add", f"{self.host_ip}/24", "dev", host_if)
        _ip("link", "set", host_if, "up")
        for index, name in enumerate(names, start=1):
            self.nodes[name] = index
            ns, port, inner = self.node_ns(name), self._port(name), f"gce{self.tag}n{index}"
            _ip("netns", "add", ns)
            self._made.append(f"netns:{ns}")
            _ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", inner)
            _ip("-n", sw, "link", "set", inner, "netns", ns)
            _ip("-n", sw, "link", "set", port, "master", "gcbr")
            _ip("-n", sw, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{self.node_ip(name)}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def launcher(self, name: str) -> list[str]:
        """The argv prefix that runs a command inside ``name``'s namespace (it execs, so the
        pid started is the command's own)."""
        return ["ip", "netns", "exec", self.node_ns(name)]

    def disconnect(self, name: str) -> None:
        _ip("-n", self.switch_ns, "link", "set", self._port(name), "down")

    def reconnect(self, name: str) -> None:
        _ip("-n", self.switch_ns, "link", "set", self._port(name), "up")

    def close(self) -> None:
        """Delete what was made (namespaces take their links with them), newest first."""
        for item in reversed(self._made):
            kind, name = item.split(":", 1)
            args = ["netns", "del", name] if kind == "netns" else ["link", "del", name]
            subprocess.run(["ip", *args], check=False, capture_output=True)
        self._made.clear()

"""``gridchain bench footprint`` stops every process it started when it is told to stop.

The bench runs as a real process (tiny settings); the test waits until its children exist,
sends it SIGTERM (what ``timeout`` sends) or SIGINT (Ctrl-C), and checks by pid and start time
that no process started under it survives.  Before the fix a SIGTERM while the launcher waited
for the validator to answer left that validator running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import REPO, die_with_parent, free_port_block, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("footprint_stops")]

#: A process, named by pid and the start time the kernel gave it (a pid can be reused).
Identity = tuple[int, int]


def _stat(pid: int) -> list[str] | None:
    """Fields after the command name of /proc/PID/stat (index 0 is the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _descendants(root: int) -> dict[Identity, int]:
    """Every living process below ``root``, with its start time, and its depth (1: a child)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None or fields[0] == "Z":
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
        starts[int(entry.name)] = int(fields[19])
    found: dict[Identity, int] = {}
    todo = [(root, 0)]
    while todo:
        pid, depth = todo.pop()
        for child in parents.get(pid, []):
            found[(child, starts[child])] = depth + 1
            todo.append((child, depth + 1))
    return found


def _alive(who: Identity) -> bool:
    fields = _stat(who[0])
    return fields is not None and fields[0] != "Z" and int(fields[19]) == who[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _start_bench(tmp_path: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "gridchain",
        "bench",
        "footprint",
        "--households=2",
        "--days=1",
        "--settle-s=120",
        "--idle-s=120",
        f"--base-port={free_port_block(8)}",
    ]
    log = (tmp_path / "bench.log").open("wb")
    return subprocess.Popen(
        argv,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
        preexec_fn=die_with_parent,  # noqa: PLW1509
    )


def _kinds(children: set[Identity]) -> set[str]:
    """Which gridchain roles the processes run (node, gateway, meterbridge)."""
    out = set()
    for pid, _ in children:
        words = _cmdline(pid).split()
        if "gridchain" in words:
            out.add(words[words.index("gridchain") + 1])
    return out


@pytest.mark.parametrize(
    ("signum", "wanted"),
    [
        # the launcher still waiting for the validator's first answer
        (signal.SIGTERM, {"node"}),
        # everything running: the gateway following, the bridge reading its meters
        (signal.SIGTERM, {"node", "gateway", "meterbridge"}),
        (signal.SIGINT, {"node", "gateway", "meterbridge"}),
    ],
    ids=["sigterm-while-starting", "sigterm-while-running", "sigint-while-running"],
)
def test_no_child_survives_the_bench(tmp_path: Path, signum: int, wanted: set[str]) -> None:
    bench = _start_bench(tmp_path)
    seen: dict[Identity, int] = {}
    try:

        def children_up() -> bool:
            seen.update(_descendants(bench.pid))
            if bench.poll() is not None:
                raise AssertionError(f"bench exited early: {(tmp_path / 'bench.log').read_text()}")
            return wanted <= _kinds({c for c in seen if _alive(c)})

        wait_until(children_up, 180, f"the bench's {sorted(wanted)} children")
        seen.update(_descendants(bench.pid))
        bench.send_signal(signum)
        # its clean-up may take 15 s per stage before SIGKILL (bridge, simulator, launcher)
        bench.wait(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    log = (tmp_path / "bench.log").read_text()[-3000:]
    # The bench waits for each of its own children to end before it exits...
    children = [
        f"{pid}: {_cmdline(pid)}"
        for (pid, start), d in seen.items()
        if d == 1 and _alive((pid, start))
    ]
    # ...and their own children (a validator's verify pool: spawned workers, multiprocessing's
    # resource tracker) end when they read the end of their pipe from the parent that stopped.
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not any(_alive(c) for c in seen), 30, "the children's children to end")
    below = [f"{pid}: {_cmdline(pid)}" for pid, start in seen if _alive((pid, start))]
    for pid, start in seen:  # never leave them to the next test, whatever is asserted
        if _alive((pid, start)):
            os.kill(pid, signal.SIGKILL)
    assert children == [], log
    assert below == [], log

"""The API port against hostile and broken clients, on a real ``gridchain node run`` process.

Why: issue 12 found that connections which never finish a request were kept for ever (with a
small open-files limit the API became unreachable), that a websocket reader too slow to keep
up silently lost its feed, and that edge inputs (deep JSON, huge integers, non-ASCII digits,
heights beyond a u64) were 500s.  Each test here failed before ADR 0020's limits and the
strict input layer (gridchain.node.api_input).  The node runs with short timeouts and a small
open-files limit so that each limit is reached within seconds; no test asserts a duration,
only that the node recovers or refuses within a generous bound.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.procs import Chain, NodeProcess, http_get, http_post, make_chain, node_for, submit

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api_hardening")]

#: RLIMIT_NOFILE of the node under test: the API may hold at most half of it (http_guard).
OPEN_FILES = 160
SHORT = {
    "GRIDCHAIN_API__HEADER_TIMEOUT_S": "1",
    "GRIDCHAIN_API__BODY_TIMEOUT_S": "1",
    "GRIDCHAIN_API__KEEPALIVE_TIMEOUT_S": "1",
    "GRIDCHAIN_API__WS_QUEUE_EVENTS": "4",
    "GRIDCHAIN_API__WS_SEND_BUFFER_BYTES": "4096",
}
#: How long a test waits for the node to recover or refuse: generous, never asserted.
PATIENCE_S = 30.0


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("hardening") / "chain", block_interval_ms=20)


@pytest.fixture(scope="module")
def node(chain: Chain) -> Iterator[NodeProcess]:
    process = node_for(chain)
    process.env = dict(SHORT)
    process.max_open_files = OPEN_FILES
    process.start()
    yield process
    process.terminate()


def _host_port(node: NodeProcess) -> tuple[str, int]:
    host, port = node.api_url.removeprefix("http://").split(":")
    return host, int(port)


def _connect(node: NodeProcess) -> socket.socket:
    return socket.create_connection(_host_port(node), timeout=PATIENCE_S)


def _closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout
    bounds the wait: a server that never closes fails the test)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _refused(node: NodeProcess, reason: str) -> float:
    _, text = http_get(node.api_url + "/metrics")
    found = re.search(
        r'gridchain_http_connections_refused_total\{reason="' + reason + r'"\} ([0-9.e+]+)', text
    )
    return float(found.group(1)) if found else 0.0


# --- input: one strict layer, typed 400s ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/v1/blocks/18446744073709551616", "2^64"),
        ("/v1/blocks/99999999999999999999", "20 nines"),
        ("/v1/blocks/%D9%A1", "Arabic-Indic one"),
        ("/v1/blocks/%EF%BC%91", "full-width one"),
        ("/v1/blocks/%F0%9D%9F%8F", "mathematical bold one"),
        ("/v1/markets/intraday/slots/18446744073709551616/book", "slot 2^64"),
        ("/v1/markets/intraday/slots/%D9%A1/book", "Arabic-Indic slot"),
        ("/v1/txs/%20" + "ab" * 31 + "a", "hash with a space"),
        ("/v1/schedule?interval=%D9%A1", "Arabic-Indic query integer"),
        ("/v1/blocks?from=1" + "0" * 30, "query integer beyond u64"),
    ],
)
def test_path_and_query_integers_are_ascii_u64_or_a_typed_400(
    node: NodeProcess, path: str, what: str
) -> None:
    status, body = http_get(node.api_url + path)
    assert status == 400, (what, body)
    assert body["error"]["code"] == "invalid_request", (what, body)


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"[" * 100_000, "100,000 open brackets"),
        (b'{"tx": ' + b"[" * 300 + b"]" * 300 + b"}", "300 levels"),
        (b'{"txs": [' + b'{"a": ' * 5000 + b"}", "5,000 objects"),
        (b'{"tx": ' + b"9" * 5000 + b"}", "an integer beyond the digit limit"),
        (b'{"tx": -' + b"1" * 100_000 + b"}", "a negative 100,000-digit integer"),
        (b'{"tx": 1' + b"0" * 400 + b".5e10}", "a long float"),
    ],
)
def test_hostile_json_bodies_are_a_typed_400(node: NodeProcess, body: bytes, what: str) -> None:
    status, answer = http_post(node.api_url + "/v1/txs", body)
    assert status == 400, (what, answer)
    assert answer["error"]["code"] == "malformed_json", (what, answer)


def test_brackets_and_digits_inside_strings_are_data_not_structure(node: NodeProcess) -> None:
    body = json.dumps({"tx": "[" * 1000 + "9" * 1000}).encode()
    status, answer = http_post(node.api_url + "/v1/txs", body)
    assert (status, answer["error"]["code"]) == (400, "invalid_request"), answer


def test_405_names_the_allowed_methods(node: NodeProcess) -> None:
    for path, method, allowed in (
        ("/v1/status", "DELETE", {"GET", "HEAD"}),
        ("/v1/txs", "GET", {"POST"}),
    ):
        req = urllib.request.Request(node.api_url + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert refused.value.code == 405
        assert set(refused.value.headers["Allow"].split(", ")) == allowed, path
        assert json.loads(refused.value.read())["error"]["code"] == "method_not_allowed"


# --- connections: timeouts and the cap ---------------------------------------------------


def test_idle_and_slow_header_connections_are_closed(node: NodeProcess) -> None:
    idle = _connect(node)
    trickle = _connect(node)
    trickle.sendall(b"GET /health HTTP/1.1\r\n")
    try:
        for _ in range(int(PATIENCE_S * 4)):
            trickle.sendall(b"X")  # one header byte at a time, never the end of the headers
            time.sleep(0.25)
    except OSError:
        pass  # closed by the node: what this test wants
    assert _closed_by_server(trickle) == b""
    assert _closed_by_server(idle) == b""
    assert _refused(node, "header_timeout") >= 2


def test_a_missing_body_is_a_408_and_an_idle_keepalive_is_closed(node: NodeProcess) -> None:
    with _connect(node) as sock:
        sock.sendall(
            b"POST /v1/txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"tx": '
        )
        answer = _closed_by_server(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"body_timeout"' in answer
    with _connect(node) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _closed_by_server(sock)  # keep-alive, then closed once idle
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_silent_connections_beyond_the_open_files_limit_do_not_lock_the_api_out(
    node: NodeProcess,
) -> None:
    """More silent connections than the node has descriptors: the cap refuses the excess
    (503) instead of running out of descriptors, and the header deadline frees the rest, so a
    real client gets an answer."""
    silent: list[socket.socket] = []
    try:
        for _ in range(OPEN_FILES * 2):
            try:
                silent.append(_connect(node))
            except OSError:
                break
        deadline = time.monotonic() + PATIENCE_S
        status = 0
        while status != 200 and time.monotonic() < deadline:
            status, _ = http_get(node.api_url + "/health", timeout=2.0)
            time.sleep(0.1)
        assert status == 200, node.log_tail()
    finally:
        for sock in silent:
            sock.close()
    assert _refused(node, "connection_cap") >= 1
    assert node.proc is not None
    assert node.proc.poll() is None


# --- websocket: a slow subscriber is told why it is closed -------------------------------


def _ws_frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(opcode, payload) of each complete unmasked frame the server sent."""
    i = 0
    while i + 2 <= len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[i : i + 2])
            i += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[i : i + 8])
            i += 8
        if i + length > len(data):
            return
        yield opcode, data[i : i + length]
        i += length


def _until_close_frame(sock: socket.socket) -> bytes:
    """What the server sent, read until its close frame (or the end of the connection)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
        head = received.find(b"\r\n\r\n")
        if head >= 0 and any(op == 0x8 for op, _ in _ws_frames(received[head + 4 :])):
            break
    return received


def test_a_slow_websocket_subscriber_is_closed_with_1008_and_a_reason(
    node: NodeProcess, chain: Chain
) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that barely reads
    sock.settimeout(PATIENCE_S)
    sock.connect(_host_port(node))
    sock.sendall(
        b"GET /v1/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    stop = threading.Event()

    def load() -> None:  # a block every interval, each one an event for the subscriber
        nonce = 0
        while not stop.is_set():
            submit(node.api_url, chain.transfer(0, 1, nonce, 1, "x" * 140))
            nonce += 1

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            _, text = http_get(node.api_url + "/metrics")
            if 'gridchain_ws_subscribers_closed_total{reason="slow_consumer"}' in text:
                break
            time.sleep(0.2)
        received = _until_close_frame(sock)
    finally:
        stop.set()
        loader.join()
        sock.close()
    assert received.startswith(b"HTTP/1.1 101"), received[:200]
    frames = list(_ws_frames(received[received.index(b"\r\n\r\n") + 4 :]))
    assert frames
    assert frames[0][0] == 0x1  # the feed was flowing (text frames) first
    closes = [payload for opcode, payload in frames if opcode == 0x8]
    assert closes, f"no close frame in {len(frames)} frames"
    code = struct.unpack("!H", closes[0][:2])[0]
    assert code == 1008
    assert b"slow consumer" in closes[0][2:]


def test_a_websocket_client_that_never_answers_pings_is_disconnected(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The heartbeat (api.ws_heartbeat_s) finds a subscriber whose host went away without a
    FIN: it never answers the pings, so the node closes its end instead of keeping it."""
    quiet = make_chain(tmp_path_factory.mktemp("heartbeat") / "chain", block_interval_ms=50)
    process = node_for(quiet)
    process.env = {"GRIDCHAIN_API__WS_HEARTBEAT_S": "1"}
    process.start()
    try:
        with _connect(process) as sock:
            sock.sendall(
                b"GET /v1/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            received = _closed_by_server(sock)  # read, but never send a pong
    finally:
        process.terminate()
    assert received.startswith(b"HTTP/1.1 101"), received[:200]
    opcodes = [op for op, _ in _ws_frames(received[received.index(b"\r\n\r\n") + 4 :])]
    assert 0x9 in opcodes  # pinged before being dropped

"""Issue 8.1: daphne's own limits, tried against a real daphne process as the Procfile starts it.

- CVE-2026-44545: daphne 4.2.1 passed no frame or message size limit to
  autobahn, so one huge frame was buffered whole before the consumer's
  WS_MAX_MESSAGE_BYTES check could run. daphne 4.2.3 with
  `--websocket-max-frame-size` / `--websocket-max-message-size` (set to
  WS_MAX_MESSAGE_BYTES by the Procfile, `make serve` and tests/servers.py)
  closes the socket from the frame header.
- CVE-2026-44546: a `\\x0b` in a handshake header split it in two, smuggling
  `Origin` or `Authorization` into the ASGI scope; daphne 4.2.3 refuses the
  request with 400.
"""

import socket
import struct
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import User
from tests.servers import DaphneServer
from tests.ws_support import access_token

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


@pytest.fixture
def server() -> Iterator[DaphneServer]:
    with DaphneServer() as running:
        yield running


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def handshake(server: DaphneServer, *header_lines: str) -> tuple[socket.socket, bytes]:
    """A raw WebSocket handshake; the socket and the server's response head."""
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    request = "\r\n".join(
        [
            "GET /ws/ HTTP/1.1",
            f"Host: 127.0.0.1:{server.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {b64encode(b'0123456789abcdef').decode()}",
            "Sec-WebSocket-Version: 13",
            *header_lines,
            "",
            "",
        ]
    )
    conn.sendall(request.encode("latin-1"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            break
        head += chunk
    return conn, head


def signed_in_handshake(server: DaphneServer, user: User) -> socket.socket:
    conn, head = handshake(
        server, f"Origin: http://127.0.0.1:{server.port}", f"Authorization: Bearer {access_token(user)}"
    )
    assert head.startswith(b"HTTP/1.1 101"), head
    return conn


def frame_header(length: int, *, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A masked client frame header announcing `length` payload bytes (mask key zero: payload as is)."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack("!BB", first, 0x80 | length) + b"\0\0\0\0"
    if length < 1 << 16:
        return struct.pack("!BBH", first, 0x80 | 126, length) + b"\0\0\0\0"
    return struct.pack("!BBQ", first, 0x80 | 127, length) + b"\0\0\0\0"


def read_until_hung_up(conn: socket.socket) -> bytes:
    """Everything the server sends until it drops the connection (a timeout fails the test: it stayed open).

    autobahn fails an oversized frame by dropping the TCP connection
    (`failByDrop`), so there is no close frame to read, only the end.
    """
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_30_mb_frame_closes_the_socket_without_the_server_taking_it_in(server: DaphneServer, viewer: User) -> None:
    assert server.process is not None
    conn = signed_in_handshake(server, viewer)
    before = rss_bytes(server.process.pid)
    size = 30 * MB
    sent = 0
    try:
        conn.sendall(frame_header(size))
        chunk = b"x" * (64 * 1024)
        while sent < size:
            conn.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection on reading the frame header
    assert read_until_hung_up(conn) == b""  # no reply: the frame never reached the consumer
    conn.close()
    assert sent < size, "the server read the whole 30 MB frame"
    assert rss_bytes(server.process.pid) - before < 8 * MB
    # The server is still serving.
    assert signed_in_handshake(server, viewer)


def test_a_message_over_the_limit_in_small_frames_is_closed_too(server: DaphneServer, viewer: User) -> None:
    """Fragments each under the frame limit, together over the message limit: dropped, not answered."""
    conn = signed_in_handshake(server, viewer)
    half = settings.WS_MAX_MESSAGE_BYTES // 2 + 1
    try:
        conn.sendall(frame_header(half, fin=False) + b"x" * half)
        conn.sendall(frame_header(half, opcode=0x0, fin=True) + b"x" * half)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert read_until_hung_up(conn) == b""
    conn.close()


@pytest.mark.parametrize("smuggled", ["Origin: http://127.0.0.1:{port}", "Authorization: Bearer {token}"])
def test_a_header_with_a_vertical_tab_is_refused_not_split(server: DaphneServer, viewer: User, smuggled: str) -> None:
    line = "X-Note: hello\x0b" + smuggled.format(port=server.port, token=access_token(viewer))
    extra = [] if smuggled.startswith("Origin") else [f"Origin: http://127.0.0.1:{server.port}"]
    conn, head = handshake(server, line, *extra)
    conn.close()
    assert head.startswith(b"HTTP/1.1 400"), head

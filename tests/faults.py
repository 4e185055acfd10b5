"""Real processes to break on purpose: a private redis-server, a cuttable TCP path to PostgreSQL, nginx.

Every fault test starts its own: the shared Redis and PostgreSQL of the
machine are never restarted, flushed or cut. Each helper is a context
manager that cleans up after itself, and every wait is bounded.

`ReplayingClient` is a WebSocket client that behaves as the contract asks of
one (and as the web page's client does): it keeps the last seq it has,
reconnects with backoff and jitter when its socket goes, rejoins with
`after`, and ignores a seq it already has; it records everything so a test
can say what it ended with.
"""

import asyncio
import contextlib
import json
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .servers import OnLocalPort, free_port

WAIT = 20.0  # seconds: the bound of every wait in the fault tests (a loaded 2-core machine)


def wait_until(condition: Any, timeout: float = WAIT, what: str = "a condition") -> None:
    """Poll `condition()` until true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


# --- Redis --------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own, on a free port, without persistence (as DEPLOYMENT.md allows)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fault-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*command, "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(lambda: self.ping(), what=f"redis-server on {self.port}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)  # as a crash: nothing saved, nothing said
            self.process.wait(10)
        wait_until(lambda: not port_open(self.port), what=f"redis-server on {self.port} to stop")

    def command(self, *args: str) -> Any:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=5)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def ping(self) -> bool:
        try:
            return bool(self.command("PING"))
        except Exception:
            return False

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- A cuttable TCP path ---------------------------------------------------------------------


class TcpProxy:
    """127.0.0.1:port → target; `cut()` drops every connection and refuses new ones until `restore()`.

    Between an application and PostgreSQL it makes the database unreachable
    for the application only, without touching the database itself.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.cut_off = threading.Event()
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "TcpProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.listener.close()
        self._drop_all()

    def cut(self) -> None:
        self.cut_off.set()
        self._drop_all()

    def restore(self) -> None:
        self.cut_off.clear()

    def _drop_all(self) -> None:
        with self.lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.open.clear()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.cut_off.is_set():
                client.close()  # the network says no
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self.lock:
                self.open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


# --- nginx ---------------------------------------------------------------------------------------


NGINX_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    # As DEPLOYMENT.md ("One box", "Many boxes").
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}

    upstream incident_platform {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://incident_platform;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;  # with its port: the WebSocket Origin check compares it
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 3600s;
            # Which daphne answered: lets a test know whose sockets it is about to kill.
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


class Nginx(OnLocalPort):
    """nginx as a child process (not a daemon) with a config of its own, on a free port."""

    def __init__(self, upstream_ports: list[int]) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fault-nginx-"))
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;" for p in upstream_ports)
        (self.dir / "nginx.conf").write_text(NGINX_CONFIG.format(dir=self.dir, port=self.port, servers=servers))
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Nginx":
        binary = nginx_binary()
        assert binary, "nginx is not installed (Debian's nginx package; .ci/run installs it)"
        self.process = subprocess.Popen(
            [binary, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-e", str(self.dir / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: port_open(self.port), what=f"nginx on {self.port}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- A client that does what the contract asks of one -------------------------------------------


class ReplayingClient:
    """One person's socket to one incident: reconnects, rejoins with `after`, keeps each seq once.

    `timeline` is the events this client ends up with, in order; `duplicates`
    counts a seq the server sent again on one connection (it must not);
    `closes` lists the close codes it saw; `upstreams` the server that
    answered each handshake (nginx's X-Upstream, when there is one).
    """

    BACKOFF_BASE, BACKOFF_MAX = 0.2, 2.0

    def __init__(self, url: str, origin: str, token: str, incident: int) -> None:
        self.url, self.origin, self.token, self.incident = url, origin, token, incident
        self.timeline: list[dict[str, Any]] = []
        self.duplicates = 0
        self.closes: list[int | None] = []
        self.upstreams: list[str] = []
        self.joins = 0
        self.connection: ClientConnection | None = None
        self.reconnect = True
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return self.timeline[-1]["seq"] if self.timeline else 0

    def start(self) -> "ReplayingClient":
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self.reconnect = False
        if self.connection is not None:
            await self.connection.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def until(self, condition: Any, timeout: float = WAIT, what: str = "") -> None:
        """Wait until condition(self) holds, waking on every change this client sees."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition(self):
            self.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what or condition}: last seq {self.last_seq}, {self!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))

    async def has_joined(self, timeout: float = WAIT) -> None:
        await self.until(lambda c: c.joined_now, timeout, "a join")

    joined_now = False

    def __repr__(self) -> str:
        return f"<client joins={self.joins} closes={self.closes} upstreams={self.upstreams} dups={self.duplicates}>"

    def _take(self, event: dict[str, Any]) -> None:
        if event["seq"] <= self.last_seq:
            return  # already have it
        self.timeline.append(event)

    async def _run(self) -> None:
        attempt = 0
        while self.reconnect:
            try:
                async with connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    origin=self.origin,  # type: ignore[arg-type]
                    open_timeout=WAIT,
                ) as connection:
                    self.connection = connection
                    if connection.response is not None:
                        self.upstreams.append(connection.response.headers.get("X-Upstream", ""))
                    if await self._session(connection):
                        attempt = 0
                    self.closes.append(connection.close_code)
            except ConnectionClosed as closed:
                self.closes.append(closed.rcvd.code if closed.rcvd else None)
            except (OSError, InvalidHandshake, InvalidStatus, TimeoutError):
                pass
            self.joined_now = False
            self.connection = None
            self.changed.set()
            if not self.reconnect:
                return
            # Exponential backoff with jitter, as the web page's client does.
            ceiling = min(self.BACKOFF_MAX, self.BACKOFF_BASE * 2**attempt)
            attempt += 1
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)

    async def _join(self, connection: ClientConnection) -> int:
        self.join_id += 1
        message = {"type": "incident:join", "id": self.join_id, "incident": self.incident, "after": self.last_seq}
        await connection.send(json.dumps(message))
        return self.join_id

    join_id = 0

    async def _session(self, connection: ClientConnection) -> bool:
        """Join with `after`, then read until the socket goes; False if the join was refused."""
        joins = {await self._join(connection)}
        sent_on_this_connection: set[int] = set()
        async for text in connection:
            message = json.loads(text)
            if message.get("type") == "error" and message.get("id") in joins:
                await connection.close(4000, "join refused; retrying")  # as the web page does
                return False
            if message.get("type") == "ack" and message.get("id") in joins:
                self.joins += 1
                self.joined_now = True
                for event in message.get("events", []):
                    sent_on_this_connection.add(event["seq"])
                    self._take(event)
            elif message.get("type") == "incident:updated" and message.get("incident") == self.incident:
                seq = message["seq"]
                if seq in sent_on_this_connection:
                    self.duplicates += 1
                sent_on_this_connection.add(seq)
                if seq > self.last_seq + 1:
                    joins.add(await self._join(connection))  # a gap: ask for what was missed
                else:
                    self._take(message["event"])
            self.changed.set()
        return True


# --- REST over the network ----------------------------------------------------------------------


def http_json(
    method: str, url: str, token: str, body: dict[str, Any] | None = None, *, key: str | None = None
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body or text) of one request, with an Idempotency-Key if given.

    An HTTP error status is an answer, not an exception; a connection that
    fails raises OSError (urllib's URLError is one).
    """
    import urllib.error
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 (our own test servers)
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            **({"Idempotency-Key": key} if key else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, raw.decode(errors="replace")

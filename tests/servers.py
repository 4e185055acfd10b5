"""Real daphne processes for tests that need a server: browsers, scale-out, restarts.

A server started here talks to the test database of the running test session
(so the test must use committed data: `transactional_db`) and to the same
Redis prefix, so it shares the channel layer and presence with the test
process and with other servers started here.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """The URL of the database this test session is using (the test database, not the dev one)."""
    db: dict[str, Any] = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if connection.vendor == "postgresql":
        user = db.get("USER") or "postgres"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    raise NotImplementedError(connection.vendor)


class OnLocalPort:
    """A server of the tests' own on 127.0.0.1:`port`: its HTTP and WebSocket addresses."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"


class DaphneServer(OnLocalPort):
    """One daphne process serving incident_platform.asgi on a port of its own."""

    def __init__(self, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"daphne-{self.port}-", suffix=".log")[1])

    def start(self, timeout: float = 30) -> "DaphneServer":
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "incident_platform.settings",
            "DATABASE_URL": database_url(),
            "DEBUG": "true",
            "PYTHONUNBUFFERED": "1",
            **({"REDIS_URL": settings.REDIS_URL, "REDIS_PREFIX": settings.REDIS_PREFIX} if settings.REDIS_URL else {}),
            **self.env,
        }
        if not settings.REDIS_URL:
            env.pop("REDIS_URL", None)
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
        # The frame and message limits the Procfile and `make serve` give daphne.
        limit = env.get("WS_MAX_MESSAGE_BYTES", str(settings.WS_MAX_MESSAGE_BYTES))
        command += ["--websocket-max-message-size", limit, "--websocket-max-frame-size", limit]
        command.append("incident_platform.asgi:application")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"daphne on {self.port} exited early:\n{self.output()}")
            try:
                with urlopen(f"{self.url}/api/schema/", timeout=2) as response:  # noqa: S310 (our own server)
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"daphne on {self.port} not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""

    def kill(self) -> None:
        """kill -9: the process dies without cleaning up, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "DaphneServer":
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            print(f"--- daphne on {self.port}, last output ---\n{self.output()}")  # pytest shows it with the failure
        self.stop()

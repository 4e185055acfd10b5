"""Fan-out latency and write throughput, measured against real daphne processes.

What it measures
- fan-out: N WebSocket clients join one incident (spread over the servers);
  a responder makes M changes through the REST API, one after another; for
  each change, the time from sending the request to the moment the *last*
  client received its `incident:updated` (and the per-client delivery times).
- writes: W concurrent REST writers adding notes to one incident for a fixed
  time: accepted writes per second and request latency, all serialised by the
  incident's row lock (SQLite: the database write lock).

Run it (it starts and stops its own servers; nothing else needs to be up):

    .venv/bin/python -m bench.ws_fanout --stack embedded
    .venv/bin/python -m bench.ws_fanout --stack production --servers 2

`--stack production` uses PostgreSQL and Redis at BENCH_DATABASE_URL /
BENCH_REDIS_URL (defaults: this machine's services, database
`incident_platform_bench`). Every loop is bounded in count and time.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/incident_platform_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):.1f} ms · p95 {percentile(ms, 95):.1f} ms · "
        f"p99 {percentile(ms, 99):.1f} ms · max {max(ms):.1f} ms (n={len(ms)})"
    )


def stack_env(stack: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "incident_platform.settings"
    env["DEBUG"] = "true"
    # The bench is a load test of the platform, not of its abuse limits.
    env["WS_RATE_BURST"] = "100000"
    env["WS_RATE_PER_SECOND"] = "100000"
    env["AUTH_THROTTLE_RATE"] = "100000/min"
    if stack == "embedded":
        env["DATABASE_URL"] = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-')) / 'bench.sqlite3'}"
    else:
        database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG)
        parsed = urlparse(database_url)
        import psycopg

        name = parsed.path.lstrip("/")
        with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = database_url
        env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
        env["REDIS_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}"
    return env


def setup_data(env: dict[str, str], clients: int) -> dict[str, Any]:
    """Migrate, then create the users and the incident through the product's own code."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
    script = f"""
import json
from accounts.models import User
from accounts.services import user_set_role
from incidents import commands
from rest_framework_simplejwt.tokens import RefreshToken

def user(name, role):
    u = User.objects.create_user(username=name, password="bench-password-123")
    user_set_role(user=u, role=role)
    return u

responder = user("bench-responder", "responder")
writers = [user(f"bench-writer{{i}}", "responder") for i in range(16)]
viewers = [user(f"bench-viewer{{i}}", "viewer") for i in range({clients})]
incident = commands.incident_create(actor=responder, title="Bench incident", severity="high").incident
token = lambda u: str(RefreshToken.for_user(u).access_token)
print(json.dumps({{
    "incident": incident.pk,
    "responder": token(responder),
    "writers": [token(u) for u in writers],
    "viewers": [token(u) for u in viewers],
}}))
"""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


class Servers:
    def __init__(self, env: dict[str, str], count: int) -> None:
        self.env = env
        self.ports = [free_port() for _ in range(count)]
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> "Servers":
        for port in self.ports:
            command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
            self.processes.append(
                subprocess.Popen(
                    [*command, "incident_platform.asgi:application"],
                    cwd=BASE_DIR,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 60
        for port in self.ports:
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"daphne on {port} did not start") from None
                    time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


async def http_json(port: int, method: str, path: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    """A minimal HTTP/1.1 client on asyncio streams, so the bench needs no extra package."""
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    writer.write(request)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, rest


async def fanout(ports: list[int], data: dict[str, Any], changes: int) -> list[str]:
    import websockets

    incident = data["incident"]
    received: dict[int, list[float]] = {}
    last_message_at = time.perf_counter()
    ready = 0
    all_ready = asyncio.Event()
    done = asyncio.Event()
    expected_last_seq = 1 + changes

    async def client(index: int, token: str) -> None:
        nonlocal ready, last_message_at
        port = ports[index % len(ports)]
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/",
            additional_headers={"Authorization": f"Bearer {token}", "Origin": f"http://127.0.0.1:{port}"},
            max_size=2**22,
        ) as ws:
            await ws.send(json.dumps({"type": "incident:join", "id": 1, "incident": incident, "after": 1}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == "ack" and message.get("id") == 1:
                    break
            ready += 1
            if ready == len(data["viewers"]):
                all_ready.set()
            while not done.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                except TimeoutError:
                    return
                last_message_at = time.perf_counter()
                if message.get("type") == "incident:updated":
                    received.setdefault(message["seq"], []).append(time.perf_counter())
                    if message["seq"] >= expected_last_seq:
                        return

    joining = time.perf_counter()
    tasks = [asyncio.create_task(client(i, token)) for i, token in enumerate(data["viewers"])]
    await asyncio.wait_for(all_ready.wait(), timeout=60)
    # Every join is announced to everyone already in the room (presence:joined):
    # N joins make about N²/2 messages. Let that settle, and time it, before
    # measuring changes, so the figures below are not queueing behind it.
    settle_deadline = time.perf_counter() + 60
    while time.perf_counter() - last_message_at < 0.5 and time.perf_counter() < settle_deadline:
        await asyncio.sleep(0.05)
    join_storm = last_message_at - joining
    sent: dict[int, float] = {}
    statuses = ["identified", "monitoring", "investigating"]
    for n in range(changes):
        seq = 2 + n
        sent[seq] = time.perf_counter()
        status, _ = await http_json(
            ports[n % len(ports)],
            "POST",
            f"/api/incidents/{incident}/status",
            data["responder"],
            {"status": statuses[n % 3]},
        )
        assert status == 200, status
        # Wait until everyone has this change before the next: this measures latency, not queueing.
        deadline = time.perf_counter() + 10
        while len(received.get(seq, [])) < len(data["viewers"]) and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
    done.set()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=60)

    last: list[float] = []
    each: list[float] = []
    missing = 0
    for seq, start in sent.items():
        times = received.get(seq, [])
        missing += len(data["viewers"]) - len(times)
        if times:
            last.append(max(times) - start)
            each.extend(t - start for t in times)
    return [
        f"- {len(data['viewers'])} clients joined and every presence message delivered: {join_storm:.2f} s",
        f"- change → every client received it: {summary_ms(last)}",
        f"- change → one client received it: {summary_ms(each)}",
        f"- deliveries missing: {missing} of {len(sent) * len(data['viewers'])}",
    ]


async def writes(ports: list[int], data: dict[str, Any], writers: int, seconds: float) -> list[str]:
    incident = data["incident"]
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def writer(index: int) -> None:
        nonlocal errors
        token = data["writers"][index % len(data["writers"])]
        n = 0
        while time.perf_counter() < stop and n < 100_000:
            n += 1
            start = time.perf_counter()
            status, _ = await http_json(
                ports[index % len(ports)], "POST", f"/api/incidents/{incident}/notes", token, {"body": f"w{index}-{n}"}
            )
            if status == 201:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    elapsed = time.perf_counter() - started
    return [
        f"- {writers} concurrent writers, {seconds:.0f} s: {len(latencies) / elapsed:.0f} accepted notes/s, "
        f"errors {errors}",
        f"- request latency: {summary_ms(latencies)}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", choices=["embedded", "production"], default="embedded")
    parser.add_argument("--servers", type=int, default=1, help="daphne processes (production stack: 2+ to scale out)")
    parser.add_argument("--clients", type=int, default=100, help="WebSocket clients joined to the incident")
    parser.add_argument("--changes", type=int, default=100, help="changes made during the fan-out run")
    parser.add_argument("--writers", type=int, default=8, help="concurrent REST writers")
    parser.add_argument("--seconds", type=float, default=10, help="length of the write run")
    args = parser.parse_args()
    if args.stack == "embedded" and args.servers != 1:
        parser.error("the embedded default is one process (in-memory channel layer): use --servers 1")

    env = stack_env(args.stack)
    data = setup_data(env, args.clients)
    with Servers(env, args.servers) as servers:
        lines = [
            f"### {args.stack} stack, {args.servers} daphne process(es), {args.clients} clients, "
            f"{args.changes} changes",
            "",
        ]
        lines += asyncio.run(fanout(servers.ports, data, args.changes))
        lines += asyncio.run(writes(servers.ports, data, args.writers, args.seconds))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""What every scenario of bench/live.py shares: the stack, the data, the servers, the figures.

- `Stack`: a fresh database (a SQLite file, or a PostgreSQL database dropped and
  created anew) and, for the production stack, Redis under a key prefix of its
  own; the server code may come from another checkout (`--tree`), so two
  versions of the platform can be measured in one sitting.
- `setup_data`: users, incidents and tokens made in bulk through the tree's own
  model code (one pre-hashed password, `bulk_create`, simplejwt's
  `AccessToken.for_user`), not by logging in thousands of times.
- `Servers`: daphne processes (optionally pinned to a core with taskset), with
  their CPU time and memory read from /proc/PID/stat and /proc/PID/status.
- `Clients`: load-client processes (bench/wsclient.py) driven over pipes.
"""

import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

BENCH_DIR = Path(__file__).resolve().parent
BASE_DIR = BENCH_DIR.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/incident_platform_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def raise_fd_limit(wanted: int = 65536) -> int:
    """Thousands of sockets need thousands of file descriptors (children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that was measured."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[index]


def dist_ms(seconds: list[float]) -> dict[str, Any]:
    """p50/p95/p99/max in milliseconds, and how many values they summarise."""
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 1),
        "p95": round(percentile(ms, 95), 1),
        "p99": round(percentile(ms, 99), 1),
        "max": round(max(ms), 1),
    }


def fmt_dist(d: dict[str, Any]) -> str:
    if not d.get("n"):
        return "no values"
    return f"p50 {d['p50']} · p95 {d['p95']} · p99 {d['p99']} · max {d['max']} ms (n={d['n']})"


def machine() -> dict[str, Any]:
    with open("/proc/loadavg") as f:
        load = [float(x) for x in f.read().split()[:3]]
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "host_cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": load,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def tree_info(tree: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=False)
        return result.stdout.strip()

    return {
        "path": str(tree),
        "commit": git("rev-parse", "--short", "HEAD"),
        "subject": git("log", "-1", "--format=%s")[:120],
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


# --- the stack -----------------------------------------------------------------------


@dataclass
class Stack:
    name: str  # "embedded" or "production"
    tree: Path
    python: str
    env: dict[str, str] = field(default_factory=dict)
    tmpdir: Path | None = None

    @classmethod
    def create(cls, name: str, tree: Path, python: str | None, extra_env: dict[str, str] | None = None) -> "Stack":
        tree = tree.resolve()
        if not (tree / "manage.py").exists():
            raise SystemExit(f"--tree {tree}: no manage.py there")
        if python is None:
            candidate = tree / ".venv" / "bin" / "python"
            python = str(candidate) if candidate.exists() else sys.executable
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_PREFIX")}
        env["DJANGO_SETTINGS_MODULE"] = "incident_platform.settings"
        # The production stack is served as production serves it (DEBUG off: no
        # query log, no debug cursor); the embedded default as `make run` does.
        env["DEBUG"] = "true" if name == "embedded" else "false"
        env.setdefault("SECRET_KEY", "bench-" + "s" * 50)
        env.setdefault("AUDIT_KEY", "bench-audit-" + "k" * 40)
        env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
        env["SECURE_SSL_REDIRECT"] = "false"  # plain HTTP on loopback
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        # The bench is a load test of the platform, not of its abuse limits,
        # and a sitting outlasts the default 15-minute access token.
        env["WS_RATE_BURST"] = "100000"
        env["WS_RATE_PER_SECOND"] = "100000"
        env["AUTH_THROTTLE_RATE"] = "1000000/min"
        env["JWT_ACCESS_MINUTES"] = "240"
        env["LOG_LEVEL"] = "WARNING"
        tmpdir = Path(tempfile.mkdtemp(prefix="bench-"))
        if name == "embedded":
            env["DATABASE_URL"] = f"sqlite:///{tmpdir / 'bench.sqlite3'}"
        else:
            import psycopg

            database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_PG)
            parsed = urlparse(database_url)
            db = parsed.path.lstrip("/")
            with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{db}"')
            env["DATABASE_URL"] = database_url
            env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
            env["REDIS_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}"
        env.update(extra_env or {})
        return cls(name=name, tree=tree, python=python, env=env, tmpdir=tmpdir)

    def manage(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [self.python, "manage.py", *args],
            cwd=self.tree,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def cleanup(self) -> None:
        if self.name == "production":
            prefix = self.env["REDIS_PREFIX"]
            try:
                import redis

                client = redis.Redis.from_url(self.env["REDIS_URL"])
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                for start in range(0, len(keys), 500):
                    client.delete(*keys[start : start + 500])
            except Exception as exc:  # a leftover key prefix is harmless; say so and go on
                print(f"(could not clear Redis keys {prefix}:*: {exc})", file=sys.stderr)
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


# Run inside the tree under test (manage.py shell), so its own models and
# commands make the data. Reads its parameters as JSON on stdin.
SETUP_SCRIPT = """
import json, sys
from django.contrib.auth.hashers import make_password
from accounts.models import User
from incidents import commands
from rest_framework_simplejwt.tokens import AccessToken

spec = json.loads(sys.stdin.read())
password = make_password("bench-password-123")  # hashed once for every user
def bulk(prefix, count, role):
    names = [f"{prefix}{i:05d}" for i in range(count)]
    User.objects.bulk_create(
        [User(username=n, password=password, role=role) for n in names], batch_size=1000
    )
    users = {u.username: u for u in User.objects.filter(username__in=names)}
    return [users[n] for n in names]
viewers = bulk("bench-viewer", spec["viewers"], "viewer")
writers = bulk("bench-writer", spec["writers"], "responder")
incidents = [
    commands.incident_create(actor=writers[0], title=f"Bench incident {i}", severity="high").incident.pk
    for i in range(spec["incidents"])
]
token = lambda u: str(AccessToken.for_user(u))
print(json.dumps({
    "incidents": incidents,
    "viewers": [token(u) for u in viewers],
    "writers": [token(u) for u in writers],
}))
"""


def setup_data(stack: Stack, *, viewers: int, writers: int, incidents: int) -> dict[str, Any]:
    """Migrate, then make the users, incidents and tokens in bulk (seconds, even for 5,000 users)."""
    started = time.monotonic()
    stack.manage("migrate", "-v0")
    spec = json.dumps({"viewers": viewers, "writers": max(1, writers), "incidents": incidents})
    out = stack.manage("shell", "-c", SETUP_SCRIPT, stdin=spec)
    data = dict(json.loads(out.strip().splitlines()[-1]))
    data["setup_s"] = round(time.monotonic() - started, 1)
    return data


# --- server processes ----------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/PID/stat (the name may hold spaces: split after ')')."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_sched_seconds(pid: int) -> tuple[float, float]:
    """(time on a CPU, time runnable but waiting for one), summed over the threads (/proc/PID/task/*/schedstat).

    On a shared machine the second says how much of the server's latency was other people's load.
    """
    running = waiting = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            on_cpu, queued, _ = (int(x) for x in (task / "schedstat").read_text().split())
        except (OSError, ValueError):
            continue
        running += on_cpu
        waiting += queued
    return running / 1e9, waiting / 1e9


def proc_memory_mb(pid: int) -> dict[str, float]:
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount = line.split(":", 1)
                values[key] = round(int(amount.split()[0]) / 1024, 1)
    return {"rss_mb": values.get("VmRSS", 0.0), "peak_rss_mb": values.get("VmHWM", 0.0)}


class Servers:
    """daphne processes serving the tree under test, on free ports, with their CPU and memory."""

    def __init__(self, stack: Stack, count: int, cpus: str | None) -> None:
        self.stack = stack
        self.cpus = cpus
        self.ports = [free_port() for _ in range(count)]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.samples: list[dict[str, Any]] = []
        self._sampler: asyncio.Task[None] | None = None

    def start(self) -> "Servers":
        for port in self.ports:
            command = [self.stack.python, "-m", "daphne", "-e", f"tcp:port={port}:interface=127.0.0.1:backlog=1024"]
            command.append("incident_platform.asgi:application")
            if self.cpus:
                command = ["taskset", "-c", self.cpus, *command]
            log = Path(tempfile.mkstemp(prefix=f"bench-daphne-{port}-", suffix=".log")[1])
            self.logs.append(log)
            with open(log, "wb") as out:
                self.processes.append(
                    subprocess.Popen(command, cwd=self.stack.tree, env=self.stack.env, stdout=out, stderr=out)
                )
        deadline = time.monotonic() + 60
        for port, process in zip(self.ports, self.processes, strict=True):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"daphne on {port} exited:\n{self.log_tail()}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"daphne on {port} did not start:\n{self.log_tail()}") from None
                    time.sleep(0.1)
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for log in self.logs:
            log.unlink(missing_ok=True)

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(log.read_text(errors="replace")[-chars:] for log in self.logs if log.exists())

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def snapshot(self) -> list[dict[str, Any]]:
        """CPU seconds so far and memory of every server process, at one moment."""
        now = time.monotonic()
        out = []
        for pid in self.pids:
            try:
                run_s, wait_s = proc_sched_seconds(pid)
                cpu = {"cpu_s": proc_cpu_seconds(pid), "run_s": run_s, "wait_s": wait_s}
                out.append({"t": now, "pid": pid, **cpu, **proc_memory_mb(pid)})
            except OSError:
                out.append({"t": now, "pid": pid, "cpu_s": float("nan"), "rss_mb": 0.0, "peak_rss_mb": 0.0})
        return out

    def start_sampling(self, every: float = 1.0) -> None:
        async def sample() -> None:
            for _ in range(100_000):  # bounded: a day of samples at 1 s
                self.samples.append({"t": time.monotonic(), "procs": self.snapshot()})
                await asyncio.sleep(every)

        self.samples = []
        self._sampler = asyncio.get_running_loop().create_task(sample())

    async def stop_sampling(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None


def usage_between(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """Server CPU (% of one core, per process) and memory over a window, from two snapshots."""
    per_process = []
    for b, a in zip(before, after, strict=True):
        elapsed = max(1e-9, a["t"] - b["t"])
        ran, waited = a.get("run_s", 0) - b.get("run_s", 0), a.get("wait_s", 0) - b.get("wait_s", 0)
        per_process.append(
            {
                "pid": a["pid"],
                "cpu_s": round(a["cpu_s"] - b["cpu_s"], 2),
                "cpu_pct": round(100 * (a["cpu_s"] - b["cpu_s"]) / elapsed, 1),
                # Of the time its threads were ready to run, the share spent waiting for a CPU.
                "cpu_wait_pct": round(100 * waited / (ran + waited), 1) if ran + waited > 0 else None,
                "rss_mb": a["rss_mb"],
                "peak_rss_mb": a["peak_rss_mb"],
            }
        )
    return {
        "window_s": round(after[0]["t"] - before[0]["t"], 2),
        "cpu_pct_total": round(sum(p["cpu_pct"] for p in per_process), 1),
        "rss_mb_total": round(sum(p["rss_mb"] for p in per_process), 1),
        "peak_rss_mb_max": max(p["peak_rss_mb"] for p in per_process),
        "per_process": per_process,
    }


def fmt_usage(u: dict[str, Any]) -> str:
    each = ", ".join(
        f"{p['cpu_pct']}% / {p['rss_mb']} MB (peak {p['peak_rss_mb']}), waited for a CPU {p.get('cpu_wait_pct')}%"
        for p in u["per_process"]
    )
    return f"server CPU % of a core / RSS over {u['window_s']} s: {each}"


# --- HTTP ---------------------------------------------------------------------------------


async def http_json(port: int, method: str, path: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    """A minimal HTTP/1.1 client on asyncio streams (one connection per request, as a CLI would)."""
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode() + payload
        writer.write(request)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"chunked" in head.lower():
        rest = _unchunk(rest)
    try:
        return status, json.loads(rest) if rest else None
    except ValueError:
        return status, rest[:200]


def _unchunk(body: bytes) -> bytes:
    out = bytearray()
    for _ in range(100_000):
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return bytes(out)


STATUS_CYCLE = ["identified", "monitoring", "investigating"]


class Changer:
    """Makes one change to an incident through the REST API, as a responder would."""

    def __init__(self, ports: list[int], tokens: list[str]) -> None:
        self.ports = ports
        self.tokens = tokens
        self.count = 0

    async def status(self, incident: int, index: int = 0) -> tuple[int, int | None]:
        """POST a status change; returns (HTTP status, the incident's new version = the event's seq)."""
        self.count += 1
        port = self.ports[self.count % len(self.ports)]
        token = self.tokens[index % len(self.tokens)]
        status = STATUS_CYCLE[self.count % 3]
        code, body = await http_json(port, "POST", f"/api/incidents/{incident}/status", token, {"status": status})
        if code == 409:  # the cycle met the status it already has (another writer moved it): take the next one
            status = STATUS_CYCLE[(self.count + 1) % 3]
            code, body = await http_json(port, "POST", f"/api/incidents/{incident}/status", token, {"status": status})
        version = body.get("version") if isinstance(body, dict) else None
        return code, version


# --- load-client processes -----------------------------------------------------------------


class Clients:
    """Load-client processes (bench/wsclient.py), each holding a share of the sockets, driven over pipes."""

    def __init__(self, procs: int, cpus: str | None) -> None:
        self.count = procs
        self.cpus = cpus
        self.workers: list[asyncio.subprocess.Process] = []
        self.specs: list[list[dict[str, Any]]] = [[] for _ in range(procs)]

    def assign(self, sockets: list[dict[str, Any]]) -> None:
        """Deal the sockets round-robin over the processes (so every process has a share of every room)."""
        for index, spec in enumerate(sockets):
            self.specs[index % self.count].append(spec)

    async def start(self, options: dict[str, Any]) -> None:
        for share in self.specs:
            command = [sys.executable, "-m", "bench.wsclient"]
            if self.cpus:
                command = ["taskset", "-c", self.cpus, *command]
            worker = await asyncio.create_subprocess_exec(
                *command,
                cwd=BASE_DIR,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**28,
            )
            self.workers.append(worker)
            await self._send(worker, {"op": "init", "sockets": share, **options})
        await self.gather_replies()

    async def _send(self, worker: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
        assert worker.stdin is not None
        worker.stdin.write(json.dumps(message).encode() + b"\n")
        await worker.stdin.drain()

    async def gather_replies(self, timeout: float = 600) -> list[dict[str, Any]]:
        async def reply(worker: asyncio.subprocess.Process) -> dict[str, Any]:
            assert worker.stdout is not None
            line = await worker.stdout.readline()
            if not line:
                raise RuntimeError("a load-client process exited (see its stderr above)")
            return dict(json.loads(line))

        return list(await asyncio.wait_for(asyncio.gather(*(reply(w) for w in self.workers)), timeout))

    async def call(self, message: dict[str, Any], timeout: float = 600) -> list[dict[str, Any]]:
        """Send one command to every process; their replies, in process order."""
        for worker in self.workers:
            await self._send(worker, message)
        return await self.gather_replies(timeout)

    async def stop(self) -> None:
        for worker in self.workers:
            if worker.returncode is None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    await self._send(worker, {"op": "exit"})
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.wait(), 20)
            except TimeoutError:
                worker.kill()
                await worker.wait()


def merge_counts(replies: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for reply in replies:
        for name, value in reply.get(key, {}).items():
            total[name] = total.get(name, 0) + int(value)
    return total


def write_result(result: dict[str, Any], out: str | None, scenario: str) -> Path:
    if out:
        path = Path(out)
    else:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = BASE_DIR / ".bench-results" / f"{stamp}-{scenario}-{uuid.uuid4().hex[:4]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path

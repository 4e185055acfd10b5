"""Run the reference fan-out servers on this machine, in the same sitting as bench/live.py.

    .venv/bin/python -m bench.references --reps 3 --out .bench-results/references.jsonl

The references live outside this repository (`../shared/reference-bench`,
see its README.md): `websockets.broadcast()` on uvloop (the ceiling of Python
here), Socket.IO 4.8 on one Node process (the seed's stack), both driven by
its `socketio/run.sh`, and the bare ASGI floor (`asgi/asgi_floor.py`: one
pre-encoded frame to every local socket) on this project's daphne. All three
are measured by the reference's own client (`socketio/fanout_client.py`),
server on core 0 and client on core 1. The folder is copied to --workdir first
(it may be read-only); run.sh makes its own virtualenv (websockets, uvloop)
and installs socket.io from its package-lock.json.

Their `fanout_all_ms_*` is the time from the server's send until the LAST
socket has the message: no HTTP request and no database, unlike bench/live.py
fanout, which times from the REST call that makes the change.

Writes one JSON line per server, room size and pass to --out.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import BASE_DIR, machine, proc_cpu_seconds, proc_memory_mb, raise_fd_limit

SPECS = {100: (20, 3000, 100), 1000: (20, 500, 100), 5000: (20, 100, 500)}  # N: (LAT_K, THR_K, IV_ms), as run.sh


def prepare(src: Path, workdir: Path) -> Path:
    if not (workdir / "socketio" / "run.sh").exists():
        shutil.copytree(src, workdir, dirs_exist_ok=True)
        for path in [workdir, *workdir.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    return workdir


def wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def asgi_floor(workdir: Path, venv: Path, size: int, rep: int) -> dict[str, Any]:
    """The bare ASGI app on this project's daphne (core 0), the reference client on core 1."""
    lat_k, thr_k, iv = SPECS[size]
    # The reference client does not answer pings in raw mode: with daphne's default 20 s pings, a burst that
    # outlasts ping + timeout would see its sockets closed under it (and the floor's send loop fail).
    daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "8765", "--ping-interval", "3600"]
    daphne += ["--ping-timeout", "3600", "asgi_floor:app"]
    server = subprocess.Popen(
        ["taskset", "-c", "0", *daphne],
        cwd=workdir / "asgi",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(8765)
        idle = proc_memory_mb(server.pid)["rss_mb"]
        client = subprocess.run(
            [
                "taskset",
                "-c",
                "1",
                str(venv / "bin" / "python"),
                "fanout_client.py",
                "raw",
                str(size),
                "200",
                str(lat_k),
                str(thr_k),
                str(iv),
            ],
            cwd=workdir / "socketio",
            capture_output=True,
            text=True,
            timeout=360,
            check=False,
        )
        memory = proc_memory_mb(server.pid)
        cpu = proc_cpu_seconds(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    lines = [line for line in client.stdout.splitlines() if line.startswith("{")]
    row: dict[str, Any] = json.loads(lines[-1]) if lines else {"error": client.stderr[-500:], "N": size}
    row.update(
        server="asgi floor on daphne",
        rep=rep,
        server_rss_idle_mb=idle,
        server_peak_rss_mb=memory["peak_rss_mb"],
        server_cpu_s=round(cpu, 2),
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default=str(BASE_DIR.parent.parent / "shared" / "reference-bench"))
    parser.add_argument("--workdir", default="/tmp/rb")  # noqa: S108 (the reference README's own paths)
    parser.add_argument("--venv", default="/tmp/bench", help="run.sh's virtualenv")  # noqa: S108
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--skip", default="", help="comma-separated: socketio (run.sh), asgi")
    parser.add_argument("--out", default=str(BASE_DIR / ".bench-results" / "references.jsonl"))
    args = parser.parse_args()
    raise_fd_limit(20000)
    src = Path(args.src)
    if not src.exists():
        src = Path("/work/shared/reference-bench")
    workdir = prepare(src, Path(args.workdir))
    sizes = [int(s) for s in args.sizes.split(",")]
    skip = set(args.skip.split(","))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    before = machine()
    rows: list[dict[str, Any]] = []
    if "socketio" not in skip:
        specs = ";".join(f"{n} {' '.join(map(str, SPECS[n]))}" for n in sizes)
        env = {**os.environ, "VENV": args.venv, "REPS": str(args.reps), "SPECS": specs}
        subprocess.run(["bash", "run.sh"], cwd=workdir / "socketio", env=env, timeout=3600, check=True)
        text = (workdir / "socketio" / "results.txt").read_text()
        raw = text.split("## raw JSON lines", 1)[1].split("## table", 1)[0]
        rows += [json.loads(line) for line in raw.splitlines() if line.startswith("{")]
    if "asgi" not in skip:
        for rep in range(1, args.reps + 1):
            for size in sizes:
                row = asgi_floor(workdir, Path(args.venv), size, rep)
                print(json.dumps({k: row.get(k) for k in ("server", "N", "rep", "fanout_all_ms_median", "error")}))
                rows.append(row)
    after = machine()
    with out.open("w") as f:
        for row in rows:
            f.write(json.dumps({**row, "machine_before": before, "machine_after": after}) + "\n")
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()

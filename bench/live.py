"""Real-time scenarios of issue 7, each one command, against real daphne processes.

    .venv/bin/python -m bench.live fanout    --stack production --sizes 100,1000,5000
    .venv/bin/python -m bench.live joinstorm --stack production --users 1000
    .venv/bin/python -m bench.live rooms     --stack production --servers 2
    .venv/bin/python -m bench.live idle      --stack production --sockets 5000
    .venv/bin/python -m bench.live writes    --stack production
    .venv/bin/python -m bench.live slow      --stack production

Scenarios (every loop is bounded in count and time; traffic only to 127.0.0.1):

- fanout: rooms of 100, 1,000 and 5,000 sockets (fresh server processes for
  each size). A responder changes the incident's status through the REST
  API, `--events` times, one after another (each waits until every socket
  has the previous one). Per change: the time from sending the HTTP request
  until the FIRST, the median and the LAST socket had its `incident:updated`
  (the REST call is included, as a user would see it). The sockets belong to
  `--users` distinct users (a user's first socket joins first), so the join
  is not a presence storm: that is the joinstorm scenario.
- joinstorm: `--users` distinct users (one socket each) connect and join one
  room at once; a dropped handshake (or a join with no answer) is retried
  with exponential backoff (as static/js/live.js does: 0.5 s doubling to 15 s,
  jittered). Time until every join was acked, then ONE change
  and the time until all of them have it, then the time until the room's
  presence traffic goes quiet.
- rooms: `--rooms` x `--viewers` sockets (distinct users), a writer per room
  changing it `--rate` times a second for `--seconds`: deliveries per second
  per server process, latency of every delivery, loss.
- idle: `--sockets` sockets over `--rooms` incidents, idle for `--seconds`:
  server CPU (% of one core) and RSS.
- writes: `--writers` concurrent REST writers add notes to one incident for
  `--seconds` (optionally with `--viewers` sockets in the room): accepted
  writes per second and request latency.
- slow: a room of `--sockets`; `--events` notes (`--note-bytes` each) with
  every socket reading, then as many with `--slow-percent` of the sockets no
  longer reading: the others' latency in both phases, and the server's
  memory over time (a slow socket should be closed, not buffered forever).

Every scenario prints p50/p95/p99/max, deliveries/s, lost and duplicated (by
seq), server CPU (from /proc/PID/stat) and RSS, and writes a JSON result
(`--out`, default .bench-results/). `--tree PATH` serves the code of another
checkout (e.g. a baseline worktree), so two versions can be measured in one
sitting. `--stack production` uses PostgreSQL and Redis at BENCH_DATABASE_URL /
BENCH_REDIS_URL (defaults: this machine's services, database
`incident_platform_bench`, dropped and created anew each run).

Pinning (`--pin auto`): with one server process, the server runs on core 0
and the load clients (and this driver) on core 1, as the reference benchmarks
do; with two server processes nothing is pinned. PostgreSQL and Redis are
never pinned.
"""

import argparse
import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    BASE_DIR,
    Changer,
    Clients,
    Servers,
    Stack,
    dist_ms,
    fmt_dist,
    fmt_usage,
    http_json,
    machine,
    merge_counts,
    raise_fd_limit,
    tree_info,
    usage_between,
    write_result,
)

CONNECT_CONCURRENCY = 50  # set-up joins (not what is measured) go in batches this wide


class Context:
    """One run: the stack, its data, and where servers and clients go."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tree = Path(args.tree).resolve() if args.tree else BASE_DIR
        pin = args.pin == "auto" and args.servers == 1 and (os.cpu_count() or 1) >= 2
        self.server_cpus = "0" if pin else None
        self.client_cpus = "1" if pin else None
        if pin:
            os.sched_setaffinity(0, {1})
        self.stack: Stack | None = None
        self.data: dict[str, Any] = {}

    def setup(self, *, viewers: int, writers: int, incidents: int) -> dict[str, Any]:
        from bench.harness import setup_data

        self.stack = Stack.create(self.args.stack, self.tree, self.args.python)
        self.data = setup_data(self.stack, viewers=viewers, writers=writers, incidents=incidents)
        return self.data

    def servers(self) -> Servers:
        assert self.stack is not None
        return Servers(self.stack, self.args.servers, self.server_cpus).start()

    def clients(self, sockets: list[dict[str, Any]], procs: int | None = None) -> Clients:
        clients = Clients(procs or self.args.client_procs, self.client_cpus)
        clients.assign(sockets)
        return clients

    def header(self, scenario: str) -> dict[str, Any]:
        args = self.args
        return {
            "scenario": scenario,
            "label": args.label or tree_info(self.tree)["commit"],
            "stack": args.stack,
            "servers": args.servers,
            "tree": tree_info(self.tree),
            "command": " ".join([Path(sys.executable).name, "-m", "bench.live", *sys.argv[1:]]),
            "pinning": {"servers": self.server_cpus, "clients": self.client_cpus},
            "client_procs": args.client_procs,
            "machine_before": machine(),
        }

    def cleanup(self) -> None:
        if self.stack is not None:
            self.stack.cleanup()


def sockets_for(ports: list[int], tokens: list[str], incident: int, count: int, users: int) -> list[dict[str, Any]]:
    """`count` sockets in one room, over `users` users: each user's first socket is in wave 0."""
    return [
        {"port": ports[i % len(ports)], "token": tokens[i % users], "incident": incident, "wave": 0 if i < users else 1}
        for i in range(count)
    ]


async def connect_all(clients: Clients, waves: int = 1, timeout: float = 600) -> dict[str, Any]:
    """Set-up joins (not the measurement), wave by wave, each in batches; fail loudly if a socket could not join."""
    started = time.monotonic()
    retries = 0
    errors: dict[str, int] = {}
    for wave in range(waves):
        replies = await clients.call(
            {"op": "connect", "wave": wave, "concurrency": CONNECT_CONCURRENCY, "timeout": timeout}, timeout + 30
        )
        retries += sum(r["retries"] for r in replies)
        for name, count in merge_counts(replies, "errors").items():
            errors[name] = errors.get(name, 0) + count
        failed = sum(r["failed"] for r in replies)
        if failed:
            raise RuntimeError(f"{failed} sockets could not join: {errors}")
    return {"join_s": round(time.monotonic() - started, 1), "retries": retries, "errors": errors}


def latencies(sent: dict[str, float], collected: list[dict[str, Any]]) -> dict[str, Any]:
    """Per change: first/median/last arrival after the request was sent; and every delivery's latency."""
    arrivals: dict[str, list[float]] = {}
    for reply in collected:
        for key, times in reply["arrivals"].items():
            arrivals.setdefault(key, []).extend(times)
    first: list[float] = []
    median: list[float] = []
    last: list[float] = []
    each: list[float] = []
    for key, t0 in sent.items():
        times = sorted(arrivals.get(key, []))
        if not times:
            continue
        first.append(times[0] - t0)
        median.append(times[len(times) // 2] - t0)
        last.append(times[-1] - t0)
        each.extend(t - t0 for t in times)
    return {"first": first, "median": median, "last": last, "each": each, "deliveries": len(each)}


def integrity(collected: list[dict[str, Any]]) -> dict[str, Any]:
    counts = merge_counts(collected, "counts")
    return {
        "lost": sum(r["lost"] for r in collected),
        "dup": sum(r["dup"] for r in collected),
        "out_of_order": sum(r["out_of_order"] for r in collected),
        "open_sockets": sum(r["open"] for r in collected),
        "sockets": sum(r["sockets"] for r in collected),
        "presence_frames": sum(v for k, v in counts.items() if k.startswith("presence:")),
        "presence_bytes": sum(r["presence_bytes"] for r in collected),
        "frames": sum(r["frames"] for r in collected),
        "bytes_in": sum(r["bytes_in"] for r in collected),
        "client_cpu_s": sum(r["cpu_s"] for r in collected),
        "counts": counts,
    }


def fmt_integrity(i: dict[str, Any]) -> str:
    return (
        f"lost {i['lost']} · duplicated {i['dup']} · out of order {i['out_of_order']} · "
        f"sockets open {i['open_sockets']}/{i['sockets']} · presence frames {i['presence_frames']} "
        f"({i['presence_bytes'] / 1e6:.1f} MB) · parse mismatches {i['counts'].get('parse_mismatch', 0)}"
    )


def spread(servers: Servers, tokens: list[str], incidents: list[int]) -> list[dict[str, Any]]:
    """One socket per token, dealt round the servers and round the incidents."""
    return [
        {"port": servers.ports[i % len(servers.ports)], "token": token, "incident": incidents[i % len(incidents)]}
        for i, token in enumerate(tokens)
    ]


def print_health(result: dict[str, Any]) -> None:
    """What every scenario ends with: did every frame arrive once and in order, and what the servers used."""
    print(f"- {fmt_integrity(result['integrity'])}")
    print(f"- {fmt_usage(result['server'])}")


async def change_and_wait(
    changer: Changer, clients: Clients, incident: int, sent: dict[str, float], timeout: float = 30
) -> tuple[int, int]:
    """One REST change, then wait (bounded) until every reading socket has it."""
    t0 = time.monotonic()
    code, version = await changer.status(incident)
    if code != 200 or version is None:
        raise RuntimeError(f"the change was refused: HTTP {code}")
    sent[f"{incident}:{version}"] = t0
    replies = await clients.call({"op": "until", "incident": incident, "seq": version, "timeout": timeout})
    return sum(r["count"] for r in replies), sum(r["expected"] for r in replies)


# --- scenarios ------------------------------------------------------------------------------


async def scenario_fanout(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    sizes = [int(s) for s in args.sizes.split(",")]
    users = min(args.users, max(sizes))
    data = ctx.setup(viewers=users, writers=1, incidents=len(sizes))
    out: dict[str, Any] = {"sizes": {}, "events": args.events, "users": users, "setup_s": data["setup_s"]}
    for size, incident in zip(sizes, data["incidents"], strict=True):
        servers = ctx.servers()
        clients = ctx.clients(sockets_for(servers.ports, data["viewers"], incident, size, min(users, size)))
        try:
            await clients.start({})
            joining = await connect_all(clients, waves=2)
            join_s = joining["join_s"]
            await clients.call({"op": "quiet", "gap": 1.0, "timeout": 120})
            await clients.call({"op": "record", "on": True})
            changer = Changer(servers.ports, data["writers"])
            sent: dict[str, float] = {}
            before = servers.snapshot()
            incomplete = 0
            for _ in range(args.events):
                got, expected = await change_and_wait(changer, clients, incident, sent)
                incomplete += int(got < expected)
                await asyncio.sleep(args.interval)
            after = servers.snapshot()
            final = max(int(k.split(":")[1]) for k in sent)
            collected = await clients.call({"op": "collect", "final": {str(incident): final}})
        finally:
            await clients.stop()
            servers.stop()
        lat = latencies(sent, collected)
        busy = sum(lat["last"]) or float("nan")
        result = {
            "sockets": size,
            "join": joining,
            "all_received_ms": dist_ms(lat["last"]),
            "all_received_each_ms": [round(x * 1000, 1) for x in lat["last"]],
            "first_received_ms": dist_ms(lat["first"]),
            "median_socket_ms": dist_ms(lat["median"]),
            "delivery_ms": dist_ms(lat["each"]),
            "deliveries": lat["deliveries"],
            "expected_deliveries": size * len(sent),
            "deliveries_per_s": round(lat["deliveries"] / busy),
            "changes_not_complete_in_30s": incomplete,
            "integrity": integrity(collected),
            "server": usage_between(before, after),
        }
        out["sizes"][str(size)] = result
        print(f"## fanout: room of {size} ({min(users, size)} users), {len(sent)} changes")
        print(f"- joined in {join_s:.1f} s, {joining['retries']} retries {joining['errors']}")
        print(f"- change → LAST socket: {fmt_dist(result['all_received_ms'])}")
        print(f"- change → first socket: {fmt_dist(result['first_received_ms'])}")
        print(f"- change → median socket: {fmt_dist(result['median_socket_ms'])}")
        print(f"- every delivery: {fmt_dist(result['delivery_ms'])}")
        print(
            f"- deliveries {result['deliveries']} of {result['expected_deliveries']}, "
            f"{result['deliveries_per_s']}/s while a change was in flight"
        )
        print_health(result)
    return out


async def scenario_joinstorm(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    data = ctx.setup(viewers=args.users, writers=1, incidents=1)
    incident = data["incidents"][0]
    servers = ctx.servers()
    sockets = spread(servers, data["viewers"], [incident])
    clients = ctx.clients(sockets)
    options = {"handshake_timeout": args.handshake_timeout, "join_timeout": 60}
    try:
        await clients.start(options)
        servers.start_sampling(1.0)
        before = servers.snapshot()
        # Everyone at once: no batching, every socket of every client process connects now.
        replies = await clients.call({"op": "connect", "timeout": args.deadline}, args.deadline + 60)
        started = min(r["started"] for r in replies)
        acked = [r["last_ack_at"] for r in replies if r["last_ack_at"] is not None]
        all_acked_s = (max(acked) - started) if acked else float("nan")
        failed = sum(r["failed"] for r in replies)
        await clients.call({"op": "record", "on": True})
        changer = Changer(servers.ports, data["writers"])
        sent: dict[str, float] = {}
        got, expected = await change_and_wait(changer, clients, incident, sent, timeout=120)
        quiet = await clients.call({"op": "quiet", "gap": 2.0, "timeout": 120})
        settled_s = max(q["last_frame_at"] for q in quiet) - started
        after = servers.snapshot()
        await servers.stop_sampling()
        final = max(int(k.split(":")[1]) for k in sent)
        collected = await clients.call({"op": "collect", "final": {str(incident): final}})
        alive = servers.alive()
    finally:
        await clients.stop()
        servers.stop()
    lat = latencies(sent, collected)
    join_s = [x for r in replies for x in r["ack_s"]]
    result = {
        "users": args.users,
        "joined": sum(r["ok"] for r in replies),
        "failed": failed,
        "handshake_retries": sum(r["retries"] for r in replies),
        "errors": merge_counts(replies, "errors"),
        "all_acked_s": round(all_acked_s, 2),
        "ack_after_start_ms": dist_ms(join_s),
        "next_change_all_received_ms": round(lat["last"][0] * 1000, 1) if lat["last"] else None,
        "next_change_received": got,
        "next_change_expected": expected,
        "next_change_delivery_ms": dist_ms(lat["each"]),
        "presence_settled_s": round(settled_s, 2),
        "servers_alive": alive,
        "integrity": integrity(collected),
        "server": usage_between(before, after),
        "server_rss_mb_over_time": [
            [round(s["t"] - started, 1), sum(p["rss_mb"] for p in s["procs"])] for s in servers.samples
        ],
    }
    print(f"## joinstorm: {args.users} distinct users join one room at once")
    print(
        f"- all acked: {result['all_acked_s']} s ({result['joined']} joined, {failed} gave up, "
        f"{result['handshake_retries']} retries: {result['errors']})"
    )
    print(f"- each join acked after: {fmt_dist(result['ack_after_start_ms'])}")
    print(
        f"- then one change → all {expected} sockets: {result['next_change_all_received_ms']} ms "
        f"({got} of {expected} received it)"
    )
    print(f"- presence traffic quiet after {result['presence_settled_s']} s")
    print_health(result)
    return result


async def scenario_rooms(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    data = ctx.setup(viewers=args.rooms * args.viewers, writers=args.rooms, incidents=args.rooms)
    incidents = data["incidents"]
    servers = ctx.servers()
    sockets = spread(servers, data["viewers"], incidents)
    clients = ctx.clients(sockets)
    sent: dict[str, float] = {}
    refused: dict[str, int] = {}
    finals: dict[int, int] = {}
    try:
        await clients.start({})
        await connect_all(clients)
        await clients.call({"op": "quiet", "gap": 1.0, "timeout": 120})
        await clients.call({"op": "record", "on": True})
        start = time.monotonic()
        stop_at = start + args.seconds

        async def writer(room: int) -> None:
            changer = Changer(servers.ports, [data["writers"][room]])
            incident = incidents[room]
            for k in range(int(args.rate * args.seconds)):
                target = start + room / (args.rooms * args.rate) + k / args.rate
                if target >= stop_at:
                    break
                await asyncio.sleep(max(0.0, target - time.monotonic()))
                t0 = time.monotonic()
                code, version = await changer.status(incident)
                if code == 200 and version is not None:
                    sent[f"{incident}:{version}"] = t0
                    finals[incident] = max(finals.get(incident, 0), version)
                else:
                    refused[str(code)] = refused.get(str(code), 0) + 1

        before = servers.snapshot()
        await asyncio.gather(*(writer(r) for r in range(args.rooms)))
        writes_done = time.monotonic()
        for incident, final in finals.items():
            await clients.call({"op": "until", "incident": incident, "seq": final, "timeout": 30})
        after = servers.snapshot()
        collected = await clients.call({"op": "collect", "final": {str(k): v for k, v in finals.items()}})
    finally:
        await clients.stop()
        servers.stop()
    lat = latencies(sent, collected)
    all_times = [t for r in collected for times in r["arrivals"].values() for t in times]
    window = (max(all_times) - start) if all_times else float("nan")
    expected = len(sent) * args.viewers
    result = {
        "rooms": args.rooms,
        "viewers_per_room": args.viewers,
        "target_changes_per_s": args.rooms * args.rate,
        "changes": len(sent),
        "changes_per_s": round(len(sent) / (writes_done - start), 1),
        "refused": refused,
        "deliveries": lat["deliveries"],
        "expected_deliveries": expected,
        "deliveries_per_s": round(lat["deliveries"] / window),
        "deliveries_per_s_per_process": round(lat["deliveries"] / window / args.servers),
        "delivery_ms": dist_ms(lat["each"]),
        "all_received_ms": dist_ms(lat["last"]),
        "integrity": integrity(collected),
        "server": usage_between(before, after),
    }
    print(f"## rooms: {args.rooms} rooms x {args.viewers} viewers, {args.rate}/s per room for {args.seconds:.0f} s")
    print(
        f"- changes {len(sent)} ({result['changes_per_s']}/s of {result['target_changes_per_s']} asked), "
        f"refused {refused}"
    )
    print(
        f"- deliveries {lat['deliveries']} of {expected}: {result['deliveries_per_s']}/s, "
        f"{result['deliveries_per_s_per_process']}/s per server process"
    )
    print(f"- every delivery: {fmt_dist(result['delivery_ms'])}")
    print(f"- change → last socket of its room: {fmt_dist(result['all_received_ms'])}")
    print_health(result)
    return result


def cpu_total(sample: dict[str, Any]) -> float:
    return float(sum(p["cpu_s"] for p in sample["procs"]))


async def scenario_idle(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    data = ctx.setup(viewers=args.sockets, writers=1, incidents=args.rooms)
    incidents = data["incidents"]
    servers = ctx.servers()
    sockets = spread(servers, data["viewers"], incidents)
    clients = ctx.clients(sockets)
    try:
        await clients.start({})
        idle_rss = servers.snapshot()
        joining = await connect_all(clients)
        join_s = joining["join_s"]
        await clients.call({"op": "quiet", "gap": 2.0, "timeout": 300})
        servers.start_sampling(1.0)
        before = servers.snapshot()
        await asyncio.sleep(args.seconds)  # the measurement window itself: nothing to wait for
        after = servers.snapshot()
        await servers.stop_sampling()
        collected = await clients.call({"op": "collect", "arrivals": False})
    finally:
        await clients.stop()
        servers.stop()
    result = {
        "sockets": args.sockets,
        "rooms": args.rooms,
        "join": joining,
        "server_rss_mb_before_connections": round(sum(p["rss_mb"] for p in idle_rss), 1),
        "server": usage_between(before, after),
        "cpu_pct_per_second": [
            round(100 * (cpu_total(b) - cpu_total(a)) / max(1e-9, b["t"] - a["t"]), 1)
            for a, b in zip(servers.samples, servers.samples[1:], strict=False)
        ],
        "rss_mb_per_second": [round(sum(p["rss_mb"] for p in s["procs"]), 1) for s in servers.samples],
        "integrity": integrity(collected),
    }
    print(f"## idle: {args.sockets} sockets over {args.rooms} rooms (joined in {join_s:.1f} s)")
    print(f"- idle for {args.seconds:.0f} s")
    print(f"- RSS before any connection: {result['server_rss_mb_before_connections']} MB")
    print_health(result)
    return result


async def scenario_writes(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    data = ctx.setup(viewers=max(1, args.viewers), writers=args.writers, incidents=1)
    incident = data["incidents"][0]
    servers = ctx.servers()
    clients: Clients | None = None
    latencies_s: list[float] = []
    errors: dict[str, int] = {}
    seqs: list[int] = []
    try:
        if args.viewers:
            clients = ctx.clients(sockets_for(servers.ports, data["viewers"], incident, args.viewers, args.viewers))
            await clients.start({})
            await connect_all(clients)
            await clients.call({"op": "quiet", "gap": 1.0, "timeout": 120})
        stop = time.monotonic() + args.seconds

        async def writer(index: int) -> None:
            token = data["writers"][index]
            port = servers.ports[index % len(servers.ports)]
            for n in range(100_000):
                if time.monotonic() >= stop:
                    break
                t0 = time.monotonic()
                code, body = await http_json(
                    port, "POST", f"/api/incidents/{incident}/notes", token, {"body": f"w{index}-{n}"}
                )
                if code == 201:
                    latencies_s.append(time.monotonic() - t0)
                    if isinstance(body, dict) and "seq" in body:
                        seqs.append(int(body["seq"]))
                else:
                    errors[str(code)] = errors.get(str(code), 0) + 1

        before = servers.snapshot()
        started = time.monotonic()
        await asyncio.gather(*(writer(i) for i in range(args.writers)))
        elapsed = time.monotonic() - started
        after = servers.snapshot()
        delivery: dict[str, Any] = {}
        if clients is not None and seqs:
            await clients.call({"op": "until", "incident": incident, "seq": max(seqs), "timeout": 30})
            collected = await clients.call({"op": "collect", "arrivals": False, "final": {str(incident): max(seqs)}})
            delivery = integrity(collected)
    finally:
        if clients is not None:
            await clients.stop()
        servers.stop()
    result = {
        "writers": args.writers,
        "viewers": args.viewers,
        "seconds": args.seconds,
        "accepted": len(latencies_s),
        "accepted_per_s": round(len(latencies_s) / elapsed, 1),
        "errors": errors,
        "seqs_gapless": sorted(seqs) == list(range(min(seqs), max(seqs) + 1)) if seqs else None,
        "request_ms": dist_ms(latencies_s),
        "viewers_integrity": delivery,
        "server": usage_between(before, after),
    }
    print(f"## writes: {args.writers} writers on one incident for {args.seconds:.0f} s, {args.viewers} viewers")
    print(f"- accepted {result['accepted']} ({result['accepted_per_s']}/s), errors {errors}")
    print(f"- request latency: {fmt_dist(result['request_ms'])}")
    if delivery:
        print(f"- viewers: {fmt_integrity(delivery)}")
    print(f"- {fmt_usage(result['server'])}")
    return result


async def scenario_slow(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    users = min(args.users, args.sockets)
    data = ctx.setup(viewers=users, writers=1, incidents=1)
    incident = data["incidents"][0]
    servers = ctx.servers()
    sockets = sockets_for(servers.ports, data["viewers"], incident, args.sockets, users)
    every = max(1, round(100 / args.slow_percent))
    for i, spec in enumerate(sockets):
        if i % every == every - 1:
            spec["slow"] = True
            spec["rcvbuf"] = 4096  # a small receive window: the backlog reaches the server sooner
    slow_count = sum(1 for s in sockets if s.get("slow"))
    clients = ctx.clients(sockets)
    body = "x" * args.note_bytes
    phases: dict[str, Any] = {}
    try:
        await clients.start({})
        await connect_all(clients, waves=2)
        await clients.call({"op": "quiet", "gap": 1.0, "timeout": 120})
        servers.start_sampling(1.0)
        t_start = time.monotonic()
        for phase in ("all_reading", "slow_stopped"):
            if phase == "slow_stopped":
                await clients.call({"op": "pause", "on": True})
            await clients.call({"op": "record", "on": True})
            sent: dict[str, float] = {}
            before = servers.snapshot()
            incomplete = 0
            for n in range(args.events):
                t0 = time.monotonic()
                code, reply = await http_json(
                    servers.ports[n % len(servers.ports)],
                    "POST",
                    f"/api/incidents/{incident}/notes",
                    data["writers"][0],
                    {"body": body},
                )
                if code != 201 or not isinstance(reply, dict):
                    raise RuntimeError(f"note refused: HTTP {code}")
                seq = int(reply["seq"])
                sent[f"{incident}:{seq}"] = t0
                replies = await clients.call({"op": "until", "incident": incident, "seq": seq, "timeout": 30})
                incomplete += int(sum(r["count"] for r in replies) < sum(r["expected"] for r in replies))
            after = servers.snapshot()
            collected = await clients.call({"op": "collect"})
            lat = latencies(sent, collected)
            phases[phase] = {
                "changes": len(sent),
                "all_received_ms": dist_ms(lat["last"]),
                "delivery_ms": dist_ms(lat["each"]),
                "changes_not_complete_in_30s": incomplete,
                "server": usage_between(before, after),
            }
        await servers.stop_sampling()
        # Read again: what did the slow sockets get, and were they closed by the server?
        await clients.call({"op": "pause", "on": False})
        await clients.call({"op": "quiet", "gap": 2.0, "timeout": 60})
        final = max(int(k.split(":")[1]) for k in sent)
        collected = await clients.call({"op": "collect", "arrivals": False, "final": {str(incident): final}})
    finally:
        await clients.stop()
        servers.stop()
    a, b = phases["all_reading"], phases["slow_stopped"]
    p99_a, p99_b = a["delivery_ms"]["p99"], b["delivery_ms"]["p99"]
    result = {
        "sockets": args.sockets,
        "slow_sockets": slow_count,
        "note_bytes": args.note_bytes,
        "phases": phases,
        "readers_delivery_p99_change_pct": round(100 * (p99_b - p99_a) / p99_a, 1) if p99_a and p99_b else None,
        "slow": {k: sum(r["slow"][k] for r in collected) for k in ("sockets", "received", "closed", "lost")},
        "integrity": integrity(collected),
        "server_rss_mb_over_time": [
            [round(s["t"] - t_start, 1), sum(p["rss_mb"] for p in s["procs"])] for s in servers.samples
        ],
    }
    print(f"## slow: room of {args.sockets}, {slow_count} stop reading; {args.events} notes of {args.note_bytes} B")
    for name, phase in phases.items():
        print(f"- {name}: readers' deliveries {fmt_dist(phase['delivery_ms'])}")
        print(f"  change → last reader {fmt_dist(phase['all_received_ms'])}; {fmt_usage(phase['server'])}")
    print(f"- readers' p99 change: {result['readers_delivery_p99_change_pct']}%")
    print(f"- slow sockets: {result['slow']} (closed = closed by the server)")
    rss = [r for _, r in result["server_rss_mb_over_time"]]
    if rss:
        print(f"- server RSS over the phases: {rss[0]} → {max(rss)} (max) → {rss[-1]} MB")
    print(f"- readers: {fmt_integrity(result['integrity'])}")
    return result


SCENARIOS = {
    "fanout": scenario_fanout,
    "joinstorm": scenario_joinstorm,
    "rooms": scenario_rooms,
    "idle": scenario_idle,
    "writes": scenario_writes,
    "slow": scenario_slow,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--stack", choices=["embedded", "production"], default="embedded")
    parser.add_argument("--servers", type=int, default=1, help="daphne processes (production stack: 2 to scale out)")
    parser.add_argument("--tree", help="serve the code of this checkout (default: this one)")
    parser.add_argument("--python", help="the tree's interpreter (default: TREE/.venv/bin/python if present)")
    parser.add_argument("--label", help="a name for this tree in the results (default: its commit)")
    parser.add_argument("--out", help="the JSON result file (default: .bench-results/<time>-<scenario>.json)")
    parser.add_argument("--pin", choices=["auto", "none"], default="auto")
    parser.add_argument("--client-procs", type=int, default=2, help="load-client processes")
    parser.add_argument(
        "--autogroup-nice",
        type=int,
        help="give this run's processes (its session's autogroup) this nice value; see docs/benchmarks.md",
    )
    # fanout / slow
    parser.add_argument("--sizes", default="100,1000,5000", help="fanout: room sizes, comma-separated")
    parser.add_argument("--events", type=int, default=None, help="fanout/slow: changes per room (20) / per phase (100)")
    parser.add_argument("--interval", type=float, default=0.1, help="fanout: pause between changes (s)")
    parser.add_argument("--users", type=int, default=None, help="distinct users (fanout/slow: 50; joinstorm: 1000)")
    # joinstorm
    parser.add_argument("--handshake-timeout", type=float, default=30, help="joinstorm: a handshake dropped after")
    parser.add_argument("--deadline", type=float, default=300, help="joinstorm: a socket gives up joining after")
    # rooms / idle / writes
    parser.add_argument("--rooms", type=int, default=None, help="rooms: 50; idle: 100")
    parser.add_argument("--viewers", type=int, default=None, help="rooms: per room (20); writes: in the room (0)")
    parser.add_argument("--rate", type=float, default=5, help="rooms: changes per second per room")
    parser.add_argument("--seconds", type=float, default=None, help="rooms: 60; idle: 45; writes: 10")
    parser.add_argument("--sockets", type=int, default=None, help="idle: 5000; slow: 1000")
    parser.add_argument("--writers", type=int, default=8, help="writes: concurrent REST writers")
    parser.add_argument("--slow-percent", type=float, default=5, help="slow: share of sockets that stop reading")
    parser.add_argument("--note-bytes", type=int, default=4000, help="slow: size of each note")
    args = parser.parse_args(argv)
    defaults = {
        "fanout": {"users": 50, "events": 20},
        "slow": {"users": 50, "sockets": 1000, "events": 100},
        "joinstorm": {"users": 1000},
        "rooms": {"rooms": 50, "viewers": 20, "seconds": 60},
        "idle": {"rooms": 100, "seconds": 45, "sockets": 5000},
        "writes": {"seconds": 10, "viewers": 0},
    }[args.scenario]
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.stack == "embedded" and args.servers != 1:
        parser.error("the embedded default is one process (in-memory channel layer): use --servers 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_fd_limit()
    if args.autogroup_nice is not None:
        # With autogroups on, the scheduler shares a CPU between sessions first, so other sessions'
        # `nice -n 10` does not make them yield to this one; an autogroup nice does (root only below 0).
        with contextlib.suppress(OSError):  # already a session (or group) leader: its autogroup it is
            os.setsid()
        Path("/proc/self/autogroup").write_text(str(args.autogroup_nice))
    ctx = Context(args)
    result = ctx.header(args.scenario)
    result["autogroup"] = Path("/proc/self/autogroup").read_text().strip()
    print(
        f"# {args.scenario} · {args.stack} stack · {args.servers} daphne process(es) · tree {result['tree']['path']} "
        f"({result['tree']['commit']}) · load {result['machine_before']['loadavg']}"
    )
    try:
        result["result"] = asyncio.run(SCENARIOS[args.scenario](ctx))
    finally:
        ctx.cleanup()
    result["machine_after"] = machine()
    path = write_result(result, args.out, args.scenario)
    print(f"(load average after: {result['machine_after']['loadavg']}; JSON: {path})")


if __name__ == "__main__":
    main()

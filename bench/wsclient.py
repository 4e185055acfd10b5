"""A lean WebSocket load client: thousands of sockets in one process, driven over stdin/stdout.

bench/live.py starts one or more of these (`python -m bench.wsclient`) and
sends each a JSON line per command; each command gets one JSON line back.
The client speaks just enough RFC 6455 itself (an asyncio Protocol per
socket, frames parsed by hand, masked client frames, pongs to the server's
pings) so that a socket costs little more than the kernel's work. It reads of
each server push only what it counts:

- `incident:updated`: its `seq` (the top-level and the event's `seq` are the
  same number), checked against a full JSON parse on one socket in each
  process (`parse_mismatch` must stay 0);
- every other push is counted by `type` (presence shapes differ between
  versions of the server and are not interpreted);
- replies (`ack`, `error`) are parsed in full.

Per socket it records the seqs it saw, so `lost` (seqs in the expected range
never received), `dup` (received twice) and `out_of_order` are exact.

Commands: init, connect, record, until, quiet, pause, collect, close, exit.
"""

import asyncio
import functools
import json
import os
import random
import re
import socket
import sys
import time
from base64 import b64encode
from typing import Any, cast

TYPE_RE = re.compile(rb'"type":\s*"([a-zA-Z]+:[a-zA-Z]+)"')
SEQ_RE = re.compile(rb'"seq":\s*(\d+)')
UPDATED = b"incident:updated"


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked, unfragmented client frame (clients must mask, RFC 6455 §5.3)."""
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    return header + mask + masked


class HandshakeFailed(Exception):
    pass


class Conn(asyncio.Protocol):
    """One WebSocket: its handshake, its frames, and what it received."""

    def __init__(self, owner: "Client", spec: dict[str, Any], port: int, validate: bool) -> None:
        self.owner = owner
        self.spec = spec
        self.port = port
        self.incident: int = spec["incident"]
        self.validate = validate
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.fragments = bytearray()
        self.open = False
        self.closed = False
        self.close_code: int | None = None
        self.loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = self.loop.create_future()
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 0
        self.start_seq = 0  # the version in the join ack: everything above it is expected
        self.seen: set[int] = set()
        self.max_seq = 0
        self.dup = 0
        self.out_of_order = 0
        self.paused = False
        self.slow = bool(spec.get("slow"))

    # --- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        key = b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.spec['token']}\r\n\r\n"
        )
        self.transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        was_open = self.open
        self.closed = True
        self.open = False
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeFailed("closed during handshake"))
        for future in self.replies.values():
            if not future.done():
                future.set_exception(ConnectionError("closed before the reply"))
        if was_open and not self.owner.closing:
            self.owner.counts["closed_by_server" if not self.paused else "slow_closed"] += 1

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.open:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                if not self.handshake.done():
                    self.handshake.set_exception(HandshakeFailed(head.split(b"\r\n", 1)[0].decode(errors="replace")))
                if self.transport is not None:
                    self.transport.close()
                return
            self.open = True
            self.handshake.set_result(None)
            if not self.buf:
                return
            data = b""
        if self.buf:
            self.buf += data
            view = self.buf
        else:
            view = bytearray(data)
            self.buf = view
        self.owner.bytes_in += len(data)
        i = self._parse(view, now)
        if i:
            del view[:i]

    # --- frames -----------------------------------------------------------------------
    def _parse(self, data: bytearray, now: float) -> int:
        n = len(data)
        i = 0
        while n - i >= 2:
            b0, b1 = data[i], data[i + 1] & 0x7F
            if b1 < 126:
                h, length = 2, b1
            elif b1 == 126:
                if n - i < 4:
                    break
                h, length = 4, int.from_bytes(data[i + 2 : i + 4], "big")
            else:
                if n - i < 10:
                    break
                h, length = 10, int.from_bytes(data[i + 2 : i + 10], "big")
            end = i + h + length
            if end > n:
                break
            opcode = b0 & 0x0F
            payload = bytes(data[i + h : end])
            if opcode in (0, 1, 2):
                if not b0 & 0x80:  # a fragment: keep it until the final one
                    self.fragments += payload
                elif opcode == 0:
                    self.on_message(bytes(self.fragments + payload), now)
                    self.fragments.clear()
                else:
                    self.on_message(payload, now)
            elif opcode == 9:  # ping: answer at once (daphne closes sockets that do not)
                self.send(client_frame(10, payload))
                self.owner.counts["pings"] += 1
            elif opcode == 8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.owner.counts[f"close_{self.close_code}"] = self.owner.counts.get(f"close_{self.close_code}", 0) + 1
                self.send(client_frame(8, payload[:2]))
                if self.transport is not None:
                    self.transport.close()
            i = end
        return i

    def on_message(self, payload: bytes, now: float) -> None:
        owner = self.owner
        owner.frames += 1
        match = TYPE_RE.search(payload)
        if match is None:  # a reply (ack or error): parse it whole
            message = json.loads(payload)
            kind = message.get("type")
            owner.counts[str(kind)] = owner.counts.get(str(kind), 0) + 1
            future = self.replies.pop(message.get("id"), None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        kind_bytes = match.group(1)
        if kind_bytes == UPDATED:
            seq_match = SEQ_RE.search(payload)
            assert seq_match is not None, payload[:200]
            seq = int(seq_match.group(1))
            if self.validate:
                message = json.loads(payload)
                if message.get("type") != "incident:updated" or message.get("seq") != seq:
                    owner.counts["parse_mismatch"] = owner.counts.get("parse_mismatch", 0) + 1
            owner.updated += 1
            if self.slow:  # counted apart: the scenarios measure the sockets that keep reading
                self.seen.add(seq)
                return
            if seq in self.seen:
                self.dup += 1
                return
            if seq < self.max_seq:
                self.out_of_order += 1
            else:
                self.max_seq = seq
            self.seen.add(seq)
            if owner.recording:
                owner.arrivals.setdefault(f"{self.incident}:{seq}", []).append(now)
            key = (self.incident, seq)
            owner.reached[key] = owner.reached.get(key, 0) + 1
            return
        kind = kind_bytes.decode()
        owner.counts[kind] = owner.counts.get(kind, 0) + 1
        if kind.startswith("presence:"):
            owner.presence_bytes += len(payload)

    def send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    async def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.next_id += 1
        message = {**message, "id": self.next_id}
        future: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self.replies[self.next_id] = future
        self.send(client_frame(1, json.dumps(message).encode()))
        return await asyncio.wait_for(future, timeout)


class Client:
    """The sockets of this process and the commands that drive them."""

    def __init__(self) -> None:
        self.specs: list[dict[str, Any]] = []
        self.options: dict[str, Any] = {}
        self.conns: dict[int, Conn] = {}  # index in specs -> its live connection
        self.counts: dict[str, int] = {"pings": 0, "closed_by_server": 0, "slow_closed": 0}
        self.recording = False
        self.arrivals: dict[str, list[float]] = {}  # "incident:seq" -> arrival times
        self.reached: dict[tuple[int, int], int] = {}
        self.frames = 0
        self.updated = 0
        self.bytes_in = 0
        self.presence_bytes = 0
        self.closing = False

    # --- connecting ---------------------------------------------------------------
    async def open_one(self, index: int, deadline: float) -> dict[str, Any]:
        """Connect and join, retrying a dropped handshake (or a join with no answer) with backoff."""
        spec = self.specs[index]
        loop = asyncio.get_running_loop()
        opts = self.options
        # The web page's own client (static/js/live.js): a ceiling of 0.5 s doubling up to 15 s,
        # and a delay drawn from its upper half, so a restarted server is not hit by everyone at once.
        base, ceiling_max = float(opts.get("backoff_base", 0.5)), float(opts.get("backoff_max", 15))
        errors: list[str] = []
        started = time.monotonic()
        for attempt in range(1, int(opts.get("max_attempts", 1000)) + 1):
            port = spec["port"]
            conn: Conn | None = None
            try:
                factory = functools.partial(Conn, self, spec, port, index == 0)
                remaining = max(0.1, deadline - time.monotonic())
                if spec.get("rcvbuf"):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(spec["rcvbuf"]))
                    sock.setblocking(False)
                    try:
                        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), remaining)
                    except BaseException:
                        sock.close()
                        raise
                    _, live = await loop.create_connection(factory, sock=sock)
                else:
                    _, live = await asyncio.wait_for(
                        loop.create_connection(factory, "127.0.0.1", port),
                        min(remaining, float(opts.get("handshake_timeout", 10))),
                    )
                conn = live
                await asyncio.wait_for(live.handshake, min(remaining, float(opts.get("handshake_timeout", 10))))
                sent = time.monotonic()
                ack = await live.request(
                    {"type": "incident:join", "incident": spec["incident"]},
                    min(max(0.1, deadline - time.monotonic()), float(opts.get("join_timeout", 60))),
                )
                if ack.get("type") != "ack":
                    raise HandshakeFailed(f"join: {ack.get('code')}")
                live.start_seq = int(ack.get("version") or 0)
                live.max_seq = live.start_seq
                self.conns[index] = live
                acked = time.monotonic()
                return {
                    "ok": True,
                    "attempts": attempt,
                    "ack_s": acked - started,
                    "join_s": acked - sent,
                    "acked_at": acked,
                    "errors": errors,
                }
            except (OSError, TimeoutError, HandshakeFailed, ConnectionError, ValueError) as exc:
                errors.append(type(exc).__name__ + (f": {exc}" if str(exc) else ""))
                if conn is not None and conn.transport is not None:
                    conn.transport.abort()
                ceiling = min(ceiling_max, base * 2 ** (attempt - 1))
                delay = ceiling / 2 + random.random() * ceiling / 2
                if time.monotonic() + delay > deadline:
                    break
                await asyncio.sleep(delay)
        return {"ok": False, "attempts": len(errors), "errors": errors}

    async def cmd_connect(self, msg: dict[str, Any]) -> dict[str, Any]:
        wave = msg.get("wave")
        indices = [i for i, s in enumerate(self.specs) if wave is None or s.get("wave", 0) == wave]
        deadline = time.monotonic() + float(msg.get("timeout", 180))
        limit = msg.get("concurrency")
        semaphore = asyncio.Semaphore(int(limit)) if limit else None

        async def one(index: int) -> dict[str, Any]:
            if semaphore is None:
                return await self.open_one(index, deadline)
            async with semaphore:
                return await self.open_one(index, deadline)

        started = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in indices))
        errors: dict[str, int] = {}
        for r in results:
            for e in r["errors"]:
                short = e.split(":", 1)[0] if "HTTP" not in e else e
                errors[short] = errors.get(short, 0) + 1
        ok = [r for r in results if r["ok"]]
        return {
            "started": started,
            "ok": len(ok),
            "failed": len(results) - len(ok),
            "retries": sum(r["attempts"] - 1 for r in ok) + sum(r["attempts"] for r in results if not r["ok"]),
            "errors": errors,
            "ack_s": [round(r["ack_s"], 4) for r in ok],
            "join_s": [round(r["join_s"], 4) for r in ok],
            "last_ack_at": max((r["acked_at"] for r in ok), default=None),
        }

    # --- measuring ----------------------------------------------------------------------
    def live_count(self, incident: int) -> int:
        return sum(1 for c in self.conns.values() if c.incident == incident and not c.closed and not c.slow)

    async def cmd_until(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Wait until every reading socket of the room has `seq` (or the timeout): bounded polling."""
        incident, seq = int(msg["incident"]), int(msg["seq"])
        expected = self.live_count(incident)
        deadline = time.monotonic() + float(msg.get("timeout", 30))
        while self.reached.get((incident, seq), 0) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
            expected = self.live_count(incident)
        return {"count": self.reached.get((incident, seq), 0), "expected": expected}

    async def cmd_quiet(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Wait until no frame has arrived for `gap` seconds (bounded by `timeout`)."""
        gap, deadline = float(msg.get("gap", 1.0)), time.monotonic() + float(msg.get("timeout", 60))
        last_frames, last_change = self.frames, time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if self.frames != last_frames:
                last_frames, last_change = self.frames, time.monotonic()
            elif time.monotonic() - last_change >= gap:
                return {"quiet": True, "last_frame_at": last_change}
        return {"quiet": False, "last_frame_at": last_change}

    def cmd_record(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.recording = bool(msg.get("on", True))
        if msg.get("reset", True):
            self.arrivals = {}
        return {}

    def cmd_pause(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Stop (or resume) reading on the sockets marked `slow`: the server's sends back up."""
        count = 0
        for index, conn in self.conns.items():
            if self.specs[index].get("slow") and conn.transport is not None and not conn.closed:
                if msg.get("on", True):
                    conn.transport.pause_reading()
                    conn.paused = True
                else:
                    conn.transport.resume_reading()
                count += 1
        return {"sockets": count}

    def cmd_collect(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Arrival times per seq, and exact loss/duplicate counts against each room's final seq."""
        finals = {int(k): int(v) for k, v in msg.get("final", {}).items()}
        lost = dup = out_of_order = 0
        slow = {"sockets": 0, "received": 0, "closed": 0, "lost": 0}
        for index, conn in self.conns.items():
            final = finals.get(conn.incident)
            missing = 0
            if final is not None:
                missing = sum(1 for s in range(conn.start_seq + 1, final + 1) if s not in conn.seen)
            if self.specs[index].get("slow"):
                slow["sockets"] += 1
                slow["received"] += len(conn.seen)
                slow["closed"] += int(conn.closed)
                slow["lost"] += missing
                continue
            lost += missing
            dup += conn.dup
            out_of_order += conn.out_of_order
        return {
            "arrivals": {k: [round(t, 6) for t in v] for k, v in self.arrivals.items()}
            if msg.get("arrivals", True)
            else {},
            "sockets": len(self.conns),
            "open": sum(1 for c in self.conns.values() if not c.closed),
            "lost": lost,
            "dup": dup,
            "out_of_order": out_of_order,
            "slow": slow,
            "frames": self.frames,
            "updated": self.updated,
            "bytes_in": self.bytes_in,
            "presence_bytes": self.presence_bytes,
            "counts": self.counts,
            "cpu_s": round(time.process_time(), 2),
        }

    async def cmd_close(self) -> dict[str, Any]:
        self.closing = True
        for conn in self.conns.values():
            if conn.transport is not None and not conn.closed:
                conn.send(client_frame(8, (1000).to_bytes(2, "big")))
                conn.transport.close()
        await asyncio.sleep(0.2)
        return {}


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = Client()
    for _ in range(100_000):  # bounded: far more commands than any scenario sends
        line = await reader.readline()
        if not line:
            break
        msg = json.loads(line)
        op = msg["op"]
        reply: dict[str, Any]
        if op == "init":
            client.specs = msg["sockets"]
            client.options = {k: v for k, v in msg.items() if k not in ("op", "sockets")}
            reply = {"sockets": len(client.specs)}
        elif op == "connect":
            reply = await client.cmd_connect(msg)
        elif op == "until":
            reply = await client.cmd_until(msg)
        elif op == "quiet":
            reply = await client.cmd_quiet(msg)
        elif op == "record":
            reply = client.cmd_record(msg)
        elif op == "pause":
            reply = client.cmd_pause(msg)
        elif op == "collect":
            reply = client.cmd_collect(msg)
        elif op == "close":
            reply = await client.cmd_close()
        elif op == "exit":
            await client.cmd_close()
            break
        else:
            reply = {"error": f"unknown op {op}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())

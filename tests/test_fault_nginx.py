"""Two daphne processes behind a real nginx (configured as DEPLOYMENT.md says); one is killed mid-stream.

Its clients' sockets drop; they reconnect through nginx, land on the other
process, rejoin with `after` and lose nothing (by seq); a writer that was
talking to the dead process retries with its idempotency key, so nothing is
written twice either. A viewer of the dead process that does not come back
leaves presence within the documented bound (TTL + refresh; 6 + 2 s here).
"""

import asyncio
import json
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from websockets.asyncio.client import ClientConnection, connect

from accounts.models import User
from incidents.models import AuditEvent
from tests.faults import WAIT, Nginx, ReplayingClient, http_json, nginx_binary
from tests.servers import DaphneServer
from tests.ws_support import access_token, create_incident, run_sync

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed (apt-get install nginx)"),
]

TTL, REFRESH = 6, 2
NOTES = 12


@pytest.fixture
def stack() -> Iterator[tuple[Nginx, DaphneServer, DaphneServer]]:
    one, two = (DaphneServer(PRESENCE_TTL_SECONDS=str(TTL), PRESENCE_REFRESH_SECONDS=str(REFRESH)) for _ in range(2))
    try:
        one.start()
        two.start()
        with Nginx([one.port, two.port]) as nginx:
            yield nginx, one, two
    finally:
        one.kill()
        two.stop()


async def open_socket(url: str, origin: str, user: User) -> ClientConnection:
    return await connect(
        url,
        additional_headers={"Authorization": f"Bearer {access_token(user)}"},
        origin=origin,  # type: ignore[arg-type]
        open_timeout=WAIT,
    )


async def join(connection: ClientConnection, incident: int) -> dict[str, Any]:
    await connection.send(json.dumps({"type": "incident:join", "id": "join", "incident": incident}))
    while True:
        message = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
        if message.get("id") == "join":
            assert message["type"] == "ack", message
            return dict(message)


async def next_left(connection: ClientConnection, user: User, timeout: float) -> dict[str, Any]:
    """The first presence:left that names the user (alone, or among a coalesced burst's `users`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(connection.recv(), max(0.01, deadline - loop.time())))
        if message.get("type") == "presence:left":
            named = [message.get("user"), *message.get("users", [])]
            if any(ref and ref["id"] == user.pk for ref in named):
                return dict(message)


def write_notes(nginx: Nginx, user: User, incident: int, started: Any) -> list[int]:
    """NOTES notes through nginx, each retried with its idempotency key while nginx cannot reach a process."""
    seqs = []
    token = access_token(user)
    url = f"{nginx.url}/api/incidents/{incident}/notes"
    for i in range(NOTES):
        for _ in range(50):
            try:
                status, _, body = http_json("POST", url, token, {"body": f"mid-stream {i}"}, key=f"mid-{incident}-{i}")
            except OSError:
                status, body = 0, "connection failed"
            if status == 201:
                seqs.append(body["seq"])
                break
            assert status in (0, 502, 503, 504), (status, body)  # the process died under it: retry, same key
            time.sleep(0.2)
        else:
            raise AssertionError(f"note {i} was never accepted")
        if i == 3:
            started.set()
    return seqs


async def test_a_killed_daphne_behind_nginx_loses_no_update_and_its_viewer_leaves_presence(
    stack: tuple[Nginx, DaphneServer, DaphneServer], users: dict[str, User], make_user: Any, responder: User
) -> None:
    nginx, one, two = stack
    incident = (await run_sync(create_incident, responder)).pk
    origin = nginx.url

    # People through nginx, spread over both processes by its round robin.
    clients = [
        ReplayingClient(nginx.ws_url, origin, access_token(user), incident).start()
        for user in [*users.values(), *users.values()]
    ]
    try:
        for client in clients:
            await client.until(lambda c: c.joined_now, what="the first join")
        on_one = [c for c in clients if c.upstreams[-1] == f"127.0.0.1:{one.port}"]
        assert on_one and len(on_one) < len(clients), [c.upstreams for c in clients]

        # One viewer on the first process who will not come back, and someone watching from the second.
        gone = await run_sync(make_user, "viewer", "laptop-closed")
        gone_socket = await open_socket(one.ws_url, f"http://127.0.0.1:{one.port}", gone)
        await join(gone_socket, incident)
        watcher = await open_socket(two.ws_url, f"http://127.0.0.1:{two.port}", users["admin"])
        ack = await join(watcher, incident)
        assert gone.pk in {u["id"] for u in ack["viewers"]}

        started = asyncio.Event()
        loop = asyncio.get_running_loop()

        class Started:
            def set(self) -> None:
                loop.call_soon_threadsafe(started.set)

        writer = asyncio.create_task(asyncio.to_thread(write_notes, nginx, responder, incident, Started()))
        await asyncio.wait_for(started.wait(), WAIT)
        killed_at = time.monotonic()
        await asyncio.to_thread(one.kill)  # SIGKILL, mid-stream

        seqs = await asyncio.wait_for(writer, 4 * WAIT)
        assert seqs == list(range(2, NOTES + 2))  # each note once, in order, whatever process took it
        final = seqs[-1]

        for client in clients:
            await client.until(lambda c: c.last_seq == final, timeout=2 * WAIT, what=f"seq {final}")
        expected = await run_sync(lambda: [e.as_data() for e in AuditEvent.objects.filter(incident_id=incident)])
        for client in clients:
            print(f"\n{client!r}")
            assert client.timeline == expected, client
            assert client.duplicates == 0, client
        for client in on_one:
            assert client.upstreams[-1] == f"127.0.0.1:{two.port}", client  # came back through nginx to the live one

        await next_left(watcher, gone, TTL + REFRESH + WAIT)
        elapsed = time.monotonic() - killed_at
        print(f"\npresence:left for the dead process's viewer {elapsed:.1f} s after the kill (bound {TTL + REFRESH} s)")
        newcomer = await open_socket(nginx.ws_url, origin, users["viewer"])
        viewers = (await join(newcomer, incident))["viewers"]
        assert {u["id"] for u in viewers} == {u.pk for u in users.values()}  # everyone but the one who is gone
        await newcomer.close()

        out = StringIO()
        await run_sync(call_command, "verify_audit", str(incident), stdout=out)
        assert "intact for 1 incident" in out.getvalue()
        await watcher.close()
    finally:
        for client in clients:
            await client.stop()

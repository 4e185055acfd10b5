"""Redis restarted, and Redis flushed, while people are connected: nothing is lost.

A redis-server of the test's own (never the machine's shared one) behind a
real daphne process. Sockets either survive or close with a code that makes a
client reconnect; REST writes commit while Redis is down (the broadcast
failure is only logged); every client ends with the whole timeline, each seq
once, by the server's gap filling and by rejoining with `after`.
"""

import asyncio
import json
import os
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from websockets.asyncio.client import connect

from accounts.models import User
from incidents.models import AuditEvent
from tests.faults import WAIT, RedisServer, ReplayingClient, http_json
from tests.servers import DaphneServer
from tests.ws_support import access_token, create_incident, run_sync

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

PREFIX = f"fault-redis-{os.getpid()}"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def daphne(redis_server: RedisServer) -> Iterator[DaphneServer]:
    server = DaphneServer(
        REDIS_URL=redis_server.url,
        REDIS_PREFIX=PREFIX,
        PRESENCE_TTL_SECONDS="4",
        PRESENCE_REFRESH_SECONDS="1",
    )
    with server:
        yield server


async def note(server: DaphneServer, user: User, incident: int, body: str) -> tuple[int, Any]:
    status, _, answer = await asyncio.to_thread(
        http_json, "POST", f"{server.url}/api/incidents/{incident}/notes", access_token(user), {"body": body}
    )
    return status, answer


def stored_timeline(incident: int) -> list[dict[str, Any]]:
    return [e.as_data() for e in AuditEvent.objects.filter(incident_id=incident).order_by("seq")]


async def people(daphne: DaphneServer, users: dict[str, User], incident: int) -> list[ReplayingClient]:
    clients = [
        ReplayingClient(daphne.ws_url, f"http://127.0.0.1:{daphne.port}", access_token(user), incident).start()
        for user in users.values()
    ]
    for client in clients:
        await client.until(lambda c: c.joined_now and c.last_seq == 1, what="the first join")
    return clients


async def ends_whole(clients: list[ReplayingClient], daphne: DaphneServer, responder: User, incident: int) -> None:
    """Changes keep coming after the fault: every client must end with the whole timeline, each seq once.

    A socket that survived learns what it missed from the next change it is
    sent (the server fills the gap); one whose room membership was lost with
    Redis gets it back within PRESENCE_REFRESH_SECONDS (1 s here). So the
    test writes one more note at a time, until all have caught up (bounded).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2 * WAIT
    while True:
        status, answer = await note(daphne, responder, incident, "all clear?")
        assert status == 201, answer
        final = answer["seq"]
        try:
            for client in clients:
                left = max(0.1, min(3.0, deadline - loop.time()))
                await client.until(lambda c, final=final: c.last_seq == final, timeout=left, what=f"seq {final}")
            break
        except AssertionError:
            if loop.time() > deadline:
                raise
    expected = await run_sync(stored_timeline, incident)
    assert [e["seq"] for e in expected] == list(range(1, final + 1))
    for client in clients:
        print(f"\n{client!r}")  # how each socket lived through it: shown with -s or on failure
        assert client.timeline == expected, client
        assert client.duplicates == 0, client
        assert 4401 not in client.closes, client  # nothing told a client to stop trying
    out = StringIO()
    await run_sync(call_command, "verify_audit", str(incident), stdout=out)
    assert "intact for 1 incident" in out.getvalue()


async def test_redis_restarted_while_people_are_connected_loses_nothing(
    redis_server: RedisServer, daphne: DaphneServer, users: dict[str, User], responder: User
) -> None:
    incident = (await run_sync(create_incident, responder)).pk
    clients = await people(daphne, users, incident)
    try:
        status, _ = await note(daphne, responder, incident, "before")
        assert status == 201
        for client in clients:
            await client.until(lambda c: c.last_seq == 2, what="seq 2")

        await asyncio.to_thread(redis_server.stop)
        # Writes commit while Redis is down; their broadcasts are lost.
        during = [await note(daphne, responder, incident, f"while Redis is down {i}") for i in range(3)]
        assert [(status, answer["seq"]) for status, answer in during] == [(201, 3), (201, 4), (201, 5)], during
        await asyncio.to_thread(redis_server.start)

        await ends_whole(clients, daphne, responder, incident)
    finally:
        for client in clients:
            await client.stop()


async def test_redis_flushed_while_people_are_connected_loses_nothing(
    redis_server: RedisServer, daphne: DaphneServer, users: dict[str, User], responder: User
) -> None:
    incident = (await run_sync(create_incident, responder)).pk
    clients = await people(daphne, users, incident)
    try:
        await asyncio.to_thread(redis_server.command, "FLUSHALL")
        # Group memberships and presence are gone; these broadcasts may reach nobody.
        during = [await note(daphne, responder, incident, f"after the flush {i}") for i in range(3)]
        assert [status for status, _ in during] == [201, 201, 201], during

        await ends_whole(clients, daphne, responder, incident)
        # Presence came back too: a newcomer sees everyone.
        viewers = await presence_after_join(daphne, responder, incident)
        assert {user["id"] for user in viewers} == {user.pk for user in users.values()}
    finally:
        for client in clients:
            await client.stop()


async def presence_after_join(daphne: DaphneServer, user: User, incident: int) -> list[Any]:
    async with connect(
        daphne.ws_url,
        additional_headers={"Authorization": f"Bearer {access_token(user)}"},
        origin=f"http://127.0.0.1:{daphne.port}",  # type: ignore[arg-type]
        open_timeout=WAIT,
    ) as connection:
        await connection.send(json.dumps({"type": "incident:join", "id": 1, "incident": incident}))
        while True:
            message = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
            if message.get("id") == 1:
                assert message["type"] == "ack", message
                return list(message["viewers"])

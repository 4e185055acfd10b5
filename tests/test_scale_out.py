"""Two daphne processes sharing PostgreSQL and Redis behave as one server; a killed one's viewers expire.

Real processes, real sockets (the `websockets` client, as a bot would connect),
a short presence TTL (6 s, refreshed every 2 s) so the expiry is seen in
seconds; docs/protocol.md shows the default 30 s / 10 s meets the contract's
60 s bound the same way (worst case TTL + refresh = 40 s).
"""

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from accounts.models import User
from incidents.models import Incident
from tests.servers import DaphneServer
from tests.ws_support import ProtocolClient, access_token, create_incident, run_sync

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

TTL, REFRESH = 6, 2
WAIT = 10.0


class Client(ProtocolClient):
    """A bot's socket over the network: Bearer token and Origin in the handshake."""

    def __init__(self, connection: ClientConnection) -> None:
        super().__init__()
        self.connection = connection

    async def _next(self, timeout: float) -> dict[str, Any]:
        return dict(json.loads(await asyncio.wait_for(self.connection.recv(), timeout)))

    async def send_raw(self, text: str) -> None:
        await self.connection.send(text)


@pytest.fixture
def servers() -> Iterator[tuple[DaphneServer, DaphneServer]]:
    one, two = (DaphneServer(PRESENCE_TTL_SECONDS=str(TTL), PRESENCE_REFRESH_SECONDS=str(REFRESH)) for _ in range(2))
    try:
        one.start()
        two.start()
        yield one, two
    finally:
        one.kill()
        two.stop()


@pytest.fixture
async def open_client() -> AsyncIterator[Any]:
    opened: list[ClientConnection] = []

    async def open_(server: DaphneServer, user: User) -> Client:
        connection = await connect(
            server.ws_url,
            additional_headers={"Authorization": f"Bearer {access_token(user)}"},
            origin=f"http://127.0.0.1:{server.port}",  # type: ignore[arg-type]
            open_timeout=WAIT,
        )
        opened.append(connection)
        return Client(connection)

    yield open_
    for connection in opened:
        await connection.close()


def rest_post(server: DaphneServer, user: User, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (our own test server)
        f"{server.url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {access_token(user)}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310
        return dict(json.loads(response.read()))


@pytest.fixture
def incident(responder: User) -> Incident:
    return create_incident(responder)


async def test_two_processes_share_updates_presence_keys_and_expire_a_killed_ones_viewers(
    servers: tuple[DaphneServer, DaphneServer],
    open_client: Any,
    users: dict[str, User],
    incident: Incident,
) -> None:
    one, two = servers
    viewer_on_one = await open_client(one, users["viewer"])
    admin_on_two = await open_client(two, users["admin"])

    # Presence is one list whichever process a socket is on.
    await viewer_on_one.ok("incident:join", incident=incident.pk)
    ack = await admin_on_two.ok("incident:join", incident=incident.pk)
    both = [users["admin"].as_ref(), users["viewer"].as_ref()]
    assert ack["viewers"] == both
    joined = await viewer_on_one.presence("presence:joined", users["admin"].as_ref())
    assert (joined["version"], joined["count"]) == (ack["presence_version"], 2)

    # A change through one process's REST API reaches sockets on both.
    await run_sync(rest_post, two, users["responder"], f"/api/incidents/{incident.pk}/status", {"status": "identified"})
    for client in (viewer_on_one, admin_on_two):
        update = await client.push("incident:updated")
        assert (update["seq"], update["state"]["status"]) == (2, "identified")

    # The same idempotency key raced through both processes runs once.
    on_one, on_two = await open_client(one, users["responder"]), await open_client(two, users["responder"])
    fields = {"incident": incident.pk, "body": "Failing over to replica", "key": "failover-note"}
    ids = await asyncio.gather(on_one.send("incident:addNote", **fields), on_two.send("incident:addNote", **fields))
    acks = await asyncio.gather(on_one.reply(ids[0]), on_two.reply(ids[1]))
    assert [a["type"] for a in acks] == ["ack", "ack"], acks
    assert acks[0]["seq"] == acks[1]["seq"] == 3
    assert sorted(bool(a.get("replayed")) for a in acks) == [False, True]
    assert (await run_sync(lambda: incident.events.count())) == 3
    for client in (viewer_on_one, admin_on_two):
        assert (await client.push("incident:updated"))["seq"] == 3

    # kill -9 the first process: its viewer stops being refreshed and is swept by the second.
    killed_at = time.monotonic()
    one.kill()
    left = await admin_on_two.presence("presence:left", users["viewer"].as_ref(), timeout=TTL + REFRESH + WAIT)
    elapsed = time.monotonic() - killed_at
    print(f"\npresence:left for the killed process's viewer after {elapsed:.2f} s (bound {TTL + REFRESH} s)")
    assert (left["count"], left["version"]) == (1, joined["version"] + 1)
    assert elapsed <= TTL + REFRESH + 1.5, f"{elapsed:.2f} s"  # TTL + one sweep interval, and scheduling slack

    rejoin = await (await open_client(two, users["viewer"])).ok("incident:join", incident=incident.pk)
    assert rejoin["viewers"] == both  # the viewer is back, through the live process

"""WebSocket test clients: the whole ASGI application (origin check and auth middleware included) in-process.

`Socket` sends a message and waits for the reply with its id, keeping the
broadcasts that arrive meanwhile, so tests can assert on both without racing
the server's interleaving. Every wait is bounded, and waits for something:
a reply, a push, or (`settled`) a ping's reply; never for a length of time.
"""

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from incidents import commands
from incidents.models import Incident
from realtime.limits import get_socket_counter
from realtime.presence import get_presence_store

ORIGIN = "http://testserver"
WAIT = 5.0  # seconds: the bound of every wait for something that should come


class ProtocolClient:
    """What every test client of /ws/ shares: one reply per message, pushes kept until asked for.

    Subclasses say how a frame goes out (`send_raw`) and comes in (`_next`).
    """

    ids = itertools.count(1)

    def __init__(self) -> None:
        self.inbox: list[dict[str, Any]] = []  # server pushes not yet looked at

    async def _next(self, timeout: float) -> dict[str, Any]:
        raise NotImplementedError

    async def send_raw(self, text: str) -> None:
        raise NotImplementedError

    async def send(self, kind: str, **fields: Any) -> int:
        message_id = next(self.ids)
        await self.send_raw(json.dumps({"type": kind, "id": message_id, **fields}))
        return message_id

    async def reply(self, message_id: Any, timeout: float = WAIT) -> dict[str, Any]:
        """Wait for the ack or error of one message; pushes meanwhile go to the inbox."""
        while True:
            message = await self._next(timeout)
            if message["type"] in ("ack", "error") and message.get("id") == message_id:
                return message
            assert message["type"] not in ("ack", "error"), f"a reply to another message: {message}"
            self.inbox.append(message)

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        return await self.reply(await self.send(kind, **fields))

    async def ok(self, kind: str, **fields: Any) -> dict[str, Any]:
        reply = await self.request(kind, **fields)
        assert reply["type"] == "ack", reply
        return reply

    async def error(self, kind: str, code: str, **fields: Any) -> dict[str, Any]:
        reply = await self.request(kind, **fields)
        assert (reply["type"], reply["code"]) == ("error", code), reply
        return reply

    async def push(self, kind: str, timeout: float = WAIT, **match: Any) -> dict[str, Any]:
        """The first server push of this type (and these field values), waiting for it if needed."""

        def matches(message: dict[str, Any]) -> bool:
            return message["type"] == kind and all(message.get(k) == v for k, v in match.items())

        for index, message in enumerate(self.inbox):
            if matches(message):
                return self.inbox.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self._next(max(0.01, deadline - loop.time()))
            if matches(message):
                return message
            self.inbox.append(message)

    async def presence(self, kind: str, user: dict[str, Any], timeout: float = WAIT, **match: Any) -> dict[str, Any]:
        """The first presence:joined/left naming `user`, alone or among the users of a coalesced burst."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.push(kind, max(0.01, deadline - loop.time()), **match)
            if user in message["users"]:
                return message

    async def pushes(self, kind: str, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        return [await self.push(kind, timeout) for _ in range(count)]

    async def settled(self, kind: str | None = None, timeout: float = WAIT) -> list[dict[str, Any]]:
        """Everything this socket was sent before now, from the inbox (of one type if given).

        A ping's reply comes after every frame sent to the socket before it (one
        socket's frames are ordered), so this waits for that reply and no longer.
        It cannot know what the server has yet to send: to show that something did
        not come, first wait for a witness that comes after it the same way (the
        hub handles what it receives in order), then look.
        """
        await self.reply(await self.send("ping"), timeout)
        return [m for m in self.inbox if kind is None or m["type"] == kind]


class Socket(ProtocolClient):
    """One client connection through the ASGI application."""

    def __init__(self, communicator: WebsocketCommunicator, user: User | None) -> None:
        super().__init__()
        self.communicator = communicator
        self.user = user
        self.closed_with: int | None = None

    async def _next(self, timeout: float) -> dict[str, Any]:
        """The next output of the application; unlike receive_output, a timeout does not kill it."""
        future = self.communicator.future
        if future.done():
            future.result()  # raise the consumer's exception, if any
        message = await asyncio.wait_for(self.communicator.output_queue.get(), timeout)
        if message["type"] == "websocket.close":
            self.closed_with = message.get("code", 1000)
            return {"type": "websocket.close", "code": self.closed_with}
        assert message["type"] == "websocket.send", message
        return dict(json.loads(message["text"]))

    async def send_raw(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def close(self) -> None:
        if self.closed_with is None and not self.communicator.future.done():
            await self.communicator.disconnect(timeout=WAIT)
            self.closed_with = 1000


def access_token(user: User) -> str:
    """An access token made without the database (RefreshToken.for_user writes a row)."""
    return str(AccessToken.for_user(user))


def headers(user: User | None = None, *, token: str | None = None, origin: str | None = ORIGIN) -> list[Any]:
    result = [(b"host", b"testserver")]  # as a browser sends it; the Origin check compares with it
    if origin is not None:
        result.append((b"origin", origin.encode()))
    if token is None and user is not None:
        token = access_token(user)
    if token is not None:
        result.append((b"authorization", f"Bearer {token}".encode()))
    return result


Connect = Callable[..., Awaitable[Socket]]


@pytest.fixture
async def connect(fresh_realtime: None) -> AsyncIterator[Connect]:
    """Open sockets (accepted ones come back ready); all are closed, presence and all, after the test."""
    opened: list[Socket] = []

    async def open_socket(
        user: User | None = None,
        *,
        token: str | None = None,
        origin: str | None = ORIGIN,
        extra: list[tuple[bytes, bytes]] | None = None,
        expect: str = "accept",
    ) -> Socket:
        """expect: "accept" (asserted), "refuse" (asserted: closed during the handshake), or "any"."""
        from incident_platform.asgi import application  # here, so loading this plugin sets nothing up

        communicator = WebsocketCommunicator(
            application, "/ws/", headers=headers(user, token=token, origin=origin) + (extra or [])
        )
        socket = Socket(communicator, user)
        opened.append(socket)
        accepted, code = await communicator.connect(timeout=WAIT)
        if not accepted:
            socket.closed_with = code
        if expect != "any":
            assert accepted == (expect == "accept"), f"handshake: accepted={accepted}, code={code}"
        return socket

    yield open_socket
    for socket in opened:
        await socket.close()


@pytest.fixture
async def fresh_realtime(settings: Any) -> AsyncIterator[None]:
    """No presence or group membership left over from another test.

    Also a fast password hasher: these tests make users, not passwords, and
    PBKDF2 per fixture user would cost most of their run time.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    layer = get_channel_layer()
    assert layer is not None
    await layer.flush()
    store = get_presence_store()
    await store.clear()
    await get_socket_counter().clear()
    yield
    await store.clear()
    await store.close()
    await get_socket_counter().clear()


# --- Data -----------------------------------------------------------------------


def create_incident(actor: User, title: str = "Checkout errors", severity: str = "high") -> Incident:
    return commands.incident_create(actor=actor, title=title, severity=severity).incident


acreate_incident = database_sync_to_async(create_incident)


@database_sync_to_async
def snapshot(incident_id: int) -> tuple[int, int, str]:
    """(version, number of events, status): what must not change when a message is rejected."""
    incident = Incident.objects.get(pk=incident_id)
    return incident.version, incident.events.count(), incident.status


def run_sync(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """Run ORM or REST-client code from an async test in the database thread, as the consumer does."""
    return database_sync_to_async(function)(*args, **kwargs)

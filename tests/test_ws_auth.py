"""WebSocket identity: who may open /ws/, through the whole ASGI stack (origin check, session, JWT)."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from tests.ws_support import WAIT, Connect, run_sync

pytestmark = pytest.mark.django_db(transaction=True)


async def session_cookie(user: User) -> str:
    """The session cookie of a browser signed in as `user`."""

    def sign_in() -> str:
        client = Client()
        client.force_login(user)
        return client.cookies["sessionid"].value

    return await run_sync(sign_in)


async def refused_with_4401(connect: Connect, **kwargs: Any) -> None:
    socket = await connect(expect="any", **kwargs)
    if socket.closed_with is None:  # accepted, then closed: browsers see the code this way
        message = await socket._next(5)
        assert message == {"type": "websocket.close", "code": 4401}
    assert socket.closed_with == 4401


async def test_bearer_token_opens_a_socket(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer)
    assert (await socket.request("ping"))["type"] == "ack"


async def test_no_identity_is_closed_with_4401(connect: Connect) -> None:
    await refused_with_4401(connect)


async def test_a_bad_token_is_closed_with_4401(connect: Connect) -> None:
    await refused_with_4401(connect, token="not-a-jwt")


async def test_an_expired_token_is_closed_with_4401(connect: Connect, viewer: User) -> None:
    token = AccessToken.for_user(viewer)
    token.set_exp(lifetime=-timedelta(seconds=5))
    await refused_with_4401(connect, token=str(token))


async def test_a_socket_is_closed_with_4401_when_its_token_expires(connect: Connect, viewer: User) -> None:
    token = AccessToken.for_user(viewer)
    # Long enough to outlast a handshake on a loaded machine (1 s did not: the
    # token had expired by the time the socket was let in), short enough to wait for.
    token.set_exp(lifetime=timedelta(seconds=3))
    socket = await connect(token=str(token))
    assert (await socket.request("ping"))["type"] == "ack"
    assert await socket._next(2 * WAIT) == {"type": "websocket.close", "code": 4401}


async def test_a_session_socket_is_not_closed_by_token_expiry(connect: Connect, viewer: User) -> None:
    socket = await connect(extra=[(b"cookie", f"sessionid={await session_cookie(viewer)}".encode())])
    token = AccessToken.for_user(viewer)
    token.set_exp(lifetime=timedelta(seconds=1))
    witness = await connect(token=str(token))
    assert await witness._next(2 * WAIT) == {"type": "websocket.close", "code": 4401}  # a token's time is up
    assert await socket.settled() == []  # the session's socket answers, and nothing (no close) came unasked
    assert socket.closed_with is None


async def test_a_token_of_a_deactivated_user_is_closed_with_4401(connect: Connect, viewer: User) -> None:
    token = str(AccessToken.for_user(viewer))
    await run_sync(User.objects.filter(pk=viewer.pk).update, is_active=False)
    await refused_with_4401(connect, token=token)


async def test_a_non_bearer_authorization_header_does_not_fall_back_to_the_session(connect: Connect) -> None:
    await refused_with_4401(connect, extra=[(b"authorization", b"Basic dmljOnNlY3JldA==")])


async def test_a_foreign_origin_is_refused(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer, origin="http://evil.example", expect="refuse")
    assert socket.closed_with is not None  # denied at the handshake, never accepted


async def test_a_missing_origin_is_refused(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer, origin=None, expect="refuse")
    assert socket.closed_with is not None


async def test_the_browser_session_cookie_opens_a_socket(connect: Connect, viewer: User) -> None:
    cookie = await session_cookie(viewer)
    socket = await connect(extra=[(b"cookie", f"sessionid={cookie}".encode())])
    joined = await socket.ok("ping")
    assert joined == {"type": "ack", "id": joined["id"]}


async def test_an_account_deactivated_while_connected_gets_unauthenticated_and_4401(
    connect: Connect, viewer: User
) -> None:
    socket = await connect(viewer)
    await run_sync(User.objects.filter(pk=viewer.pk).update, is_active=False)
    reply = await socket.request("incident:join", incident=1)
    assert reply["code"] == "unauthenticated"
    assert await socket._next(5) == {"type": "websocket.close", "code": 4401}

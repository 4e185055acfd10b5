"""Issue 8.7: the WebSocket Origin must be this server's own scheme, host and port (or listed in full).

A page on another port or scheme of an allowed host could open a socket with
the victim's session cookie (cookies are not scoped by port), and
`ALLOWED_HOSTS='*'` let any origin in.
"""

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import User
from realtime.origin import origin_allowed
from tests.ws_support import run_sync

pytestmark = pytest.mark.django_db(transaction=True)


def scope(origin: str | None, host: str | None = "localhost:8000", scheme: str = "ws", **extra: str) -> dict[str, Any]:
    headers = [(name.encode(), value.encode()) for name, value in extra.items()]
    if host is not None:
        headers.append((b"host", host.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:1337",  # another server on the same host (the reported attack)
        "https://localhost:8000",  # another scheme
        "http://localhost",  # port 80, not 8000
        "http://evil.example:8000",  # another host
        "http://localhost.evil.example:8000",
        "null",  # sandboxed iframes and file:// pages
        "http://user@localhost:8000",
    ],
)
def test_an_origin_that_is_not_this_servers_own_is_refused(origin: str) -> None:
    assert not origin_allowed(scope(origin))


def test_this_servers_own_origin_is_allowed() -> None:
    assert origin_allowed(scope("http://localhost:8000"))
    assert origin_allowed(scope("http://LOCALHOST:8000/"))


def test_default_ports_are_the_same_origin(settings: Any) -> None:
    assert origin_allowed(scope("http://localhost:80", host="localhost"))
    assert origin_allowed(scope("https://localhost", host="localhost", scheme="wss"))
    assert not origin_allowed(scope("http://localhost", host="localhost", scheme="wss"))


def test_a_host_outside_allowed_hosts_is_refused_even_with_a_matching_origin() -> None:
    assert not origin_allowed(scope("http://evil.example", host="evil.example"))


def test_allowed_hosts_star_does_not_mean_any_origin(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    assert not origin_allowed(scope("http://evil.example", host="incidents.example.com"))
    assert origin_allowed(scope("http://incidents.example.com", host="incidents.example.com"))


def test_https_behind_a_proxy_is_read_from_the_trusted_header(settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    behind_tls = {"x-forwarded-proto": "https"}
    assert origin_allowed(scope("https://localhost", host="localhost", **behind_tls))
    assert not origin_allowed(scope("http://localhost", host="localhost", **behind_tls))


def test_an_explicitly_allowed_origin_is_allowed_only_as_listed(settings: Any) -> None:
    settings.WS_ALLOWED_ORIGINS = ["https://ops.example.com"]
    assert origin_allowed(scope("https://ops.example.com"))
    assert not origin_allowed(scope("https://ops.example.com:8443"))
    assert not origin_allowed(scope("http://ops.example.com"))


def test_a_missing_or_doubled_origin_is_refused() -> None:
    assert not origin_allowed(scope(None))
    doubled = scope("http://localhost:8000")
    doubled["headers"].append((b"origin", b"http://evil.example"))
    assert not origin_allowed(doubled)


async def test_a_session_socket_from_another_port_is_refused_at_the_handshake(viewer: User) -> None:
    """The reported attack, through the whole ASGI application: the victim's cookie, a page on :1337."""
    from incident_platform.asgi import application

    def sign_in() -> str:
        client = Client()
        client.force_login(viewer)
        return client.cookies["sessionid"].value

    cookie = f"sessionid={await run_sync(sign_in)}".encode()
    for origin, accepted in [(b"http://localhost:1337", False), (b"http://localhost:8000", True)]:
        communicator = WebsocketCommunicator(
            application, "/ws/", headers=[(b"host", b"localhost:8000"), (b"origin", origin), (b"cookie", cookie)]
        )
        connected, _ = await communicator.connect(timeout=5)
        assert connected is accepted, origin
        await communicator.disconnect()

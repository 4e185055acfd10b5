"""The WebSocket Origin check: same scheme, host and port as the page that opened the socket.

Channels' `AllowedHostsOriginValidator` compares only the host name with
ALLOWED_HOSTS, so a page served from another port of an allowed host (any
local dev server at http://localhost:1337) or over plain http could open a
socket with the victim's session cookie, which is not scoped by port or
scheme; and `ALLOWED_HOSTS='*'` let any origin in at all.

A handshake is let in when its `Origin` is exactly (scheme, host, port):

- the origin of this server as the browser addressed it: the `Host` header,
  when it is in ALLOWED_HOSTS, with the scheme the connection came in on
  (`wss`, or the proxy's `X-Forwarded-Proto` when SECURE_PROXY_SSL_HEADER
  trusts it); or
- one of WS_ALLOWED_ORIGINS, listed in full (`https://ops.example.com`).

`ALLOWED_HOSTS='*'` only stops the Host check; the Origin must still be the
server's own. A handshake without an Origin is refused as before.
"""

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of an origin such as `https://example.com:8443`, or None if it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", []) if key.lower() == name]
    if len(values) != 1:
        return None  # absent, or sent twice: nothing to trust
    return values[0].decode("latin-1")


def request_scheme(scope: dict[str, Any]) -> str:
    if scope.get("scheme") in ("wss", "https"):
        return "https"
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        header, secure_value = proxy
        name = header.removeprefix("HTTP_").lower().replace("_", "-").encode()
        if (_header(scope, name) or "").split(",")[0].strip() == secure_value:
            return "https"
    return "http"


def own_origin(scope: dict[str, Any]) -> Origin | None:
    """This server's origin as the client addressed it, if its Host is one we serve."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, port = split_domain_port(host.lower())
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = request_scheme(scope)
    return scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS[scheme]


def explicit_origins() -> set[Origin]:
    return {origin for origin in map(parse_origin, settings.WS_ALLOWED_ORIGINS) if origin is not None}


def origin_allowed(scope: dict[str, Any]) -> bool:
    raw = _header(scope, b"origin")
    origin = parse_origin(raw) if raw else None
    if origin is None:
        return False
    return origin == own_origin(scope) or origin in explicit_origins()


class SameOriginValidator:
    """ASGI middleware for the WebSocket router: refuses the handshake (403) unless `origin_allowed`."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)

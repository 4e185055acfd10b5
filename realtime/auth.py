"""WebSocket authentication: the browser's session, or a simplejwt access token in the handshake.

The token is read from the `Authorization: Bearer` header of the handshake,
never from the URL, where it would land in access logs. Users are looked up
on the sockets' own database threads (`realtime.database`), not on the one
thread Channels' auth middleware shares: a reconnect storm of a thousand
handshakes must not queue behind one another there.
"""

from typing import Any

from channels.auth import get_user
from channels.middleware import BaseMiddleware
from channels.sessions import SessionMiddlewareStack
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from .database import database_work


def bearer_token(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
            return ""  # an Authorization header that is not a bearer token: refuse, don't fall back
    return None


@database_work
def user_for_token(raw: str) -> tuple[Any, float | None]:
    """The token's active user and the token's expiry (a Unix time), or an anonymous user."""
    try:
        token = AccessToken(raw)  # type: ignore[arg-type]
    except TokenError:
        return AnonymousUser(), None
    User = get_user_model()
    user = User.objects.filter(**{api_settings.USER_ID_FIELD: token.get(api_settings.USER_ID_CLAIM)}).first()
    if user is None or not user.is_active:
        return AnonymousUser(), None
    return user, float(token["exp"])


class SessionUserMiddleware(BaseMiddleware):
    """Sets scope["user"] from the Django session (what Channels' AuthMiddleware does, on our threads)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = await database_work(get_user.func)(scope)
        return await super().__call__(dict(scope, user=user), receive, send)


class JWTAuthMiddleware:
    """A handshake with an `Authorization` header is judged by its bearer token alone; others by the session."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.by_session = SessionMiddlewareStack(SessionUserMiddleware(inner))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        raw = bearer_token(scope)
        if raw is None:
            return await self.by_session(scope, receive, send)
        user, expires_at = await user_for_token(raw) if raw else (AnonymousUser(), None)
        # The consumer closes the socket when the token it was opened with expires.
        return await self.inner(dict(scope, user=user, token_expires_at=expires_at), receive, send)


def JWTAuthMiddlewareStack(inner: Any) -> Any:
    return JWTAuthMiddleware(inner)

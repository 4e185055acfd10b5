"""WebSocket authentication: the browser's session, or a simplejwt access token in the handshake.

The token is read from the `Authorization: Bearer` header of the handshake,
never from the URL, where it would land in access logs.
"""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken


def bearer_token(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
            return ""  # an Authorization header that is not a bearer token: refuse, don't fall back
    return None


@database_sync_to_async
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


class JWTAuthMiddleware(BaseMiddleware):
    """Sets scope["user"] from a bearer token when the handshake carries one.

    Runs inside the session middleware, so a browser without a token keeps its
    session user; a client that sends a token is judged by the token alone.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        raw = bearer_token(scope)
        if raw is not None:
            user, expires_at = await user_for_token(raw) if raw else (AnonymousUser(), None)
            # The consumer closes the socket when the token it was opened with expires.
            scope = dict(scope, user=user, token_expires_at=expires_at)
        return await super().__call__(scope, receive, send)


def JWTAuthMiddlewareStack(inner: Any) -> Any:
    return AuthMiddlewareStack(JWTAuthMiddleware(inner))

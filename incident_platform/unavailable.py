"""A backing service (PostgreSQL, Redis) is unreachable: say so, and when to retry, instead of a 500.

Every write is one transaction, so a write that meets a dead database either
committed whole or not at all; the client cannot tell which, so the answer
says to retry, and a retry with the same idempotency key is safe either way.
REST answers 503 `{"code": "unavailable", "retry_after": N}` with a
`Retry-After` header; the WebSocket consumer answers an `error` frame with
the same code and `retry_after` (docs/protocol.md). The service recovers by
itself when the database comes back: no restart.
"""

import redis.exceptions
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from incidents.errors import CommandError

RETRY_AFTER_SECONDS = 5

# Django wraps the driver's errors (psycopg's, and the pool's PoolTimeout) in these.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def is_unavailable(error: BaseException) -> bool:
    """Whether the error (or one it was raised from) means a backing service could not be reached."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, UNAVAILABLE_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Unavailable(CommandError):
    code = "unavailable"
    http_status = 503
    default_message = "The service is briefly unable to reach its database; retry shortly (with the same key)."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, retry_after=RETRY_AFTER_SECONDS)


class UnavailableMiddleware(MiddlewareMixin):
    """Turn a view's "database/Redis unreachable" error into 503 with Retry-After, not a 500.

    Synchronous only, like the middleware above it (the request log, WhiteNoise):
    so Django runs the whole stack in one thread per request. An async-capable
    middleware at the bottom made every `MiddlewareMixin` between them run in
    async mode, each hopping to a thread and back for its process_request and
    process_response (about ten hops per request; docs/benchmarks.md).
    """

    async_capable = False

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_unavailable(exception):
            return None
        error = Unavailable()
        response = JsonResponse({"detail": error.message, "code": error.code, **error.extra}, status=error.http_status)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

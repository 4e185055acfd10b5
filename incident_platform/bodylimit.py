"""Request bodies over DATA_UPLOAD_MAX_MEMORY_SIZE refused at the ASGI door, from their Content-Length.

Django's ASGI handler reads the whole body before any middleware or view
runs, so a limit checked in a view (or by DRF's parsers) comes after the
bytes were already taken in; and it is the same for an anonymous caller as
for a signed-in one. This wrapper answers 413 from the `Content-Length`
header before reading a byte of the body, and stops a body that runs past the
limit without one (chunked, or longer than it said) as soon as it does.
"""

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TOO_LARGE = {"detail": "The request body is too large.", "code": "too_large"}
BAD_LENGTH = {"detail": "The Content-Length header is not a number of bytes.", "code": "invalid"}


def content_length(scope: Scope) -> int | None:
    """The declared body length; None without one; -1 when it is not a valid length."""
    values = [value for name, value in scope.get("headers", []) if name.lower() == b"content-length"]
    if not values:
        return None
    if len(set(values)) > 1 or not values[0].strip().isdigit():
        return -1
    return int(values[0])


async def answer(send: Send, status: int, body: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        length = content_length(scope)
        if length == -1:
            await answer(send, 400, BAD_LENGTH)
            return
        if length is not None and length > limit:
            await answer(send, 413, TOO_LARGE)
            return
        received = 0
        refused = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await answer(send, 413, TOO_LARGE)
                    return {"type": "http.disconnect"}  # the application stops reading and answers nothing
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, bounded_receive, guarded_send)

"""The WebSocket protocol's shapes: client message validation, error codes, the rate limit.

Kept apart from the consumer so the rules a frame must pass before anything
touches the database or the presence store read in one place (and are
documented in docs/protocol.md).
"""

import time
from collections.abc import Callable
from typing import Any

from incident_platform import jsonlimits
from incidents.errors import CommandError, Invalid
from incidents.publishing import plain

from .presence import SECTIONS

CLOSE_UNAUTHENTICATED = 4401

# `incidents:subscribe` may ask for the viewers of this many incidents at most:
# every row the web list shows (incidents.views.LIST_LIMIT) fits in one message.
MAX_SUBSCRIBED_INCIDENTS = 200


class Unauthenticated(CommandError):
    code = "unauthenticated"
    default_message = "Sign in again: this account can no longer be used."


class RateLimited(CommandError):
    code = "rate_limited"
    default_message = "Too many messages; slow down."


class ServerFault(CommandError):
    """Not the client's fault. Not one of the contract's client-error codes; a retry with the same key is safe."""

    code = "internal"
    default_message = "The server could not handle this message; retry it with the same key."


COMMAND_TYPES = (
    "incident:updateStatus",
    "incident:update",
    "incident:addNote",
    "incident:postStatusUpdate",
    "incident:addActionItem",
    "incident:updateActionItem",
)
MESSAGE_TYPES = (
    "incident:join",
    "incident:leave",
    "presence:get",
    *COMMAND_TYPES,
    "focus:set",
    "incidents:subscribe",
    "incidents:unsubscribe",
    "ping",
)


def error_reply(message_id: Any, error: CommandError) -> dict[str, Any]:
    reply: dict[str, Any] = {"type": "error", "id": message_id, "code": error.code, "message": error.message}
    if error.fields:
        reply["fields"] = plain(error.fields)
    if error.extra:
        reply.update(plain(error.extra))
    return reply


def ack_reply(message_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "type": "ack", "id": message_id}


def size_exceeds(text: str, limit: int) -> bool:
    """Whether a frame's UTF-8 size exceeds `limit`, without encoding frames that cannot."""
    if len(text) > limit:
        return True  # every character is at least one byte
    if len(text) * 4 <= limit:
        return False  # and at most four
    return len(text.encode("utf-8", "surrogatepass")) > limit


def decode(text: str) -> dict[str, Any]:
    """A frame's JSON object; Invalid if it is not JSON or not an object."""
    try:
        content = jsonlimits.loads(text)
    except jsonlimits.TooDeep as exc:
        raise Invalid(f"The frame nests deeper than {jsonlimits.MAX_JSON_DEPTH} levels.") from exc
    except ValueError as exc:
        raise Invalid("The frame is not JSON.") from exc
    if not isinstance(content, dict):
        raise Invalid("A message is a JSON object.")
    return content


def message_id(content: dict[str, Any]) -> Any:
    """The id to echo: a string, an integer, or absent (null)."""
    value = content.get("id")
    if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
        raise Invalid("`id` is a string or an integer.", fields={"id": ["Must be a string or an integer."]})
    return value


def check_type(content: dict[str, Any]) -> str:
    kind = content.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise Invalid(f"Unknown message type {kind!r}.", fields={"type": [f"One of: {', '.join(MESSAGE_TYPES)}."]})
    return kind


def integer(content: dict[str, Any], name: str, *, required: bool = True, minimum: int = 0) -> int | None:
    value = content.get(name)
    if value is None:
        if required:
            raise Invalid(f"`{name}` is required.", fields={name: ["This field is required."]})
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 2**63 - 1:
        raise Invalid(f"`{name}` is an integer.", fields={name: [f"Must be an integer of at least {minimum}."]})
    return value


def integers(content: dict[str, Any], name: str, *, limit: int) -> list[int] | None:
    """An optional list of at most `limit` ids, duplicates dropped (order kept); None when absent.

    Bounded so one message cannot make the server read an unbounded number of
    rooms; the limit is the web list's page size, the largest list a page shows.
    """
    value = content.get(name)
    if value is None:
        return None
    problem = f"A list of at most {limit} integers of at least 0."
    if not isinstance(value, list) or len(value) > limit:
        raise Invalid(f"`{name}` is a list of at most {limit} integers.", fields={name: [problem]})
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 2**63 - 1:
            raise Invalid(f"`{name}` holds integers only.", fields={name: [problem]})
    return list(dict.fromkeys(value))


def only(content: dict[str, Any], *names: str) -> None:
    """Refuse unknown fields, as the REST input serializers do: a typo is an error, not a no-op."""
    unknown = sorted(set(content) - {"type", "id", *names})
    if unknown:
        raise Invalid(f"Unknown field {unknown[0]!r}.", fields={name: ["Unknown field."] for name in unknown})


def section(content: dict[str, Any]) -> str | None:
    if "section" not in content:
        raise Invalid("`section` is required (null clears it).", fields={"section": ["This field is required."]})
    value = content["section"]
    if value is not None and value not in SECTIONS:
        raise Invalid(f"Unknown section {value!r}.", fields={"section": [f"One of: {', '.join(SECTIONS)}, or null."]})
    return value


def first_error(fields: dict[str, Any]) -> str:
    """A one-line message from serializer errors, for clients that show only `message`."""
    for name, errors in fields.items():
        detail = errors[0] if isinstance(errors, list) and errors else errors
        if isinstance(detail, dict):
            return first_error(detail)
        return f"{name}: {detail}"
    return "The message is invalid."


class TokenBucket:
    """Per-connection rate limit: a burst, then a steady rate.

    Checked before any database or presence work, so a flooding socket costs
    the server little and is answered with `rate_limited` while other sockets
    are served as usual.
    """

    def __init__(self, *, burst: int, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(burst)
        self.rate = float(per_second)
        self.tokens = float(burst)
        self.clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

"""Typed errors of the commands; views and consumers map each to one status or error code."""

from typing import Any


class CommandError(Exception):
    code = "invalid"
    http_status = 400
    default_message = "The request is invalid."

    def __init__(self, message: str | None = None, *, fields: dict[str, list[str]] | None = None, **extra: Any):
        self.message = message or self.default_message
        self.fields = fields or {}
        self.extra = extra
        super().__init__(self.message)


class Forbidden(CommandError):
    code = "forbidden"
    http_status = 403
    default_message = "You do not have permission to do this."


class NotFound(CommandError):
    code = "not_found"
    http_status = 404
    default_message = "Not found."


class Invalid(CommandError):
    code = "invalid"
    http_status = 400


class InvalidTransition(CommandError):
    """A move the current status does not allow: a conflict with the state, not a malformed request."""

    code = "invalid_transition"
    http_status = 409
    default_message = "That status change is not allowed."


class Conflict(CommandError):
    code = "conflict"
    http_status = 409
    default_message = "Someone changed this incident first."

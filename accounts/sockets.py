"""Ending a user's open WebSockets when their identity is withdrawn.

A socket is authenticated once, at its handshake. Signing out (web or
admin), changing the password and being deactivated must not leave an
open socket writing as that user, so each sends `user.revoke` to the user's
channel-layer group, which every socket of the user joins, and the socket
closes with 4401. Through the channel layer's own API only: accounts knows
nothing of the consumer (the same way incidents.publishing broadcasts).

Signing out ends the sockets of that browser session only (identified by a
digest of its key, never the key itself); the others end everything. A role
change needs no message: every socket command re-reads the user's role.
"""

import hashlib
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def session_digest(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()


def user_sockets_end(*, user_id: int, reason: str, session_key: str | None = None) -> None:
    """After the current transaction commits, close the user's sockets (only one session's, if given)."""
    message = {
        "type": "user.revoke",
        "reason": reason,
        "session": session_digest(session_key) if session_key else None,
    }
    transaction.on_commit(lambda: _send(user_group(user_id), message))


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # Each socket message re-reads the user too; a lost revoke is a delay, not an open door.
        logger.exception("Could not end the sockets of %s", group)


def on_signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """django.contrib.auth's user_logged_out: this session's sockets end with it."""
    if user is not None:
        session_key = getattr(getattr(request, "session", None), "session_key", None)
        user_sockets_end(user_id=user.pk, reason="signed_out", session_key=session_key)

"""The WebSocket consumer: one socket per client, joined to any number of incident rooms.

It is thin in the way the REST views are thin: it checks a frame's shape,
calls a command (`realtime.actions`, which calls `incidents.commands`) or the
presence store, and answers every client message with exactly one `ack` or
`error`. It never writes an incident itself.

What the rooms send (changes, presence, focus, the list feed) reaches this
socket through the process's hub (`realtime.hub`), not through a channel-layer
group per socket: the hub receives each room's message once per process,
encodes it once, and keeps this socket's delivery in seq order (the socket's
`rooms` says the last seq it was sent). This consumer tells the hub which rooms
it is in, and tells the presence store (and through the hub, the room) when
its user arrives or goes.

The protocol is documented in docs/protocol.md.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from accounts.sockets import user_group
from incident_platform import metrics
from incident_platform.observability import log_event, request_id_from
from incident_platform.unavailable import Unavailable, is_unavailable
from incidents.errors import CommandError, Invalid
from incidents.publishing import incident_group

from . import actions, limits, protocol
from .hub import JOINING, LIST_VIEWERS, Hub, encode, get_hub
from .presence import PresenceStore, get_presence_store

logger = logging.getLogger(__name__)


class IncidentConsumer(AsyncJsonWebsocketConsumer):
    """The /ws/ endpoint of docs/protocol.md."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # incident id -> the last seq this socket was sent for it (hub.JOINING while joining)
        self.rooms: dict[int, int] = {}
        self.subscribed = False
        self.user_ref: dict[str, Any] = {}
        self.user_id = 0
        self.presence: PresenceStore | None = None
        self.hub: Hub | None = None
        self.expiry: asyncio.Task[None] | None = None
        self.after_reply: list[Callable[[], Awaitable[None]]] = []
        self.bucket = protocol.TokenBucket(burst=settings.WS_RATE_BURST, per_second=settings.WS_RATE_PER_SECOND)
        self.socket_id = ""  # the handshake's X-Request-ID, else a new one: every log line of this socket has it
        self.counted = False  # in ws_open_sockets
        self.counted_rooms: set[int] = set()  # in ws_joined_rooms and presence_entries
        self.focus_bucket = limits.focus_bucket()
        self.counter: limits.SocketCounter | None = None  # set once this socket holds one of its user's slots
        self.group_refresh: asyncio.Task[None] | None = None
        self.session_key: str | None = None
        self.revoked = False  # the identity was withdrawn: frames still in flight are dropped unread

    async def dispatch(self, message: dict[str, Any]) -> None:
        """As Channels', without its per-message `close_old_connections` on the shared database thread.

        Every database call here goes through `actions`, whose calls close
        their own connections in the threads they run in.
        """
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def send_frame(self, text: str) -> None:
        """A frame the hub encoded once for every socket of the room."""
        await self.base_send({"type": "websocket.send", "text": text})
        metrics.ws_frame_sent(text)

    async def send_json(self, content: Any, close: bool = False) -> None:
        await super().send_json(content, close)
        metrics.WS_OUT.labels(str(content.get("type", "unknown"))).inc()

    # --- Connection -------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        headers = dict(self.scope.get("headers", []))
        self.socket_id = request_id_from(headers.get(b"x-request-id", b"").decode("latin-1"))
        log_event("ws_connect", socket_id=self.socket_id, user=getattr(user, "pk", None))
        if user is None or not user.is_authenticated or not user.is_active:
            # Accept first: a handshake refused outright reaches a browser as
            # a bare 1006, while a close after accept carries our code.
            await self.accept()
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
        if not await self.claim_slot():
            await self.accept()
            await self.close(code=limits.CLOSE_TOO_MANY_SOCKETS)
            return
        if "token_expires_at" not in self.scope and self.scope.get("session") is not None:
            self.session_key = self.scope["session"].session_key
        self.user_ref = user.as_ref()
        self.presence = get_presence_store()
        self.hub = get_hub()
        await self.hub.start()
        await self.accept()
        metrics.WS_OPEN.inc()
        self.counted = True
        expires_at = self.scope.get("token_expires_at")
        if expires_at is not None:
            # A bearer token's identity lasts as long as the token: past that the
            # client must reconnect with a fresh one (as it must for REST).
            self.expiry = asyncio.create_task(self.close_at(expires_at))

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Closed by the server (4401: no identity, or it expired): logged with its code."""
        log_event("ws_close", socket_id=self.socket_id, user=self.user_id or None, code=code)
        await super().close(code, reason)

    async def claim_slot(self) -> bool:
        """One of the user's WS_MAX_SOCKETS_PER_USER slots, and the user's group (accounts.sockets ends sockets there).

        With Redis unreachable the socket is let in uncounted: the cap yields to availability, as presence does.
        """
        counter = limits.get_socket_counter()
        try:
            if not await counter.claim(self.user_id, self.channel_name):
                return False
            self.counter = counter
            await self.channel_layer.group_add(user_group(self.user_id), self.channel_name)
            self.group_refresh = asyncio.create_task(self.keep_user_group())
        except Exception as error:
            if not is_unavailable(error):
                raise
            logger.warning("Socket of user %s not counted: Redis unreachable", self.user_id)
        return True

    async def keep_user_group(self) -> None:
        """Stay in the user's group (sign-out and demotion reach sockets there) past the layer's group expiry.

        The socket's slot needs no task of its own: the counter refreshes all of a process's slots in one batch.
        """
        while True:
            await asyncio.sleep(self.channel_layer.group_expiry / 2)
            with contextlib.suppress(Exception):
                await self.channel_layer.group_add(user_group(self.user_id), self.channel_name)

    async def close_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self.close(code=protocol.CLOSE_UNAUTHENTICATED)

    async def disconnect(self, code: int) -> None:
        rooms = len(self.rooms)
        log_event("ws_disconnect", socket_id=self.socket_id, user=self.user_id or None, code=code, rooms=rooms)
        if self.counted:
            metrics.WS_OPEN.dec()
            self.counted = False
        if self.expiry is not None:
            self.expiry.cancel()
        if self.group_refresh is not None:
            self.group_refresh.cancel()
        if self.counter is not None:
            with contextlib.suppress(Exception):
                await self.counter.release(self.user_id, self.channel_name)
                await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)
        if self.hub is not None:
            self.hub.unsubscribe_list(self)
        for incident in list(self.rooms):
            try:
                await self.leave_room(incident)
            except Exception:
                # Redis unreachable: the entry expires by itself within the TTL.
                logger.exception("Could not leave incident %s cleanly", incident)

    # --- Client messages ----------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Turn one frame into exactly one reply; no client frame can crash the consumer."""
        message_id: Any = None
        if self.revoked:
            return
        kind: str | None = None
        try:
            if self.presence is None:
                raise protocol.Unauthenticated("This socket has no identity.")
            # Every frame costs a token, garbage included; the id is still read
            # (from a frame of bounded size) so a rate_limited reply echoes it.
            allowed = self.bucket.take()
            if text_data is None:
                raise Invalid("Frames are JSON text, not binary.")
            if protocol.size_exceeds(text_data, settings.WS_MAX_MESSAGE_BYTES):
                raise Invalid(f"A message is at most {settings.WS_MAX_MESSAGE_BYTES} bytes.")
            content = protocol.decode(text_data)
            message_id = protocol.message_id(content)
            if not allowed:
                metrics.WS_RATE_LIMITED.inc()
                raise protocol.RateLimited()
            kind = protocol.check_type(content)
            metrics.ws_received(kind)
            handler = getattr(self, "on_" + kind.replace(":", "_"))
            body = await handler(content)
            await self.send_frame(encode(protocol.ack_reply(message_id, body or {})))
        except protocol.Unauthenticated as error:
            await self.send_json(protocol.error_reply(message_id, error))
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
        except CommandError as error:
            if kind is None:  # refused before its type was read
                metrics.ws_received(error.code if error.code == "rate_limited" else "invalid")
            await self.send_json(protocol.error_reply(message_id, error))
        except Exception as error:
            logger.exception("WebSocket message failed (user %s)", self.user_id)
            # Database or Redis unreachable: `unavailable` with `retry_after`, the socket stays open.
            fault = Unavailable() if is_unavailable(error) else protocol.ServerFault()
            await self.send_json(protocol.error_reply(message_id, fault))
        finally:
            hooks, self.after_reply = self.after_reply, []
            for hook in hooks:
                await hook()

    async def on_ping(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content)
        return {}

    async def on_incident_join(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content, "incident", "after")
        incident = protocol.integer(content, "incident")
        after = protocol.integer(content, "after", required=False)
        assert incident is not None
        if incident not in self.rooms and len(self.rooms) >= settings.WS_MAX_ROOMS_PER_SOCKET:
            raise Invalid(
                f"A socket may be in at most {settings.WS_MAX_ROOMS_PER_SOCKET} incidents; leave one first.",
                fields={"incident": ["Too many incidents joined."]},
            )
        previous = self.rooms.get(incident)
        # Be in the room before reading it, so nothing committed after the read
        # is missed; what arrives before the ack is held and sent after it.
        await self.rooms_hub.enter(incident, self)
        try:
            room = await actions.room_load(user_id=self.user_id, incident_id=incident, after=after)
        except BaseException:
            if previous is None or previous == JOINING:
                self.rooms_hub.leave(incident, self)
            else:
                # Still in the room: deliver from where it was (nothing newer was sent meanwhile).
                self.after_reply.append(lambda: self.rooms_hub.activate(incident, self, previous))
            raise
        joined = await self.rooms_hub.join_presence(incident, self.channel_name, self.user_ref)
        self.count_room(incident, joined=True)
        log_event("ws_join", socket_id=self.socket_id, user=self.user_id, incident=incident, after=after)
        focus = await self.store.focus(incident)
        self.after_reply.append(lambda: self.rooms_hub.activate(incident, self, room.version))
        return {
            "incident": incident,
            "state": room.state,
            "version": room.version,
            "viewers": joined.viewers,
            "presence_version": joined.version,
            "count": joined.count,
            "focus": focus,
            "events": room.events,
            "more": room.more,
        }

    async def on_incident_leave(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content, "incident")
        incident = protocol.integer(content, "incident")
        assert incident is not None
        if incident not in self.rooms:
            raise Invalid(f"Not in incident {incident}.", fields={"incident": ["Not joined."]})
        await self.leave_room(incident)
        return {"incident": incident}

    async def on_presence_get(self, content: dict[str, Any]) -> dict[str, Any]:
        """The room's whole viewer list again: for a client that saw its presence version jump."""
        protocol.only(content, "incident")
        incident = protocol.integer(content, "incident")
        assert incident is not None
        if incident not in self.rooms:
            raise Invalid(f"Join incident {incident} first.", fields={"incident": ["Not joined."]})
        snapshot = await self.store.snapshot(incident)
        return {
            "incident": incident,
            "viewers": snapshot.viewers,
            "presence_version": snapshot.version,
            "count": snapshot.count,
            "focus": await self.store.focus(incident),
        }

    async def on_focus_set(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content, "incident", "section")
        incident = protocol.integer(content, "incident")
        section = protocol.section(content)
        assert incident is not None
        if incident not in self.rooms:
            raise Invalid(f"Join incident {incident} before setting a focus.", fields={"incident": ["Not joined."]})
        if not self.focus_bucket.take():
            raise protocol.RateLimited("Too many focus changes; slow down.")
        if not await self.store.set_focus(incident, self.user_id, section):
            # Swept out by another process (this one stalled past the TTL): back in first.
            await self.rooms_hub.join_presence(incident, self.channel_name, self.user_ref)
            await self.store.set_focus(incident, self.user_id, section)
        await self.channel_layer.group_send(
            incident_group(incident),
            {"type": "focus.updated", "incident": incident, "user": self.user_ref, "section": section},
        )
        return {"incident": incident, "section": section}

    async def on_incidents_subscribe(self, content: dict[str, Any]) -> dict[str, Any]:
        """Join the list feed; with `incidents`, the ack says who is in each of those rooms now.

        Subscribing again is allowed (a list page does it for rows it fetched
        later). The feed is joined before the store is read, so a change after
        the read arrives as incident:viewers and none falls in between. Each
        room's `viewers` are its first few (by username), with `counts` saying
        how many there are in all.
        """
        protocol.only(content, "incidents")
        incidents = protocol.integers(content, "incidents", limit=protocol.MAX_SUBSCRIBED_INCIDENTS) or []
        await self.rooms_hub.subscribe_list(self)
        self.subscribed = True
        snapshots = await self.store.snapshots(incidents, limit=LIST_VIEWERS) if incidents else {}
        return {
            "viewers": {str(incident): snap.viewers for incident, snap in snapshots.items()},
            "counts": {str(incident): snap.count for incident, snap in snapshots.items()},
            "versions": {str(incident): snap.version for incident, snap in snapshots.items()},
        }

    async def on_incidents_unsubscribe(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content)
        self.rooms_hub.unsubscribe_list(self)
        self.subscribed = False
        return {}

    async def run_command(self, content: dict[str, Any]) -> dict[str, Any]:
        """incident:updateStatus, :update, :addNote, :postStatusUpdate, :addActionItem, :updateActionItem: as REST."""
        name = content["type"]
        incident = protocol.integer(content, "incident")
        assert incident is not None
        spec = actions.COMMANDS[name]
        item = protocol.integer(content, "item") if spec.item else None
        fields = {k: v for k, v in content.items() if k not in ("type", "id", "incident", "key", "item")}
        if not spec.item and "item" in content:
            fields["item"] = content["item"]  # let the strict serializer call it unknown
        return await actions.command_run(
            user_id=self.user_id, name=name, incident_id=incident, item_id=item, fields=fields, key=content.get("key")
        )

    on_incident_updateStatus = run_command
    on_incident_update = run_command
    on_incident_addNote = run_command
    on_incident_postStatusUpdate = run_command
    on_incident_addActionItem = run_command
    on_incident_updateActionItem = run_command

    # --- Channel-layer messages to this socket --------------------------------------

    async def user_revoke(self, message: dict[str, Any]) -> None:
        """The user signed out (this session), changed their password or was deactivated: end the socket."""
        if limits.revoke_applies(message, self.session_key):
            self.revoked = True
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)

    async def notification_new(self, message: dict[str, Any]) -> None:
        """Someone mentioned this user or gave them a role (incidents.notifications): tell this socket."""
        if self.revoked:
            return
        await self.send_json(
            {"type": "notification:new", "notification": message["notification"], "unread": message["unread"]}
        )

    # --- Rooms and presence -----------------------------------------------------------

    @property
    def store(self) -> PresenceStore:
        assert self.presence is not None, "presence is set up when the socket is accepted"
        return self.presence

    @property
    def rooms_hub(self) -> Hub:
        assert self.hub is not None, "the hub is set up when the socket is accepted"
        return self.hub

    def count_room(self, incident: int, *, joined: bool) -> None:
        """ws_joined_rooms and presence_entries: one per socket and room, counted once each way."""
        if joined == (incident in self.counted_rooms):
            return
        step = 1 if joined else -1
        metrics.WS_ROOMS.inc(step)
        metrics.PRESENCE_ENTRIES.inc(step)
        (self.counted_rooms.add if joined else self.counted_rooms.discard)(incident)

    async def leave_room(self, incident: int) -> None:
        """Leave a room: no more of its messages, and the room is told if this was the user's last connection."""
        if self.rooms.get(incident) is None:
            return
        self.rooms_hub.leave(incident, self)
        left = await self.store.leave(incident, self.channel_name)
        self.count_room(incident, joined=False)
        if left is not None:
            await self.rooms_hub.announce(incident, joined=None, version=0, count=0, lefts=[left])

"""The WebSocket consumer: one socket per client, joined to any number of incident rooms.

It is thin in the way the REST views are thin: it checks a frame's shape,
calls a command (`realtime.actions`, which calls `incidents.commands`) or the
presence store, and answers every client message with exactly one `ack` or
`error`. It never writes an incident itself.

Two things it adds that REST does not need:

- Ordered delivery. The channel layer delivers at most once and in no
  promised order across processes (two processes' on_commit callbacks race;
  channels-redis drops messages for a full channel). So for every joined room
  the consumer remembers the last `seq` it sent this socket, drops anything at
  or below it, and fills a gap from the database before sending what revealed
  it. Each socket therefore sees `incident:updated` in seq order, once each.
- Presence. Each joined room has a presence entry for this connection, which a
  background task refreshes and uses to sweep out entries of dead processes.
  Whoever announces a room's presence change also tells the incident list
  (`incident:viewers`), so a list page shows who is in each room without
  joining any of them.

Channels runs a consumer's handlers one at a time, so the per-room state
below needs no lock against handlers; only the background task runs beside
them, and it shares `presence_lock` with them.

The protocol is documented in docs/protocol.md.
"""

import asyncio
import contextlib
import logging
import time
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from incident_platform.unavailable import Unavailable, is_unavailable
from incidents.errors import CommandError, Invalid
from incidents.publishing import LIST_GROUP, incident_group

from . import actions, protocol
from .presence import Joined, Left, PresenceStore, get_presence_store

logger = logging.getLogger(__name__)

# How long a closing socket's consumer lingers after announcing its departure (see disconnect).
DEPARTURE_GRACE_SECONDS = 0.2


class IncidentConsumer(AsyncJsonWebsocketConsumer):
    """The /ws/ endpoint of docs/protocol.md."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # incident id -> the last seq this socket was sent for it
        self.rooms: dict[int, int] = {}
        self.subscribed = False
        self.user_ref: dict[str, Any] = {}
        self.user_id = 0
        self.presence: PresenceStore | None = None
        self.presence_lock = asyncio.Lock()
        self.keepalive: asyncio.Task[None] | None = None
        self.expiry: asyncio.Task[None] | None = None
        self.bucket = protocol.TokenBucket(burst=settings.WS_RATE_BURST, per_second=settings.WS_RATE_PER_SECOND)

    # --- Connection -------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            # Accept first: a handshake refused outright reaches a browser as
            # a bare 1006, while a close after accept carries our code.
            await self.accept()
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
        self.user_ref = user.as_ref()
        self.presence = get_presence_store()
        await self.accept()
        self.keepalive = asyncio.create_task(self.keep_presence())
        expires_at = self.scope.get("token_expires_at")
        if expires_at is not None:
            # A bearer token's identity lasts as long as the token: past that the
            # client must reconnect with a fresh one (as it must for REST).
            self.expiry = asyncio.create_task(self.close_at(expires_at))

    async def close_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self.close(code=protocol.CLOSE_UNAUTHENTICATED)

    async def disconnect(self, code: int) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        if self.keepalive is not None:
            self.keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.keepalive
        announced = []
        for incident in list(self.rooms):
            try:
                announced.append(await self.leave_room(incident))
            except Exception:
                # Redis unreachable: the entry expires by itself within the TTL.
                logger.exception("Could not leave incident %s cleanly", incident)
        if self.subscribed:
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(LIST_GROUP, self.channel_name)
        if any(announced):
            # channels-redis receives for every consumer of a process through
            # one shared BZPOPMIN, run by whichever consumer holds its lock; when
            # this consumer returns, Channels cancels its receive, and a message
            # popped but not yet buffered is lost (django/channels#1683,
            # channels_redis#366). Our own presence:left may be that message, for
            # a socket on this very process; lingering a moment lets it land.
            await asyncio.sleep(DEPARTURE_GRACE_SECONDS)

    # --- Client messages ----------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Turn one frame into exactly one reply; no client frame can crash the consumer."""
        message_id: Any = None
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
                raise protocol.RateLimited()
            handler = getattr(self, "on_" + protocol.check_type(content).replace(":", "_"))
            body = await handler(content)
            await self.send_json(protocol.ack_reply(message_id, body or {}))
        except protocol.Unauthenticated as error:
            await self.send_json(protocol.error_reply(message_id, error))
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
        except CommandError as error:
            await self.send_json(protocol.error_reply(message_id, error))
        except Exception as error:
            logger.exception("WebSocket message failed (user %s)", self.user_id)
            # Database or Redis unreachable: `unavailable` with `retry_after`, the socket stays open.
            fault = Unavailable() if is_unavailable(error) else protocol.ServerFault()
            await self.send_json(protocol.error_reply(message_id, fault))

    async def on_ping(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content)
        return {}

    async def on_incident_join(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content, "incident", "after")
        incident = protocol.integer(content, "incident")
        after = protocol.integer(content, "after", required=False)
        assert incident is not None
        # Join the group before reading, so nothing committed after the read is missed.
        await self.channel_layer.group_add(incident_group(incident), self.channel_name)
        try:
            room = await actions.room_load(user_id=self.user_id, incident_id=incident, after=after)
        except CommandError:
            if incident not in self.rooms:
                await self.channel_layer.group_discard(incident_group(incident), self.channel_name)
            raise
        self.rooms[incident] = room.version
        async with self.presence_lock:
            joined = await self.store.join(incident, self.channel_name, self.user_ref)
            focus = await self.store.focus(incident)
        await self.announce(incident, joined)
        return {
            "incident": incident,
            "state": room.state,
            "version": room.version,
            "viewers": joined.viewers,
            "focus": focus,
            "events": room.events,
        }

    async def on_incident_leave(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content, "incident")
        incident = protocol.integer(content, "incident")
        assert incident is not None
        if incident not in self.rooms:
            raise Invalid(f"Not in incident {incident}.", fields={"incident": ["Not joined."]})
        await self.leave_room(incident)
        return {"incident": incident}

    async def on_focus_set(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content, "incident", "section")
        incident = protocol.integer(content, "incident")
        section = protocol.section(content)
        assert incident is not None
        if incident not in self.rooms:
            raise Invalid(f"Join incident {incident} before setting a focus.", fields={"incident": ["Not joined."]})
        async with self.presence_lock:
            await self.rejoin_if_swept(incident)
            await self.store.set_focus(incident, self.user_id, section)
        await self.broadcast(incident, "focus.updated", {"user": self.user_ref, "section": section})
        return {"incident": incident, "section": section}

    async def on_incidents_subscribe(self, content: dict[str, Any]) -> dict[str, Any]:
        """Join the list feed; with `incidents`, the ack says who is in each of those rooms now.

        Subscribing again is allowed (a list page does it for rows it fetched
        later). The group is joined before the store is read, so a change after
        the read arrives as incident:viewers and none falls in between.
        """
        protocol.only(content, "incidents")
        incidents = protocol.integers(content, "incidents", limit=protocol.MAX_SUBSCRIBED_INCIDENTS) or []
        await self.channel_layer.group_add(LIST_GROUP, self.channel_name)
        self.subscribed = True
        viewers = await self.store.viewers_of(incidents) if incidents else {}
        return {"viewers": {str(incident): users for incident, users in viewers.items()}}

    async def on_incidents_unsubscribe(self, content: dict[str, Any]) -> dict[str, Any]:
        protocol.only(content)
        await self.channel_layer.group_discard(LIST_GROUP, self.channel_name)
        self.subscribed = False
        return {}

    async def run_command(self, content: dict[str, Any]) -> dict[str, Any]:
        """incident:updateStatus, :update, :addNote, :addActionItem, :updateActionItem: as their REST twins."""
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
    on_incident_addActionItem = run_command
    on_incident_updateActionItem = run_command

    # --- Group messages -------------------------------------------------------------

    async def incident_updated(self, message: dict[str, Any]) -> None:
        """Send the room's changes in seq order, each once, filling gaps from the database."""
        incident, seq = message["incident"], message["seq"]
        last = self.rooms.get(incident)
        if last is None or seq <= last:
            return  # not (or no longer) in the room, or already sent
        if seq > last + 1:
            missed = await actions.events_between(incident_id=incident, after=last, before=seq)
            for event in missed:
                if self.rooms.get(incident) is None:
                    return
                # The state these events produced is not stored; the newest known
                # state is sent with them (`gap_filled` says so).
                await self.send_json(
                    {
                        "type": "incident:updated",
                        "incident": incident,
                        "seq": event["seq"],
                        "version": event["seq"],
                        "event": event,
                        "state": message["state"],
                        "gap_filled": True,
                    }
                )
        self.rooms[incident] = seq
        await self.send_json(
            {
                "type": "incident:updated",
                "incident": incident,
                "seq": seq,
                "version": message["version"],
                "event": message["event"],
                "state": message["state"],
            }
        )

    async def incident_created(self, message: dict[str, Any]) -> None:
        if self.subscribed:
            await self.send_json({**message["row"], "type": "incident:created", "incident": message["incident"]})

    async def incident_list_changed(self, message: dict[str, Any]) -> None:
        if self.subscribed:
            await self.send_json({**message["row"], "type": "incident:listChanged", "incident": message["incident"]})

    async def incident_viewers(self, message: dict[str, Any]) -> None:
        if self.subscribed:
            await self.send_json(
                {"type": "incident:viewers", "incident": message["incident"], "viewers": message["viewers"]}
            )

    async def presence_joined(self, message: dict[str, Any]) -> None:
        await self.forward(message, "presence:joined")

    async def presence_left(self, message: dict[str, Any]) -> None:
        await self.forward(message, "presence:left")

    async def focus_updated(self, message: dict[str, Any]) -> None:
        await self.forward(message, "focus:updated")

    async def forward(self, message: dict[str, Any], kind: str) -> None:
        if message["incident"] in self.rooms:
            await self.send_json({**message, "type": kind})

    # --- Presence ---------------------------------------------------------------------

    @property
    def store(self) -> PresenceStore:
        assert self.presence is not None, "presence is set up when the socket is accepted"
        return self.presence

    async def broadcast(self, incident: int, kind: str, body: dict[str, Any]) -> None:
        await self.channel_layer.group_send(incident_group(incident), {"type": kind, "incident": incident, **body})

    async def announce(self, incident: int, joined: Joined) -> None:
        """presence:left for users swept out on the way in, then presence:joined if this is the user's first tab."""
        await self.tell_room_left(incident, joined.expired, joined.viewers)
        if joined.first:
            await self.broadcast(incident, "presence.joined", {"user": self.user_ref, "viewers": joined.viewers})
        if joined.first or joined.expired:
            await self.tell_list(incident, joined.viewers)

    async def announce_left(self, incident: int, lefts: list[Left], viewers: list[dict[str, Any]] | None) -> None:
        if not lefts:
            return
        if viewers is None:
            viewers = await self.store.viewers(incident)
        await self.tell_room_left(incident, lefts, viewers)
        await self.tell_list(incident, viewers)

    async def tell_room_left(self, incident: int, lefts: list[Left], viewers: list[dict[str, Any]]) -> None:
        for left in lefts:
            await self.broadcast(incident, "presence.left", {"user": left.user, "viewers": viewers})
            if left.had_focus:
                await self.broadcast(incident, "focus.updated", {"user": left.user, "section": None})

    async def tell_list(self, incident: int, viewers: list[dict[str, Any]]) -> None:
        """incident:viewers to list subscribers: once per change of a room's viewers, with the whole list."""
        await self.channel_layer.group_send(
            LIST_GROUP, {"type": "incident.viewers", "incident": incident, "viewers": viewers}
        )

    async def leave_room(self, incident: int) -> bool:
        """Leave a room; True if the room was told this user left."""
        self.rooms.pop(incident, None)
        await self.channel_layer.group_discard(incident_group(incident), self.channel_name)
        async with self.presence_lock:
            left = await self.store.leave(incident, self.channel_name)
        if left is not None:
            await self.announce_left(incident, [left], None)
        return left is not None

    async def rejoin_if_swept(self, incident: int) -> None:
        """Put back this connection's entry if another process swept it (this one stalled past the TTL)."""
        if not await self.store.refresh(incident, self.channel_name):
            await self.announce(incident, await self.store.join(incident, self.channel_name, self.user_ref))

    async def keep_presence(self) -> None:
        """Every PRESENCE_REFRESH_SECONDS: refresh this connection's entries and groups, and sweep its rooms.

        A process that dies stops refreshing; its entries expire after
        PRESENCE_TTL_SECONDS and the next sweep by any live consumer in the
        room removes them and tells the room: gone within TTL + refresh.
        """
        while True:
            await asyncio.sleep(settings.PRESENCE_REFRESH_SECONDS)
            for incident in list(self.rooms):
                try:
                    async with self.presence_lock:
                        if incident not in self.rooms:
                            continue  # left while we waited for the lock
                        # Group membership in channels-redis expires (group_expiry,
                        # a day) and is lost if Redis restarts; re-adding is
                        # idempotent and keeps a long-open socket in its rooms.
                        await self.channel_layer.group_add(incident_group(incident), self.channel_name)
                        await self.rejoin_if_swept(incident)
                        lefts = await self.store.sweep(incident)
                    await self.announce_left(incident, lefts, None)
                except Exception:
                    # Redis hiccup: keep the socket; the next round tries again.
                    logger.exception("Presence refresh failed for incident %s", incident)
            if self.subscribed:
                with contextlib.suppress(Exception):
                    await self.channel_layer.group_add(LIST_GROUP, self.channel_name)

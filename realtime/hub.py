"""The process's fan-out: each room's messages arrive here once, are encoded once, and go to the local sockets.

Without it every socket is its own member of its rooms' channel-layer groups,
so one change is copied into Redis once per socket, popped and decoded once
per socket and JSON-encoded once per socket. Here the *process* is the member
(as in Socket.IO's Redis adapter): a change costs the channel layer one
message per process, one decode and one `json.dumps`, and each local socket
then costs an integer compare and a `send`.

What stays per socket:

- Ordered delivery. Each socket remembers the last `seq` it was sent per room
  (`Member.rooms`); a message at or below it is dropped, and a gap is filled
  from the database first: one query per process for all the sockets that
  need it. Sockets still joining (between `enter` and `activate`) have what
  arrives for them kept, and replayed after their join's ack.
- Presence. Joins and leaves travel as small `presence.changed` messages (one
  user, the room's presence version, the count). The hub gathers them for a
  short window (PRESENCE_WINDOW_SECONDS) and sends each room one
  `presence:left` and one `presence:joined` per window carrying every user
  whose presence changed in it, so a burst of N joins costs each socket a few
  frames, not N frames of N users each. The process where a change happened
  also tells the incident list (`incident:viewers`), once per window.

The hub also keeps its sockets' presence entries alive: every
PRESENCE_REFRESH_SECONDS one refresh per room for all local connections, one
sweep per room (so a dead process's viewers expire), and its group
memberships re-added (channels-redis expires them, a Redis restart loses them).

On Redis the hub receives on a channel-layer instance of its own, which only
it ever reads: channels-redis receives for all of a layer's channels through
one shared pop, run by whichever consumer holds its lock, and a consumer that
closes at the wrong moment drops what that pop returned (django/channels#1683).
Room traffic no longer goes through that shared pop.

One hub per event loop (daphne runs one; tests run one per test).
"""

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from channels.layers import BaseChannelLayer, InMemoryChannelLayer, channel_layers, get_channel_layer
from django.conf import settings

from incident_platform import metrics
from incidents.publishing import LIST_GROUP, incident_group

from .presence import Joined, Left, PresenceStore, UserRef, get_presence_store

logger = logging.getLogger(__name__)

# How many viewers of a room the incident list is sent (with the count): a table cell shows a few.
LIST_VIEWERS = 5

JOINING = -1  # Member.rooms value of a room whose join is not acked yet

# How many windows a room's presence pushes may wait for a version that has not arrived yet.
MAX_HELD_WINDOWS = 2


class Member(Protocol):
    """A local socket, as the hub sees it (the consumer)."""

    channel_name: str
    user_ref: UserRef
    rooms: dict[int, int]  # incident -> the last seq sent (JOINING while the join is in flight)

    async def send_frame(self, text: str) -> None: ...


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


@dataclass
class _Room:
    members: dict[Member, None] = field(default_factory=dict)  # an ordered set
    pending: dict[Member, list[dict[str, Any]]] = field(default_factory=dict)  # joining: held messages
    grouped: asyncio.Future[None] | None = None  # done once this process is in the room's group
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one delivery at a time, in arrival order
    window: list[dict[str, Any]] = field(default_factory=list)  # presence changes not yet sent
    flush: asyncio.TimerHandle | None = None
    sent: int | None = None  # the newest presence version sent to this room's sockets
    held: int = 0  # windows held back in a row, waiting for a missing version


class Hub:
    def __init__(self, layer: BaseChannelLayer, store: PresenceStore) -> None:
        self.layer = layer
        self.store = store
        self.channel_name = ""
        self.rooms: dict[int, _Room] = {}
        self.list_members: dict[Member, None] = {}
        self.list_grouped = False
        self.list_pushes: set[int] = set()  # rooms whose incident:viewers is due (changes made here)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.started = False
        # Joining and leaving a room's group happen in order, so a leave cannot undo a later join.
        self.membership = asyncio.Lock()

    # --- Life ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        self.channel_name = await self.layer.new_channel("hub.")
        self._spawn(self._receive_forever())
        self._spawn(self._keep_alive_forever())

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _receive_forever(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis unreachable: wait and try again; what is lost meanwhile is repaired by seq.
                logger.exception("Hub could not receive; retrying")
                await asyncio.sleep(1)
                continue
            try:
                await self.dispatch(message)
            except Exception:
                logger.exception("Hub could not deliver %s", message.get("type"))

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = self.handlers.get(message.get("type", ""))
        if handler is not None:
            await handler(self, message)

    # --- Rooms ---------------------------------------------------------------------

    async def enter(self, incident: int, member: Member) -> None:
        """Make `member` a joining socket of the room; returns once this process receives the room's messages.

        Call before reading the incident, so nothing committed after the read
        is missed; then `activate` once the join's ack is sent.
        """
        await self.start()
        room = self.rooms.setdefault(incident, _Room())
        member.rooms[incident] = JOINING
        room.members[member] = None
        room.pending.setdefault(member, [])
        if room.grouped is None:
            room.grouped = asyncio.get_running_loop().create_future()
            try:
                async with self.membership:
                    await self.layer.group_add(incident_group(incident), self.channel_name)
            except BaseException:
                # Those waiting for this membership fail too (and may retry); none waits forever.
                room.grouped.set_exception(ConnectionError(f"Could not join {incident_group(incident)}"))
                room.grouped.exception()  # retrieved here, so asyncio does not log it as lost
                room.grouped = None
                raise
            room.grouped.set_result(None)
        else:
            await asyncio.shield(room.grouped)

    async def activate(self, incident: int, member: Member, seq: int) -> None:
        """The join is acked at `seq`: from now on the socket gets what comes after it, what was held first."""
        room = self.rooms.get(incident)
        if room is None or member not in room.members:
            return
        async with room.lock:
            member.rooms[incident] = seq
            for message in room.pending.pop(member, []):
                if message["type"] == "incident.updated":
                    await self._deliver_update(incident, message, [member])
                else:
                    await self._send(member, message["frame"])

    def leave(self, incident: int, member: Member) -> None:
        """Stop sending the room to `member`; the process leaves the group at the next keep-alive if nobody is left."""
        member.rooms.pop(incident, None)
        room = self.rooms.get(incident)
        if room is not None:
            room.members.pop(member, None)
            room.pending.pop(member, None)

    async def subscribe_list(self, member: Member) -> None:
        await self.start()
        self.list_members[member] = None
        if not self.list_grouped:
            await self.layer.group_add(LIST_GROUP, self.channel_name)
            self.list_grouped = True

    def unsubscribe_list(self, member: Member) -> None:
        self.list_members.pop(member, None)

    # --- Delivery --------------------------------------------------------------------

    async def _send(self, member: Member, frame: str) -> None:
        try:
            await member.send_frame(frame)
        except Exception:
            logger.warning("Could not send to %s", member.channel_name, exc_info=True)

    async def _to_room(self, incident: int, message: dict[str, Any], frame: str) -> None:
        """Send a frame to the room's joined sockets; hold it for those still joining."""
        room = self.rooms.get(incident)
        if room is None:
            return
        async with room.lock:
            for member in list(room.members):
                if member.rooms.get(incident, JOINING) == JOINING:
                    held = room.pending.get(member)
                    if held is not None:
                        held.append({"type": message["type"], "frame": frame})
                else:
                    await self._send(member, frame)

    async def on_incident_updated(self, message: dict[str, Any]) -> None:
        incident = message["incident"]
        room = self.rooms.get(incident)
        if room is None:
            return
        async with room.lock:
            ready = []
            for member in list(room.members):
                if member.rooms.get(incident, JOINING) == JOINING:
                    held = room.pending.get(member)
                    if held is not None:
                        held.append(message)
                else:
                    ready.append(member)
            await self._deliver_update(incident, message, ready)

    async def _deliver_update(self, incident: int, message: dict[str, Any], members: list[Member]) -> None:
        """incident:updated to each member in seq order and once, gaps filled first (one query for all of them)."""
        seq = message["seq"]
        behind = [m for m in members if m.rooms.get(incident, seq) < seq - 1]
        if behind:
            await self._fill_gap(incident, message, behind)
        frame: str | None = None
        for member in members:
            last = member.rooms.get(incident)
            if last is None or last == JOINING or seq <= last:
                continue  # left meanwhile, or already sent
            member.rooms[incident] = seq
            if frame is None:
                frame = encode(
                    {
                        "type": "incident:updated",
                        "incident": incident,
                        "seq": seq,
                        "version": message["version"],
                        "event": message["event"],
                        "state": message["state"],
                    }
                )
            await self._send(member, frame)
        if frame is not None:
            metrics.fanout_delivered(message)

    async def _fill_gap(self, incident: int, message: dict[str, Any], members: list[Member]) -> None:
        from .actions import events_between

        oldest = min(m.rooms[incident] for m in members)
        missed = await events_between(incident_id=incident, after=oldest, before=message["seq"])
        # The state those events produced is not stored; the newest known state
        # goes with them (`gap_filled` says so).
        frames = [
            (
                event["seq"],
                encode(
                    {
                        "type": "incident:updated",
                        "incident": incident,
                        "seq": event["seq"],
                        "version": event["seq"],
                        "event": event,
                        "state": message["state"],
                        "gap_filled": True,
                    }
                ),
            )
            for event in missed
        ]
        for member in members:
            for seq, frame in frames:
                last = member.rooms.get(incident)
                if last is None or last == JOINING or seq <= last:
                    continue
                member.rooms[incident] = seq
                await self._send(member, frame)

    async def on_focus_updated(self, message: dict[str, Any]) -> None:
        incident = message["incident"]
        frame = encode(
            {"type": "focus:updated", "incident": incident, "user": message["user"], "section": message["section"]}
        )
        await self._to_room(incident, message, frame)

    async def _to_list(self, frame: str) -> None:
        for member in list(self.list_members):
            await self._send(member, frame)

    async def on_incident_created(self, message: dict[str, Any]) -> None:
        await self._to_list(encode({**message["row"], "type": "incident:created", "incident": message["incident"]}))

    async def on_incident_list_changed(self, message: dict[str, Any]) -> None:
        await self._to_list(encode({**message["row"], "type": "incident:listChanged", "incident": message["incident"]}))

    async def on_incident_viewers(self, message: dict[str, Any]) -> None:
        await self._to_list(encode({**message, "type": "incident:viewers"}))

    # --- Presence ----------------------------------------------------------------------

    async def announce(
        self, incident: int, *, joined: UserRef | None, version: int, count: int, lefts: list[Left]
    ) -> None:
        """Tell the room (every process) about presence changes made here; the list hears of them once per window."""
        changes = [
            {"user": left.user, "joined": False, "version": left.version, "count": left.count, "focus": left.had_focus}
            for left in lefts
        ]
        if joined is not None:
            changes.append({"user": joined, "joined": True, "version": version, "count": count, "focus": False})
        if not changes:
            return
        await self.layer.group_send(
            incident_group(incident), {"type": "presence.changed", "incident": incident, "changes": changes}
        )
        if incident not in self.list_pushes:
            self.list_pushes.add(incident)
            asyncio.get_running_loop().call_later(self.window_seconds, lambda: self._spawn(self._push_list(incident)))

    async def join_presence(self, incident: int, conn: str, user: UserRef) -> Joined:
        """Put a connection in the room's presence and tell the room what that changed."""
        joined = await self.store.join(incident, conn, user)
        await self.announce(
            incident,
            joined=user if joined.first else None,
            version=joined.version,
            count=joined.count,
            lefts=joined.expired,
        )
        return joined

    @property
    def window_seconds(self) -> float:
        return float(settings.PRESENCE_WINDOW_SECONDS)

    async def on_presence_changed(self, message: dict[str, Any]) -> None:
        incident = message["incident"]
        room = self.rooms.get(incident)
        if room is None:
            return
        room.window.extend(message["changes"])
        if room.flush is None:
            self._schedule_flush(incident, room)

    def _schedule_flush(self, incident: int, room: _Room) -> None:
        room.flush = asyncio.get_running_loop().call_later(
            self.window_seconds, lambda: self._spawn(self._flush_presence(incident))
        )

    async def _flush_presence(self, incident: int) -> None:
        room = self.rooms.get(incident)
        if room is None:
            return
        if room.flush is not None:
            room.flush.cancel()  # when flushed early (tests), not by its timer
        room.flush = None
        versions = sorted({c["version"] for c in room.window if room.sent is None or c["version"] > room.sent})
        if not versions:
            room.window = []
            return
        base = room.sent if room.sent is not None else versions[0] - 1
        if versions != list(range(base + 1, versions[-1] + 1)) and room.held < MAX_HELD_WINDOWS:
            # Changes made at once on several sockets or processes reach here in
            # any order: wait a window for the missing one rather than send a
            # frame that makes every client ask for the whole list.
            room.held += 1
            self._schedule_flush(incident, room)
            return
        changes, room.window, room.held, room.sent = room.window, [], 0, versions[-1]
        for message in presence_frames(incident, changes, base=base):
            await self._to_room(incident, message, encode(message))

    async def _push_list(self, incident: int) -> None:
        self.list_pushes.discard(incident)
        try:
            snapshot = (await self.store.snapshots([incident], limit=LIST_VIEWERS))[incident]
            await self.layer.group_send(
                LIST_GROUP,
                {
                    "type": "incident.viewers",
                    "incident": incident,
                    "viewers": snapshot.viewers,
                    "count": snapshot.count,
                    "version": snapshot.version,
                },
            )
        except Exception:
            logger.exception("Could not tell the list about incident %s", incident)

    # --- Keep-alive ----------------------------------------------------------------------

    async def _keep_alive_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.PRESENCE_REFRESH_SECONDS)
            await self.keep_alive()

    async def keep_alive(self) -> None:
        """Refresh this process's presence entries, sweep its rooms, and re-add its group memberships."""
        for incident in list(self.rooms):
            room = self.rooms[incident]
            if not room.members:
                async with self.membership:
                    if room.members or room.window or room.grouped is None or not room.grouped.done():
                        continue
                    del self.rooms[incident]
                    with contextlib.suppress(Exception):
                        await self.layer.group_discard(incident_group(incident), self.channel_name)
                continue
            try:
                await self.layer.group_add(incident_group(incident), self.channel_name)
                by_conn = {member.channel_name: member for member in room.members}
                missing = await self.store.refresh_many(incident, list(by_conn))
                for conn in missing:
                    member = by_conn[conn]
                    if member in room.members:  # not left meanwhile: another process swept it out
                        await self.join_presence(incident, conn, member.user_ref)
                lefts = await self.store.sweep(incident)
                await self.announce(incident, joined=None, version=0, count=0, lefts=lefts)
            except Exception:
                # Redis hiccup: keep the sockets; the next round tries again.
                logger.exception("Presence refresh failed for incident %s", incident)
        if self.list_members:
            with contextlib.suppress(Exception):
                await self.layer.group_add(LIST_GROUP, self.channel_name)

    handlers: ClassVar[dict[str, Callable[["Hub", dict[str, Any]], Awaitable[None]]]] = {
        "incident.updated": on_incident_updated,
        "focus.updated": on_focus_updated,
        "presence.changed": on_presence_changed,
        "incident.created": on_incident_created,
        "incident.list_changed": on_incident_list_changed,
        "incident.viewers": on_incident_viewers,
    }


def presence_frames(incident: int, changes: list[dict[str, Any]], *, base: int | None = None) -> list[dict[str, Any]]:
    """One window's presence changes as at most one presence:left, one presence:joined and focus clears.

    Each frame says the state, at the window's newest `version`, of every user
    whose presence changed in it; `since` is the version a client must already
    have for that to be complete: `base` (the newest version sent before) when
    every version after it is here. A client whose version is older asks for
    the list again; one whose version is newer ignores the frame.
    """
    by_version = {c["version"]: c for c in changes if base is None or c["version"] > base}
    if not by_version:
        return []
    versions = sorted(by_version)
    newest = versions[-1]
    if base is None:
        base = versions[0] - 1
    if versions == list(range(base + 1, newest + 1)):
        start = 0
    else:
        # A version is missing (lost, or too late): the frame is only complete
        # from after the last gap.
        start = len(versions) - 1
        while start > 0 and versions[start - 1] == versions[start] - 1:
            start -= 1
    since = versions[start] - 1
    # Every user touched in the window, as the newest change left them: a user
    # who came and went within it is in presence:left, since a client that
    # joined in between has seen them arrive.
    final: dict[int, dict[str, Any]] = {}
    for version in versions[start:]:
        change = by_version[version]
        final[change["user"]["id"]] = change
    count = by_version[newest]["count"]
    left = [c["user"] for c in final.values() if not c["joined"]]
    joined = [c["user"] for c in final.values() if c["joined"]]
    frames: list[dict[str, Any]] = []
    for kind, users in (("presence:left", left), ("presence:joined", joined)):
        if users:
            frame: dict[str, Any] = {
                "type": kind,
                "incident": incident,
                "users": users,
                "version": newest,
                "since": since,
                "count": count,
            }
            if len(users) == 1:
                frame["user"] = users[0]
            frames.append(frame)
    for change in final.values():
        if not change["joined"] and change.get("focus"):
            frames.append({"type": "focus:updated", "incident": incident, "user": change["user"], "section": None})
    return frames


# --- The hub of this process ---------------------------------------------------------


class _Hubs:
    per_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub]] = weakref.WeakKeyDictionary()


def _own_layer() -> BaseChannelLayer:
    """A channel-layer instance only the hub reads (see the module's docstring); the shared one in memory."""
    layer = get_channel_layer()
    assert layer is not None, "CHANNEL_LAYERS is configured"
    if isinstance(layer, InMemoryChannelLayer):
        return layer
    return channel_layers.make_backend("default")


def get_hub() -> Hub:
    loop = asyncio.get_running_loop()
    hub = _Hubs.per_loop.get(loop)
    if hub is None:
        hub = _Hubs.per_loop[loop] = Hub(_own_layer(), get_presence_store())
    return hub

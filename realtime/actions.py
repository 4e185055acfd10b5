"""The consumer's database work: small sync functions, each checking who may do it, run via database_sync_to_async.

Every write goes through `incidents.commands` (the one way in) inside
`incidents.idempotency.run_once`, exactly as the REST API does, so the two
doors behave the same; only the input's transport differs in the key's
fingerprint. The actor is re-read from the database for each message, so a
deactivated account or a changed role takes effect on open sockets at once.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework import serializers

from incidents import commands
from incidents.errors import Invalid, NotFound
from incidents.idempotency import Outcome, command_content, run_once
from incidents.models import AuditEvent, Incident
from incidents.publishing import incident_state, plain
from incidents.selectors import events_after
from incidents.serializers import (
    ActionItemAddInput,
    ActionItemSerializer,
    ActionItemUpdateInput,
    IncidentDetailSerializer,
    IncidentUpdateInput,
    NoteInput,
    StatusInput,
    StatusUpdateInput,
)

from .database import database_work
from .protocol import Unauthenticated, first_error

User = get_user_model()

# With no `after`, a join returns the newest events, as GET /api/incidents/{id} returns its `history`.
JOIN_HISTORY = IncidentDetailSerializer.HISTORY_LENGTH
# With `after`, at most this many (as GET .../events pages); the ack's `more` says whether more remain.
JOIN_EVENTS_LIMIT = 500


def active_user(user_id: int) -> Any:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise Unauthenticated()
    return user


# --- Reads --------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    state: dict[str, Any]
    events: list[dict[str, Any]]
    more: bool = False  # more events after these remain (join again with `after` = the last seq)

    @property
    def version(self) -> int:
        return int(self.state["version"])


class _RoomCache:
    """What joins of one incident at one version read, kept for the next joiner (a reconnect storm reads it once).

    Keyed by (incident, its creation time, version, after): an incident's
    state at a version and its events up to that version never change, so an
    entry is never stale (the creation time tells apart an incident id used
    again, after a database is restored or a test database flushed).
    """

    SIZE = 64

    def __init__(self) -> None:
        self.rooms: OrderedDict[tuple[Any, ...], Room] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Room | None:
        with self.lock:
            room = self.rooms.get(key)
            if room is not None:
                self.rooms.move_to_end(key)
            return room

    def put(self, key: tuple[Any, ...], room: Room) -> None:
        with self.lock:
            self.rooms[key] = room
            while len(self.rooms) > self.SIZE:
                self.rooms.popitem(last=False)


_ROOMS = _RoomCache()


@database_work
def room_load(*, user_id: int, incident_id: int, after: int | None) -> Room:
    """The incident's state and the events a joining client needs; every signed-in user may read.

    Events are capped at the state's version, so the join's reply is one
    consistent picture: events up to `state.version`, and everything newer
    arrives as incident:updated (the socket joined the room before this read).
    """
    active_user(user_id)
    row = Incident.objects.filter(pk=incident_id).values_list("created_at", "version").first()
    if row is None:
        raise NotFound(f"Incident {incident_id} does not exist.")
    created_at, version = row
    cached = _ROOMS.get((incident_id, created_at, version, after))
    if cached is not None:
        return cached
    try:
        state = incident_state(incident_id)
    except Incident.DoesNotExist:
        raise NotFound(f"Incident {incident_id} does not exist.") from None
    events = AuditEvent.objects.filter(incident_id=incident_id, seq__lte=state["version"])
    if after is None:
        newest = list(events.order_by("-seq")[:JOIN_HISTORY])
        rows = list(reversed(newest))
        more = False
    else:
        rows = list(events.filter(seq__gt=after).order_by("seq")[: JOIN_EVENTS_LIMIT + 1])
        more = len(rows) > JOIN_EVENTS_LIMIT
        rows = rows[:JOIN_EVENTS_LIMIT]
    room = Room(state=state, events=[event.as_data() for event in rows], more=more)
    _ROOMS.put((incident_id, created_at, room.version, after), room)
    return room


@database_work
def events_between(*, incident_id: int, after: int, before: int) -> list[dict[str, Any]]:
    """Events with after < seq < before, oldest first: a gap in what a socket was sent."""
    rows = events_after(incident_id=incident_id, after=after).filter(seq__lt=before)
    return [event.as_data() for event in rows]


# --- Writes -------------------------------------------------------------------


@dataclass(frozen=True)
class CommandSpec:
    input: type[serializers.Serializer[Any]]
    run: Callable[[Any, int, int | None, dict[str, Any]], commands.CommandResult]
    item: bool = False  # the message names an action item (`item`)


def _update(actor: Any, incident_id: int, _item: int | None, data: dict[str, Any]) -> commands.CommandResult:
    data = dict(data)
    version = data.pop("version", None)
    return commands.incident_update(actor=actor, incident_id=incident_id, expected_version=version, **data)


COMMANDS: dict[str, CommandSpec] = {
    "incident:updateStatus": CommandSpec(
        StatusInput,
        lambda actor, incident_id, _item, data: commands.incident_change_status(
            actor=actor,
            incident_id=incident_id,
            status=data["status"],
            expected_version=data.get("version"),
            resolution=data.get("resolution"),
        ),
    ),
    "incident:update": CommandSpec(IncidentUpdateInput, _update),
    "incident:addNote": CommandSpec(
        NoteInput,
        lambda actor, incident_id, _item, data: commands.incident_add_note(
            actor=actor, incident_id=incident_id, body=data["body"]
        ),
    ),
    "incident:postStatusUpdate": CommandSpec(
        StatusUpdateInput,
        lambda actor, incident_id, _item, data: commands.incident_post_status_update(
            actor=actor, incident_id=incident_id, body=data["body"]
        ),
    ),
    "incident:addActionItem": CommandSpec(
        ActionItemAddInput,
        lambda actor, incident_id, _item, data: commands.action_item_add(actor=actor, incident_id=incident_id, **data),
    ),
    "incident:updateActionItem": CommandSpec(
        ActionItemUpdateInput,
        lambda actor, incident_id, item, data: commands.action_item_update(
            actor=actor, incident_id=incident_id, item_id=int(item or 0), **data
        ),
        item=True,
    ),
}


def _ack_body(result: commands.CommandResult) -> dict[str, Any]:
    events = [event.as_data() for event in result.events]
    body: dict[str, Any] = {
        "incident": result.incident.pk,
        "version": result.incident.version,
        "seq": events[-1]["seq"] if events else None,
        "seqs": [event["seq"] for event in events],
        "events": events,
        "state": result.state,
    }
    if result.item is not None:
        body["item"] = ActionItemSerializer(result.item).data
    return plain(body)


@database_work
def command_run(
    *, user_id: int, name: str, incident_id: int, item_id: int | None, fields: dict[str, Any], key: Any
) -> dict[str, Any]:
    """Validate with the REST input serializer, then run the command once per idempotency key.

    The role is checked before the input, as the REST permission class does,
    so a viewer learns `forbidden` whatever it sent. The ack's `state` is read
    inside the command's transaction: it is the incident as this change left it.
    """
    actor = active_user(user_id)
    commands.check_can_change(actor)
    spec = COMMANDS[name]
    serializer = spec.input(data=fields)
    if not serializer.is_valid():
        errors = plain(serializer.errors)
        raise Invalid(first_error(errors), fields=errors)
    data = dict(serializer.validated_data)
    target = [incident_id, item_id] if spec.item else [incident_id]
    content = command_content(transport="ws", command=name, target=target, data=data)

    def execute() -> Outcome:
        with transaction.atomic():
            result = spec.run(actor, incident_id, item_id, data)
            return Outcome(200, _ack_body(result))

    outcome = run_once(actor=actor, key=key, content=content, execute=execute)
    return {**outcome.body, "replayed": True} if outcome.replayed else dict(outcome.body)

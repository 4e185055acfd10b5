"""Durations of an incident, computed from its append-only timeline.

`incident_metrics` is a pure function of the events (in seq order) and the
moment it is asked (`now`): nothing here reads the database or trusts a
number someone typed, so any figure can be recomputed from the audit trail
and checked.

The definitions:

- time to identify: from the opening to the first move to `identified`, or
  straight to a later stage (`monitoring`, `resolved`);
- time to mitigate: from the opening to the first move to `monitoring` or
  straight to `resolved`;
- time to resolve: from the opening to the final resolution (none while
  the incident is open; a reopen starts the clock again toward a new one);
- time in each status: summed over every stretch in it, so a reopen adds
  to `investigating` again; the open stretch counts up to `now`, and the
  final `resolved` stretch of a resolved incident is not counted (it is the
  end, not a stage), while a resolved stretch that a reopen ended is;
- time open: the time spent in the three open statuses.

Timestamps are read in commit order (seq). Clocks of different servers can
disagree by a little, so an event stamped before the one committed ahead of
it is taken to happen at that earlier event's time: no duration is ever
negative, and the stages always add up to the whole.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

OPEN_STATUSES = ("investigating", "identified", "monitoring")
STATUSES = (*OPEN_STATUSES, "resolved")
IDENTIFIED_OR_LATER = frozenset({"identified", "monitoring", "resolved"})
MITIGATED_OR_LATER = frozenset({"monitoring", "resolved"})


class EventLike(Protocol):
    """What the computation reads from an event (an AuditEvent or anything shaped like one)."""

    seq: int
    type: str
    at: datetime
    actor_id: int
    actor_username: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Responder:
    id: int
    username: str
    events: int


@dataclass
class IncidentMetrics:
    status: str
    opened_at: datetime
    identified_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    time_to_identify: timedelta | None
    time_to_mitigate: timedelta | None
    time_to_resolve: timedelta | None
    time_open: timedelta
    time_in_status: dict[str, timedelta]
    reopens: int
    responders: list[Responder]
    action_items_open: int
    action_items_done: int
    events: int
    as_of: datetime
    stages: list[tuple[str, timedelta]] = field(default_factory=list)

    @property
    def elapsed(self) -> timedelta:
        """How long it has run: its time to resolve once resolved, its age while open."""
        return self.time_to_resolve if self.time_to_resolve is not None else self.as_of - self.opened_at

    def as_data(self) -> dict[str, Any]:
        """Durations in seconds, moments in ISO 8601 (UTC, `Z`)."""
        return {
            "status": self.status,
            "opened_at": _iso(self.opened_at),
            "identified_at": _iso(self.identified_at),
            "mitigated_at": _iso(self.mitigated_at),
            "resolved_at": _iso(self.resolved_at),
            "time_to_identify": seconds(self.time_to_identify),
            "time_to_mitigate": seconds(self.time_to_mitigate),
            "time_to_resolve": seconds(self.time_to_resolve),
            "time_open": seconds(self.time_open),
            "elapsed": seconds(self.elapsed),
            "time_in_status": {name: seconds(value) for name, value in self.time_in_status.items()},
            "reopens": self.reopens,
            "responders": [{"id": r.id, "username": r.username, "events": r.events} for r in self.responders],
            "action_items": {"open": self.action_items_open, "done": self.action_items_done},
            "events": self.events,
            "as_of": _iso(self.as_of),
        }


def seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def incident_metrics(events: Iterable[EventLike], *, now: datetime) -> IncidentMetrics:
    """Fold the timeline (oldest first) into its durations as of `now`."""
    ordered = sorted(events, key=lambda event: event.seq)
    if not ordered or ordered[0].type != "incident_created":
        raise ValueError("A timeline starts with its incident_created event.")

    opened = ordered[0].at
    clock = opened  # the time of the latest event read, never moving backwards
    status = "investigating"
    since = opened
    in_status = {name: timedelta(0) for name in STATUSES}
    identified: datetime | None = None
    mitigated: datetime | None = None
    resolved: datetime | None = None
    reopens = 0
    actors: dict[int, list[Any]] = {}
    items: dict[Any, bool] = {}

    for event in ordered:
        clock = max(clock, event.at)
        entry = actors.setdefault(event.actor_id, [event.actor_username, 0])
        entry[1] += 1
        data = event.data or {}
        if event.type == "status_change":
            new = str(data.get("to"))
            in_status[status] += clock - since
            if status == "resolved":
                reopens += 1
                resolved = None
            status, since = new, clock
            if identified is None and new in IDENTIFIED_OR_LATER:
                identified = clock
            if mitigated is None and new in MITIGATED_OR_LATER:
                mitigated = clock
            if new == "resolved":
                resolved = clock
        elif event.type in ("action_item_added", "action_item_updated"):
            item = data.get("item") or {}
            items[item.get("id")] = bool(item.get("done"))

    end = max(now, clock)
    if status != "resolved":
        in_status[status] += end - since

    stages: list[tuple[str, timedelta]] = []
    if identified is not None:
        stages.append(("identify", identified - opened))
        if mitigated is not None:
            stages.append(("mitigate", mitigated - identified))
            if resolved is not None:
                stages.append(("resolve", resolved - mitigated))

    return IncidentMetrics(
        status=status,
        opened_at=opened,
        identified_at=identified,
        mitigated_at=mitigated,
        resolved_at=resolved,
        time_to_identify=identified - opened if identified is not None else None,
        time_to_mitigate=mitigated - opened if mitigated is not None else None,
        time_to_resolve=resolved - opened if resolved is not None else None,
        time_open=sum((in_status[name] for name in OPEN_STATUSES), timedelta(0)),
        time_in_status=in_status,
        reopens=reopens,
        responders=[Responder(id=pk, username=name, events=count) for pk, (name, count) in actors.items()],
        action_items_open=sum(1 for done in items.values() if not done),
        action_items_done=sum(1 for done in items.values() if done),
        events=len(ordered),
        as_of=end,
        stages=stages,
    )


def format_duration(value: timedelta | float | None) -> str:
    """A duration as a person reads it: "45 s", "12 min", "1 h 5 min", "2 d 3 h"."""
    if value is None:
        return "—"
    total = int(value.total_seconds() if isinstance(value, timedelta) else value)
    if total < 60:
        return f"{max(total, 0)} s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"

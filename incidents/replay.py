"""An incident's state folded from its timeline alone.

The events are the record; the Incident and ActionItem rows are a cache of
what they say. `state_from_events` recomputes that cache from the events (in
the contract's shape, `AuditEvent.as_data()`), touching no database, so
`verify_audit` can compare it with the rows, and anything that needs the
state at some point in the past (a replay, a postmortem) can stop the fold
where it likes.

Event types this fold does not know (added later: pins, status updates,
roles) leave the fields it tracks alone; they still count for `version`.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

UserRef = dict[str, Any]


class ReplayError(ValueError):
    """The events cannot be a timeline: not starting at incident_created, or seq not 1, 2, 3 …"""


@dataclass(frozen=True)
class ReplayedState:
    """What the timeline says an incident is, after the event numbered `version`."""

    title: str
    severity: str
    summary: str
    status: str
    created_by: UserRef
    created_at: str
    version: int
    commander: UserRef | None = None
    # Ordered by user id.
    assignees: tuple[UserRef, ...] = ()
    # Ordered by item id; each {"id", "title", "owner", "done"} as its events recorded it.
    action_items: tuple[Mapping[str, Any], ...] = ()
    resolved_at: str | None = None
    # Every incident role an `assignment` event has set (commander included), by name.
    roles: Mapping[str, UserRef | None] = field(default_factory=dict)
    # The seqs pinned as key moments (`event_pinned` / `event_unpinned`); not in `as_dict`.
    pinned: frozenset[int] = frozenset()

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "status": self.status,
            "severity": self.severity,
            "summary": self.summary,
            "commander": self.commander,
            "assignees": list(self.assignees),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "resolved_at": self.resolved_at,
            "action_items": [dict(item) for item in self.action_items],
            "roles": dict(self.roles),
            "version": self.version,
        }


def _created(event: Mapping[str, Any]) -> ReplayedState:
    data = event["data"]
    return ReplayedState(
        title=data["title"],
        severity=data["severity"],
        summary=data.get("summary", ""),
        status="investigating",
        created_by=dict(event["actor"]),
        created_at=event["at"],
        version=event["seq"],
        commander=data.get("commander"),
        roles={"commander": data.get("commander")},
    )


def apply_event(state: ReplayedState, event: Mapping[str, Any]) -> ReplayedState:
    """The state after one more event (the next seq)."""
    if event["seq"] != state.version + 1:
        raise ReplayError(f"event seq {event['seq']} does not follow {state.version}")
    kind, data = event["type"], event["data"]
    changes: dict[str, Any] = {"version": event["seq"]}
    if kind == "incident_created":
        raise ReplayError(f"event {event['seq']} is a second incident_created")
    if kind == "status_change":
        changes["status"] = data["to"]
        if data["to"] == "resolved":
            changes["resolved_at"] = event["at"]
        elif state.status == "resolved":
            changes["resolved_at"] = None
    elif kind == "severity_change":
        changes["severity"] = data["to"]
    elif kind == "summary_change":
        changes["summary"] = data["to"]
    elif kind == "title_change":
        changes["title"] = data["to"]
    elif kind == "assignment":
        roles = dict(state.roles)
        for name, change in data.items():
            if name != "assignees" and isinstance(change, Mapping) and "to" in change:
                roles[name] = change["to"]
        changes["roles"] = roles
        if "commander" in data:
            changes["commander"] = data["commander"]["to"]
        if "assignees" in data:
            removed = {user["id"] for user in data["assignees"].get("removed", [])}
            kept = {user["id"]: user for user in state.assignees if user["id"] not in removed}
            kept.update({user["id"]: user for user in data["assignees"].get("added", [])})
            changes["assignees"] = tuple(kept[pk] for pk in sorted(kept))
    elif kind in ("action_item_added", "action_item_updated"):
        item = dict(data["item"])
        items = {existing["id"]: existing for existing in state.action_items}
        items[item["id"]] = item
        changes["action_items"] = tuple(items[pk] for pk in sorted(items))
    elif kind == "event_pinned":
        changes["pinned"] = state.pinned | {data["seq"]}
    elif kind == "event_unpinned":
        changes["pinned"] = state.pinned - {data["seq"]}
    return replace(state, **changes)


def state_from_events(events: Iterable[Mapping[str, Any]]) -> ReplayedState:
    """Fold a whole timeline (oldest first, from seq 1) into the incident's state."""
    state: ReplayedState | None = None
    for event in events:
        if state is None:
            if event["seq"] != 1 or event["type"] != "incident_created":
                raise ReplayError(
                    f"a timeline starts with incident_created at seq 1, not {event['type']} at seq {event['seq']}"
                )
            state = _created(event)
        else:
            state = apply_event(state, event)
    if state is None:
        raise ReplayError("no events: every incident's timeline starts with incident_created")
    return state

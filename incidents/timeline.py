"""The timeline in words: one small formatter per audit event type.

`describe_event` is what the room's timeline, the review page and the
postmortem show for an event ("investigating → identified", "assigned carol",
"note: …"). Each `AuditEvent.Type` has its formatter in `FORMATTERS`
(tests/test_timeline.py checks none is missing); a type without one (an
event written by a newer release) reads as its name in words.
Slack lines (incidents.webhooks.payloads) say it differently, for a channel.
"""

from collections.abc import Callable
from typing import Any

from .models import AuditEvent, Incident

T = AuditEvent.Type
Data = dict[str, Any]
Formatter = Callable[[Data], str]

ROLE_NAMES = {"commander": "commander", "comms_lead": "communications lead", "scribe": "scribe"}
SETTLED_CONFLICT = {"merge": " (merged after a conflict)", "replace": " (replaced after a conflict)"}


def _names(users: list[dict[str, Any]]) -> str:
    return ", ".join(str(user.get("username", "?")) for user in users)


def _item(data: Data) -> tuple[dict[str, Any], str, Any]:
    """The action item an event is about: the item, its title and its owner's username."""
    item = data.get("item") or {}
    return item, item.get("title", ""), (item.get("owner") or {}).get("username")


def _created(data: Data) -> str:
    return f"opened it ({data.get('severity', '?')})"


def _status(data: Data) -> str:
    if data.get("from") == Incident.Status.RESOLVED:
        return f"reopened it: {data.get('from')} → {data.get('to')}"
    if data.get("resolution"):
        return f"{data.get('from')} → {data.get('to')}: {data['resolution']}"
    return f"{data.get('from')} → {data.get('to')}"


def _severity(data: Data) -> str:
    return f"severity {data.get('from')} → {data.get('to')}"


def _summary(data: Data) -> str:
    return "updated the summary" + SETTLED_CONFLICT.get(data.get("resolved_conflict", ""), "")


def _title(data: Data) -> str:
    return f"renamed it “{data.get('from', '')}” → “{data.get('to', '')}”"


def _note(data: Data) -> str:
    return f"note: {data.get('body', '')}"


def _status_update(data: Data) -> str:
    return f"status update: {data.get('body', '')}"


def _cadence(data: Data) -> str:
    new = data.get("to")
    return f"status updates every {new} min" if new else "no status update cadence"


def _pin(verb: str) -> Formatter:
    def describe(data: Data) -> str:
        return f"{verb} event {data.get('seq')} ({str(data.get('type', '')).replace('_', ' ')})"

    return describe


def _assignment(data: Data) -> str:
    parts = []
    for role, words in ROLE_NAMES.items():
        change = data.get(role)
        if change:
            new, old = change.get("to"), change.get("from")
            if new:
                parts.append(f"made {new.get('username')} {words}")
            elif old:
                parts.append(f"removed {old.get('username')} as {words}")
    assignees = data.get("assignees") or {}
    if assignees.get("added"):
        parts.append(f"assigned {_names(assignees['added'])}")
    if assignees.get("removed"):
        parts.append(f"unassigned {_names(assignees['removed'])}")
    return "; ".join(parts) or "changed the assignment"


def _item_added(data: Data) -> str:
    _, title, owner = _item(data)
    return f"action item added: “{title}”" + (f" for {owner}" if owner else "")


def _item_updated(data: Data) -> str:
    item, title, owner = _item(data)
    changed = data.get("changed") or []
    parts = []
    if "done" in changed:
        parts.append(f"ticked “{title}” done" if item.get("done") else f"unticked “{title}”")
    if "owner" in changed:
        parts.append(f"gave “{title}” to {owner}" if owner else f"took the owner off “{title}”")
    if "title" in changed:
        parts.append(f"renamed an action item to “{title}”")
    return "; ".join(parts) or f"updated “{title}”"


FORMATTERS: dict[str, Formatter] = {
    T.INCIDENT_CREATED: _created,
    T.STATUS_CHANGE: _status,
    T.SEVERITY_CHANGE: _severity,
    T.SUMMARY_CHANGE: _summary,
    T.TITLE_CHANGE: _title,
    T.NOTE: _note,
    T.STATUS_UPDATE: _status_update,
    T.UPDATE_CADENCE_CHANGE: _cadence,
    T.EVENT_PINNED: _pin("pinned"),
    T.EVENT_UNPINNED: _pin("unpinned"),
    T.ASSIGNMENT: _assignment,
    T.ACTION_ITEM_ADDED: _item_added,
    T.ACTION_ITEM_UPDATED: _item_updated,
}


def describe_event(event: AuditEvent) -> str:
    """The event in its own words ("investigating → identified", "assigned carol", "note: …")."""
    formatter = FORMATTERS.get(event.type)
    if formatter is None:
        return str(event.type).replace("_", " ")
    return formatter(event.data or {})

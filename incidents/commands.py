"""The one way in: every change to an incident is one of these commands.

REST views, the WebSocket consumer, the web pages, the admin and the seed
command all call these, so they share one behaviour. A command

1. checks the actor's role (raising a typed error from `incidents.errors`);
2. in one transaction locks the incident row, checks the expected version,
   applies the change, bumps `version` and appends one AuditEvent per change;
3. publishes each event after the commit (`incidents.publishing`).

Nothing else writes an Incident, an ActionItem or an AuditEvent.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from incident_platform.metrics import counted
from incident_platform.text import shows_nothing

from . import notifications, publishing, richtext
from .errors import Conflict, Forbidden, Invalid, InvalidTransition, NotFound
from .models import ActionItem, AuditEvent, Incident, allowed_transitions
from .webhooks import outbox

User = get_user_model()

# The stages a status move reaches (see `incidents.metrics`): moving straight to
# monitoring or resolved also counts as identified.
IDENTIFIED_OR_LATER = frozenset({"identified", "monitoring", "resolved"})
MITIGATED_OR_LATER = frozenset({"monitoring", "resolved"})

# Sentinel for "not given", since None is a meaningful value (no commander, no owner).
UNSET: Any = object()


@dataclass
class CommandResult:
    incident: Incident
    events: list[AuditEvent] = field(default_factory=list)
    item: ActionItem | None = None

    @property
    def state(self) -> dict[str, Any]:
        """The incident's state after the command, as broadcast; built afresh only if nothing changed."""
        if self.events and self.events[-1].state_after is not None:
            return self.events[-1].state_after
        return publishing.incident_state(self.incident.pk)


# --- Checks -------------------------------------------------------------------


def check_can_change(actor: Any) -> None:
    if not getattr(actor, "is_authenticated", False):
        raise Forbidden("Sign in first.")
    if not actor.can_change_incidents:
        raise Forbidden("Only responders and admins may change incidents.")


def check_transition(incident: Incident, status: str) -> None:
    if status not in Incident.Status.values:
        raise Invalid(fields={"status": [f'"{status}" is not a valid status.']})
    if status == incident.status:
        raise InvalidTransition(f"The incident is already {status}.")
    if status not in allowed_transitions(incident.status):
        raise InvalidTransition(
            f"A {incident.status} incident cannot move to {status}; "
            f"allowed: {', '.join(allowed_transitions(incident.status))}."
        )


def check_text(name: str, value: Any, *, max_length: int, allow_blank: bool) -> str:
    if not isinstance(value, str):
        raise Invalid(fields={name: ["Must be a string."]})
    if not allow_blank and not value.strip():
        raise Invalid(fields={name: ["May not be blank."]})
    if value.strip() and shows_nothing(value):
        # Zero-width, control or filler characters only: blank to a reader, though not to strip().
        raise Invalid(fields={name: ["Has no visible characters."]})
    if len(value) > max_length:
        raise Invalid(fields={name: [f"At most {max_length} characters."]})
    return value


def check_severity(value: Any) -> str:
    if value not in Incident.Severity.values:
        raise Invalid(fields={"severity": [f'"{value}" is not a valid severity.']})
    return str(value)


def check_cadence(value: Any) -> int | None:
    """Whole minutes from 1 to a week, or None (no cadence)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= Incident.CADENCE_MAX_MINUTES:
        raise Invalid(
            fields={
                "status_update_cadence": [f"Whole minutes from 1 to {Incident.CADENCE_MAX_MINUTES}, or null (none)."]
            }
        )
    return value


# How a writer settled a conflict over the summary (see `incident_update`).
RESOLVED_CONFLICT = ("merge", "replace")


def check_resolved_conflict(value: Any, *, summary: Any) -> str | None:
    if value is None:
        return None
    if value not in RESOLVED_CONFLICT:
        raise Invalid(fields={"resolved_conflict": [f'"{value}" is not one of: {", ".join(RESOLVED_CONFLICT)}.']})
    if summary is UNSET:
        raise Invalid(fields={"resolved_conflict": ["Only with a summary."]})
    return str(value)


def check_user(name: str, user: Any) -> Any:
    if user is not None and (not isinstance(user, User) or not user.is_active):
        raise Invalid(fields={name: ["Unknown user."]})
    return user


ROLE_WORDS = {
    "commander": "the commander",
    "comms_lead": "the communications lead",
    "scribe": "the scribe",
    "owner": "an action item's owner",
}


def check_role_holder(name: str, user: Any) -> Any:
    """An incident role or an action item goes to a responder or an admin (or nobody).

    A viewer only looks, so it cannot be made to hold part of an incident;
    neither can a deactivated account.
    """
    check_user(name, user)
    if user is not None and not user.can_change_incidents:
        raise Invalid(
            f"{user.username} is a viewer: only responders and admins can be {ROLE_WORDS[name]}.",
            fields={name: [f"Only responders and admins can be {ROLE_WORDS[name]}; {user.username} is a viewer."]},
        )
    return user


def check_open(incident: Incident) -> None:
    """A resolved incident reads as closed: its fields, people and action items change only after a reopen."""
    if incident.status == Incident.Status.RESOLVED:
        raise InvalidTransition("The incident is resolved: reopen it to change it.")


def check_resolution(status: str, resolution: Any) -> str | None:
    """Resolving says how it was resolved; no other move carries a resolution."""
    if status != Incident.Status.RESOLVED:
        if resolution is not None:
            raise Invalid(fields={"resolution": ["Only a move to resolved carries a resolution."]})
        return None
    if resolution is None:
        raise Invalid(fields={"resolution": ["Required to resolve: say how it was resolved."]})
    return check_text("resolution", resolution, max_length=Incident.RESOLUTION_MAX_LENGTH, allow_blank=False).strip()


# --- The transaction shape every change shares --------------------------------


@contextmanager
def _locked(incident_id: int, *, expected_version: int | None) -> Iterator[Incident]:
    """Lock the incident row for the rest of the transaction and check the expected version.

    On PostgreSQL this is SELECT ... FOR UPDATE: concurrent writers queue on
    the row. On SQLite the transaction begins IMMEDIATE (see settings), which
    takes the database's write lock up front to the same effect.
    """
    with transaction.atomic():
        # The people the state names come with the row (only the row is locked).
        incident = (
            Incident.objects.select_for_update(of=("self",))
            .select_related("commander", "comms_lead", "scribe", "created_by", "last_status_update_by")
            .filter(pk=incident_id)
            .first()
        )
        if incident is None:
            raise NotFound(f"Incident {incident_id} does not exist.")
        if expected_version is not None and expected_version != incident.version:
            raise Conflict(
                f"The incident is at version {incident.version}, not {expected_version}.",
                version=incident.version,
            )
        yield incident


def _record(
    incident: Incident,
    *,
    actor: Any,
    type: str,
    data: dict[str, Any],
    fields: Sequence[str] = (),
    at: Any = None,
) -> AuditEvent:
    """Save the changed fields with the next version, append the event, publish it after commit.

    The event's webhook deliveries go into the outbox here, in the same transaction.

    `at` is the moment the command stamped on the row (created_at, resolved_at …), so the event carries the same.
    """
    incident.version += 1
    incident.updated_at = at or timezone.now()
    incident.save(update_fields=[*fields, "version", "updated_at"])
    event = AuditEvent.objects.append(incident=incident, type=type, actor=actor, data=data, at=incident.updated_at)
    outbox.enqueue(incident, event)
    event.state_after = publishing.publish_on_commit(incident, event)
    return event


def _replace(incident: Incident, *, actor: Any, field: str, value: Any) -> AuditEvent:
    """Set one field and record `{from, to}` under the field's event type (`FIELD_EVENTS`)."""
    previous = getattr(incident, field)
    setattr(incident, field, value)
    return _record(
        incident, actor=actor, type=FIELD_EVENTS[field], data={"from": previous, "to": value}, fields=[field]
    )


FIELD_EVENTS = {"status_update_cadence": AuditEvent.Type.UPDATE_CADENCE_CHANGE}


def _ref(user: Any) -> dict[str, Any] | None:
    return user.as_ref() if user is not None else None


# --- Commands -----------------------------------------------------------------


@counted
def incident_create(*, actor: Any, title: str, severity: str, summary: str = "") -> CommandResult:
    check_can_change(actor)
    title = check_text("title", title, max_length=Incident.TITLE_MAX_LENGTH, allow_blank=False).strip()
    severity = check_severity(severity)
    summary = check_text("summary", summary, max_length=Incident.SUMMARY_MAX_LENGTH, allow_blank=True)
    with transaction.atomic():
        now = timezone.now()
        # The declarer commands until someone else is named: a responder or an admin, as check_can_change said.
        incident = Incident.objects.create(
            title=title,
            severity=severity,
            summary=summary,
            commander=actor,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        event = _record(
            incident,
            actor=actor,
            type=AuditEvent.Type.INCIDENT_CREATED,
            data={"title": title, "severity": severity, "summary": summary, "commander": _ref(actor)},
            at=now,
        )
    return CommandResult(incident=incident, events=[event])


@counted
def incident_change_status(
    *, actor: Any, incident_id: int, status: str, expected_version: int | None = None, resolution: str | None = None
) -> CommandResult:
    """Move the status; a move to resolved carries a non-blank `resolution`, kept in the event."""
    check_can_change(actor)
    resolution = check_resolution(status, resolution)
    with _locked(incident_id, expected_version=expected_version) as incident:
        check_transition(incident, status)
        previous = incident.status
        incident.status = status
        now = timezone.now()
        if status == Incident.Status.RESOLVED:
            incident.resolved_at = now
        elif previous == Incident.Status.RESOLVED:
            incident.resolved_at = None
        # First arrivals only: a reopen does not move when it was first identified or mitigated.
        if incident.identified_at is None and status in IDENTIFIED_OR_LATER:
            incident.identified_at = now
        if incident.mitigated_at is None and status in MITIGATED_OR_LATER:
            incident.mitigated_at = now
        event = _record(
            incident,
            actor=actor,
            type=AuditEvent.Type.STATUS_CHANGE,
            data={"from": previous, "to": status, **({"resolution": resolution} if resolution is not None else {})},
            fields=["status", "resolved_at", "identified_at", "mitigated_at"],
            at=now,
        )
    return CommandResult(incident=incident, events=[event])


@counted
def incident_update(
    *,
    actor: Any,
    incident_id: int,
    title: str = UNSET,
    severity: str = UNSET,
    summary: str = UNSET,
    commander: Any = UNSET,
    comms_lead: Any = UNSET,
    scribe: Any = UNSET,
    assignees: Sequence[Any] = UNSET,
    status_update_cadence: int | None = UNSET,
    expected_version: int | None = None,
    resolved_conflict: str | None = None,
) -> CommandResult:
    """Change the title, severity, summary, incident roles, assignees and the status-update cadence.

    Each kind of change is its own accepted change: one event and one version
    each (title, severity, then summary, then one `assignment` event for the
    roles and assignees together, then the cadence). A field given with the
    value it already has changes nothing and records nothing. A resolved
    incident refuses any real change (409 `invalid_transition`) until it is
    reopened.

    `resolved_conflict` ("merge" or "replace", only with a summary) says the
    writer saw a newer summary than the one they started from and chose to
    merge with it or replace it; the summary_change event keeps it, so the
    replaced author can be told how.
    """
    check_can_change(actor)
    resolved_conflict = check_resolved_conflict(resolved_conflict, summary=summary)
    if title is not UNSET:
        title = check_text("title", title, max_length=Incident.TITLE_MAX_LENGTH, allow_blank=False).strip()
    if severity is not UNSET:
        severity = check_severity(severity)
    if summary is not UNSET:
        summary = check_text("summary", summary, max_length=Incident.SUMMARY_MAX_LENGTH, allow_blank=True)
    named = zip(Incident.ROLES, (commander, comms_lead, scribe), strict=True)
    roles = {name: user for name, user in named if user is not UNSET}
    for name, user in roles.items():
        check_role_holder(name, user)
    if assignees is not UNSET:
        # Assignees are not an incident role (the contract names commander, communications lead and scribe):
        # any active user may be assigned, though the room offers only responders and admins.
        for user in assignees:
            check_user("assignees", user)
    if status_update_cadence is not UNSET:
        status_update_cadence = check_cadence(status_update_cadence)

    events: list[AuditEvent] = []
    with _locked(incident_id, expected_version=expected_version) as incident:
        changes: list[tuple[str, str, Any]] = [
            (name, kind, value)
            for name, kind, value in (
                ("title", AuditEvent.Type.TITLE_CHANGE, title),
                ("severity", AuditEvent.Type.SEVERITY_CHANGE, severity),
                ("summary", AuditEvent.Type.SUMMARY_CHANGE, summary),
            )
            if value is not UNSET and value != getattr(incident, name)
        ]
        assignment: dict[str, Any] = {
            name: {"from": _ref(getattr(incident, name)), "to": _ref(user)}
            for name, user in roles.items()
            if user != getattr(incident, name)
        }
        added: list[Any] = []
        removed: list[Any] = []
        if assignees is not UNSET:
            current = {user.pk: user for user in incident.assignees.all()}
            wanted = {user.pk: user for user in assignees}
            added = [wanted[pk] for pk in sorted(wanted.keys() - current.keys())]
            removed = [current[pk] for pk in sorted(current.keys() - wanted.keys())]
            if added or removed:
                assignment["assignees"] = {"added": [_ref(u) for u in added], "removed": [_ref(u) for u in removed]}
        cadence = status_update_cadence is not UNSET and status_update_cadence != incident.status_update_cadence
        if changes or assignment or cadence:
            check_open(incident)
        for name, kind, value in changes:
            data = {"from": getattr(incident, name), "to": value}
            if name == "summary" and resolved_conflict:
                data["resolved_conflict"] = resolved_conflict
            setattr(incident, name, value)
            events.append(_record(incident, actor=actor, type=kind, data=data, fields=[name]))
        if assignment:
            # role -> the people newly given it (they are notified)
            given: dict[str, list[Any]] = {name: [user] for name, user in roles.items() if name in assignment}
            for name, user in roles.items():
                setattr(incident, name, user)
            if added:
                given["assignee"] = added
            incident.assignees.add(*added)
            incident.assignees.remove(*removed)
            event = _record(
                incident,
                actor=actor,
                type=AuditEvent.Type.ASSIGNMENT,
                data=assignment,
                fields=[name for name in Incident.ROLES if name in assignment],
            )
            events.append(event)
            notifications.notify_assigned(incident=incident, event=event, actor=actor, given=given)
        if cadence:
            events.append(_replace(incident, actor=actor, field="status_update_cadence", value=status_update_cadence))
    return CommandResult(incident=incident, events=events)


@counted
def incident_add_note(*, actor: Any, incident_id: int, body: str) -> CommandResult:
    check_can_change(actor)
    body = check_text("body", body, max_length=10_000, allow_blank=False).strip()
    mentioned = richtext.mentioned_users(body)  # before the row lock: other writers wait on it
    with _locked(incident_id, expected_version=None) as incident:
        event = _record(incident, actor=actor, type=AuditEvent.Type.NOTE, data={"body": body})
        notifications.notify_mentions(incident=incident, event=event, actor=actor, text=body, mentioned=mentioned)
    return CommandResult(incident=incident, events=[event])


@counted
def incident_post_status_update(*, actor: Any, incident_id: int, body: str) -> CommandResult:
    """A stakeholder status update ("what we tell customers"): an event of its own, and the newest on the row."""
    check_can_change(actor)
    body = check_text("body", body, max_length=Incident.STATUS_UPDATE_MAX_LENGTH, allow_blank=False).strip()
    mentioned = richtext.mentioned_users(body)  # before the row lock: other writers wait on it
    with _locked(incident_id, expected_version=None) as incident:
        now = timezone.now()
        incident.last_status_update_body = body
        incident.last_status_update_at = now
        incident.last_status_update_by = actor
        event = _record(
            incident,
            actor=actor,
            type=AuditEvent.Type.STATUS_UPDATE,
            data={"body": body},
            fields=["last_status_update_body", "last_status_update_at", "last_status_update_by"],
            at=now,
        )
        notifications.notify_mentions(incident=incident, event=event, actor=actor, text=body, mentioned=mentioned)
    return CommandResult(incident=incident, events=[event])


@counted
def action_item_add(*, actor: Any, incident_id: int, title: str, owner: Any = None) -> CommandResult:
    check_can_change(actor)
    title = check_text("title", title, max_length=ActionItem.TITLE_MAX_LENGTH, allow_blank=False).strip()
    check_role_holder("owner", owner)
    with _locked(incident_id, expected_version=None) as incident:
        check_open(incident)
        item = ActionItem.objects.create(incident=incident, title=title, owner=owner)
        event = _record(incident, actor=actor, type=AuditEvent.Type.ACTION_ITEM_ADDED, data={"item": item.as_data()})
    return CommandResult(incident=incident, events=[event], item=item)


@counted
def action_item_update(
    *,
    actor: Any,
    incident_id: int,
    item_id: int,
    title: str = UNSET,
    owner: Any = UNSET,
    done: bool = UNSET,
) -> CommandResult:
    check_can_change(actor)
    if title is not UNSET:
        title = check_text("title", title, max_length=ActionItem.TITLE_MAX_LENGTH, allow_blank=False).strip()
    if owner is not UNSET:
        check_role_holder("owner", owner)
    if done is not UNSET and not isinstance(done, bool):
        raise Invalid(fields={"done": ["Must be true or false."]})
    with _locked(incident_id, expected_version=None) as incident:
        item = ActionItem.objects.select_related("owner").filter(pk=item_id, incident=incident).first()
        if item is None:
            raise NotFound(f"Action item {item_id} does not exist on incident {incident_id}.")
        changed = []
        for name, value in (("title", title), ("owner", owner), ("done", done)):
            if value is not UNSET and getattr(item, name) != value:
                setattr(item, name, value)
                changed.append(name)
        if not changed:
            return CommandResult(incident=incident, item=item)
        check_open(incident)
        item.save(update_fields=changed)
        event = _record(
            incident,
            actor=actor,
            type=AuditEvent.Type.ACTION_ITEM_UPDATED,
            data={"item": item.as_data(), "changed": changed},
        )
    return CommandResult(incident=incident, events=[event], item=item)


def _pinned_seqs(incident: Incident) -> set[int]:
    from .selectors import pinned_seqs

    return pinned_seqs(incident.pk)


def event_pin(*, actor: Any, incident_id: int, seq: int, pinned: bool = True) -> CommandResult:
    """Pin (or unpin) one event of the timeline as a key moment; the pin is itself an appended event.

    Pinning what is already pinned, unpinning what is not, or pinning a pin
    is a conflict with the current state of the timeline.
    """
    check_can_change(actor)
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise Invalid(fields={"seq": ["Must be an integer."]})
    with _locked(incident_id, expected_version=None) as incident:
        target = AuditEvent.objects.filter(incident=incident, seq=seq).only("seq", "type").first()
        if target is None:
            raise NotFound(f"Event {seq} does not exist on incident {incident_id}.")
        if target.type in PIN_TYPES:
            raise Conflict(f"Event {seq} is itself a pin or unpin; it cannot be pinned.")
        is_pinned = seq in _pinned_seqs(incident)
        if pinned and is_pinned:
            raise Conflict(f"Event {seq} is already pinned.")
        if not pinned and not is_pinned:
            raise Conflict(f"Event {seq} is not pinned.")
        event = _record(
            incident,
            actor=actor,
            type=AuditEvent.Type.EVENT_PINNED if pinned else AuditEvent.Type.EVENT_UNPINNED,
            data={"seq": seq, "type": target.type},
        )
    return CommandResult(incident=incident, events=[event])


PIN_TYPES = frozenset({AuditEvent.Type.EVENT_PINNED.value, AuditEvent.Type.EVENT_UNPINNED.value})

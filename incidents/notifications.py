"""In-app notifications: who a command's event concerns, written with the event and pushed after the commit.

Commands call these inside their transaction, right after appending the
event, so a notification exists exactly when its event does (no signals).
After the commit each recipient's sockets are sent `notification:new`
through the per-user channel-layer group every socket of a user joins
(`accounts.sockets.user_group`, the group sign-out also uses).
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.sockets import user_group

from . import publishing
from .errors import NotFound
from .models import AuditEvent, Incident, Notification


def notify_mentions(
    *, incident: Incident, event: AuditEvent, actor: Any, text: str, mentioned: list[Any]
) -> list[Notification]:
    """Everyone an event's text @mentions (`richtext.mentioned_users`, read before the row lock), once each.

    Active users only, and not the author.
    """
    excerpt = text[: Notification.EXCERPT_LENGTH]
    users = [user for user in mentioned if user.pk != actor.pk]
    return _create(incident, event, actor, users, kind=Notification.Kind.MENTION, excerpt=excerpt)


def notify_assigned(*, incident: Incident, event: AuditEvent, actor: Any, given: dict[str, list[Any]]) -> None:
    """People newly given roles on the incident (role -> people: commander, assignee, …), once each per event.

    Someone given two roles by one event is told of the first named; nobody is told of a role they gave themselves.
    """
    told = {actor.pk}
    for role, users in given.items():
        recipients = [user for user in users if user is not None and user.pk not in told]
        told.update(user.pk for user in recipients)
        _create(incident, event, actor, recipients, kind=Notification.Kind.ASSIGNMENT, role=role)


def _create(
    incident: Incident,
    event: AuditEvent,
    actor: Any,
    users: list[Any],
    *,
    kind: str,
    role: str = "",
    excerpt: str = "",
) -> list[Notification]:
    if not users:
        return []
    rows = Notification.objects.bulk_create(
        [
            Notification(
                recipient=user,
                incident=incident,
                seq=event.seq,
                kind=kind,
                role=role,
                actor=actor,
                excerpt=excerpt,
                created_at=event.at,
            )
            for user in users
        ]
    )
    messages = [(user.pk, as_data(row, incident=incident, actor=actor)) for user, row in zip(users, rows, strict=True)]
    transaction.on_commit(lambda: _push(messages))
    return rows


def as_data(row: Notification, *, incident: Incident | None = None, actor: Any = None) -> dict[str, Any]:
    """A notification as clients see it (REST and `notification:new`)."""
    incident = incident or row.incident
    actor = actor or row.actor
    return publishing.plain(
        {
            "id": row.pk,
            "kind": row.kind,
            "role": row.role or None,
            "incident": {"id": incident.pk, "title": incident.title},
            "seq": row.seq,
            "actor": {"id": actor.pk, "username": actor.username},
            "excerpt": row.excerpt,
            "created_at": row.created_at,
            "read_at": row.read_at,
            "url": f"/incidents/{incident.pk}/#event-{row.seq}",
        }
    )


def mark_read(*, user: Any, ids: list[int] | None) -> dict[str, int]:
    """Mark the user's notifications `ids` (or all, for None) read; an id that is not theirs is NotFound."""
    mine = Notification.objects.filter(recipient=user)
    with transaction.atomic():
        if ids is not None:
            wanted = set(ids)
            found = set(mine.filter(pk__in=wanted).values_list("pk", flat=True))
            if found != wanted:
                missing = min(wanted - found)
                raise NotFound(f"Notification {missing} is not one of yours.")
            mine = mine.filter(pk__in=wanted)
        marked = mine.filter(read_at__isnull=True).update(read_at=timezone.now())
    return {"marked": marked, "unread": unread_count(user.pk)}


def unread_count(user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, read_at__isnull=True).count()


def _push(messages: list[tuple[int, dict[str, Any]]]) -> None:
    """After the commit: each recipient's sockets hear of it, with their unread count as of now."""
    publishing.send(
        [
            (user_group(user_id), {"type": "notification.new", "notification": data, "unread": unread_count(user_id)})
            for user_id, data in messages
        ]
    )

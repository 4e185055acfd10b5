"""Incidents, their action items, and the append-only audit timeline.

Nothing here changes an incident on its own: every write goes through
`incidents.commands`. The models hold the behaviour of one row (the allowed
status moves, how an event hashes) and refuse what must never happen (an audit
event edited or deleted).
"""

import hashlib
import json
from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from . import audit_key


class Incident(models.Model):
    class Status(models.TextChoices):
        INVESTIGATING = "investigating", "Investigating"
        IDENTIFIED = "identified", "Identified"
        MONITORING = "monitoring", "Monitoring"
        RESOLVED = "resolved", "Resolved"

    class Severity(models.TextChoices):
        CRITICAL = "critical", "Critical"
        HIGH = "high", "High"
        MEDIUM = "medium", "Medium"
        LOW = "low", "Low"

    # Most severe first; the list orders by this.
    SEVERITY_RANK: ClassVar[dict[str, int]] = {"critical": 0, "high": 1, "medium": 2, "low": 3}

    TITLE_MAX_LENGTH = 200
    SUMMARY_MAX_LENGTH = 20_000
    STATUS_UPDATE_MAX_LENGTH = 5_000
    # An update cadence is whole minutes, from one minute to a week.
    CADENCE_MAX_MINUTES = 7 * 24 * 60
    RESOLUTION_MAX_LENGTH = 10_000
    # The incident roles, each one user or null, as they are named in the API, the socket and `assignment` events.
    ROLES: ClassVar[tuple[str, ...]] = ("commander", "comms_lead", "scribe")

    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INVESTIGATING)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    summary = models.TextField(blank=True, default="", max_length=SUMMARY_MAX_LENGTH)
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="commanded_incidents"
    )
    # The incident roles beside the commander: one person each (a responder or an admin), or nobody.
    comms_lead = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="communications lead",
    )
    scribe = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    assignees = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="assigned_incidents")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # When the incident first reached identified (or a later stage) and
    # monitoring (or resolved): stamped by the status command in the same
    # transaction as its event, so the overview needs no scan of the timeline.
    identified_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    # Grows by one with every accepted change; equal to the seq of the newest event.
    version = models.PositiveIntegerField(default=0)
    # The newest stakeholder status update ("what we tell customers"), kept on the row by the
    # status-update command so the room and the list show it without reading the timeline.
    last_status_update_body = models.TextField(blank=True, default="", max_length=STATUS_UPDATE_MAX_LENGTH)
    last_status_update_at = models.DateTimeField(null=True, blank=True)
    last_status_update_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Minutes between status updates (None: no cadence); the room nudges when one is overdue.
    status_update_cadence = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The list filtered by status, or status and severity (`WHERE status = … [AND severity = …]`,
            # its `status` and `severity` filters). Not its order: "open first, most severe first" is
            # CASE ranks computed per row, which no plain index holds, so the matching rows are sorted.
            models.Index(fields=["status", "severity", "-created_at"], name="incident_list_idx"),
            # The overview and the list's date range: incidents opened in a period.
            models.Index(fields=["created_at"], name="incident_created_idx"),
            # A commander's incidents, newest first (`WHERE commander_id = … ORDER BY created_at DESC`).
            # Not "Mine" as written today: it ORs `commander_id = me` with EXISTS on assignees and action
            # items, which PostgreSQL applies as a filter on every row (EXPLAIN), not as an index condition.
            models.Index(fields=["commander", "-created_at"], name="incident_commander_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.RESOLVED

    @property
    def time_to_resolve(self) -> timedelta | None:
        """From opening to resolution, while resolved (a reopen clears it): the list's and the room's duration."""
        return self.resolved_at - self.created_at if self.resolved_at else None

    @property
    def latest_status_update(self) -> dict[str, Any] | None:
        """The newest status update as clients see it (`at` as a datetime; the state renders it)."""
        if self.last_status_update_at is None:
            return None
        author = self.last_status_update_by
        return {
            "body": self.last_status_update_body,
            "at": self.last_status_update_at,
            "author": author.as_ref() if author is not None else None,
        }

    @property
    def status_update_due_at(self) -> Any:
        """When the next status update is due (the last one's time, or the opening, plus the cadence); None if none."""
        if self.status_update_cadence is None or not self.is_open:
            return None
        since = self.last_status_update_at or self.created_at
        return since + timedelta(minutes=self.status_update_cadence)

    @property
    def time_to_identify(self) -> timedelta | None:
        return self.identified_at - self.created_at if self.identified_at else None

    @property
    def time_to_mitigate(self) -> timedelta | None:
        return self.mitigated_at - self.created_at if self.mitigated_at else None

    def allowed_transitions(self) -> list[str]:
        """The statuses this incident may move to next, in the order the UI shows them."""
        return allowed_transitions(self.status)


def allowed_transitions(status: str) -> list[str]:
    """Any move among the open statuses, any open status to resolved, resolved only back to investigating."""
    S = Incident.Status
    if status == S.RESOLVED:
        return [S.INVESTIGATING.value]
    return [s.value for s in S if s != status]


class ActionItem(models.Model):
    TITLE_MAX_LENGTH = 200

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="action_items")
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="action_items"
    )
    done = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title

    def as_data(self) -> dict[str, Any]:
        """The item as it is recorded in an audit event and sent to clients."""
        return {
            "id": self.pk,
            "title": self.title,
            "owner": self.owner.as_ref() if self.owner else None,
            "done": self.done,
        }


class AppendOnlyError(Exception):
    """An attempt to edit or delete an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events are append-only: update() is refused.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only: delete() is refused.")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events are append-only: bulk_update() is refused.")


class AuditEventManager(models.Manager["AuditEvent"]):
    def get_queryset(self) -> AuditEventQuerySet:
        return AuditEventQuerySet(self.model, using=self._db)

    def append(
        self, *, incident: Incident, type: str, actor: Any, data: dict[str, Any], at: Any = None
    ) -> "AuditEvent":
        """The one way an event is written.

        The caller holds the incident's row lock (see `incidents.commands`), so
        reading the newest event and writing the next one cannot interleave
        with another writer: seq has no gaps and no repeats, and the hash
        chain has one line.
        """
        previous = self.filter(incident=incident).order_by("-seq").only("seq", "hash").first()
        event = self.model(
            incident=incident,
            seq=(previous.seq + 1) if previous else 1,
            type=type,
            actor=actor,
            actor_username=actor.username,
            # The command may pass the moment it stamped on the row, so the two agree exactly.
            at=at or timezone.now(),
            data=data,
            prev_hash=previous.hash if previous else "",
        )
        event.hash = event.compute_hash()
        event.mac = audit_key.mac(event.hash)
        event.save(force_insert=True)
        return event


class AuditEvent(models.Model):
    class Type(models.TextChoices):
        INCIDENT_CREATED = "incident_created"
        STATUS_CHANGE = "status_change"
        SEVERITY_CHANGE = "severity_change"
        SUMMARY_CHANGE = "summary_change"
        NOTE = "note"
        ASSIGNMENT = "assignment"
        TITLE_CHANGE = "title_change"
        ACTION_ITEM_ADDED = "action_item_added"
        ACTION_ITEM_UPDATED = "action_item_updated"
        EVENT_PINNED = "event_pinned"
        EVENT_UNPINNED = "event_unpinned"
        STATUS_UPDATE = "status_update"
        UPDATE_CADENCE_CHANGE = "update_cadence_change"

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=32, choices=Type.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # A snapshot, so the timeline reads the same if the user is later renamed.
    actor_username = models.CharField(max_length=150)
    at = models.DateTimeField()
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)
    # HMAC-SHA256 of `hash` under AUDIT_KEY (a secret outside the database);
    # "" for an event written without a key. Not part of the hashed content.
    mac = models.CharField(max_length=64, blank=True, default="")

    objects = AuditEventManager()

    # Not stored: the incident's state as this event left it, set by the command
    # that wrote the event (it is built anyway for the broadcast), so replies
    # need not build it again.
    state_after: dict[str, Any] | None = None

    class Meta:
        ordering = ["incident", "seq"]
        constraints = [
            # Also the index for "events of incident X with seq > N" (join with `after`, GET .../events).
            models.UniqueConstraint(fields=["incident", "seq"], name="auditevent_incident_seq_unique"),
        ]
        indexes = [
            # The timeline filtered by type (`?type=`, the room's filter, the status changes metrics read).
            models.Index(fields=["incident", "type", "seq"], name="auditevent_incident_type_idx"),
            # The timeline filtered by actor (`?actor=`).
            models.Index(fields=["incident", "actor", "seq"], name="auditevent_incident_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.incident_id}/{self.seq} {self.type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events are append-only: an existing event cannot be saved again.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only: an event cannot be deleted.")

    def hashed_content(self) -> str:
        """The canonical text the hash covers: everything that makes the event what it is."""
        return json.dumps(
            {
                "incident": self.incident_id,
                "seq": self.seq,
                "type": self.type,
                "actor": self.actor_id,
                "actor_username": self.actor_username,
                "at": self.at.isoformat(),
                "data": self.data,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def compute_hash(self) -> str:
        return hashlib.sha256((self.prev_hash + self.hashed_content()).encode()).hexdigest()

    def as_data(self) -> dict[str, Any]:
        """The contract's shape of an event."""
        return {
            "seq": self.seq,
            "type": self.type,
            "actor": {"id": self.actor_id, "username": self.actor_username},
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


class IdempotencyKey(models.Model):
    """The first outcome of a keyed command, replayed to retries for a day."""

    KEY_MAX_LENGTH = 200

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=KEY_MAX_LENGTH)
    fingerprint = models.CharField(max_length=64)
    response = models.JSONField(null=True)
    status_code = models.PositiveSmallIntegerField(default=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key_unique")]
        indexes = [
            # `manage.py purge_idempotency_keys`: `WHERE created_at < cutoff ORDER BY created_at LIMIT batch`.
            models.Index(fields=["created_at"], name="idempotency_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class Notification(models.Model):
    """An in-app notification: someone was mentioned in, or given a role on, an incident.

    Written by the command that appended the event (`incidents.notifications`),
    in the same transaction, and pushed to the recipient's sockets after the
    commit. Reading one only sets `read_at`.
    """

    class Kind(models.TextChoices):
        MENTION = "mention"
        ASSIGNMENT = "assignment"

    EXCERPT_LENGTH = 200

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="notifications")
    seq = models.PositiveIntegerField(help_text="The event that caused it.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # For an assignment, the role given: commander, assignee (and any other incident role).
    role = models.CharField(max_length=32, blank=True, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The start of the note or update that mentioned the recipient (a snapshot, as events are).
    excerpt = models.CharField(max_length=EXCERPT_LENGTH, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One notification of a kind per person per event (a name mentioned twice is one mention).
            models.UniqueConstraint(
                fields=["recipient", "incident", "seq", "kind"], name="notification_once_per_event_unique"
            ),
        ]
        indexes = [
            # The bell: a user's notifications, newest first, and the unread count (read_at IS NULL).
            models.Index(fields=["recipient", "-id"], name="notification_recipient_idx"),
            models.Index(fields=["recipient", "read_at"], name="notification_unread_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient_id}: {self.kind} #{self.incident_id}/{self.seq}"

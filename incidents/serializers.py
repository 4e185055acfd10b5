"""Shapes of incidents and events as clients see them, and of the commands' input.

The input serializers are shared by the REST API and the WebSocket consumer,
so a message is validated the same way whichever door it comes through.
"""

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import UserRefSerializer
from incident_platform.strict import StrictSerializer

from .models import ActionItem, AuditEvent, Incident

User = get_user_model()


# --- Output -------------------------------------------------------------------


class ActionItemSerializer(serializers.ModelSerializer[ActionItem]):
    owner = UserRefSerializer(allow_null=True, read_only=True)

    class Meta:
        model = ActionItem
        fields = ["id", "title", "owner", "done"]
        read_only_fields = fields


class ActorSerializer(serializers.Serializer[Any]):
    """Who did it, as the event recorded them: the username is a snapshot of the time."""

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)


class AuditEventSerializer(serializers.Serializer[AuditEvent]):
    """An event of the timeline: `AuditEvent.as_data()`, the contract's shape, described field by field."""

    seq = serializers.IntegerField(read_only=True, min_value=1)
    type = serializers.ChoiceField(choices=AuditEvent.Type.choices, read_only=True)
    actor = ActorSerializer(read_only=True)
    at = serializers.DateTimeField(read_only=True)
    # DRF's metaclass takes declared fields off the class, so this does not hide Serializer.data.
    data = serializers.DictField(read_only=True, help_text="By `type`: see docs/api.md.")  # type: ignore[assignment]

    def to_representation(self, instance: AuditEvent) -> dict[str, Any]:
        return instance.as_data()


class StatusUpdateSerializer(serializers.Serializer[Any]):
    """The newest stakeholder status update of an incident (the timeline's `status_update` events hold them all)."""

    body = serializers.CharField(read_only=True)
    at = serializers.DateTimeField(read_only=True)
    author = UserRefSerializer(allow_null=True, read_only=True)


class IncidentListSerializer(serializers.ModelSerializer[Incident]):
    """A row of the incident list."""

    commander = UserRefSerializer(allow_null=True, read_only=True)
    latest_status_update = StatusUpdateSerializer(allow_null=True, read_only=True)
    status_update_cadence = serializers.IntegerField(
        allow_null=True,
        read_only=True,
        min_value=1,
        max_value=Incident.CADENCE_MAX_MINUTES,
        help_text="Minutes between status updates, or null (no cadence). An open incident is overdue once "
        "`latest_status_update.at` (or `created_at` before the first update) is older than this.",
    )

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "status",
            "severity",
            "commander",
            "created_at",
            "updated_at",
            "resolved_at",
            "version",
            "latest_status_update",
            "status_update_cadence",
        ]
        read_only_fields = fields


class IncidentSerializer(IncidentListSerializer):
    """The whole state of an incident: what `state` carries in every update."""

    comms_lead = UserRefSerializer(allow_null=True, read_only=True, help_text="The communications lead.")
    scribe = UserRefSerializer(allow_null=True, read_only=True)
    assignees = UserRefSerializer(many=True, read_only=True)
    created_by = UserRefSerializer(read_only=True)
    action_items = ActionItemSerializer(many=True, read_only=True)
    allowed_transitions = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(IncidentListSerializer.Meta):
        fields = [
            *IncidentListSerializer.Meta.fields,
            "comms_lead",
            "scribe",
            "summary",
            "assignees",
            "created_by",
            "action_items",
            "allowed_transitions",
        ]
        read_only_fields = fields


class IncidentDetailSerializer(IncidentSerializer):
    history = serializers.SerializerMethodField()

    HISTORY_LENGTH = 100

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "history"]
        read_only_fields = fields

    @extend_schema_field(AuditEventSerializer(many=True))
    def get_history(self, incident: Incident) -> list[dict[str, Any]]:
        """The newest 100 events, oldest first."""
        newest = list(incident.events.order_by("-seq")[: self.HISTORY_LENGTH])
        return [event.as_data() for event in reversed(newest)]


class DurationsByStatusSerializer(serializers.Serializer[Any]):
    investigating = serializers.FloatField()
    identified = serializers.FloatField()
    monitoring = serializers.FloatField()
    resolved = serializers.FloatField()


class ResponderSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    username = serializers.CharField()
    events = serializers.IntegerField(help_text="How many events this user appended.")


class ActionItemCountsSerializer(serializers.Serializer[Any]):
    open = serializers.IntegerField()
    done = serializers.IntegerField()


class IncidentMetricsSerializer(serializers.Serializer[Any]):
    """Durations in seconds, computed from the timeline (docs/api.md, "Metrics")."""

    incident = serializers.IntegerField()
    status = serializers.CharField()
    opened_at = serializers.DateTimeField()
    identified_at = serializers.DateTimeField(allow_null=True)
    mitigated_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    time_to_identify = serializers.FloatField(allow_null=True)
    time_to_mitigate = serializers.FloatField(allow_null=True)
    time_to_resolve = serializers.FloatField(allow_null=True)
    time_open = serializers.FloatField()
    elapsed = serializers.FloatField(help_text="The time to resolve once resolved; the age while open.")
    time_in_status = DurationsByStatusSerializer()
    reopens = serializers.IntegerField()
    responders = ResponderSerializer(many=True)
    action_items = ActionItemCountsSerializer()
    events = serializers.IntegerField()
    as_of = serializers.DateTimeField()


class StatusCountsSerializer(serializers.Serializer[Any]):
    investigating = serializers.IntegerField()
    identified = serializers.IntegerField()
    monitoring = serializers.IntegerField()
    resolved = serializers.IntegerField()


class SeverityOverviewSerializer(serializers.Serializer[Any]):
    severity = serializers.CharField()
    total = serializers.IntegerField()
    by_status = StatusCountsSerializer()
    resolved = serializers.IntegerField()
    mean_time_to_resolve = serializers.FloatField(allow_null=True, help_text="Seconds.")
    p90_time_to_resolve = serializers.FloatField(allow_null=True, help_text="Seconds (nearest rank).")


class WeekCountSerializer(serializers.Serializer[Any]):
    week = serializers.DateField(help_text="The Monday the week starts on.")
    incidents = serializers.IntegerField()


class StageSerializer(serializers.Serializer[Any]):
    stage = serializers.ChoiceField(choices=["identify", "mitigate", "resolve"])
    measured = serializers.IntegerField()
    mean = serializers.FloatField(allow_null=True, help_text="Seconds.")


class OverviewSerializer(serializers.Serializer[Any]):
    since = serializers.DateField()
    until = serializers.DateField()
    total = serializers.IntegerField()
    by_severity = SeverityOverviewSerializer(many=True)
    by_status = StatusCountsSerializer()
    per_week = WeekCountSerializer(many=True)
    stages = StageSerializer(many=True)
    slowest_stage = serializers.CharField(allow_null=True)


class ReplayedItemSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    title = serializers.CharField()
    owner = ActorSerializer(allow_null=True)
    done = serializers.BooleanField()


class ReplayedStateSerializer(serializers.Serializer[Any]):
    """The incident as the timeline says it was after event `version`; users as its events recorded them."""

    incident = serializers.IntegerField()
    version = serializers.IntegerField(help_text="The seq replayed up to.")
    title = serializers.CharField()
    status = serializers.ChoiceField(choices=Incident.Status.choices)
    severity = serializers.ChoiceField(choices=Incident.Severity.choices)
    summary = serializers.CharField(allow_blank=True)
    commander = ActorSerializer(allow_null=True)
    assignees = ActorSerializer(many=True)
    created_by = ActorSerializer()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(help_text="When event `version` happened.")
    resolved_at = serializers.DateTimeField(allow_null=True)
    action_items = ReplayedItemSerializer(many=True)
    roles = serializers.DictField(
        child=ActorSerializer(allow_null=True), help_text="Every incident role an assignment set, by name."
    )
    pinned = serializers.ListField(child=serializers.IntegerField(), help_text="The seqs pinned at that point.")


class NotificationIncidentSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    title = serializers.CharField()


class NotificationSerializer(serializers.Serializer[Any]):
    """An in-app notification, as `incidents.notifications.as_data` gives it (REST and `notification:new`)."""

    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["mention", "assignment"])
    role = serializers.CharField(
        allow_null=True, help_text="For an assignment: the role given (`commander`, `assignee`, …); else null."
    )
    incident = NotificationIncidentSerializer()
    seq = serializers.IntegerField(min_value=1, help_text="The event that caused it.")
    actor = ActorSerializer()
    excerpt = serializers.CharField(allow_blank=True, help_text="For a mention: the start of the note or update.")
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)
    url = serializers.CharField(help_text="The incident's page, at the event.")


class NotificationPageSerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField()
    unread = serializers.IntegerField(help_text="How many of this user's notifications are unread (all pages).")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = NotificationSerializer(many=True)


class NotificationReadResultSerializer(serializers.Serializer[Any]):
    marked = serializers.IntegerField(help_text="How many were unread and are now read.")
    unread = serializers.IntegerField()


# --- Input --------------------------------------------------------------------


def _users() -> Any:
    return User.objects.filter(is_active=True)


def _role_holder(**kwargs: Any) -> Any:
    """A user id for an incident role or an item's owner: the command refuses a viewer (400, naming the field)."""
    return serializers.PrimaryKeyRelatedField(queryset=_users(), required=False, allow_null=True, **kwargs)


class IncidentCreateInput(StrictSerializer):
    title = serializers.CharField(max_length=Incident.TITLE_MAX_LENGTH)
    severity = serializers.ChoiceField(choices=Incident.Severity.choices)
    summary = serializers.CharField(
        max_length=Incident.SUMMARY_MAX_LENGTH, required=False, allow_blank=True, default="", trim_whitespace=False
    )


class VersionedInput(StrictSerializer):
    version = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)


class IncidentUpdateInput(VersionedInput):
    title = serializers.CharField(max_length=Incident.TITLE_MAX_LENGTH, required=False)
    severity = serializers.ChoiceField(choices=Incident.Severity.choices, required=False)
    summary = serializers.CharField(
        max_length=Incident.SUMMARY_MAX_LENGTH, required=False, allow_blank=True, trim_whitespace=False
    )
    commander = _role_holder(help_text="A responder or an admin (a user id), or null.")
    comms_lead = _role_holder(help_text="The communications lead: a responder or an admin (a user id), or null.")
    scribe = _role_holder(help_text="A responder or an admin (a user id), or null.")
    assignees = serializers.PrimaryKeyRelatedField(queryset=_users(), many=True, required=False)
    status_update_cadence = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=Incident.CADENCE_MAX_MINUTES,
        help_text="Minutes between status updates; null: none.",
    )
    resolved_conflict = serializers.ChoiceField(
        choices=[("merge", "merge"), ("replace", "replace")],
        required=False,
        help_text="Only with `summary`: the writer saw a newer summary than the one they started from and chose to "
        "merge with it or replace it (send the current `version`). Kept in the summary_change event's data.",
    )

    def validate_assignees(self, value: list[Any]) -> list[Any]:
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 assignees.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "resolved_conflict" in attrs and "summary" not in attrs:
            raise serializers.ValidationError({"resolved_conflict": ["Only with a summary."]})
        return attrs


class StatusInput(VersionedInput):
    status = serializers.ChoiceField(choices=Incident.Status.choices)
    resolution = serializers.CharField(
        max_length=Incident.RESOLUTION_MAX_LENGTH,
        required=False,
        help_text="How it was resolved: required with `status: resolved` (not blank), refused with any other status. "
        "Kept in the `status_change` event's data.",
    )


class NoteInput(StrictSerializer):
    BODY_MAX_LENGTH = 10_000

    body = serializers.CharField(max_length=BODY_MAX_LENGTH, trim_whitespace=True)


class StatusUpdateInput(StrictSerializer):
    body = serializers.CharField(max_length=Incident.STATUS_UPDATE_MAX_LENGTH, trim_whitespace=True)


class ActionItemAddInput(StrictSerializer):
    title = serializers.CharField(max_length=ActionItem.TITLE_MAX_LENGTH)
    owner = _role_holder(default=None, help_text="A responder or an admin (a user id), or null.")


class ActionItemUpdateInput(StrictSerializer):
    title = serializers.CharField(max_length=ActionItem.TITLE_MAX_LENGTH, required=False)
    owner = _role_holder(help_text="A responder or an admin (a user id), or null.")
    done = serializers.BooleanField(required=False)


class NotificationReadInput(StrictSerializer):
    """Exactly one of `ids` (this user's notifications) or `all: true`."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False, min_length=1, max_length=200
    )
    all = serializers.BooleanField(required=False)

    def to_internal_value(self, data: Any) -> Any:
        ids = data.get("ids") if isinstance(data, dict) else None
        if isinstance(ids, list) and not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise serializers.ValidationError({"ids": ["A list of notification ids (integers)."]})
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("ids" in attrs) == bool(attrs.get("all")):
            raise serializers.ValidationError({"non_field_errors": ["Give either `ids` or `all: true`."]})
        return attrs

"""The Django admin for incident review.

The admin is one more door into the command pipeline, not a second write
path: saving an incident calls `incidents.commands` with the form's values
(so every change is versioned, audited and broadcast like any other), the
timeline and the action items are shown read-only, and audit events can be
looked at but never added, edited or deleted, by anyone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.db.models import ForeignKey, ManyToManyField, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from . import commands
from .errors import CommandError
from .forms import role_holders
from .metrics import format_duration
from .models import ActionItem, AuditEvent, Incident
from .selectors import incident_metrics_get

User = get_user_model()

# Set on the request when a command refused the admin's save, so the second
# rendering of the same POST shows the refusal as a form error.
PENDING_ERROR_ATTR = "_incident_admin_command_error"


def _error_text(error: CommandError) -> str:
    """One readable line: the message and any field errors the command gave."""
    parts = [error.message]
    for name, problems in error.fields.items():
        parts.extend(f"{name}: {problem}" for problem in problems)
    return " ".join(parts)


class IncidentAdminForm(forms.ModelForm):
    """Validates what the commands will check, so a refusal is a form error rather than a 500.

    The commands check again under the row lock; a refusal that only shows
    up there (another writer got in between) comes back as `command_error`.
    """

    # The version the page was loaded at: saving a page that someone else
    # changed meanwhile is a conflict, not a silent overwrite of their change.
    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=0)

    # Kept in the status_change event when the status moves to resolved (and only then).
    resolution = forms.CharField(
        required=False,
        max_length=Incident.RESOLUTION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required when the status moves to resolved: how it was resolved.",
    )

    command_error: CommandError | None = None

    class Meta:
        model = Incident
        fields = ["title", "status", "severity", "summary", "commander", "comms_lead", "scribe", "assignees"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Summaries are stored as written; stripping would record a change the user never made.
        self.fields["summary"].strip = False  # type: ignore[attr-defined]
        if self.instance.pk is not None:
            self.fields["expected_version"].initial = self.instance.version

    def clean_summary(self) -> str:
        """Keep the stored text when only the browser's line endings differ (textareas post CRLF)."""
        value: str = self.cleaned_data["summary"]
        stored = self.instance.summary or ""
        if value.replace("\r\n", "\n") == stored.replace("\r\n", "\n"):
            return stored
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        incident = self.instance  # still the stored row: _post_clean has not copied the form onto it yet
        if incident.pk is not None:
            expected = cleaned.get("expected_version")
            if expected is not None and expected != incident.version:
                self.add_error(
                    None,
                    f"Someone changed this incident while you were editing it: it is at version "
                    f"{incident.version}, not {expected}. Reload the page and apply your change again.",
                )
            status = cleaned.get("status")
            if status and status != incident.status:
                try:
                    commands.check_transition(incident, status)
                except CommandError as error:
                    self.add_error("status", _error_text(error))
        status = cleaned.get("status")
        if status:
            moving = incident.pk is None or status != incident.status
            try:
                commands.check_resolution(status if moving else "", cleaned.get("resolution") or None)
            except CommandError as error:
                self.add_error("resolution", " ".join(error.fields.get("resolution", [error.message])))
        if self.command_error is not None:
            self.add_error(None, _error_text(self.command_error))
        return cleaned


class ResolveSelectedForm(forms.Form):
    """The admin action's second step: the one resolution note the selected incidents are resolved with."""

    resolution = forms.CharField(
        max_length=Incident.RESOLUTION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text="How they were resolved: kept in each incident's status_change event.",
    )


class ReadOnlyInline(admin.TabularInline):
    """An inline for reading: what it shows changes only through the commands."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TimelineInline(ReadOnlyInline):
    """The incident's audit events, oldest first, for reading only."""

    model = AuditEvent
    fields = readonly_fields = ("seq", "type", "actor_username", "at", "data")
    ordering = ["seq"]
    show_change_link = False
    verbose_name = "timeline event"
    verbose_name_plural = "timeline"


class ActionItemInline(ReadOnlyInline):
    """Action items, read-only here: they change through the app or the API, which audit them."""

    model = ActionItem
    fields = readonly_fields = ("title", "owner", "done", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ActionItem]:
        return super().get_queryset(request).select_related("owner")


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    form = IncidentAdminForm
    list_display = [
        "id",
        "title",
        "status",
        "severity",
        "commander",
        "created_by",
        "created_at",
        "time_to_resolve_display",
        "version",
    ]
    list_display_links = ["id", "title"]
    list_filter = ["status", "severity"]
    search_fields = ["title"]
    list_select_related = ["commander", "created_by"]
    ordering = ["-created_at", "-id"]
    autocomplete_fields = ["commander", "comms_lead", "scribe", "assignees"]
    inlines = [ActionItemInline, TimelineInline]
    actions = ["resolve_selected"]

    def get_fieldsets(self, request: HttpRequest, obj: Incident | None = None) -> Any:
        main = ["title", "status", "resolution", "severity", "summary", *Incident.ROLES, "assignees"]
        if obj is None:
            return [(None, {"fields": main})]
        return [
            (None, {"fields": [*main, "expected_version"]}),
            ("Record", {"fields": ["version", "created_by", "created_at", "updated_at", "resolved_at"]}),
            ("Durations (computed from the timeline)", {"fields": ["durations"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Incident | None = None) -> Any:
        if obj is None:
            return []
        return ["version", "created_by", "created_at", "updated_at", "resolved_at", "durations"]

    @admin.display(description="time to resolve", ordering="resolved_at")
    def time_to_resolve_display(self, obj: Incident) -> str:
        return format_duration(obj.time_to_resolve) if obj.resolved_at else "—"

    @admin.display(description="durations")
    def durations(self, obj: Incident) -> str:
        """The figures of GET /api/incidents/{id}/metrics, read from the events."""
        metrics = incident_metrics_get(obj.pk) if obj.pk else None
        if metrics is None:
            return "—"
        parts = [
            f"to identify {format_duration(metrics.time_to_identify)}",
            f"to mitigate {format_duration(metrics.time_to_mitigate)}",
            f"to resolve {format_duration(metrics.time_to_resolve)}",
            *(f"{name} {format_duration(value)}" for name, value in metrics.time_in_status.items()),
            f"reopens {metrics.reopens}",
            f"responders {', '.join(r.username for r in metrics.responders)}",
            f"action items {metrics.action_items_open} open / {metrics.action_items_done} done",
        ]
        return " · ".join(parts)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Incident]:
        return super().get_queryset(request).select_related("commander", "created_by")

    def formfield_for_foreignkey(self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in Incident.ROLES:
            kwargs["queryset"] = role_holders()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "assignees":
            kwargs["queryset"] = User.objects.filter(is_active=True)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        error = getattr(request, PENDING_ERROR_ATTR, None)
        if error is not None:
            form = type(form.__name__, (form,), {"command_error": error})
        return form

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An incident is resolved, never deleted: its timeline must outlive it.
        return False

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """Turn a command's refusal during save into the same page with the error on the form.

        Django runs the form view in one transaction, so the refused save has
        been rolled back whole (an add that created the incident and then
        failed to assign it leaves nothing). The second rendering re-validates
        the same POST with the refusal attached as a form error.
        """
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except CommandError as error:
            if request.method != "POST" or getattr(request, PENDING_ERROR_ATTR, None) is not None:
                raise
            setattr(request, PENDING_ERROR_ATTR, error)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Incident, form: Any, change: bool) -> None:
        """Apply the form through the commands; never `obj.save()`."""
        data = form.cleaned_data
        actor = request.user
        resolution = data.get("resolution") or None
        roles = {name: data[name] for name in Incident.ROLES}
        if change:
            # A resolved incident changes only once reopened, and is changed before it is resolved:
            # so a reopen goes first and a resolve last.
            version = data.get("expected_version")
            # `obj` already carries the form's values: the stored status is the form's initial one.
            stored_status = form.initial.get("status")
            if stored_status == Incident.Status.RESOLVED and data["status"] != Incident.Status.RESOLVED:
                version = commands.incident_change_status(
                    actor=actor, incident_id=obj.pk, status=data["status"], expected_version=version
                ).incident.version
            result = commands.incident_update(
                actor=actor,
                incident_id=obj.pk,
                title=data["title"],
                severity=data["severity"],
                summary=data["summary"],
                assignees=list(data["assignees"]),
                expected_version=version,
                **roles,
            )
            if data["status"] != result.incident.status:
                commands.incident_change_status(
                    actor=actor,
                    incident_id=obj.pk,
                    status=data["status"],
                    expected_version=result.incident.version,
                    resolution=resolution,
                )
        else:
            incident = commands.incident_create(
                actor=actor, title=data["title"], severity=data["severity"], summary=data["summary"]
            ).incident
            # A role left empty keeps its default (the declarer commands).
            given = {name: user for name, user in roles.items() if user is not None}
            if given or data["assignees"]:
                commands.incident_update(
                    actor=actor, incident_id=incident.pk, assignees=list(data["assignees"]), **given
                )
            if data["status"] != incident.status:
                commands.incident_change_status(
                    actor=actor, incident_id=incident.pk, status=data["status"], resolution=resolution
                )
            obj.pk = incident.pk
            obj._state.adding = False
        # Show what the commands stored, not the form's copy of it.
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing to do: assignees went through the command, and the inlines are read-only.

        Django's default would call `form.save_m2m()`, writing assignees
        without an audit event. The formsets are marked as having saved
        nothing, which is what the admin's change message reads.
        """
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    @admin.action(description="Resolve selected incidents…", permissions=["change"])
    def resolve_selected(self, request: HttpRequest, queryset: QuerySet[Incident]) -> TemplateResponse | None:
        """Ask for the resolution note (a page of its own), then resolve each through the command;
        report the ones that cannot be (already resolved, say)."""
        form = ResolveSelectedForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Resolve incidents",
                "opts": self.model._meta,
                "form": form,
                "incidents": queryset.order_by("pk"),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/incidents/incident/resolve_selected.html", context)
        resolution = form.cleaned_data["resolution"]
        resolved: list[str] = []
        skipped: list[str] = []
        for incident in queryset.order_by("pk"):
            try:
                commands.incident_change_status(
                    actor=request.user, incident_id=incident.pk, status="resolved", resolution=resolution
                )
            except CommandError as error:
                skipped.append(f"{incident}: {error.message}")
            else:
                resolved.append(str(incident))
        if resolved:
            self.message_user(request, f"Resolved {len(resolved)} incident(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {len(skipped)} incident(s): " + "; ".join(skipped), messages.WARNING)
        return None


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The timeline of every incident, to look at only: no one may add, change or delete an event."""

    list_display = ["incident", "seq", "type", "actor_username", "when"]
    list_filter = ["type"]
    search_fields = ["actor_username", "incident__title"]
    list_select_related = ["incident"]
    # Newest first by the primary key (a backward scan of it, `?type=` included): `at` has no index,
    # and sorting the biggest table by it reads and sorts every row. Events are appended as they happen.
    ordering = ["-id"]
    fields = readonly_fields = ("incident", "seq", "type", "actor", "actor_username", "at", "data", "prev_hash", "hash")

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return super().get_queryset(request).select_related("incident", "actor")

    @admin.display(description="at", ordering="id")
    def when(self, event: AuditEvent) -> datetime:
        """The time column sorts by the key too: the same order, on the index."""
        return event.at

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

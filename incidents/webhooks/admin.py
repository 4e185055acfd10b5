"""The admin's side of webhooks: endpoints to register, and the deliveries and attempts to read.

Deliveries and their attempts are written only by the commands (the outbox)
and the worker; here they are read-only, with one action, "retry now".
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from ..admin import ReadOnlyInline
from ..models import AuditEvent
from .delivery import retry_now
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class WebhookEndpointForm(forms.ModelForm):
    # A URL typed without a scheme is taken as https://; the model allows http and https only.
    url = forms.URLField(max_length=500, assume_scheme="https", widget=forms.URLInput(attrs={"size": 80}))
    # Offered as checkboxes of the event types there are now; none ticked means every type.
    event_types = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to receive every event type, including types added later.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "secret", "event_types", "payload_format", "is_active"]
        widgets = {"secret": forms.TextInput(attrs={"size": 60})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["event_types"].choices = AuditEvent.Type.choices  # type: ignore[attr-defined]

    def clean_event_types(self) -> list[str]:
        return sorted(self.cleaned_data["event_types"])


def _count(status: str) -> Any:
    """An endpoint's deliveries in one status: a subquery on the (endpoint, status) index, not the delivered bulk."""
    rows = WebhookDelivery.objects.filter(endpoint=OuterRef("pk"), status=status).order_by()
    return Coalesce(Subquery(rows.values("endpoint").annotate(n=Count("pk")).values("n")), 0)


class EventTypeFilter(admin.SimpleListFilter):
    """The event types there are, from the code: no DISTINCT over the whole table to list them."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return AuditEvent.Type.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(event_type=self.value()) if self.value() else queryset


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["name", "url", "payload_format", "subscribed", "is_active", "pending", "failed"]
    list_filter = ["is_active", "payload_format"]
    search_fields = ["name", "url"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        # The list's pending and failed columns, counted in the page's one query (on webhookdelivery_endpoint_idx).
        return super().get_queryset(request).annotate(pending_count=_count("pending"), failed_count=_count("failed"))

    @admin.display(description="pending", ordering="pending_count")
    def pending(self, obj: Any) -> int:
        return int(obj.pending_count)

    @admin.display(description="failed", ordering="failed_count")
    def failed(self, obj: Any) -> int:
        return int(obj.failed_count)

    @admin.display(description="event types")
    def subscribed(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.event_types) if obj.event_types else "all"


class AttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = readonly_fields = ("number", "at", "status_code", "error", "duration_ms", "response_excerpt")
    ordering = ["number"]
    verbose_name_plural = "attempts"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the outbox and the worker alone: looked at here, never added, edited or deleted."""

    def _never(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    has_add_permission = has_change_permission = has_delete_permission = _never


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "endpoint", "event_type", "incident", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["status", EventTypeFilter, "endpoint"]
    list_select_related = ["endpoint", "event__incident"]
    fields = readonly_fields = (
        "endpoint",
        "event",
        "event_type",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "last_error",
        "payload",
    )
    inlines = [AttemptInline]
    actions = ["retry_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        return super().get_queryset(request).select_related("endpoint", "event__incident")

    @admin.display(description="incident")
    def incident(self, obj: WebhookDelivery) -> str:
        return str(obj.event.incident)

    @admin.action(description="Retry now (one more attempt for failed ones)")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = retry_now(queryset)
        self.message_user(request, f"{count} delivery(ies) will be sent at the worker's next poll.", messages.SUCCESS)


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(ReadOnlyAdmin):
    """The delivery log: every attempt of every delivery, newest first."""

    list_display = ["delivery", "endpoint", "number", "at", "status_code", "error", "duration_ms"]
    list_filter = ["delivery__endpoint"]
    list_select_related = ["delivery__endpoint"]
    ordering = ["-id"]  # newest first, on the primary key (`at` has no index)
    fields = readonly_fields = ("delivery", "number", "at", "status_code", "error", "duration_ms", "response_excerpt")

    @admin.display(description="endpoint")
    def endpoint(self, obj: WebhookAttempt) -> str:
        return str(obj.delivery.endpoint)

"""Reads of incidents, with the joins each caller needs (no N+1)."""

from typing import Any

from django.db.models import Case, IntegerField, Prefetch, Q, QuerySet, Value, When

from .models import ActionItem, AuditEvent, Incident


def incident_list_queryset(
    *, status: str | None = None, severity: str | None = None, q: str | None = None
) -> QuerySet[Incident]:
    """Open incidents first, then the most severe, then the newest."""
    queryset = (
        Incident.objects.select_related("commander")
        .annotate(
            is_resolved=Case(
                When(status=Incident.Status.RESOLVED, then=Value(1)), default=Value(0), output_field=IntegerField()
            ),
            severity_rank=Case(
                *[When(severity=name, then=Value(rank)) for name, rank in Incident.SEVERITY_RANK.items()],
                output_field=IntegerField(),
            ),
        )
        .order_by("is_resolved", "severity_rank", "-created_at", "-id")
    )
    if status:
        queryset = queryset.filter(status=status)
    if severity:
        queryset = queryset.filter(severity=severity)
    if q:
        queryset = queryset.filter(Q(title__icontains=q))
    return queryset


# An incident's action items with their owners, in one query.
ACTION_ITEMS = Prefetch("action_items", queryset=ActionItem.objects.select_related("owner"))


def incident_state_queryset() -> QuerySet[Incident]:
    return Incident.objects.select_related("commander", "created_by").prefetch_related("assignees", ACTION_ITEMS)


def incident_get(incident_id: Any) -> Incident | None:
    try:
        pk = int(incident_id)
    except (TypeError, ValueError):
        return None
    return incident_state_queryset().filter(pk=pk).first()


def events_after(*, incident_id: int, after: int = 0, limit: int | None = None) -> QuerySet[AuditEvent]:
    """Events with seq > after, oldest first: what a reconnecting client missed."""
    queryset = AuditEvent.objects.filter(incident_id=incident_id, seq__gt=after).order_by("seq")
    return queryset[:limit] if limit is not None else queryset

"""Reads of incidents, with the joins each caller needs (no N+1)."""

from datetime import date, datetime, time
from typing import Any

from django.db import connection
from django.db.models import (
    Case,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Lower
from django.utils import timezone

from .metrics import IncidentMetrics, incident_metrics
from .models import ActionItem, AuditEvent, Incident
from .search import incident_search_q, note_search_q

# The list's sort keys (`?sort=`, `-` for descending) and the columns they order by.
LIST_SORTS = ("severity", "title", "status", "commander", "opened", "duration")
STATUS_RANK = {"investigating": 0, "identified": 1, "monitoring": 2, "resolved": 3}


def _rank(field: str, ranks: dict[str, int]) -> Case:
    return Case(*[When(**{field: name}, then=Value(rank)) for name, rank in ranks.items()], output_field=IntegerField())


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _day_end(day: date) -> datetime:
    """The day's last moment (not the next day's start: 9999-12-31 has none)."""
    return timezone.make_aware(datetime.combine(day, time.max))


def incident_list_queryset(
    *,
    status: str | None = None,
    severity: str | None = None,
    q: str | None = None,
    mine: Any = None,
    since: date | None = None,
    until: date | None = None,
    sort: str | None = None,
) -> QuerySet[Incident]:
    """The list, filtered: by default open incidents first, then the most severe, then the newest.

    `q` searches titles, summaries and notes (`incidents.search`); `mine` is a
    user, matching incidents they command, are assigned to or own an action
    item of; `since`/`until` bound the opening date (both days included).
    """
    queryset = Incident.objects.select_related("commander", "last_status_update_by").annotate(
        is_resolved=Case(
            When(status=Incident.Status.RESOLVED, then=Value(1)), default=Value(0), output_field=IntegerField()
        ),
        severity_rank=_rank("severity", Incident.SEVERITY_RANK),
    )
    if status:
        queryset = queryset.filter(status=status)
    if severity:
        queryset = queryset.filter(severity=severity)
    if q:
        queryset = queryset.filter(incident_search_q(q, vendor=connection.vendor))
    if mine is not None:
        assigned = Incident.assignees.through.objects.filter(incident_id=OuterRef("pk"), user_id=mine.pk)
        owns = ActionItem.objects.filter(incident_id=OuterRef("pk"), owner_id=mine.pk)
        queryset = queryset.filter(Q(commander_id=mine.pk) | Q(Exists(assigned)) | Q(Exists(owns)))
    if since:
        queryset = queryset.filter(created_at__gte=_day_start(since))
    if until:
        queryset = queryset.filter(created_at__lte=_day_end(until))
    return queryset.order_by(*_list_order(sort))


def _list_order(sort: str | None) -> list[Any]:
    if not sort:
        return ["is_resolved", "severity_rank", "-created_at", "-id"]
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    columns: dict[str, Any] = {
        "severity": F("severity_rank"),
        "title": Lower("title"),
        "status": _rank("status", STATUS_RANK),
        "commander": F("commander__username"),
        "opened": F("created_at"),
        "duration": ExpressionWrapper(F("resolved_at") - F("created_at"), output_field=DurationField()),
    }
    column = columns[key]
    # Severity reads most severe first when ascending; every empty value (no commander, still open) goes last.
    ordered = column.desc(nulls_last=True) if descending else column.asc(nulls_last=True)
    return [ordered, "-id"]


# An incident's action items with their owners, in one query.
ACTION_ITEMS = Prefetch("action_items", queryset=ActionItem.objects.select_related("owner"))


def incident_state_queryset() -> QuerySet[Incident]:
    return Incident.objects.select_related(
        "commander", "comms_lead", "scribe", "created_by", "last_status_update_by"
    ).prefetch_related("assignees", ACTION_ITEMS)


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


def pinned_seqs(incident_id: int) -> set[int]:
    """The seqs pinned now: the pins and unpins folded in order (one indexed query)."""
    pinned: set[int] = set()
    rows = (
        AuditEvent.objects.filter(
            incident_id=incident_id, type__in=[AuditEvent.Type.EVENT_PINNED, AuditEvent.Type.EVENT_UNPINNED]
        )
        .order_by("seq")
        .values_list("type", "data")
    )
    for kind, data in rows:
        if kind == AuditEvent.Type.EVENT_PINNED:
            pinned.add(int(data["seq"]))
        else:
            pinned.discard(int(data["seq"]))
    return pinned


# The fields of an event that the metrics and the replay read.
EVENT_FIELDS = ("seq", "type", "at", "actor_id", "actor_username", "data")


def incident_metrics_get(incident_id: int, *, now: datetime | None = None) -> IncidentMetrics | None:
    """The incident's durations from its timeline (one query), or None if there is no such incident."""
    if not 0 <= incident_id < 2**63:
        return None  # no row has such an id (and SQLite cannot even compare with it)
    events = list(AuditEvent.objects.filter(incident_id=incident_id).order_by("seq").only(*EVENT_FIELDS))
    if not events:
        return None  # every incident has at least its incident_created event
    return incident_metrics(events, now=now or timezone.now())


def events_filtered(
    *,
    incident_id: int,
    after: int = 0,
    before: int | None = None,
    types: list[str] | None = None,
    actor: int | None = None,
    q: str | None = None,
) -> QuerySet[AuditEvent]:
    """The timeline between two seqs with the filters a reader picks (each backed by an index)."""
    queryset = AuditEvent.objects.filter(incident_id=incident_id, seq__gt=after)
    if before is not None:
        queryset = queryset.filter(seq__lt=before)
    if types:
        queryset = queryset.filter(type__in=types)
    if actor is not None:
        queryset = queryset.filter(actor_id=actor)
    if q:
        queryset = queryset.filter(note_search_q(q))
    return queryset


def event_actors(incident_id: int) -> list[dict[str, Any]]:
    """Everyone who acted on the incident, as their name was then: the timeline's actor filter."""
    rows = (
        AuditEvent.objects.filter(incident_id=incident_id)
        .values("actor_id", "actor_username")
        .distinct()
        .order_by("actor_username", "actor_id")
    )
    return [{"id": row["actor_id"], "username": row["actor_username"]} for row in rows]


def db_vendor() -> str:
    return connection.vendor


def incident_replay(incident_id: int, *, upto: int) -> tuple[Any, AuditEvent] | None:
    """The incident as it was after event `upto`, folded from its events (one query), with that event;
    None if there is no such event."""
    from .replay import state_from_events

    events = list(AuditEvent.objects.filter(incident_id=incident_id, seq__lte=upto).order_by("seq"))
    if not events or events[-1].seq != upto:
        return None
    return state_from_events(event.as_data() for event in events), events[-1]

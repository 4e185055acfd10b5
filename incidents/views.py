"""The web pages: server-rendered views over the same commands as the API.

Reads use `incidents.selectors`; every write calls one command and answers
204 (or a redirect without htmx). What the page shows changes only when the
server's `incident:updated` arrives over the socket and the page fetches the
room's partials (`incident_room_partial`): nothing here is optimistic.
A command's typed error becomes a small error partial with its 4xx status,
which htmx swaps into the error slot beside the control.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import commands, richtext
from .errors import CommandError, Conflict, Invalid
from .forms import (
    ActionItemAddForm,
    ActionItemDoneForm,
    ActionItemOwnerForm,
    AssigneeForm,
    CadenceForm,
    CommanderForm,
    IncidentCreateForm,
    ListFilterForm,
    NoteForm,
    PeriodForm,
    PinForm,
    ReplayForm,
    RoleForm,
    SeverityForm,
    StatusForm,
    StatusUpdateForm,
    SummaryForm,
    TimelineFilterForm,
    TitleForm,
    first_error,
    role_holders,
)
from .models import AuditEvent, Incident
from .selectors import event_actors, events_filtered, incident_get, incident_list_queryset, pinned_seqs
from .selectors import incident_replay as incident_replay_at
from .timeline import describe_event

TIMELINE_LENGTH = 200
# A page that was away longer catches up in several partial fetches of this many events.
CATCH_UP_LIMIT = 500

CONFLICT_MESSAGE = "Someone changed this first — showing the latest."

View = Callable[..., HttpResponse]
# A command view returns nothing on success; `command_view` turns that into 204 or a redirect.
CommandView = Callable[..., HttpResponse | None]


# --- Helpers --------------------------------------------------------------------


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _error(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "incidents/partials/error.html", {"message": message}, status=status)


def _plain(exc: CommandError) -> str:
    """A command's error in the words a person reads beside the control."""
    if isinstance(exc, Conflict):
        return CONFLICT_MESSAGE
    for name, messages in exc.fields.items():
        if messages:
            return f"{name.replace('_', ' ').capitalize()}: {messages[0]}"
    return exc.message


def _get_incident(pk: int) -> Incident:
    incident = incident_get(pk)
    if incident is None:
        raise Http404("No such incident.")
    return incident


def command_view(view: CommandView) -> View:
    """A POST that changes an incident: signed in, a responder or admin, typed errors to 4xx.

    The role is checked here for an early, clear 403; the command checks it again.
    """

    @login_required
    @require_POST
    @wraps(view)
    def wrapper(request: HttpRequest, pk: int, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.can_change_incidents:  # type: ignore[union-attr]
            return _error(request, "You are viewing read-only: only responders and admins may change incidents.", 403)
        try:
            response = view(request, pk, *args, **kwargs)
        except CommandError as exc:
            return _error(request, _plain(exc), exc.http_status)
        if response is not None:
            return response
        if _is_htmx(request):
            return HttpResponse(status=204)
        return redirect("incident-room", pk=pk)

    return wrapper


def _parsed(form_class: type[Any], request: HttpRequest) -> Any:
    form = form_class(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    return form.cleaned_data


# --- The timeline --------------------------------------------------------------

PIN_TYPES = (AuditEvent.Type.EVENT_PINNED, AuditEvent.Type.EVENT_UNPINNED)
# Events whose text is shown with links and @mentions (incidents.richtext), after a prefix in words.
RICH_TYPES: dict[str, str] = {
    AuditEvent.Type.NOTE.value: "note: ",
    AuditEvent.Type.STATUS_UPDATE.value: "status update: ",
}


def _timeline(
    events: QuerySet[AuditEvent] | list[AuditEvent], pinned: set[int] | frozenset[int] = frozenset()
) -> list[dict[str, Any]]:
    events = list(events)
    bodies = [str(event.data.get("body", "")) for event in events if event.type in RICH_TYPES]
    # Everyone the shown events mention, in one query.
    mentionable = richtext.users_named(richtext.mentioned_names(bodies)) if bodies else {}
    rows = []
    for event in events:
        is_pin = event.type in PIN_TYPES
        prefix = RICH_TYPES.get(event.type)
        rows.append(
            {
                "seq": event.seq,
                "type": event.type,
                "at": event.at,
                "actor": event.actor_username,
                "text": describe_event(event),
                "prefix": prefix,
                "rich": richtext.render(str(event.data.get("body", "")), mentionable) if prefix else None,
                "detail": event.data.get("to", "") if event.type == AuditEvent.Type.SUMMARY_CHANGE else "",
                "pinned": event.seq in pinned,
                "pinnable": not is_pin,
                # A pin's row tells the page which row to mark (static/js/review.js).
                "pin_target": event.data.get("seq") if is_pin else None,
                "pin_state": "on" if event.type == AuditEvent.Type.EVENT_PINNED else "off",
            }
        )
    return rows


# --- The room's context, shared by the page and its partials ---------------------

# The update cadences the room offers, in minutes (the API takes any from 1 to a week).
CADENCE_CHOICES = [15, 30, 60, 120, 240]


def _room_context(
    request: HttpRequest, incident: Incident, events: list[AuditEvent], pinned: set[int] | frozenset[int] = frozenset()
) -> dict[str, Any]:
    # Only responders and admins are offered for a role, an assignment or an item (never a viewer).
    users = list(role_holders())
    assignees = list(incident.assignees.all())
    assigned = {user.pk for user in assignees}
    can_change = request.user.can_change_incidents  # type: ignore[union-attr]
    return {
        "incident": incident,
        "can_change": can_change,
        # A resolved incident's fields, people and items are read-only until it is reopened (notes still go in).
        "can_edit": can_change and incident.is_open,
        "open_items": [item for item in incident.action_items.all() if not item.done],
        "transitions": incident.allowed_transitions(),
        "severities": Incident.Severity.choices,
        "users": users,
        "assignees": assignees,
        "unassigned": [user for user in users if user.pk not in assigned],
        "action_items": list(incident.action_items.all()),
        "events": _timeline(events, pinned),
        "cadences": CADENCE_CHOICES,
    }


@login_required
@require_GET
def incident_room(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _get_incident(pk)
    newest = list(incident.events.order_by("-seq")[:TIMELINE_LENGTH])
    context = _room_context(request, incident, list(reversed(newest)), pinned_seqs(incident.pk))
    context["older_before"] = newest[-1].seq if newest and newest[-1].seq > 1 else None
    context["filter_form"] = TimelineFilterForm(actors=event_actors(incident.pk))
    return render(request, "incidents/room.html", context)


@login_required
@require_GET
def incident_room_partial(request: HttpRequest, pk: int) -> HttpResponse:
    """The room's live parts as out-of-band swaps, and the events after `after`.

    Events are capped at the version the state was read at, so the parts and
    the timeline describe the same moment; a later event has its own broadcast.
    """
    incident = _get_incident(pk)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    events = list(incident.events.filter(seq__gt=after, seq__lte=incident.version).order_by("seq")[:CATCH_UP_LIMIT])
    context = _room_context(request, incident, events)
    context["oob"] = True
    return render(request, "incidents/partials/room_live.html", context)


# --- The list -------------------------------------------------------------------


LIST_PAGE_SIZE = 50
LIST_LIMIT = LIST_PAGE_SIZE  # the most rows a page shows (and the live list subscribes to)
LIST_COLUMNS = [
    ("severity", "Severity"),
    ("title", "Title"),
    ("status", "Status"),
    ("commander", "Commander"),
    ("duration", "Age / duration"),
]


def _list_context(request: HttpRequest) -> tuple[dict[str, Any], int]:
    """The filtered, sorted page of the list, and the status to answer with (400 for a bad filter)."""
    form = ListFilterForm(request.GET)
    if not form.is_valid():
        return {"form": form, "incidents": [], "filtered": True, "error": first_error(form), "columns": []}, 400
    filters = form.cleaned_data
    queryset = incident_list_queryset(
        status=filters["status"] or None,
        severity=filters["severity"] or None,
        q=filters["q"].strip() or None,
        mine=request.user if filters["mine"] else None,
        since=filters["since"],
        until=filters["until"],
        sort=filters["sort"] or None,
    )
    paginator = Paginator(queryset, LIST_PAGE_SIZE)
    page = paginator.get_page(filters["page"] or 1)
    params = request.GET.copy()
    params.pop("page", None)
    sort = filters["sort"] or ""
    columns = []
    for key, label in LIST_COLUMNS:
        current = sort.lstrip("-") == key
        descending = sort.startswith("-")
        following = params.copy()
        following["sort"] = f"-{key}" if current and not descending else key
        columns.append(
            {
                "label": label,
                "query": following.urlencode(),
                "aria_sort": ("descending" if descending else "ascending") if current else None,
            }
        )
    filtered = any(filters[name] for name in ("status", "severity", "q", "mine", "since", "until"))
    return {
        "form": form,
        "incidents": list(page.object_list),
        "page": page,
        "params": params.urlencode(),
        "filtered": filtered,
        "columns": columns,
    }, 200


@login_required
@require_GET
def incident_list(request: HttpRequest) -> HttpResponse:
    context, status = _list_context(request)
    return render(request, "incidents/list.html", context, status=status)


@login_required
@require_GET
def incident_list_rows(request: HttpRequest) -> HttpResponse:
    """The table body alone, with the same filters, and (out of band) the count, pages and sort headers:
    what the filters fetch as they change and the live list fetches on a change."""
    context, status = _list_context(request)
    context["oob"] = True
    response = render(request, "incidents/partials/list_rows.html", context, status=status)
    # The address bar follows the filters (replaced, not pushed: a live refresh must not add history).
    query = request.GET.urlencode()
    response["HX-Replace-Url"] = reverse("incident-list") + (f"?{query}" if query else "")
    return response


@login_required
@require_http_methods(["GET", "POST"])
def incident_new(request: HttpRequest) -> HttpResponse:
    if not request.user.can_change_incidents:  # type: ignore[union-attr]
        return render(request, "incidents/new.html", {"forbidden": True}, status=403)
    form = IncidentCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                result = commands.incident_create(actor=request.user, **form.cleaned_data)
            except CommandError as exc:
                form.add_error(None, _plain(exc))
                status = exc.http_status
            else:
                return redirect("incident-room", pk=result.incident.pk)
        else:
            status = 400
    return render(request, "incidents/new.html", {"form": form}, status=status)


# --- Commands from the room ---------------------------------------------------------


@command_view
def incident_status(request: HttpRequest, pk: int) -> None:
    data = _parsed(StatusForm, request)
    commands.incident_change_status(
        actor=request.user,
        incident_id=pk,
        status=data["status"],
        expected_version=data["version"],
        # The resolve dialog's note; an empty box is no note (refused when resolving).
        resolution=data["resolution"] or None,
    )


@command_view
def incident_title(request: HttpRequest, pk: int) -> None:
    data = _parsed(TitleForm, request)
    commands.incident_update(actor=request.user, incident_id=pk, title=data["title"])


@command_view
def incident_role(request: HttpRequest, pk: int) -> None:
    data = _parsed(RoleForm, request)
    commands.incident_update(actor=request.user, incident_id=pk, **{data["role"]: data["user"]})


@command_view
def incident_severity(request: HttpRequest, pk: int) -> None:
    data = _parsed(SeverityForm, request)
    commands.incident_update(actor=request.user, incident_id=pk, severity=data["severity"])


@command_view
def incident_commander(request: HttpRequest, pk: int) -> None:
    data = _parsed(CommanderForm, request)
    commands.incident_update(actor=request.user, incident_id=pk, commander=data["commander"])


@command_view
def incident_summary(request: HttpRequest, pk: int) -> None:
    data = _parsed(SummaryForm, request)
    commands.incident_update(
        actor=request.user,
        incident_id=pk,
        summary=data["summary"],
        expected_version=data["version"],
        resolved_conflict=data["resolved_conflict"] or None,
    )


def _change_assignees(request: HttpRequest, pk: int, *, add: bool) -> None:
    """The command takes the whole list: read it with its version, so a concurrent change is a 409, not lost."""
    user = _parsed(AssigneeForm, request)["user"]
    incident = Incident.objects.filter(pk=pk).only("version").first()
    if incident is None:
        raise Http404("No such incident.")
    current = [u for u in incident.assignees.all() if u.pk != user.pk]
    commands.incident_update(
        actor=request.user,
        incident_id=pk,
        assignees=[*current, user] if add else current,
        expected_version=incident.version,
    )


@command_view
def incident_assignee_add(request: HttpRequest, pk: int) -> None:
    _change_assignees(request, pk, add=True)


@command_view
def incident_assignee_remove(request: HttpRequest, pk: int) -> None:
    _change_assignees(request, pk, add=False)


@command_view
def incident_note(request: HttpRequest, pk: int) -> None:
    data = _parsed(NoteForm, request)
    commands.incident_add_note(actor=request.user, incident_id=pk, body=data["body"])


@command_view
def incident_status_update(request: HttpRequest, pk: int) -> None:
    data = _parsed(StatusUpdateForm, request)
    commands.incident_post_status_update(actor=request.user, incident_id=pk, body=data["body"])


@command_view
def incident_cadence(request: HttpRequest, pk: int) -> None:
    data = _parsed(CadenceForm, request)
    commands.incident_update(actor=request.user, incident_id=pk, status_update_cadence=data["cadence"])


@command_view
def action_item_add(request: HttpRequest, pk: int) -> None:
    data = _parsed(ActionItemAddForm, request)
    commands.action_item_add(actor=request.user, incident_id=pk, title=data["title"], owner=data["owner"])


@command_view
def action_item_done(request: HttpRequest, pk: int, item: int) -> None:
    data = _parsed(ActionItemDoneForm, request)
    commands.action_item_update(actor=request.user, incident_id=pk, item_id=item, done=data["done"])


@command_view
def action_item_owner(request: HttpRequest, pk: int, item: int) -> None:
    data = _parsed(ActionItemOwnerForm, request)
    commands.action_item_update(actor=request.user, incident_id=pk, item_id=item, owner=data["owner"])


@command_view
def event_pin(request: HttpRequest, pk: int, seq: int) -> None:
    data = _parsed(PinForm, request)
    commands.event_pin(actor=request.user, incident_id=pk, seq=seq, pinned=data["pinned"] == "true")


# --- The whole timeline: older pages and filtered results ---------------------------------

TIMELINE_PAGE = 100


@login_required
@require_GET
def incident_timeline_partial(request: HttpRequest, pk: int) -> HttpResponse:
    """A page of the timeline, newest first from `before`: older events for the room's list,
    or (with a type, actor or text) the matching events for the results list."""
    incident = Incident.objects.filter(pk=pk).first()
    if incident is None:
        raise Http404("No such incident.")
    form = TimelineFilterForm(request.GET)
    if not form.is_valid():
        return _error(request, first_error(form), 400)
    data = form.cleaned_data
    queryset = events_filtered(
        incident_id=pk,
        before=data["before"],
        types=[data["type"]] if data["type"] else None,
        actor=data["actor"],
        q=data["q"].strip() or None,
    )
    page = list(queryset.order_by("-seq")[: TIMELINE_PAGE + 1])
    more = len(page) > TIMELINE_PAGE
    events = list(reversed(page[:TIMELINE_PAGE]))
    into = "results" if data["into"] == "results" else "list"
    context = {
        "incident": incident,
        "can_change": request.user.can_change_incidents,  # type: ignore[union-attr]
        "events": _timeline(events, pinned_seqs(pk)),
        "into": into,
        "older_before": events[0].seq if more and events else None,
        "params": {name: value for name, value in request.GET.items() if name != "before"},
        "count": queryset.count() if into == "results" and data["before"] is None else None,
        "id_prefix": "match" if into == "results" else "event",
    }
    return render(request, "incidents/partials/timeline_page.html", context)


# --- The postmortem, printable --------------------------------------------------------------


@login_required
@require_GET
def incident_postmortem(request: HttpRequest, pk: int) -> HttpResponse:
    from .postmortem import postmortem_build

    postmortem = postmortem_build(pk)
    if postmortem is None:
        raise Http404("No such incident.")
    return render(request, "incidents/postmortem.html", {"pm": postmortem, "incident": postmortem.incident})


# --- The overview over a period ------------------------------------------------------------


@login_required
@require_GET
def incident_overview(request: HttpRequest) -> HttpResponse:
    from .overview import chart_resolve, chart_status, chart_weeks, overview_compute, overview_rows

    form = PeriodForm(request.GET)
    if not form.is_valid():
        return render(request, "incidents/overview.html", {"form": form, "error": first_error(form)}, status=400)
    since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    data = overview_compute(overview_rows(since, until), since=since, until=until)
    context = {
        # The period in effect, shown in the date fields even when the defaults chose it.
        "form": PeriodForm({"since": since.isoformat(), "until": until.isoformat()}),
        "data": data,
        "since": since,
        "until": until,
        "weeks": chart_weeks(data["per_week"]),
        "resolve": chart_resolve(data["by_severity"]),
        "status_chart": chart_status(data["by_severity"]),
        "statuses": ["investigating", "identified", "monitoring", "resolved"],
    }
    return render(request, "incidents/overview.html", context)


@login_required
@require_GET
def incident_overview_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The incidents opened in the period, one row each with its stamps and durations in seconds."""
    from .overview import overview_csv_lines

    form = PeriodForm(request.GET)
    if not form.is_valid():
        return HttpResponse(first_error(form) + "\n", status=400, content_type="text/plain; charset=utf-8")
    since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    response = StreamingHttpResponse(overview_csv_lines(since, until), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="incidents-{since}-{until}.csv"'
    return response


# --- Replay: the incident as it was after any event -----------------------------------------


@login_required
@require_GET
def incident_replay(request: HttpRequest, pk: int) -> HttpResponse:
    form = ReplayForm(request.GET)
    if not form.is_valid():
        return _error(request, first_error(form), 400)
    incident = Incident.objects.filter(pk=pk).only("version").first()
    if incident is None:
        raise Http404("No such incident.")
    seq = form.cleaned_data["seq"]
    replayed = incident_replay_at(pk, upto=seq)
    if replayed is None:
        return _error(request, f"There is no event {seq}; the timeline has {incident.version}.", 404)
    state, event = replayed
    context = {
        "state": state,
        "event": _timeline([event])[0],
        "version": incident.version,
        "at": event.at,
    }
    return render(request, "incidents/partials/replay.html", context)

"""The incidents REST API: thin views that parse, call a command, and shape the reply."""

from collections.abc import Callable
from typing import Any

from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import CanChangeIncidentsOrReadOnly
from incident_platform.schema import error_ref

from . import commands, notifications
from .errors import NotFound
from .forms import LIST_SORT_CHOICES, PeriodForm
from .idempotency import Outcome, command_content, run_once
from .models import AuditEvent, IdempotencyKey, Incident, Notification
from .overview import overview_compute, overview_rows
from .postmortem import postmortem_build, to_markdown
from .selectors import events_filtered, incident_get, incident_list_queryset, incident_metrics_get, incident_replay
from .serializers import (
    ActionItemAddInput,
    ActionItemSerializer,
    ActionItemUpdateInput,
    AuditEventSerializer,
    IncidentCreateInput,
    IncidentDetailSerializer,
    IncidentListSerializer,
    IncidentMetricsSerializer,
    IncidentSerializer,
    IncidentUpdateInput,
    NoteInput,
    NotificationPageSerializer,
    NotificationReadInput,
    NotificationReadResultSerializer,
    OverviewSerializer,
    ReplayedStateSerializer,
    StatusInput,
    StatusUpdateInput,
)


@csrf_exempt  # it reads and changes nothing; an unsafe method must not get CSRF's HTML 403 instead
def api_not_found(request: Any, path: str = "") -> JsonResponse:
    """A path under /api/ that names nothing: a JSON 404 like every other API error, not an HTML page."""
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "maxLength": IdempotencyKey.KEY_MAX_LENGTH},
    OpenApiParameter.HEADER,
    required=False,
    description="A printable string chosen by the client (a UUID, say). A retry by the same user with the same key "
    "within 24 hours returns the first outcome, with `Idempotent-Replayed: true`, and changes nothing; the same key "
    "with a different command or body is a 400.",
)
VERSION_CONFLICT = OpenApiResponse(
    error_ref("VersionConflictError"),
    description="`version` is stale (the body has the current one), or the incident is resolved: nothing changed.",
)
RESOLVED_CONFLICT = OpenApiResponse(
    error_ref("ResolvedConflictError"), description="The incident is resolved (reopen it first): nothing changed."
)
STATUS_CONFLICT = OpenApiResponse(
    error_ref("StatusConflictError"),
    description="`version` is stale, or the current status does not allow this move: nothing changed.",
)


def _validated(serializer_class: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["Expected a JSON object."]})
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _keyed(
    request: Request, *, name: str, target: list[Any], data: dict[str, Any], execute: Callable[[], Outcome]
) -> Response:
    """Run a write once per Idempotency-Key and turn its outcome into a response."""
    content = command_content(transport="rest", command=name, target=target, data=data)
    outcome = run_once(actor=request.user, key=request.headers.get("Idempotency-Key"), content=content, execute=execute)
    response = Response(outcome.body, status=outcome.status)
    if outcome.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


class FlagField(serializers.ChoiceField):
    """A query flag: exactly `true` or `false` (DRF's BooleanField also takes `on`, `1`, `yes` …, which the
    schema's boolean does not)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=["true", "false"], **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        return super().to_internal_value(data) == "true"


class IncidentPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int | None:
        """DRF ignores a page_size it cannot read; say so instead, as for every other bad parameter."""
        value = request.query_params.get(self.page_size_query_param)
        if value is not None and not (value.isascii() and value.isdigit() and int(value) > 0):
            raise exceptions.ValidationError({self.page_size_query_param: ["A positive integer is required."]})
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = f"Results per page (default {self.page_size}, at most {self.max_page_size})."
        return parameters


class IncidentListApi(APIView):
    permission_classes = [CanChangeIncidentsOrReadOnly]
    pagination_class = IncidentPagination  # read by the schema; get() pages with it

    class FilterSerializer(serializers.Serializer[Any]):
        status = serializers.ChoiceField(choices=Incident.Status.choices, required=False)
        severity = serializers.ChoiceField(choices=Incident.Severity.choices, required=False)
        q = serializers.CharField(
            required=False,
            max_length=200,
            help_text="Search titles, summaries and notes (full-text on PostgreSQL; titles also match a fragment).",
        )
        mine = FlagField(
            required=False, help_text="`true`: only incidents I command, am assigned to or own an item of."
        )
        since = serializers.DateField(required=False, help_text="Opened on or after this day.")
        until = serializers.DateField(required=False, help_text="Opened on or before this day.")
        sort = serializers.ChoiceField(
            choices=[choice for choice, _ in LIST_SORT_CHOICES if choice],
            required=False,
            help_text="A column, `-` for descending; default: open first, most severe first, newest first.",
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs.get("since") and attrs.get("until") and attrs["since"] > attrs["until"]:
                raise serializers.ValidationError({"until": ["The end date is before the start date."]})
            return attrs

    @extend_schema(parameters=[FilterSerializer], responses=IncidentListSerializer(many=True))
    def get(self, request: Request) -> Response:
        # A plain dict: DRF reads a QueryDict as a form and takes `?status=` for "no filter",
        # which the schema (a status is one of four words) does not promise.
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        params = dict(filters.validated_data)
        params["mine"] = request.user if params.pop("mine", False) else None
        queryset = incident_list_queryset(**params)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(IncidentListSerializer(page, many=True).data)

    @extend_schema(request=IncidentCreateInput, responses={201: IncidentSerializer}, parameters=[IDEMPOTENCY_HEADER])
    def post(self, request: Request) -> Response:
        data = _validated(IncidentCreateInput, request)

        def execute() -> Outcome:
            result = commands.incident_create(actor=request.user, **data)
            return Outcome(status.HTTP_201_CREATED, result.state)

        return _keyed(request, name="incident_create", target=[], data=data, execute=execute)


class IncidentDetailApi(APIView):
    permission_classes = [CanChangeIncidentsOrReadOnly]

    @extend_schema(responses=IncidentDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        incident = incident_get(pk)
        if incident is None:
            raise exceptions.NotFound(f"Incident {pk} does not exist.")
        return Response(IncidentDetailSerializer(incident).data)

    @extend_schema(
        request=IncidentUpdateInput,
        responses={200: IncidentSerializer, 409: VERSION_CONFLICT},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def patch(self, request: Request, pk: int) -> Response:
        data = _validated(IncidentUpdateInput, request)
        version = data.pop("version", None)

        def execute() -> Outcome:
            result = commands.incident_update(actor=request.user, incident_id=pk, expected_version=version, **data)
            return Outcome(status.HTTP_200_OK, result.state)

        return _keyed(request, name="incident_update", target=[pk], data={**data, "version": version}, execute=execute)


class IncidentStatusApi(APIView):
    permission_classes = [CanChangeIncidentsOrReadOnly]

    @extend_schema(
        request=StatusInput, responses={200: IncidentSerializer, 409: STATUS_CONFLICT}, parameters=[IDEMPOTENCY_HEADER]
    )
    def post(self, request: Request, pk: int) -> Response:
        data = _validated(StatusInput, request)

        def execute() -> Outcome:
            result = commands.incident_change_status(
                actor=request.user,
                incident_id=pk,
                status=data["status"],
                expected_version=data.get("version"),
                resolution=data.get("resolution"),
            )
            return Outcome(status.HTTP_200_OK, result.state)

        return _keyed(request, name="incident_change_status", target=[pk], data=data, execute=execute)


class IncidentNotesApi(APIView):
    permission_classes = [CanChangeIncidentsOrReadOnly]

    @extend_schema(request=NoteInput, responses={201: AuditEventSerializer}, parameters=[IDEMPOTENCY_HEADER])
    def post(self, request: Request, pk: int) -> Response:
        data = _validated(NoteInput, request)

        def execute() -> Outcome:
            result = commands.incident_add_note(actor=request.user, incident_id=pk, body=data["body"])
            return Outcome(status.HTTP_201_CREATED, result.events[0].as_data())

        return _keyed(request, name="incident_add_note", target=[pk], data=data, execute=execute)


class IncidentStatusUpdatesApi(APIView):
    """Stakeholder status updates: "what we tell customers", each an event of the timeline."""

    permission_classes = [CanChangeIncidentsOrReadOnly]

    @extend_schema(request=StatusUpdateInput, responses={201: AuditEventSerializer}, parameters=[IDEMPOTENCY_HEADER])
    def post(self, request: Request, pk: int) -> Response:
        data = _validated(StatusUpdateInput, request)

        def execute() -> Outcome:
            result = commands.incident_post_status_update(actor=request.user, incident_id=pk, body=data["body"])
            return Outcome(status.HTTP_201_CREATED, result.events[0].as_data())

        return _keyed(request, name="incident_post_status_update", target=[pk], data=data, execute=execute)


class ActionItemListApi(APIView):
    permission_classes = [CanChangeIncidentsOrReadOnly]

    @extend_schema(responses=ActionItemSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        incident = get_object_or_404(Incident, pk=pk)
        items = incident.action_items.select_related("owner")
        return Response(ActionItemSerializer(items, many=True).data)

    @extend_schema(
        request=ActionItemAddInput,
        responses={201: ActionItemSerializer, 409: RESOLVED_CONFLICT},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def post(self, request: Request, pk: int) -> Response:
        data = _validated(ActionItemAddInput, request)

        def execute() -> Outcome:
            result = commands.action_item_add(actor=request.user, incident_id=pk, **data)
            return Outcome(status.HTTP_201_CREATED, ActionItemSerializer(result.item).data)

        return _keyed(request, name="action_item_add", target=[pk], data=data, execute=execute)


class ActionItemDetailApi(APIView):
    permission_classes = [CanChangeIncidentsOrReadOnly]

    @extend_schema(
        request=ActionItemUpdateInput,
        responses={200: ActionItemSerializer, 409: RESOLVED_CONFLICT},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def patch(self, request: Request, pk: int, item: int) -> Response:
        data = _validated(ActionItemUpdateInput, request)

        def execute() -> Outcome:
            result = commands.action_item_update(actor=request.user, incident_id=pk, item_id=item, **data)
            return Outcome(status.HTTP_200_OK, ActionItemSerializer(result.item).data)

        return _keyed(request, name="action_item_update", target=[pk, item], data=data, execute=execute)


_TYPE = "(" + "|".join(AuditEvent.Type.values) + ")"
EVENT_TYPES_PATTERN = rf"^{_TYPE}(,{_TYPE})*$"


def _event_types(value: str) -> list[str]:
    types = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in types if part not in AuditEvent.Type.values]
    if unknown:
        raise serializers.ValidationError(
            f'"{unknown[0]}" is not an event type; one or more of: {", ".join(AuditEvent.Type.values)}.'
        )
    if not types:
        raise serializers.ValidationError("Name at least one event type.")
    return types


BAD_KEY = OpenApiResponse(
    error_ref("ValidationError"),
    description="The Idempotency-Key is invalid, or was used before for another command; nothing changed.",
)
PIN_CONFLICT = OpenApiResponse(
    error_ref("ConflictError"), description="Already pinned, not pinned, or the event is itself a pin: nothing changed."
)


# The largest id a database row can have (a 64-bit signed integer); SQLite cannot even compare with a larger one.
MAX_ID = 2**63 - 1


class EventListApi(APIView):
    """The timeline, paged: after a seq (what a client that missed updates asks for), or before one (older pages)."""

    class QuerySerializer(serializers.Serializer[Any]):
        after = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID, default=0)
        before = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=MAX_ID,
            help_text="Page backwards: the newest `limit` events with seq < before (still oldest first); "
            "`next` then points at the page before this one.",
        )
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
        type = serializers.CharField(
            required=False,
            max_length=400,
            help_text="Only these event types, comma-separated (e.g. `note,status_change`).",
        )
        actor = serializers.IntegerField(
            required=False, min_value=1, max_value=MAX_ID, help_text="Only events by this user id."
        )
        q = serializers.CharField(
            required=False, max_length=200, help_text="Only notes whose body contains this text (case-insensitive)."
        )

        def validate_type(self, value: str) -> list[str]:
            return _event_types(value)

    @extend_schema(
        parameters=[
            QuerySerializer,
            # Stated again with its pattern: spectacular leaves a query field's validators out.
            OpenApiParameter(
                "type",
                {"type": "string", "pattern": EVENT_TYPES_PATTERN, "maxLength": 400},
                OpenApiParameter.QUERY,
                required=False,
                description="Only these event types, comma-separated (e.g. `note,status_change`).",
            ),
        ],
        responses={
            200: inline_serializer(
                "EventPage",
                {
                    "results": AuditEventSerializer(many=True),
                    "next": serializers.URLField(allow_null=True),
                    "last_seq": serializers.IntegerField(),
                },
            ),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        query = self.QuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        if not Incident.objects.filter(pk=pk).exists():
            raise NotFound(f"Incident {pk} does not exist.")
        params = query.validated_data
        after, limit, before = params["after"], params["limit"], params.get("before")
        events_qs = events_filtered(
            incident_id=pk,
            after=after,
            before=before,
            types=params.get("type"),
            actor=params.get("actor"),
            q=params.get("q"),
        )
        following = request.query_params.copy()
        if before is None:
            events = list(events_qs.order_by("seq")[: limit + 1])
            more = len(events) > limit
            events = events[:limit]
            last_seq = events[-1].seq if events else after
            following["after"] = str(last_seq)
        else:
            events = list(events_qs.order_by("-seq")[: limit + 1])
            more = len(events) > limit
            events = list(reversed(events[:limit]))
            last_seq = events[-1].seq if events else after
            if events:
                following["before"] = str(events[0].seq)
        following["limit"] = str(limit)
        next_url = request.build_absolute_uri(f"{request.path}?{following.urlencode()}") if more else None
        return Response({"results": [e.as_data() for e in events], "next": next_url, "last_seq": last_seq})


class IncidentMetricsApi(APIView):
    """Durations computed from the timeline (see `incidents.metrics`): never typed in, always recomputable."""

    permission_classes = [CanChangeIncidentsOrReadOnly]

    @extend_schema(responses={200: IncidentMetricsSerializer})
    def get(self, request: Request, pk: int) -> Response:
        metrics = incident_metrics_get(pk)
        if metrics is None:
            raise NotFound(f"Incident {pk} does not exist.")
        return Response({"incident": pk, **metrics.as_data()})


class MarkdownRenderer(BaseRenderer):
    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return str(data).encode()


class IncidentPostmortemApi(APIView):
    """A Markdown postmortem generated from the timeline; `?download=true` asks the browser to save it."""

    permission_classes = [CanChangeIncidentsOrReadOnly]
    # The Markdown renderer lets `Accept: text/markdown` (or `?format=md`) through negotiation;
    # the postmortem itself is a plain response, and errors are JSON (finalize_response).
    renderer_classes = [JSONRenderer, MarkdownRenderer]

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        """An error is JSON with a `code` whatever the client asked for: the only error type the schema states."""
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    class QuerySerializer(serializers.Serializer[Any]):
        download = FlagField(required=False, help_text="`true`: ask the browser to save it as a file.")

    @extend_schema(
        parameters=[QuerySerializer],
        responses={(200, "text/markdown"): OpenApiTypes.STR},
    )
    def get(self, request: Request, pk: int) -> HttpResponse:
        query = self.QuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        postmortem = postmortem_build(pk)
        if postmortem is None:
            raise NotFound(f"Incident {pk} does not exist.")
        response = HttpResponse(to_markdown(postmortem), content_type="text/markdown; charset=utf-8")
        if query.validated_data.get("download"):
            response["Content-Disposition"] = f'attachment; filename="incident-{pk}-postmortem.md"'
        return response


class EventPinApi(APIView):
    """Pin an event as a key moment (PUT) or unpin it (DELETE); each is an appended event."""

    permission_classes = [CanChangeIncidentsOrReadOnly]

    @extend_schema(
        request=None,
        responses={200: AuditEventSerializer, 400: BAD_KEY, 409: PIN_CONFLICT},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def put(self, request: Request, pk: int, seq: int) -> Response:
        return self._pin(request, pk, seq, pinned=True)

    @extend_schema(
        request=None,
        responses={200: AuditEventSerializer, 400: BAD_KEY, 409: PIN_CONFLICT},
        parameters=[IDEMPOTENCY_HEADER],
    )
    def delete(self, request: Request, pk: int, seq: int) -> Response:
        return self._pin(request, pk, seq, pinned=False)

    def _pin(self, request: Request, pk: int, seq: int, *, pinned: bool) -> Response:
        def execute() -> Outcome:
            result = commands.event_pin(actor=request.user, incident_id=pk, seq=seq, pinned=pinned)
            return Outcome(status.HTTP_200_OK, result.events[0].as_data())

        name = "event_pin" if pinned else "event_unpin"
        return _keyed(request, name=name, target=[pk, seq], data={}, execute=execute)


class OverviewApi(APIView):
    """Incidents opened in a period: by severity and status, time to resolve, per week, the slowest stage."""

    permission_classes = [CanChangeIncidentsOrReadOnly]

    class QuerySerializer(serializers.Serializer[Any]):
        since = serializers.DateField(required=False, help_text="First opening day (default: 29 days before until).")
        until = serializers.DateField(required=False, help_text="Last opening day, included (default: today).")

    @extend_schema(parameters=[QuerySerializer], responses={200: OverviewSerializer})
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        form = PeriodForm(query.validated_data)
        if not form.is_valid():
            raise exceptions.ValidationError({name: [str(e) for e in errors] for name, errors in form.errors.items()})
        since, until = form.cleaned_data["since"], form.cleaned_data["until"]
        return Response(overview_compute(overview_rows(since, until), since=since, until=until))


class IncidentReplayApi(APIView):
    """The incident as it was after event `seq`, folded from its timeline (`incidents.replay`)."""

    permission_classes = [CanChangeIncidentsOrReadOnly]

    class QuerySerializer(serializers.Serializer[Any]):
        seq = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text="Replay up to this event.")

    @extend_schema(parameters=[QuerySerializer], responses={200: ReplayedStateSerializer})
    def get(self, request: Request, pk: int) -> Response:
        query = self.QuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        seq = query.validated_data["seq"]
        incident = Incident.objects.filter(pk=pk).only("version").first()
        if incident is None:
            raise NotFound(f"Incident {pk} does not exist.")
        replayed = incident_replay(pk, upto=seq)
        if replayed is None:
            raise NotFound(f"There is no event {seq}; the timeline has {incident.version}.")
        state, event = replayed
        return Response(
            {"incident": pk, **state.as_dict(), "updated_at": event.as_data()["at"], "pinned": sorted(state.pinned)}
        )


# --- Notifications ---------------------------------------------------------------------


class NotificationListApi(APIView):
    """The signed-in user's notifications, newest first, and how many are unread; nobody sees another's."""

    pagination_class = IncidentPagination

    class QuerySerializer(serializers.Serializer[Any]):
        unread = FlagField(required=False, help_text="`true`: only unread notifications.")

    @extend_schema(
        operation_id="notifications_list", parameters=[QuerySerializer], responses=NotificationPageSerializer
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        user_id = int(request.user.pk or 0)  # IsAuthenticated: a real user
        rows = Notification.objects.filter(recipient_id=user_id).select_related("incident", "actor")
        if query.validated_data.get("unread"):
            rows = rows.filter(read_at__isnull=True)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows.order_by("-id"), request, view=self)
        response = paginator.get_paginated_response([notifications.as_data(row) for row in page or []])
        response.data["unread"] = notifications.unread_count(user_id)
        return response


class NotificationReadApi(APIView):
    """Mark some (`ids`) or all of the signed-in user's notifications read."""

    @extend_schema(
        request=NotificationReadInput,
        responses={
            200: NotificationReadResultSerializer,
            404: OpenApiResponse(
                error_ref("NotFoundError"), description="An id is not one of your notifications: nothing changed."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(NotificationReadInput, request)
        result = notifications.mark_read(user=request.user, ids=data.get("ids"))
        return Response(result)

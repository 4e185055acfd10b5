"""After the incident over the API: metrics, the filtered timeline, pins and the postmortem."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from accounts.models import User
from accounts.permissions import IsPlatformAdmin
from incidents import commands
from incidents.apis import IncidentPostmortemApi
from incidents.models import AuditEvent, Incident

pytestmark = pytest.mark.django_db

Api = Callable[[User | None], APIClient]
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


class Clock:
    """`timezone.now()` as the test sets it, so events carry known timestamps."""

    def __init__(self) -> None:
        self.now = T0

    def at(self, minutes: float) -> None:
        self.now = T0 + timedelta(minutes=minutes)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(timezone, "now", lambda: c.now)
    return c


def make(actor: User, title: str = "Checkout latency spike", severity: str = "high", **extra: str) -> Incident:
    return commands.incident_create(actor=actor, title=title, severity=severity, **extra).incident


def move(actor: User, incident: Incident, status: str) -> None:
    resolution = "Fixed." if status == "resolved" else None
    commands.incident_change_status(actor=actor, incident_id=incident.pk, status=status, resolution=resolution)


# --- Metrics ------------------------------------------------------------------------------


def test_metrics_are_computed_from_the_timeline_with_a_reopen(api: Api, responder: User, clock: Clock) -> None:
    incident = make(responder)
    clock.at(4)
    move(responder, incident, "identified")
    clock.at(10)
    move(responder, incident, "monitoring")
    clock.at(12)
    move(responder, incident, "resolved")
    clock.at(20)
    move(responder, incident, "investigating")
    clock.at(25)
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="add an alert")
    clock.at(30)
    move(responder, incident, "resolved")
    clock.at(90)
    body = api(responder).get(f"/api/incidents/{incident.pk}/metrics").json()
    assert body == {
        "incident": incident.pk,
        "status": "resolved",
        "opened_at": "2026-11-26T09:00:00Z",
        "identified_at": "2026-11-26T09:04:00Z",
        "mitigated_at": "2026-11-26T09:10:00Z",
        "resolved_at": "2026-11-26T09:30:00Z",
        "time_to_identify": 240.0,
        "time_to_mitigate": 600.0,
        "time_to_resolve": 1800.0,
        "time_open": 1320.0,
        "elapsed": 1800.0,
        "time_in_status": {"investigating": 840.0, "identified": 360.0, "monitoring": 120.0, "resolved": 480.0},
        "reopens": 1,
        "responders": [{"id": responder.pk, "username": "rae", "events": 7}],
        "action_items": {"open": 1, "done": 0},
        "events": 7,
        "as_of": "2026-11-26T10:30:00Z",
    }


def test_the_status_command_stamps_first_arrivals_that_agree_with_the_metrics(responder: User, clock: Clock) -> None:
    incident = make(responder)
    clock.at(3)
    move(responder, incident, "monitoring")  # straight to monitoring: identified too
    clock.at(5)
    move(responder, incident, "resolved")
    clock.at(8)
    move(responder, incident, "investigating")
    clock.at(9)
    move(responder, incident, "identified")  # a second arrival moves nothing
    incident.refresh_from_db()
    assert incident.identified_at == T0 + timedelta(minutes=3)
    assert incident.mitigated_at == T0 + timedelta(minutes=3)
    assert incident.resolved_at is None


def test_metrics_of_an_unknown_incident_are_404(api: Api, viewer: User) -> None:
    response = api(viewer).get("/api/incidents/999999/metrics")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_metrics_need_a_signed_in_user(api: Api, responder: User) -> None:
    incident = make(responder)
    assert api(None).get(f"/api/incidents/{incident.pk}/metrics").status_code == 401


def test_metrics_read_the_timeline_in_one_query(
    api: Api, responder: User, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    incident = make(responder)
    for n in range(20):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n}")
    client = api(responder)
    with django_assert_num_queries(2):  # the user (token auth), the events
        assert client.get(f"/api/incidents/{incident.pk}/metrics").status_code == 200


# --- The timeline, filtered and paged backwards -------------------------------------------------


@pytest.fixture
def busy(responder: User, make_user: Callable[..., User]) -> Incident:
    """seq 1 created (rae), 2 note (rae), 3 status (bob), 4 note (bob), 5 note (rae), 6 severity (rae)."""
    bob = make_user("responder", "bob")
    incident = make(responder)
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="Rolled back deploy 8812")
    move(bob, incident, "identified")
    commands.incident_add_note(actor=bob, incident_id=incident.pk, body="p99 is back under 300 ms")
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="Watching the ROLLBACK for an hour")
    commands.incident_update(actor=responder, incident_id=incident.pk, severity="medium")
    return incident


def _seqs(response: object) -> list[int]:
    return [event["seq"] for event in response.json()["results"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"type": "note"}, [2, 4, 5]),
        ({"type": "status_change,severity_change"}, [3, 6]),
        ({"q": "rollback"}, [5]),
        ({"q": "rolled back"}, [2]),
        ({"type": "note", "q": "p99"}, [4]),
        ({"after": "2", "type": "note"}, [4, 5]),
        ({"before": "5"}, [1, 2, 3, 4]),
        ({"before": "6", "type": "note"}, [2, 4, 5]),
    ],
)
def test_events_filter_by_type_and_text(api: Api, viewer: User, busy: Incident, query: dict, expected: list) -> None:
    response = api(viewer).get(f"/api/incidents/{busy.pk}/events", query)
    assert response.status_code == 200
    assert _seqs(response) == expected


def test_events_filter_by_actor(api: Api, viewer: User, busy: Incident) -> None:
    bob = User.objects.get(username="bob")
    response = api(viewer).get(f"/api/incidents/{busy.pk}/events", {"actor": str(bob.pk)})
    assert _seqs(response) == [3, 4]


def test_paging_backwards_from_the_newest_reaches_the_first_event(api: Api, viewer: User, busy: Incident) -> None:
    client = api(viewer)
    response = client.get(f"/api/incidents/{busy.pk}/events", {"before": "7", "limit": "4"})
    assert _seqs(response) == [3, 4, 5, 6]
    older = response.json()["next"]
    assert "before=3" in older and "limit=4" in older
    response = client.get(older)
    assert _seqs(response) == [1, 2]
    assert response.json()["next"] is None


def test_paging_forward_keeps_the_filters_in_next(api: Api, viewer: User, busy: Incident) -> None:
    client = api(viewer)
    response = client.get(f"/api/incidents/{busy.pk}/events", {"type": "note", "limit": "2"})
    assert _seqs(response) == [2, 4]
    response = client.get(response.json()["next"])
    assert _seqs(response) == [5]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"type": "chat"}, "type"),
        ({"type": "note,bogus"}, "type"),
        ({"type": ","}, "type"),
        ({"actor": "alice"}, "actor"),
        ({"actor": "0"}, "actor"),
        ({"q": ""}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"type": ""}, "type"),
        ({"before": "0"}, "before"),
        ({"before": "soon"}, "before"),
    ],
)
def test_events_refuse_bad_filters_with_a_clear_400(
    api: Api, viewer: User, busy: Incident, query: dict, field: str
) -> None:
    response = api(viewer).get(f"/api/incidents/{busy.pk}/events", query)
    assert response.status_code == 400
    assert field in response.json()


def test_events_of_an_unknown_incident_are_404(api: Api, viewer: User) -> None:
    assert api(viewer).get("/api/incidents/999999/events", {"type": "note"}).status_code == 404


# --- Pins -------------------------------------------------------------------------------------


def test_a_responder_pins_an_event_as_an_appended_event(api: Api, responder: User, busy: Incident) -> None:
    response = api(responder).put(f"/api/incidents/{busy.pk}/events/3/pin")
    assert response.status_code == 200
    body = response.json()
    assert body["seq"] == 7 and body["type"] == "event_pinned"
    assert body["data"] == {"seq": 3, "type": "status_change"}
    busy.refresh_from_db()
    assert busy.version == 7


def test_unpinning_appends_an_event_too(api: Api, responder: User, busy: Incident) -> None:
    client = api(responder)
    client.put(f"/api/incidents/{busy.pk}/events/3/pin")
    response = client.delete(f"/api/incidents/{busy.pk}/events/3/pin")
    assert response.status_code == 200
    assert response.json()["type"] == "event_unpinned"
    assert list(AuditEvent.objects.filter(incident=busy).values_list("type", flat=True))[-2:] == [
        "event_pinned",
        "event_unpinned",
    ]


def test_pinning_twice_or_unpinning_what_is_not_pinned_is_a_conflict(api: Api, responder: User, busy: Incident) -> None:
    client = api(responder)
    assert client.delete(f"/api/incidents/{busy.pk}/events/2/pin").status_code == 409
    client.put(f"/api/incidents/{busy.pk}/events/2/pin")
    response = client.put(f"/api/incidents/{busy.pk}/events/2/pin")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert AuditEvent.objects.filter(incident=busy).count() == 7  # one pin, nothing more


def test_a_pin_cannot_itself_be_pinned(api: Api, responder: User, busy: Incident) -> None:
    client = api(responder)
    client.put(f"/api/incidents/{busy.pk}/events/2/pin")
    response = client.put(f"/api/incidents/{busy.pk}/events/7/pin")
    assert response.status_code == 409
    assert response.json() == {"detail": "Event 7 is itself a pin or unpin; it cannot be pinned.", "code": "conflict"}
    assert AuditEvent.objects.filter(incident=busy).count() == 7


@pytest.mark.parametrize("path", ["/api/incidents/999999/events/1/pin", "/api/incidents/{pk}/events/99/pin"])
def test_pinning_an_unknown_incident_or_event_is_404(api: Api, responder: User, busy: Incident, path: str) -> None:
    response = api(responder).put(path.format(pk=busy.pk))
    assert response.status_code == 404
    assert AuditEvent.objects.filter(incident=busy).count() == 6


def test_a_viewer_cannot_pin(api: Api, viewer: User, busy: Incident) -> None:
    response = api(viewer).put(f"/api/incidents/{busy.pk}/events/2/pin")
    assert response.status_code == 403
    assert AuditEvent.objects.filter(incident=busy).count() == 6


# --- The postmortem ----------------------------------------------------------------------------


def test_the_postmortem_is_markdown_generated_from_the_timeline(
    api: Api, responder: User, clock: Clock, make_user: Callable[..., User]
) -> None:
    owner = make_user("responder", "olly")
    incident = make(responder, "Checkout | latency", summary="p99 above 2 s since deploy 8812")
    clock.at(5)
    move(responder, incident, "identified")
    clock.at(6)
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="rolled back 8812")
    clock.at(7)
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="add a latency alert", owner=owner)
    commands.action_item_update(actor=responder, incident_id=incident.pk, item_id=item.item.pk, done=True)  # type: ignore[union-attr]
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="write the runbook")
    clock.at(20)
    move(responder, incident, "resolved")
    commands.event_pin(actor=responder, incident_id=incident.pk, seq=3)
    clock.at(25)
    response = api(responder).get(f"/api/incidents/{incident.pk}/postmortem")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    text = response.content.decode()
    assert text.startswith(f"# Postmortem: #{incident.pk} Checkout \\| latency\n")
    assert "p99 above 2 s since deploy 8812" in text
    assert "| Time to identify | 5 min |" in text
    assert "| Time to resolve | 20 min |" in text
    key_moments = text.index("## Key moments")
    timeline = text.index("## Timeline")
    pinned_row = "| 3 | 2026-11-26 09:06:00 | rae | 📌 note: rolled back 8812 |"
    assert text.index(pinned_row) > key_moments and text.index(pinned_row) < timeline  # pinned first
    assert text.count(pinned_row) == 2  # and again in its place in the whole timeline
    assert "| add a latency alert | olly | done |" in text
    assert "| write the runbook | — | open |" in text
    whole_timeline = text.split("## Timeline")[1].split("## Action items")[0]
    assert "| 8 |" not in whole_timeline  # the pin itself (seq 8) is not a row: it is the 📌


def test_the_postmortem_answers_a_client_that_asks_for_markdown_and_its_errors_in_json(
    api: Api, viewer: User, responder: User
) -> None:
    incident = make(responder)
    client = api(viewer)
    response = client.get(f"/api/incidents/{incident.pk}/postmortem", HTTP_ACCEPT="text/markdown")
    assert response.status_code == 200 and response["Content-Type"] == "text/markdown; charset=utf-8"
    response = client.get("/api/incidents/999999/postmortem", HTTP_ACCEPT="application/json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


MARKDOWN_ASKS = [
    pytest.param({"Accept": "text/markdown"}, "", id="accept-header"),
    pytest.param({}, "?format=md", id="format-parameter"),
]
POSTMORTEM_ERRORS = [
    pytest.param("viewer", "unknown", False, 404, "not_found", id="unknown-incident"),
    pytest.param(None, "known", False, 401, "unauthenticated", id="anonymous"),
    # Every signed-in role may read a postmortem, so a refusing permission stands in for a 403.
    pytest.param("viewer", "known", True, 403, "forbidden", id="refused"),
]


@pytest.mark.parametrize(("headers", "query"), MARKDOWN_ASKS)
@pytest.mark.parametrize(("role", "which", "refuse", "status", "code"), POSTMORTEM_ERRORS)
def test_the_postmortem_errors_are_json_with_a_code_when_markdown_is_asked(
    api: Api,
    users: dict[str, User],
    monkeypatch: pytest.MonkeyPatch,
    headers: dict[str, str],
    query: str,
    role: str | None,
    which: str,
    refuse: bool,
    status: int,
    code: str,
) -> None:
    if refuse:
        monkeypatch.setattr(IncidentPostmortemApi, "permission_classes", [IsPlatformAdmin])
    pk = make(users["responder"]).pk if which == "known" else 999999
    response = api(users[role] if role else None).get(f"/api/incidents/{pk}/postmortem{query}", headers=headers)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code


def test_the_postmortem_download_is_an_attachment(api: Api, viewer: User, responder: User) -> None:
    incident = make(responder)
    response = api(viewer).get(f"/api/incidents/{incident.pk}/postmortem", {"download": "true"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="incident-{incident.pk}-postmortem.md"'


def test_the_postmortem_refuses_a_bad_download_value(api: Api, viewer: User, responder: User) -> None:
    incident = make(responder)
    response = api(viewer).get(f"/api/incidents/{incident.pk}/postmortem", {"download": "perhaps"})
    assert response.status_code == 400


def test_the_postmortem_of_an_unknown_incident_is_404(api: Api, viewer: User) -> None:
    assert api(viewer).get("/api/incidents/999999/postmortem").status_code == 404

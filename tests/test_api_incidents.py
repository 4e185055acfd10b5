"""The incidents API on its happy paths: shapes, ordering, filters, paging, PATCH semantics, idempotency.

Each write's response is compared with what `incidents.apis` promises:
the incident's state after the change, the note's event, or the action item.
"""

from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.models import AuditEvent, IdempotencyKey, Incident

pytestmark = pytest.mark.django_db

Api = Callable[[User | None], APIClient]

LIST_ROW = {
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
}
STATE = LIST_ROW | {"comms_lead", "scribe", "summary", "assignees", "created_by", "action_items", "allowed_transitions"}


def make(actor: User, title: str = "Disk full on db-3", severity: str = "high", **extra: Any) -> Incident:
    return commands.incident_create(actor=actor, title=title, severity=severity, **extra).incident


def seqs(incident_id: int) -> list[int]:
    return list(AuditEvent.objects.filter(incident_id=incident_id).order_by("seq").values_list("seq", flat=True))


# --- The list -----------------------------------------------------------------------


def test_list_puts_open_incidents_first_then_the_most_severe_then_the_newest(api: Api, responder: User) -> None:
    resolved = make(responder, "resolved critical", "critical")
    commands.incident_change_status(actor=responder, incident_id=resolved.pk, status="resolved", resolution="Fixed.")
    make(responder, "low", "low")
    make(responder, "older critical", "critical")
    make(responder, "high", "high")
    make(responder, "newer critical", "critical")
    body = api(responder).get("/api/incidents").json()
    assert [row["title"] for row in body["results"]] == [
        "newer critical",
        "older critical",
        "high",
        "low",
        "resolved critical",
    ]
    assert set(body["results"][0]) == LIST_ROW


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ({"status": "resolved"}, ["Payments 503"]),
        ({"severity": "low"}, ["Search lag"]),
        ({"q": "DISK"}, ["Disk full on db-3"]),
        ({"q": "a", "severity": "critical"}, ["Payments 503"]),
        ({"status": "monitoring"}, []),
    ],
)
def test_list_filters_by_status_severity_and_title(
    api: Api, responder: User, query: dict[str, str], titles: list[str]
) -> None:
    make(responder)
    make(responder, "Search lag", "low")
    payments = make(responder, "Payments 503", "critical")
    commands.incident_change_status(actor=responder, incident_id=payments.pk, status="resolved", resolution="Fixed.")
    body = api(responder).get("/api/incidents", query).json()
    assert [row["title"] for row in body["results"]] == titles
    assert body["count"] == len(titles)


def test_list_refuses_an_unknown_filter_value(api: Api, viewer: User) -> None:
    response = api(viewer).get("/api/incidents", {"status": "closed"})
    assert response.status_code == 400
    assert response.json()["status"]


def test_list_is_paginated(api: Api, responder: User) -> None:
    for n in range(5):
        make(responder, f"incident {n}")
    client = api(responder)
    first = client.get("/api/incidents", {"page_size": 2}).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (5, 2, None)
    assert "page=2" in first["next"]
    last = client.get("/api/incidents", {"page_size": 2, "page": 3}).json()
    assert (len(last["results"]), last["next"]) == (1, None)
    seen = [
        row["id"]
        for page in (1, 2, 3)
        for row in client.get("/api/incidents", {"page_size": 2, "page": page}).json()["results"]
    ]
    assert sorted(seen) == sorted(Incident.objects.values_list("pk", flat=True))


@pytest.mark.parametrize("count", [3, 30])
def test_list_query_count_does_not_grow_with_rows(
    api: Api, responder: User, count: int, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    for n in range(count):
        incident = make(responder, f"incident {n}")
        commands.incident_update(actor=responder, incident_id=incident.pk, commander=responder)
    client = api(responder)
    with django_assert_num_queries(3):  # the user, the count, the page with its commanders
        response = client.get("/api/incidents", {"page_size": 100})
    assert len(response.json()["results"]) == count
    assert response.json()["results"][0]["commander"]["username"] == "rae"


# --- The detail and the timeline ---------------------------------------------------------


def test_detail_is_the_state_with_its_history(api: Api, responder: User, viewer: User, admin: User) -> None:
    incident = make(responder, summary="at 97%")
    commands.incident_update(actor=responder, incident_id=incident.pk, commander=responder, assignees=[viewer])
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="Clean up", owner=admin)
    body = api(viewer).get(f"/api/incidents/{incident.pk}").json()
    assert set(body) == STATE | {"history"}
    assert (body["version"], body["summary"], body["status"]) == (3, "at 97%", "investigating")
    assert body["commander"]["username"] == "rae"
    assert [u["username"] for u in body["assignees"]] == ["vic"]
    assert body["action_items"] == [
        {"id": body["action_items"][0]["id"], "title": "Clean up", "owner": admin.as_ref(), "done": False}
    ]
    assert body["allowed_transitions"] == ["identified", "monitoring", "resolved"]
    assert [(e["seq"], e["type"]) for e in body["history"]] == [
        (1, "incident_created"),
        (2, "assignment"),
        (3, "action_item_added"),
    ]
    first = body["history"][0]
    assert first["actor"] == {"id": responder.pk, "username": "rae"}
    assert first["at"].endswith("Z")
    assert first["data"] == {
        "title": "Disk full on db-3",
        "severity": "high",
        "summary": "at 97%",
        "commander": responder.as_ref(),
    }


def test_detail_history_is_the_newest_100_events_oldest_first(api: Api, responder: User) -> None:
    incident = make(responder)
    for n in range(104):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n}")
    history = api(responder).get(f"/api/incidents/{incident.pk}").json()["history"]
    assert [e["seq"] for e in history] == list(range(6, 106))
    assert history[-1]["data"] == {"body": "note 103"}


def test_detail_of_an_unknown_incident_is_404(api: Api, viewer: User) -> None:
    assert api(viewer).get("/api/incidents/999999").status_code == 404


@pytest.mark.parametrize("count", [1, 12])
def test_detail_query_count_does_not_grow_with_events_items_or_assignees(
    api: Api,
    responder: User,
    make_user: Callable[..., User],
    count: int,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    people = [make_user("responder") for _ in range(count)]
    incident = make(responder)
    commands.incident_update(actor=responder, incident_id=incident.pk, commander=people[0], assignees=people)
    for person in people:
        commands.action_item_add(actor=responder, incident_id=incident.pk, title="item", owner=person)
        commands.incident_add_note(actor=person, incident_id=incident.pk, body="note")
    client = api(responder)
    # the user; the incident with commander and creator; assignees; action items with their owners; the history
    with django_assert_num_queries(5):
        response = client.get(f"/api/incidents/{incident.pk}")
    body = response.json()
    assert (len(body["assignees"]), len(body["action_items"]), len(body["history"])) == (count, count, 2 + 2 * count)


def test_events_after_a_seq_come_oldest_first_in_pages(api: Api, responder: User) -> None:
    incident = make(responder)
    for n in range(4):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n}")
    client = api(responder)
    page = client.get(f"/api/incidents/{incident.pk}/events", {"after": 1, "limit": 2}).json()
    assert [e["seq"] for e in page["results"]] == [2, 3]
    assert page["last_seq"] == 3
    assert page["next"].endswith(f"/api/incidents/{incident.pk}/events?after=3&limit=2")
    second = client.get(page["next"]).json()
    assert ([e["seq"] for e in second["results"]], second["next"], second["last_seq"]) == ([4, 5], None, 5)


def test_events_after_the_newest_seq_are_empty(api: Api, responder: User) -> None:
    incident = make(responder)
    body = api(responder).get(f"/api/incidents/{incident.pk}/events", {"after": 1}).json()
    assert body == {"results": [], "next": None, "last_seq": 1}


def test_events_default_to_the_whole_timeline(api: Api, responder: User) -> None:
    incident = make(responder)
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="hi")
    body = api(responder).get(f"/api/incidents/{incident.pk}/events").json()
    assert [e["type"] for e in body["results"]] == ["incident_created", "note"]


@pytest.mark.parametrize("query", [{"after": -1}, {"after": "x"}, {"limit": 0}, {"limit": 501}])
def test_events_refuse_a_bad_after_or_limit(api: Api, responder: User, query: dict[str, Any]) -> None:
    incident = make(responder)
    response = api(responder).get(f"/api/incidents/{incident.pk}/events", query)
    assert response.status_code == 400
    body = response.json()
    assert body.pop("code") == "invalid"
    assert body and set(body) <= {"after", "limit"}


def test_events_of_an_unknown_incident_are_404(api: Api, viewer: User) -> None:
    assert api(viewer).get("/api/incidents/999999/events").status_code == 404


# --- Writes return what the API promises ---------------------------------------------


def test_create_returns_201_with_the_new_state(api: Api, responder: User) -> None:
    response = api(responder).post("/api/incidents", {"title": "  DNS down  ", "severity": "critical"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == STATE
    assert (body["title"], body["severity"], body["summary"], body["version"]) == ("DNS down", "critical", "", 1)
    assert body["created_by"]["username"] == "rae"
    assert seqs(body["id"]) == [1]


def test_patch_changes_only_the_fields_given(api: Api, responder: User) -> None:
    incident = make(responder, summary="before")
    response = api(responder).patch(f"/api/incidents/{incident.pk}", {"severity": "low"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == STATE
    assert (body["severity"], body["summary"], body["version"]) == ("low", "before", 2)
    assert AuditEvent.objects.get(incident=incident, seq=2).data == {"from": "high", "to": "low"}


def test_patch_with_the_current_values_records_nothing(api: Api, responder: User) -> None:
    incident = make(responder, summary="same")
    response = api(responder).patch(
        f"/api/incidents/{incident.pk}",
        {"severity": "high", "summary": "same", "commander": responder.pk, "assignees": []},
    )
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert seqs(incident.pk) == [1]


def test_patch_with_a_matching_version_applies_every_change_in_order(api: Api, responder: User, viewer: User) -> None:
    incident = make(responder)
    body = (
        api(responder)
        .patch(
            f"/api/incidents/{incident.pk}",
            {
                "severity": "critical",
                "summary": "p99 2s",
                "commander": responder.pk,
                "assignees": [viewer.pk],
                "version": 1,
            },
        )
        .json()
    )
    assert body["version"] == 4
    assert (body["commander"]["id"], [u["id"] for u in body["assignees"]]) == (responder.pk, [viewer.pk])
    assert list(AuditEvent.objects.filter(incident=incident).values_list("type", flat=True)) == [
        "incident_created",
        "severity_change",
        "summary_change",
        "assignment",
    ]


def test_patch_clears_the_commander_with_null_and_assignees_with_an_empty_list(
    api: Api, responder: User, viewer: User, admin: User
) -> None:
    incident = make(responder)
    commands.incident_update(actor=responder, incident_id=incident.pk, commander=admin, assignees=[viewer, responder])
    body = api(responder).patch(f"/api/incidents/{incident.pk}", {"commander": None, "assignees": []}).json()
    assert (body["commander"], body["assignees"], body["version"]) == (None, [], 3)
    data = AuditEvent.objects.get(incident=incident, seq=3).data
    assert data["commander"] == {"from": admin.as_ref(), "to": None}
    assert [u["username"] for u in data["assignees"]["removed"]] == ["rae", "vic"]


def test_status_returns_the_new_state_and_resolving_stamps_resolved_at(api: Api, responder: User) -> None:
    incident = make(responder)
    response = api(responder).post(
        f"/api/incidents/{incident.pk}/status", {"status": "resolved", "version": 1, "resolution": "Fixed."}
    )
    body = response.json()
    assert response.status_code == 200
    assert set(body) == STATE
    assert (body["status"], body["version"], body["allowed_transitions"]) == ("resolved", 2, ["investigating"])
    assert body["resolved_at"] is not None


def test_note_returns_201_with_its_event(api: Api, responder: User) -> None:
    incident = make(responder)
    response = api(responder).post(f"/api/incidents/{incident.pk}/notes", {"body": "  Paged the DBA.  "})
    assert response.status_code == 201
    event = AuditEvent.objects.get(incident=incident, seq=2)
    assert response.json() == {
        "seq": 2,
        "type": "note",
        "actor": {"id": responder.pk, "username": "rae"},
        "at": event.as_data()["at"],
        "data": {"body": "Paged the DBA."},
    }


def test_action_item_add_returns_201_with_the_item(api: Api, responder: User, admin: User) -> None:
    incident = make(responder)
    response = api(responder).post(f"/api/incidents/{incident.pk}/action-items", {"title": "Alert", "owner": admin.pk})
    assert response.status_code == 201
    body = response.json()
    assert (body["title"], body["owner"]["username"], body["done"]) == ("Alert", "ada", False)
    assert AuditEvent.objects.get(incident=incident, seq=2).data == {"item": {**body, "owner": admin.as_ref()}}


def test_action_item_update_returns_the_item_and_lists_what_changed(api: Api, responder: User) -> None:
    incident = make(responder)
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Alert").item
    assert item is not None
    response = api(responder).patch(
        f"/api/incidents/{incident.pk}/action-items/{item.pk}", {"done": True, "title": "Alert"}
    )
    assert response.status_code == 200
    assert response.json() == {"id": item.pk, "title": "Alert", "owner": None, "done": True}
    assert AuditEvent.objects.get(incident=incident, seq=3).data["changed"] == ["done"]


def test_action_items_are_listed_with_their_owners(api: Api, responder: User, viewer: User, admin: User) -> None:
    incident = make(responder)
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="First", owner=admin)
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="Second")
    body = api(viewer).get(f"/api/incidents/{incident.pk}/action-items").json()
    assert [(i["title"], i["owner"] and i["owner"]["username"]) for i in body] == [("First", "ada"), ("Second", None)]


# --- Idempotency over REST ------------------------------------------------------------


def test_a_retry_with_the_same_key_replays_the_first_response_and_appends_nothing(api: Api, responder: User) -> None:
    incident = make(responder)
    client = api(responder)
    path = f"/api/incidents/{incident.pk}/notes"
    first = client.post(path, {"body": "once"}, HTTP_IDEMPOTENCY_KEY="note-1")
    second = client.post(path, {"body": "once"}, HTTP_IDEMPOTENCY_KEY="note-1")
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert seqs(incident.pk) == [1, 2]


def test_a_replayed_status_change_returns_the_state_it_produced(api: Api, responder: User) -> None:
    incident = make(responder)
    client = api(responder)
    path = f"/api/incidents/{incident.pk}/status"
    first = client.post(path, {"status": "identified"}, HTTP_IDEMPOTENCY_KEY="s-1")
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="later")
    replay = client.post(path, {"status": "identified"}, HTTP_IDEMPOTENCY_KEY="s-1")
    assert replay.json() == first.json()
    assert replay.json()["version"] == 2
    assert seqs(incident.pk) == [1, 2, 3]


def test_the_same_key_with_a_different_body_is_refused(api: Api, responder: User) -> None:
    incident = make(responder)
    client = api(responder)
    path = f"/api/incidents/{incident.pk}/notes"
    client.post(path, {"body": "once"}, HTTP_IDEMPOTENCY_KEY="note-1")
    response = client.post(path, {"body": "something else"}, HTTP_IDEMPOTENCY_KEY="note-1")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "different command" in response.json()["detail"]
    assert seqs(incident.pk) == [1, 2]


def test_the_same_key_on_another_endpoint_is_refused(api: Api, responder: User) -> None:
    incident = make(responder)
    client = api(responder)
    client.post(f"/api/incidents/{incident.pk}/notes", {"body": "once"}, HTTP_IDEMPOTENCY_KEY="k")
    response = client.post(f"/api/incidents/{incident.pk}/action-items", {"title": "once"}, HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 400
    assert seqs(incident.pk) == [1, 2]


def test_different_users_with_the_same_key_are_independent(
    api: Api, responder: User, make_user: Callable[..., User]
) -> None:
    incident = make(responder)
    other = make_user("responder")
    path = f"/api/incidents/{incident.pk}/notes"
    mine = api(responder).post(path, {"body": "same"}, HTTP_IDEMPOTENCY_KEY="shared")
    theirs = api(other).post(path, {"body": "same"}, HTTP_IDEMPOTENCY_KEY="shared")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert not theirs.has_header("Idempotent-Replayed")
    assert (mine.json()["seq"], theirs.json()["seq"]) == (2, 3)


def test_a_failed_command_leaves_no_key_so_a_retry_runs(api: Api, responder: User) -> None:
    incident = make(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
    client = api(responder)
    path = f"/api/incidents/{incident.pk}/status"
    refused = client.post(path, {"status": "identified"}, HTTP_IDEMPOTENCY_KEY="retry-me")
    assert refused.status_code == 409
    assert not IdempotencyKey.objects.filter(key="retry-me").exists()
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="monitoring")
    retried = client.post(path, {"status": "identified"}, HTTP_IDEMPOTENCY_KEY="retry-me")
    assert retried.status_code == 200
    assert not retried.has_header("Idempotent-Replayed")
    assert retried.json()["status"] == "identified"


def test_an_expired_key_runs_the_command_again(api: Api, responder: User, settings: Any) -> None:
    incident = make(responder)
    client = api(responder)
    path = f"/api/incidents/{incident.pk}/notes"
    client.post(path, {"body": "again"}, HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - settings.IDEMPOTENCY_TTL * 2)
    response = client.post(path, {"body": "again"}, HTTP_IDEMPOTENCY_KEY="old")
    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    assert seqs(incident.pk) == [1, 2, 3]

"""Stakeholder status updates and the update cadence: the command, REST, the room and the list."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.errors import Forbidden, Invalid, NotFound
from incidents.models import AuditEvent, Incident
from incidents.publishing import incident_state

pytestmark = pytest.mark.django_db

UPDATES = "/api/incidents/{}/status-updates"
ZERO_WIDTH = "\u200b\u200c\u2060"


@pytest.fixture
def incident(responder: User) -> Incident:
    return commands.incident_create(actor=responder, title="Checkout errors", severity="high").incident


def snapshot(incident_id: int) -> tuple[Any, ...]:
    row = Incident.objects.get(pk=incident_id)
    return (
        row.version,
        row.events.count(),
        row.last_status_update_body,
        row.last_status_update_at,
        row.status_update_cadence,
    )


# --- The command ---------------------------------------------------------------------------------


def test_a_status_update_is_an_event_of_its_own_and_the_latest_on_the_state(
    responder: User, incident: Incident
) -> None:
    result = commands.incident_post_status_update(
        actor=responder, incident_id=incident.pk, body="  We are rolling back.  "
    )
    event = result.events[0]
    assert (event.seq, event.type, event.data) == (2, "status_update", {"body": "We are rolling back."})
    latest = result.state["latest_status_update"]
    assert latest["body"] == "We are rolling back."
    assert latest["author"]["username"] == "rae"
    assert latest["at"] == event.as_data()["at"]
    assert result.state == incident_state(incident.pk)


def test_a_later_update_replaces_the_latest_and_both_stay_in_the_timeline(
    responder: User, admin: User, incident: Incident
) -> None:
    commands.incident_post_status_update(actor=responder, incident_id=incident.pk, body="Investigating.")
    state = commands.incident_post_status_update(actor=admin, incident_id=incident.pk, body="Fixed.").state
    assert (state["latest_status_update"]["body"], state["latest_status_update"]["author"]["username"]) == (
        "Fixed.",
        "ada",
    )
    bodies = list(incident.events.filter(type="status_update").values_list("data__body", flat=True))
    assert bodies == ["Investigating.", "Fixed."]


def test_a_viewer_cannot_post_a_status_update(viewer: User, incident: Incident) -> None:
    before = snapshot(incident.pk)
    with pytest.raises(Forbidden):
        commands.incident_post_status_update(actor=viewer, incident_id=incident.pk, body="All good")
    assert snapshot(incident.pk) == before


@pytest.mark.parametrize("body", ["", "   \n ", ZERO_WIDTH, "x" * (Incident.STATUS_UPDATE_MAX_LENGTH + 1), 42, None])
def test_a_blank_invisible_huge_or_non_text_update_is_invalid(responder: User, incident: Incident, body: Any) -> None:
    before = snapshot(incident.pk)
    with pytest.raises(Invalid) as refused:
        commands.incident_post_status_update(actor=responder, incident_id=incident.pk, body=body)
    assert "body" in refused.value.fields
    assert snapshot(incident.pk) == before


def test_an_update_of_an_unknown_incident_is_not_found(responder: User) -> None:
    with pytest.raises(NotFound):
        commands.incident_post_status_update(actor=responder, incident_id=987654, body="Hello")


def test_a_cadence_change_is_audited_and_carried_by_the_state(responder: User, incident: Incident) -> None:
    result = commands.incident_update(actor=responder, incident_id=incident.pk, status_update_cadence=30)
    assert [(e.type, e.data) for e in result.events] == [("update_cadence_change", {"from": None, "to": 30})]
    assert result.state["status_update_cadence"] == 30
    result = commands.incident_update(actor=responder, incident_id=incident.pk, status_update_cadence=None)
    assert [e.data for e in result.events] == [{"from": 30, "to": None}]
    assert commands.incident_update(actor=responder, incident_id=incident.pk, status_update_cadence=None).events == []


@pytest.mark.parametrize("cadence", [0, -5, Incident.CADENCE_MAX_MINUTES + 1, "30", 1.5, True, [30]])
def test_a_bad_cadence_is_invalid_and_changes_nothing(responder: User, incident: Incident, cadence: Any) -> None:
    before = snapshot(incident.pk)
    with pytest.raises(Invalid) as refused:
        commands.incident_update(actor=responder, incident_id=incident.pk, status_update_cadence=cadence)
    assert "status_update_cadence" in refused.value.fields
    assert snapshot(incident.pk) == before


def test_an_update_is_due_a_cadence_after_the_last_one_or_the_opening(responder: User, incident: Incident) -> None:
    assert incident.status_update_due_at is None  # no cadence
    commands.incident_update(actor=responder, incident_id=incident.pk, status_update_cadence=15)
    incident.refresh_from_db()
    assert incident.status_update_due_at == incident.created_at + timedelta(minutes=15)
    commands.incident_post_status_update(actor=responder, incident_id=incident.pk, body="Update")
    incident.refresh_from_db()
    assert incident.last_status_update_at is not None
    assert incident.status_update_due_at == incident.last_status_update_at + timedelta(minutes=15)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed.")
    incident.refresh_from_db()
    assert incident.status_update_due_at is None  # a resolved incident is not nudged


# --- REST ----------------------------------------------------------------------------------------


def test_rest_posts_an_update_and_answers_with_its_event(
    api: Callable[[User | None], APIClient], responder: User, incident: Incident
) -> None:
    response = api(responder).post(UPDATES.format(incident.pk), {"body": "Rolling back"}, format="json")
    assert response.status_code == 201
    assert (response.json()["type"], response.json()["data"]) == ("status_update", {"body": "Rolling back"})
    detail = api(responder).get(f"/api/incidents/{incident.pk}").json()
    assert detail["latest_status_update"]["body"] == "Rolling back"
    row = api(responder).get("/api/incidents").json()["results"][0]
    assert row["latest_status_update"]["author"]["id"] == responder.pk


def test_rest_honours_the_idempotency_key(
    api: Callable[[User | None], APIClient], responder: User, incident: Incident
) -> None:
    client = api(responder)
    key = {"Idempotency-Key": "u1"}
    first = client.post(UPDATES.format(incident.pk), {"body": "Once"}, format="json", headers=key)
    again = client.post(UPDATES.format(incident.pk), {"body": "Once"}, format="json", headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert incident.events.filter(type="status_update").count() == 1
    other = client.post(UPDATES.format(incident.pk), {"body": "Other"}, format="json", headers=key)
    assert (other.status_code, other.json()["code"]) == (400, "invalid")


@pytest.mark.parametrize(
    ("who", "path_id", "body", "status", "code"),
    [
        ("viewer", None, {"body": "All good"}, 403, "forbidden"),
        (None, None, {"body": "All good"}, 401, "unauthenticated"),
        ("responder", 987654, {"body": "All good"}, 404, "not_found"),
        ("responder", None, {"body": ""}, 400, "invalid"),
        ("responder", None, {"body": "  "}, 400, "invalid"),
        ("responder", None, {"body": ZERO_WIDTH}, 400, "invalid"),
        ("responder", None, {"body": "x" * (Incident.STATUS_UPDATE_MAX_LENGTH + 1)}, 400, "invalid"),
        ("responder", None, {"body": 5}, 400, "invalid"),
        ("responder", None, {"body": ["a"]}, 400, "invalid"),
        ("responder", None, {}, 400, "invalid"),
        ("responder", None, {"body": "ok", "extra": 1}, 400, "invalid"),
    ],
)
def test_rest_refuses_bad_status_updates_and_changes_nothing(
    api: Callable[[User | None], APIClient],
    users: dict[str, User],
    incident: Incident,
    who: str | None,
    path_id: int | None,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = snapshot(incident.pk)
    client = api(users[who] if who else None)
    response = client.post(UPDATES.format(path_id or incident.pk), body, format="json")
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert snapshot(incident.pk) == before


def test_rest_patch_sets_and_clears_the_cadence(
    api: Callable[[User | None], APIClient], responder: User, incident: Incident
) -> None:
    client = api(responder)
    response = client.patch(f"/api/incidents/{incident.pk}", {"status_update_cadence": 60}, format="json")
    assert (response.status_code, response.json()["status_update_cadence"]) == (200, 60)
    response = client.patch(f"/api/incidents/{incident.pk}", {"status_update_cadence": None}, format="json")
    assert (response.status_code, response.json()["status_update_cadence"]) == (200, None)
    assert list(incident.events.filter(type="update_cadence_change").values_list("data", flat=True)) == [
        {"from": None, "to": 60},
        {"from": 60, "to": None},
    ]


@pytest.mark.parametrize("cadence", ["60", 0, -1, Incident.CADENCE_MAX_MINUTES + 1, 2.5, True, {"m": 1}])
def test_rest_patch_refuses_a_bad_cadence(
    api: Callable[[User | None], APIClient], responder: User, incident: Incident, cadence: Any
) -> None:
    before = snapshot(incident.pk)
    response = api(responder).patch(f"/api/incidents/{incident.pk}", {"status_update_cadence": cadence}, format="json")
    assert response.status_code == 400
    assert "status_update_cadence" in response.json()
    assert snapshot(incident.pk) == before


def test_a_viewer_cannot_set_the_cadence(
    api: Callable[[User | None], APIClient], viewer: User, incident: Incident
) -> None:
    before = snapshot(incident.pk)
    response = api(viewer).patch(f"/api/incidents/{incident.pk}", {"status_update_cadence": 30}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert snapshot(incident.pk) == before


# --- The web pages -------------------------------------------------------------------------------


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_room_posts_an_update_and_sets_the_cadence_through_the_commands(
    responder: User, incident: Incident
) -> None:
    client = signed_in(responder)
    headers = {"HX-Request": "true"}
    posted = client.post(reverse("incident-status-update", args=[incident.pk]), {"body": "Stable"}, headers=headers)
    cadence = client.post(reverse("incident-cadence", args=[incident.pk]), {"cadence": "30"}, headers=headers)
    assert (posted.status_code, cadence.status_code) == (204, 204)
    incident.refresh_from_db()
    assert (incident.last_status_update_body, incident.status_update_cadence) == ("Stable", 30)
    refused = client.post(reverse("incident-cadence", args=[incident.pk]), {"cadence": "0"}, headers=headers)
    assert refused.status_code == 400
    cleared = client.post(reverse("incident-cadence", args=[incident.pk]), {"cadence": ""}, headers=headers)
    assert cleared.status_code == 204
    incident.refresh_from_db()
    assert incident.status_update_cadence is None


def test_a_viewer_cannot_post_an_update_from_the_room(viewer: User, incident: Incident) -> None:
    response = signed_in(viewer).post(
        reverse("incident-status-update", args=[incident.pk]), {"body": "x"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 403
    assert incident.events.count() == 1


def test_the_room_shows_the_latest_update_and_when_the_next_is_due(responder: User, incident: Incident) -> None:
    commands.incident_update(actor=responder, incident_id=incident.pk, status_update_cadence=15)
    commands.incident_post_status_update(actor=responder, incident_id=incident.pk, body="Rolling <b>back</b>")
    incident.refresh_from_db()
    assert incident.status_update_due_at is not None
    page = signed_in(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    assert "Rolling &lt;b&gt;back&lt;/b&gt;" in page and "<b>back" not in page
    assert f'data-due-at="{incident.status_update_due_at.isoformat()}"' in page
    assert 'id="update-due"' in page and "status update: " in page


def test_the_list_marks_an_overdue_incident_for_the_page_to_show(responder: User, incident: Incident) -> None:
    commands.incident_update(actor=responder, incident_id=incident.pk, status_update_cadence=10)
    Incident.objects.filter(pk=incident.pk).update(created_at=timezone.now() - timedelta(minutes=30))
    other = commands.incident_create(actor=responder, title="No cadence", severity="low").incident
    commands.incident_post_status_update(actor=responder, incident_id=other.pk, body="All fine now")
    page = signed_in(responder).get(reverse("incident-list")).content.decode()
    row = page.split(f'id="incident-row-{incident.pk}"')[1].split("</tr>")[0]
    assert 'class="overdue-mark"' in row and "data-due-at=" in row
    other_row = page.split(f'id="incident-row-{other.pk}"')[1].split("</tr>")[0]
    assert "overdue-mark" not in other_row and "All fine now" in other_row


def test_the_event_types_are_known_to_the_timeline(responder: User, incident: Incident) -> None:
    assert {"status_update", "update_cadence_change"} <= set(AuditEvent.Type.values)


def test_a_status_update_is_told_in_words_to_slack_style_webhooks(responder: User, incident: Incident) -> None:
    from incidents.webhooks.payloads import describe

    event = commands.incident_post_status_update(
        actor=responder, incident_id=incident.pk, body="Back <soon> & up"
    ).events[0]
    assert describe(event) == "*rae* posted a status update: Back &lt;soon&gt; &amp; up"

"""How a writer settled a conflict over the summary (`resolved_conflict`), on every door: REST, socket, the room's form.

The summary_change event keeps it, so the person whose summary was replaced
can be told how (the room does, see tests/test_browser_room.py). Bad input is
refused with a clear error and changes nothing.
"""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.errors import Invalid
from incidents.models import AuditEvent, Incident
from incidents.views import describe_event
from tests.ws_support import Connect, create_incident, snapshot

Api = Callable[[User | None], APIClient]


def settled(incident: Incident, responder: User) -> Incident:
    """Bob saved a summary (version 2); a writer who started at version 1 now settles the conflict."""
    commands.incident_update(actor=responder, incident_id=incident.pk, summary="bob's summary", expected_version=1)
    return Incident.objects.get(pk=incident.pk)


def last_event(incident: Incident) -> AuditEvent:
    return AuditEvent.objects.filter(incident=incident).order_by("-seq").first()  # type: ignore[return-value]


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["merge", "replace"])
def test_rest_patch_keeps_how_the_conflict_was_settled_in_the_event(api: Api, responder: User, how: str) -> None:
    incident = settled(create_incident(responder), responder)
    response = api(responder).patch(
        f"/api/incidents/{incident.pk}",
        {"summary": "carol's summary", "resolved_conflict": how, "version": incident.version},
        format="json",
    )
    assert response.status_code == 200, response.json()
    event = last_event(incident)
    assert (event.type, event.data) == (
        "summary_change",
        {"from": "bob's summary", "to": "carol's summary", "resolved_conflict": how},
    )
    verb = "merged" if how == "merge" else "replaced"
    assert describe_event(event) == f"updated the summary ({verb} after a conflict)"


@pytest.mark.django_db
def test_a_summary_without_resolved_conflict_records_from_and_to_only(api: Api, responder: User) -> None:
    incident = create_incident(responder)
    response = api(responder).patch(f"/api/incidents/{incident.pk}", {"summary": "p99 > 2 s"}, format="json")
    assert response.status_code == 200
    assert last_event(incident).data == {"from": "", "to": "p99 > 2 s"}
    assert describe_event(last_event(incident)) == "updated the summary"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"resolved_conflict": "replace"}, "Only with a summary."),
        ({"resolved_conflict": "replace", "severity": "low"}, "Only with a summary."),
        ({"summary": "x", "resolved_conflict": "overwrite"}, '"overwrite" is not a valid choice.'),
        ({"summary": "x", "resolved_conflict": 5}, "Not a valid string."),
        ({"summary": "x", "resolved_conflict": None}, "This field may not be null."),
        ({"summary": "x", "resolved_conflict": ["merge"]}, "Not a valid string."),
    ],
)
def test_rest_refuses_a_bad_resolved_conflict_and_changes_nothing(
    api: Api, responder: User, body: dict[str, Any], error: str
) -> None:
    incident = create_incident(responder)
    response = api(responder).patch(f"/api/incidents/{incident.pk}", body, format="json")
    assert response.status_code == 400
    assert response.json()["resolved_conflict"] == [error]
    assert response.json()["code"] == "invalid"
    fresh = Incident.objects.get(pk=incident.pk)
    assert (fresh.version, fresh.summary, fresh.severity) == (1, "", "high")


@pytest.mark.django_db
def test_a_settled_conflict_with_a_stale_version_is_still_a_conflict(api: Api, responder: User) -> None:
    incident = settled(create_incident(responder), responder)
    response = api(responder).patch(
        f"/api/incidents/{incident.pk}",
        {"summary": "carol's summary", "resolved_conflict": "replace", "version": 1},
        format="json",
    )
    assert response.status_code == 409
    assert Incident.objects.get(pk=incident.pk).summary == "bob's summary"


@pytest.mark.django_db
def test_a_viewer_cannot_settle_a_conflict(api: Api, responder: User, viewer: User) -> None:
    incident = create_incident(responder)
    response = api(viewer).patch(
        f"/api/incidents/{incident.pk}", {"summary": "mine", "resolved_conflict": "replace"}, format="json"
    )
    assert response.status_code == 403
    assert Incident.objects.get(pk=incident.pk).version == 1


@pytest.mark.django_db
def test_the_command_checks_resolved_conflict_itself(responder: User) -> None:
    incident = create_incident(responder)
    with pytest.raises(Invalid) as refused:
        commands.incident_update(actor=responder, incident_id=incident.pk, resolved_conflict="merge")
    assert refused.value.fields == {"resolved_conflict": ["Only with a summary."]}
    with pytest.raises(Invalid) as refused:
        commands.incident_update(actor=responder, incident_id=incident.pk, summary="x", resolved_conflict="both")
    assert refused.value.fields == {"resolved_conflict": ['"both" is not one of: merge, replace.']}
    assert Incident.objects.get(pk=incident.pk).version == 1


@pytest.mark.django_db
def test_the_rooms_form_sends_it_and_a_blank_one_is_no_conflict(responder: User) -> None:
    incident = settled(create_incident(responder), responder)
    client = Client()
    client.force_login(responder)
    url = reverse("incident-summary", args=[incident.pk])
    headers = {"HX-Request": "true"}
    response = client.post(
        url, {"summary": "carol's", "version": incident.version, "resolved_conflict": "replace"}, headers=headers
    )
    assert response.status_code == 204
    assert last_event(incident).data["resolved_conflict"] == "replace"
    response = client.post(
        url, {"summary": "later", "version": incident.version + 1, "resolved_conflict": ""}, headers=headers
    )
    assert response.status_code == 204
    assert "resolved_conflict" not in last_event(incident).data
    response = client.post(
        url, {"summary": "bad", "version": incident.version + 2, "resolved_conflict": "both"}, headers=headers
    )
    assert response.status_code == 400
    assert Incident.objects.get(pk=incident.pk).summary == "later"


@pytest.mark.django_db(transaction=True)
async def test_the_socket_takes_resolved_conflict_and_the_room_hears_it(
    connect: Connect, responder: User, viewer: User
) -> None:
    from asgiref.sync import sync_to_async

    incident = await sync_to_async(lambda: settled(create_incident(responder), responder))()
    watcher = await connect(viewer)
    await watcher.ok("incident:join", incident=incident.pk)
    socket = await connect(responder)
    ack = await socket.ok(
        "incident:update", incident=incident.pk, summary="merged", resolved_conflict="merge", version=2
    )
    assert ack["events"][0]["data"] == {"from": "bob's summary", "to": "merged", "resolved_conflict": "merge"}
    pushed = await watcher.push("incident:updated")
    assert pushed["event"]["data"]["resolved_conflict"] == "merge"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "fields",
    [
        {"resolved_conflict": "merge"},
        {"summary": "x", "resolved_conflict": "both"},
        {"summary": "x", "resolved_conflict": 1},
    ],
)
async def test_the_socket_refuses_a_bad_resolved_conflict_and_changes_nothing(
    connect: Connect, responder: User, fields: dict[str, Any]
) -> None:
    from asgiref.sync import sync_to_async

    incident = await sync_to_async(create_incident)(responder)
    socket = await connect(responder)
    before = await snapshot(incident.pk)
    reply = await socket.error("incident:update", "invalid", incident=incident.pk, **fields)
    assert "resolved_conflict" in str(reply)
    assert await snapshot(incident.pk) == before

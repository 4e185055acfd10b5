"""Incident roles, a deliberate resolve and renaming (issue 11, items 1, 3 and 4), on every door.

The commands decide; REST, the socket, the web forms and the admin only carry
their answer. Each refusal changes nothing: no version, no event, no field.
"""

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import User
from incidents import commands
from incidents.audit import verify_incident
from incidents.errors import Invalid, InvalidTransition
from incidents.models import ActionItem, AuditEvent, Incident
from incidents.postmortem import postmortem_build, to_markdown
from incidents.replay import state_from_events
from incidents.views import describe_event

pytestmark = pytest.mark.django_db


def make(actor: User, title: str = "Checkout errors") -> Incident:
    return commands.incident_create(actor=actor, title=title, severity="high").incident


def picture(incident_id: int) -> tuple[Any, ...]:
    """Everything a refused change must leave as it was."""
    incident = Incident.objects.get(pk=incident_id)
    items = list(ActionItem.objects.filter(incident_id=incident_id).values_list("title", "owner_id", "done"))
    return (
        incident.version,
        incident.events.count(),
        incident.status,
        incident.title,
        incident.severity,
        incident.summary,
        incident.commander_id,
        incident.comms_lead_id,
        incident.scribe_id,
        sorted(incident.assignees.values_list("pk", flat=True)),
        items,
    )


def resolve(actor: User, incident: Incident, resolution: str = "Rolled back deploy 8812.") -> None:
    commands.incident_change_status(actor=actor, incident_id=incident.pk, status="resolved", resolution=resolution)


# --- 1. Roles: the declarer commands; only responders and admins hold roles or own items --------


def test_the_declarer_is_commander_from_the_first_event(responder: User) -> None:
    incident = make(responder)
    assert incident.commander == responder
    created = AuditEvent.objects.get(incident=incident, seq=1)
    assert created.data["commander"] == responder.as_ref()
    assert state_from_events([created.as_data()]).commander == responder.as_ref()
    assert verify_incident(incident.pk) is None


def test_the_declarer_is_commander_over_rest(api: Callable[..., Any], responder: User) -> None:
    body = api(responder).post("/api/incidents", {"title": "DNS", "severity": "low"}).json()
    assert body["commander"]["id"] == responder.pk
    assert (body["comms_lead"], body["scribe"]) == (None, None)


def test_the_declarer_is_commander_from_the_web_form(responder: User) -> None:
    client = Client()
    client.force_login(responder)
    response = client.post(reverse("incident-new"), {"title": "Web outage", "severity": "high", "summary": ""})
    assert response.status_code == 302
    assert Incident.objects.get(title="Web outage").commander == responder


def test_seed_demo_names_commanders_and_roles_and_resolves_with_a_note() -> None:
    call_command("seed_demo", stdout=StringIO())
    checkout = Incident.objects.get(title="Checkout latency spike")
    names = [getattr(checkout, role).username for role in Incident.ROLES]
    assert names == ["responder", "carol", "admin"]
    search = Incident.objects.get(title="Search index lagging")
    assert getattr(search.commander, "username", None) == "carol"
    assert search.events.get(data__to="resolved").data["resolution"].startswith("Pinned the consumer group")
    call_command("verify_audit", stdout=StringIO())


@pytest.mark.parametrize("role", ["commander", "comms_lead", "scribe"])
def test_each_role_is_set_and_cleared_with_an_assignment_event(responder: User, admin: User, role: str) -> None:
    incident = make(responder)
    given: dict[str, Any] = {role: admin}
    result = commands.incident_update(actor=responder, incident_id=incident.pk, **given)
    was = responder.as_ref() if role == "commander" else None
    assert [(e.type, e.data) for e in result.events] == [("assignment", {role: {"from": was, "to": admin.as_ref()}})]
    assert getattr(Incident.objects.get(pk=incident.pk), role) == admin
    assert result.state[role]["id"] == admin.pk
    given[role] = None
    cleared = commands.incident_update(actor=responder, incident_id=incident.pk, **given)
    assert cleared.events[0].data == {role: {"from": admin.as_ref(), "to": None}}
    assert verify_incident(incident.pk) is None


def test_roles_and_assignees_change_in_one_assignment_event(responder: User, admin: User, viewer: User) -> None:
    incident = make(responder)
    result = commands.incident_update(
        actor=responder, incident_id=incident.pk, comms_lead=admin, scribe=responder, assignees=[viewer]
    )
    assert [e.type for e in result.events] == ["assignment"]
    assert set(result.events[0].data) == {"comms_lead", "scribe", "assignees"}
    replayed = state_from_events(e.as_data() for e in incident.events.order_by("seq"))
    assert replayed.roles == {
        "commander": responder.as_ref(),
        "comms_lead": admin.as_ref(),
        "scribe": responder.as_ref(),
    }
    assert verify_incident(incident.pk) is None


@pytest.mark.parametrize("role", ["commander", "comms_lead", "scribe"])
def test_a_viewer_cannot_hold_an_incident_role(responder: User, viewer: User, role: str) -> None:
    incident = make(responder)
    before = picture(incident.pk)
    given: dict[str, Any] = {role: viewer}
    with pytest.raises(Invalid) as refused:
        commands.incident_update(actor=responder, incident_id=incident.pk, severity="low", **given)
    assert "viewer" in refused.value.fields[role][0]
    assert picture(incident.pk) == before


def test_an_inactive_user_cannot_hold_a_role_or_own_an_item(responder: User, make_user: Callable[..., User]) -> None:
    gone = make_user("responder", "gone", is_active=False)
    incident = make(responder)
    before = picture(incident.pk)
    with pytest.raises(Invalid):
        commands.incident_update(actor=responder, incident_id=incident.pk, scribe=gone)
    with pytest.raises(Invalid):
        commands.action_item_add(actor=responder, incident_id=incident.pk, title="Alert", owner=gone)
    assert picture(incident.pk) == before


def test_a_viewer_cannot_own_an_action_item(responder: User, viewer: User) -> None:
    incident = make(responder)
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Alert").item
    assert item is not None
    before = picture(incident.pk)
    with pytest.raises(Invalid) as refused:
        commands.action_item_add(actor=responder, incident_id=incident.pk, title="Other", owner=viewer)
    assert "owner" in refused.value.fields
    with pytest.raises(Invalid):
        commands.action_item_update(actor=responder, incident_id=incident.pk, item_id=item.pk, owner=viewer)
    assert picture(incident.pk) == before


@pytest.mark.parametrize(
    ("path", "field"),
    [("", "commander"), ("", "comms_lead"), ("", "scribe"), ("/action-items", "owner")],
)
def test_rest_refuses_a_viewer_in_a_role_with_a_field_error(
    api: Callable[..., Any], responder: User, viewer: User, path: str, field: str
) -> None:
    incident = make(responder)
    before = picture(incident.pk)
    client = api(responder)
    url = f"/api/incidents/{incident.pk}{path}"
    body = {field: viewer.pk, **({"title": "Alert"} if path else {})}
    response = client.post(url, body) if path else client.patch(url, body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "viewer" in response.json()[field][0]
    assert picture(incident.pk) == before


def test_rest_patch_sets_the_roles_and_the_state_carries_them(
    api: Callable[..., Any], responder: User, admin: User
) -> None:
    incident = make(responder)
    response = api(responder).patch(
        f"/api/incidents/{incident.pk}", {"comms_lead": admin.pk, "scribe": responder.pk, "version": 1}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["comms_lead"]["id"], body["scribe"]["id"], body["version"]) == (admin.pk, responder.pk, 2)
    detail = api(responder).get(f"/api/incidents/{incident.pk}").json()
    assert detail["history"][-1]["data"] == {
        "comms_lead": {"from": None, "to": admin.as_ref()},
        "scribe": {"from": None, "to": responder.as_ref()},
    }


def test_timeline_words_name_the_roles(responder: User, admin: User) -> None:
    incident = make(responder)
    commands.incident_update(actor=responder, incident_id=incident.pk, comms_lead=admin, scribe=responder)
    commands.incident_update(actor=responder, incident_id=incident.pk, scribe=None)
    events = list(incident.events.order_by("seq"))
    assert describe_event(events[1]) == "made ada communications lead; made rae scribe"
    assert describe_event(events[2]) == "removed rae as scribe"


def test_verify_audit_catches_a_role_changed_without_an_event(responder: User, admin: User) -> None:
    incident = make(responder)
    commands.incident_update(actor=responder, incident_id=incident.pk, scribe=admin)
    Incident.objects.filter(pk=incident.pk).update(scribe=responder)
    problem = verify_incident(incident.pk)
    assert problem is not None and "scribe is" in str(problem)


# --- 3. Resolve deliberately --------------------------------------------------------------------


def test_resolving_keeps_the_resolution_in_the_event(responder: User) -> None:
    incident = make(responder)
    commands.incident_change_status(
        actor=responder, incident_id=incident.pk, status="resolved", resolution="  Rolled back 8812.  "
    )
    event = AuditEvent.objects.get(incident=incident, seq=2)
    assert event.data == {"from": "investigating", "to": "resolved", "resolution": "Rolled back 8812."}
    assert describe_event(event) == "investigating → resolved: Rolled back 8812."
    assert verify_incident(incident.pk) is None


@pytest.mark.parametrize("resolution", [None, "", "   ", "\u200b\u200b"])
def test_resolving_without_a_resolution_is_refused(responder: User, resolution: str | None) -> None:
    incident = make(responder)
    before = picture(incident.pk)
    with pytest.raises(Invalid) as refused:
        commands.incident_change_status(
            actor=responder, incident_id=incident.pk, status="resolved", resolution=resolution
        )
    assert "resolution" in refused.value.fields
    assert picture(incident.pk) == before


def test_a_resolution_with_another_status_is_refused(responder: User) -> None:
    incident = make(responder)
    before = picture(incident.pk)
    with pytest.raises(Invalid) as refused:
        commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified", resolution="x")
    assert "resolution" in refused.value.fields
    assert picture(incident.pk) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "resolved"}, "resolution"),
        ({"status": "resolved", "resolution": ""}, "resolution"),
        ({"status": "resolved", "resolution": "   "}, "resolution"),
        ({"status": "resolved", "resolution": 7}, "resolution"),
        ({"status": "resolved", "resolution": "x" * 10_001}, "resolution"),
        ({"status": "monitoring", "resolution": "Fixed."}, "resolution"),
    ],
)
def test_rest_status_refuses_a_missing_or_misplaced_resolution(
    api: Callable[..., Any], responder: User, body: dict[str, Any], field: str
) -> None:
    incident = make(responder)
    before = picture(incident.pk)
    response = api(responder).post(f"/api/incidents/{incident.pk}/status", body)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid" and field in response.json()
    assert picture(incident.pk) == before


def test_rest_resolve_with_a_resolution(api: Callable[..., Any], responder: User) -> None:
    incident = make(responder)
    response = api(responder).post(
        f"/api/incidents/{incident.pk}/status", {"status": "resolved", "resolution": "Failover done.", "version": 1}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "resolved"
    assert AuditEvent.objects.get(incident=incident, seq=2).data["resolution"] == "Failover done."


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Renamed"},
        {"severity": "low"},
        {"summary": "later"},
        {"commander": None},
        {"comms_lead": "admin"},
        {"scribe": "admin"},
        {"assignees": ["admin"]},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_resolved_incident_refuses_changes_until_reopened(
    responder: User, admin: User, change: dict[str, Any]
) -> None:
    incident = make(responder)
    resolve(responder, incident)
    users = {"admin": admin}
    value = next(iter(change.values()))
    if isinstance(value, list):
        value = [users[name] for name in value]
    elif value in users:
        value = users[value]
    name = next(iter(change))
    before = picture(incident.pk)
    with pytest.raises(InvalidTransition):
        commands.incident_update(actor=responder, incident_id=incident.pk, **{name: value})
    assert picture(incident.pk) == before
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="investigating")
    assert commands.incident_update(actor=responder, incident_id=incident.pk, **{name: value}).events


def test_a_resolved_incident_refuses_action_item_changes_but_takes_notes(responder: User) -> None:
    incident = make(responder)
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Alert").item
    assert item is not None
    resolve(responder, incident)
    before = picture(incident.pk)
    with pytest.raises(InvalidTransition):
        commands.action_item_add(actor=responder, incident_id=incident.pk, title="Later")
    with pytest.raises(InvalidTransition):
        commands.action_item_update(actor=responder, incident_id=incident.pk, item_id=item.pk, done=True)
    assert picture(incident.pk) == before
    # Unchanged values change nothing, so they are not refused; a note still goes in.
    assert not commands.incident_update(actor=responder, incident_id=incident.pk, severity="high").events
    assert commands.incident_add_note(actor=responder, incident_id=incident.pk, body="Postmortem Friday").events


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "", {"severity": "low"}),
        ("patch", "", {"title": "Renamed"}),
        ("post", "/action-items", {"title": "Later"}),
        ("patch", "/action-items/{item}", {"done": True}),
    ],
)
def test_rest_refuses_changes_to_a_resolved_incident_with_409(
    api: Callable[..., Any], responder: User, method: str, path: str, body: dict[str, Any]
) -> None:
    incident = make(responder)
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Alert").item
    assert item is not None
    resolve(responder, incident)
    before = picture(incident.pk)
    url = f"/api/incidents/{incident.pk}" + path.format(item=item.pk)
    response = getattr(api(responder), method)(url, body)
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert "reopen" in response.json()["detail"]
    assert picture(incident.pk) == before


def test_the_postmortem_shows_the_resolution(responder: User) -> None:
    incident = make(responder)
    resolve(responder, incident, "Failed over to the standby database.")
    postmortem = postmortem_build(incident.pk)
    assert postmortem is not None and postmortem.resolution == "Failed over to the standby database."
    markdown = to_markdown(postmortem)
    assert "## Resolution\n\nFailed over to the standby database." in markdown
    client = Client()
    client.force_login(responder)
    page = client.get(reverse("incident-postmortem", args=[incident.pk])).content.decode()
    assert "Failed over to the standby database." in page


# --- 4. Renaming ---------------------------------------------------------------------------------


def test_a_rename_is_a_title_change_event_and_replays(responder: User) -> None:
    incident = make(responder)
    result = commands.incident_update(actor=responder, incident_id=incident.pk, title="  Checkout 5xx  ")
    assert [(e.type, e.data) for e in result.events] == [
        ("title_change", {"from": "Checkout errors", "to": "Checkout 5xx"})
    ]
    assert Incident.objects.get(pk=incident.pk).title == "Checkout 5xx"
    assert describe_event(result.events[0]) == "renamed it “Checkout errors” → “Checkout 5xx”"
    assert verify_incident(incident.pk) is None
    assert not commands.incident_update(actor=responder, incident_id=incident.pk, title="Checkout 5xx").events


@pytest.mark.parametrize("title", ["", "   ", "\u200b\u2060", "x" * 201, 42, None])
def test_a_bad_title_is_refused(responder: User, title: Any) -> None:
    incident = make(responder)
    before = picture(incident.pk)
    with pytest.raises(Invalid) as refused:
        commands.incident_update(actor=responder, incident_id=incident.pk, title=title)
    assert "title" in refused.value.fields
    assert picture(incident.pk) == before


@pytest.mark.parametrize("title", ["", "   ", "\u200b\u2060", "x" * 201, 42, None, ["a"]])
def test_rest_refuses_a_bad_title(api: Callable[..., Any], responder: User, title: Any) -> None:
    incident = make(responder)
    before = picture(incident.pk)
    response = api(responder).patch(f"/api/incidents/{incident.pk}", {"title": title})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "title" in response.json()
    assert picture(incident.pk) == before


def test_rest_rename_and_a_viewer_cannot(api: Callable[..., Any], responder: User, viewer: User) -> None:
    incident = make(responder)
    assert api(viewer).patch(f"/api/incidents/{incident.pk}", {"title": "Mine"}).status_code == 403
    response = api(responder).patch(f"/api/incidents/{incident.pk}", {"title": "DNS", "severity": "low"})
    assert response.status_code == 200
    assert [e.type for e in incident.events.order_by("seq")] == ["incident_created", "title_change", "severity_change"]


def test_a_new_role_holder_is_notified(responder: User, admin: User) -> None:
    from incidents.models import Notification

    incident = make(responder)
    commands.incident_update(actor=responder, incident_id=incident.pk, comms_lead=admin, scribe=responder)
    given = Notification.objects.filter(incident=incident, kind=Notification.Kind.ASSIGNMENT)
    # Nobody is told of a role they gave themselves.
    assert list(given.values_list("recipient__username", "role")) == [("ada", "comms_lead")]

"""The room's forms and the Django admin for roles, resolving and renaming: the same commands, the same refusals."""

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from incidents import commands
from incidents.models import AuditEvent, Incident
from tests.test_admin import change_url, form_data

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def make(actor: User) -> Incident:
    return commands.incident_create(actor=actor, title="Checkout errors", severity="high").incident


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(user: User, name: str, incident: Incident, data: dict[str, Any]) -> Any:
    return client_for(user).post(reverse(name, args=[incident.pk]), data, headers=HTMX)


def options(page: str, select_id: str) -> list[str]:
    """The usernames a <select> offers (its "none" option left out)."""
    match = re.search(rf'<select[^>]*id="{select_id}".*?</select>', page, re.S)
    assert match, select_id
    return [name for value, name in re.findall(r'<option value="(\d*)"[^>]*>([^<]*)</option>', match[0]) if value]


def test_the_room_offers_only_responders_and_admins_for_roles_and_items(
    responder: User, admin: User, viewer: User
) -> None:
    incident = make(responder)
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Alert").item
    assert item is not None
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    for select in ("commander-select", "comms_lead-select", "scribe-select", "new-item-owner", f"item-owner-{item.pk}"):
        assert options(page, select) == ["ada", "rae"], select
    assert "vic" not in options(page, "assignee-add")


def test_the_header_shows_the_roles(responder: User, admin: User) -> None:
    incident = make(responder)
    commands.incident_update(actor=responder, incident_id=incident.pk, comms_lead=admin, scribe=responder)
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    meta = re.search(r'<p id="live-meta".*?</p>', page, re.S)
    assert meta is not None
    text = " ".join(re.sub(r"<[^>]+>", " ", meta[0]).split())
    assert "Commander: rae" in text and "Comms lead: ada" in text and "Scribe: rae" in text


def test_a_forged_role_or_owner_for_a_viewer_is_refused_in_words(responder: User, viewer: User) -> None:
    incident = make(responder)
    version = incident.version
    forged: list[tuple[str, dict[str, Any]]] = [
        ("incident-commander", {"commander": viewer.pk}),
        ("incident-role", {"role": "scribe", "user": viewer.pk}),
        ("incident-role", {"role": "comms_lead", "user": viewer.pk}),
        ("incident-action-item-add", {"title": "Alert", "owner": viewer.pk}),
    ]
    for name, data in forged:
        response = post(responder, name, incident, data)
        assert response.status_code == 400, name
        assert "only responders and admins" in response.content.decode().lower(), name
    assert Incident.objects.get(pk=incident.pk).version == version


def test_the_role_form_sets_and_clears_a_role(responder: User, admin: User) -> None:
    incident = make(responder)
    assert post(responder, "incident-role", incident, {"role": "comms_lead", "user": admin.pk}).status_code == 204
    assert Incident.objects.get(pk=incident.pk).comms_lead == admin
    assert post(responder, "incident-role", incident, {"role": "comms_lead", "user": ""}).status_code == 204
    assert Incident.objects.get(pk=incident.pk).comms_lead is None
    assert post(responder, "incident-role", incident, {"role": "owner", "user": admin.pk}).status_code == 400


def test_the_title_form_renames_and_refuses_blank(responder: User, viewer: User) -> None:
    incident = make(responder)
    assert post(viewer, "incident-title", incident, {"title": "Mine"}).status_code == 403
    assert post(responder, "incident-title", incident, {"title": "\u200b"}).status_code == 400
    assert post(responder, "incident-title", incident, {"title": "x" * 201}).status_code == 400
    assert post(responder, "incident-title", incident, {"title": " Checkout 5xx "}).status_code == 204
    assert Incident.objects.get(pk=incident.pk).title == "Checkout 5xx"
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    assert "renamed it “Checkout errors” → “Checkout 5xx”" in page


def test_the_status_form_resolves_only_with_a_note(responder: User) -> None:
    incident = make(responder)
    refused = post(responder, "incident-status", incident, {"status": "resolved", "resolution": " "})
    assert refused.status_code == 400 and "Resolution" in refused.content.decode()
    assert Incident.objects.get(pk=incident.pk).status == "investigating"
    done = post(responder, "incident-status", incident, {"status": "resolved", "resolution": "Rolled back."})
    assert done.status_code == 204
    assert AuditEvent.objects.get(incident=incident, seq=2).data["resolution"] == "Rolled back."


def test_a_resolved_room_is_read_only_but_takes_notes_and_reopens(responder: User, admin: User) -> None:
    incident = make(responder)
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Alert").item
    assert item is not None
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Ok.")
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    controls = ['id="severity-select"', 'id="commander-select"', 'id="scribe-select"', 'id="cadence-select"']
    for control in [*controls, f'id="item-done-{item.pk}"']:
        assert control not in page, control
    assert 'data-status="resolved"' in page and "read-only until it is reopened" in page
    assert 'id="note-body"' in page and 'id="status-to-investigating"' in page
    refused = post(responder, "incident-severity", incident, {"severity": "low"})
    assert refused.status_code == 409 and "reopen" in refused.content.decode()
    assert post(responder, "incident-note", incident, {"body": "Postmortem Friday"}).status_code == 204


def test_the_resolve_dialog_lists_the_open_items(responder: User, admin: User) -> None:
    incident = make(responder)
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="Add an alert", owner=admin)
    done = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Roll back").item
    assert done is not None
    commands.action_item_update(actor=responder, incident_id=incident.pk, item_id=done.pk, done=True)
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    dialog = re.search(r'<dialog id="resolve-dialog".*?</dialog>', page, re.S)
    assert dialog is not None
    assert "1 action item still open" in dialog[0] and "Add an alert" in dialog[0] and "Roll back" not in dialog[0]
    assert 'name="resolution"' in dialog[0] and "required" in dialog[0]
    assert "data-resolve-open" in page


# --- The admin ------------------------------------------------------------------------------


@pytest.fixture
def staff(admin: User) -> Client:
    return client_for(admin)


def test_the_admin_offers_only_responders_and_admins_for_roles(staff: Client, responder: User, viewer: User) -> None:
    incident = make(responder)
    form = staff.get(change_url(incident)).context["adminform"].form
    for role in ("commander", "comms_lead", "scribe"):
        assert viewer not in form.fields[role].queryset, role
        assert responder in form.fields[role].queryset, role


def test_the_admin_refuses_resolving_without_a_note(staff: Client, responder: User) -> None:
    incident = make(responder)
    data = form_data(staff, change_url(incident))
    data.update(status="resolved", resolution="")
    response = staff.post(change_url(incident), data)
    assert response.status_code == 200
    assert "Required to resolve" in str(response.context["adminform"].form.errors["resolution"])
    assert Incident.objects.get(pk=incident.pk).version == 1
    data.update(resolution="Failed over.")
    assert staff.post(change_url(incident), data).status_code == 302
    assert AuditEvent.objects.get(incident=incident, seq=2).data["resolution"] == "Failed over."


def test_the_admin_reopens_and_changes_in_one_save(staff: Client, responder: User) -> None:
    incident = make(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Ok.")
    data = form_data(staff, change_url(incident))
    data.update(status="investigating", severity="critical")
    response = staff.post(change_url(incident), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    types = list(incident.events.order_by("seq").values_list("type", flat=True))
    assert types[-2:] == ["status_change", "severity_change"]


def test_the_admin_refuses_editing_a_resolved_incident(staff: Client, responder: User) -> None:
    incident = make(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Ok.")
    data = form_data(staff, change_url(incident))
    data.update(severity="low")
    response = staff.post(change_url(incident), data)
    assert response.status_code == 200
    assert "reopen it" in str(response.context["adminform"].form.non_field_errors())
    assert Incident.objects.get(pk=incident.pk).version == 2


def test_the_admin_resolve_action_asks_for_a_note_first(staff: Client, responder: User) -> None:
    incident = make(responder)
    url = reverse("admin:incidents_incident_changelist")
    asked = staff.post(url, {"action": "resolve_selected", "_selected_action": [incident.pk]})
    assert asked.status_code == 200 and b"Resolution note" in asked.content
    blank = staff.post(
        url, {"action": "resolve_selected", "_selected_action": [incident.pk], "apply": "Resolve", "resolution": " "}
    )
    assert blank.status_code == 200
    assert Incident.objects.get(pk=incident.pk).status == "investigating"
    staff.post(
        url, {"action": "resolve_selected", "_selected_action": [incident.pk], "apply": "Resolve", "resolution": "Ok"}
    )
    assert AuditEvent.objects.get(incident=incident, seq=2).data == {
        "from": "investigating",
        "to": "resolved",
        "resolution": "Ok",
    }

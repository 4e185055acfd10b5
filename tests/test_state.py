"""The broadcast state is built without DRF on every write; it must stay what the API serializer says."""

import pytest

from accounts.models import User
from incidents import commands
from incidents.publishing import incident_state
from incidents.selectors import incident_state_queryset
from incidents.serializers import IncidentSerializer

pytestmark = pytest.mark.django_db


def serializer_state(incident_id: int) -> dict:
    return dict(IncidentSerializer(incident_state_queryset().get(pk=incident_id)).data)


def test_a_new_incident_has_the_serializers_state(responder: User) -> None:
    incident = commands.incident_create(actor=responder, title="Checkout errors", severity="high").incident
    assert incident_state(incident.pk) == serializer_state(incident.pk)


def test_a_busy_incident_has_the_serializers_state(responder: User, admin: User, viewer: User) -> None:
    incident = commands.incident_create(actor=responder, title="DNS", severity="critical", summary="résumé ✓").incident
    commands.incident_update(actor=admin, incident_id=incident.pk, commander=admin, assignees=[responder, viewer])
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Roll back", owner=admin).item
    assert item is not None
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="No owner")
    commands.action_item_update(actor=responder, incident_id=incident.pk, item_id=item.pk, done=True)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed.")
    state = incident_state(incident.pk)
    assert state == serializer_state(incident.pk)
    assert state["resolved_at"] is not None and state["resolved_at"].endswith("Z")
    assert [user["username"] for user in state["assignees"]] == ["rae", "vic"]


def test_the_state_an_event_carries_is_the_state_after_it(responder: User) -> None:
    incident = commands.incident_create(actor=responder, title="Queue", severity="low").incident
    result = commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
    assert result.state == serializer_state(incident.pk)
    assert result.state["version"] == 2

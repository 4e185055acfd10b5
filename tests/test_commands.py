"""The command pipeline: rules of change, one event per accepted change, nothing on rejection."""

from typing import Any

import pytest

from incidents import commands
from incidents.errors import Conflict, Forbidden, Invalid, InvalidTransition, NotFound
from incidents.models import AuditEvent, Incident

pytestmark = pytest.mark.django_db


def make_incident(actor: Any, **extra: Any) -> Incident:
    return commands.incident_create(actor=actor, title="Disk full on db-3", severity="high", **extra).incident


def snapshot(incident_id: int) -> tuple[int, int]:
    return Incident.objects.get(pk=incident_id).version, AuditEvent.objects.filter(incident_id=incident_id).count()


def test_create_appends_incident_created_as_seq_1(responder: Any) -> None:
    incident = make_incident(responder, summary="at 97%")
    event = AuditEvent.objects.get(incident=incident)
    assert (event.seq, event.type, incident.version) == (1, "incident_created", 1)
    assert event.data == {
        "title": "Disk full on db-3",
        "severity": "high",
        "summary": "at 97%",
        "commander": responder.as_ref(),
    }
    assert event.actor == responder


@pytest.mark.parametrize(
    ("start", "to"),
    [
        ("investigating", "identified"),
        ("investigating", "monitoring"),
        ("identified", "investigating"),
        ("identified", "monitoring"),
        ("monitoring", "identified"),
        ("monitoring", "investigating"),
        ("investigating", "resolved"),
        ("identified", "resolved"),
        ("monitoring", "resolved"),
        ("resolved", "investigating"),
    ],
)
def test_allowed_status_moves(responder: Any, start: str, to: str) -> None:
    incident = make_incident(responder)
    if start != "investigating":  # every status is one move from where an incident starts
        resolving = "Fixed." if start == "resolved" else None
        commands.incident_change_status(actor=responder, incident_id=incident.pk, status=start, resolution=resolving)
    resolution = "Fixed." if to == "resolved" else None
    result = commands.incident_change_status(actor=responder, incident_id=incident.pk, status=to, resolution=resolution)
    assert result.incident.status == to
    assert result.events[0].data == {"from": start, "to": to, **({"resolution": "Fixed."} if resolution else {})}


@pytest.mark.parametrize("to", ["identified", "monitoring", "resolved"])
def test_resolved_only_reopens_to_investigating(responder: Any, to: str) -> None:
    incident = make_incident(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed.")
    before = snapshot(incident.pk)
    resolution = "Again." if to == "resolved" else None
    with pytest.raises(InvalidTransition):
        commands.incident_change_status(actor=responder, incident_id=incident.pk, status=to, resolution=resolution)
    assert snapshot(incident.pk) == before


def test_moving_to_the_same_status_is_an_invalid_transition(responder: Any) -> None:
    incident = make_incident(responder)
    with pytest.raises(InvalidTransition):
        commands.incident_change_status(actor=responder, incident_id=incident.pk, status="investigating")
    assert snapshot(incident.pk) == (1, 1)


def test_resolving_sets_resolved_at_and_reopening_clears_it(responder: Any) -> None:
    incident = make_incident(responder)
    resolved = commands.incident_change_status(
        actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed."
    ).incident
    assert resolved.resolved_at is not None
    reopened = commands.incident_change_status(actor=responder, incident_id=incident.pk, status="investigating")
    assert reopened.incident.resolved_at is None


def test_viewer_cannot_change_anything(responder: Any, viewer: Any) -> None:
    incident = make_incident(responder)
    attempts = [
        lambda: commands.incident_create(actor=viewer, title="x", severity="low"),
        lambda: commands.incident_change_status(actor=viewer, incident_id=incident.pk, status="identified"),
        lambda: commands.incident_update(actor=viewer, incident_id=incident.pk, severity="low"),
        lambda: commands.incident_add_note(actor=viewer, incident_id=incident.pk, body="hi"),
        lambda: commands.action_item_add(actor=viewer, incident_id=incident.pk, title="x"),
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden):
            attempt()
    assert snapshot(incident.pk) == (1, 1)
    assert Incident.objects.count() == 1


def test_stale_version_is_a_conflict_and_changes_nothing(responder: Any) -> None:
    incident = make_incident(responder)
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="first")
    with pytest.raises(Conflict) as raised:
        commands.incident_change_status(
            actor=responder, incident_id=incident.pk, status="identified", expected_version=1
        )
    assert raised.value.extra == {"version": 2}
    assert snapshot(incident.pk) == (2, 2)


def test_unknown_incident_is_not_found(responder: Any) -> None:
    with pytest.raises(NotFound):
        commands.incident_add_note(actor=responder, incident_id=999_999, body="hi")


def test_update_records_one_event_per_kind_of_change(responder: Any, make_user: Any) -> None:
    carol, dave = make_user("responder", "carol"), make_user("responder", "dave")
    incident = make_incident(responder)
    result = commands.incident_update(
        actor=responder,
        incident_id=incident.pk,
        severity="critical",
        summary="p99 2s",
        commander=carol,
        assignees=[carol, dave],
    )
    assert [e.type for e in result.events] == ["severity_change", "summary_change", "assignment"]
    assert [e.seq for e in result.events] == [2, 3, 4]
    assert result.incident.version == 4
    assignment = result.events[2].data
    assert assignment["commander"]["from"]["username"] == responder.username  # the declarer, by default
    assert assignment["commander"]["to"]["username"] == "carol"
    assert [u["username"] for u in assignment["assignees"]["added"]] == ["carol", "dave"]
    assert assignment["assignees"]["removed"] == []


def test_update_with_unchanged_values_records_nothing(responder: Any) -> None:
    incident = make_incident(responder)
    result = commands.incident_update(actor=responder, incident_id=incident.pk, severity="high", summary="")
    assert result.events == []
    assert snapshot(incident.pk) == (1, 1)


def test_inactive_user_cannot_be_commander(responder: Any, make_user: Any) -> None:
    gone = make_user("responder", "gone", is_active=False)
    incident = make_incident(responder)
    with pytest.raises(Invalid):
        commands.incident_update(actor=responder, incident_id=incident.pk, commander=gone)
    assert snapshot(incident.pk) == (1, 1)


def test_action_item_update_lists_changed_fields(responder: Any) -> None:
    incident = make_incident(responder)
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="roll back").item
    assert item is not None
    result = commands.action_item_update(
        actor=responder, incident_id=incident.pk, item_id=item.pk, done=True, owner=responder
    )
    event = result.events[0]
    assert event.type == "action_item_updated"
    assert event.data["changed"] == ["owner", "done"]
    assert event.data["item"]["done"] is True


def test_action_item_of_another_incident_is_not_found(responder: Any) -> None:
    first, second = make_incident(responder), make_incident(responder)
    item = commands.action_item_add(actor=responder, incident_id=first.pk, title="x").item
    assert item is not None
    with pytest.raises(NotFound):
        commands.action_item_update(actor=responder, incident_id=second.pk, item_id=item.pk, done=True)


def test_seq_and_version_stay_equal(responder: Any) -> None:
    incident = make_incident(responder)
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="a")
    commands.incident_update(actor=responder, incident_id=incident.pk, severity="low", summary="b")
    seqs = list(AuditEvent.objects.filter(incident=incident).values_list("seq", flat=True))
    assert seqs == [1, 2, 3, 4]
    assert Incident.objects.get(pk=incident.pk).version == 4


def test_result_state_is_the_broadcast_state_without_rebuilding_it(
    responder: Any, django_assert_num_queries: Any
) -> None:
    incident = make_incident(responder)
    result = commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
    with django_assert_num_queries(0):
        state = result.state
    assert state["status"] == "identified"
    assert state["version"] == 2


def test_result_state_of_a_change_that_changed_nothing_is_read_afresh(responder: Any) -> None:
    incident = make_incident(responder)
    result = commands.incident_update(actor=responder, incident_id=incident.pk, severity="high")
    assert result.events == []
    assert result.state["version"] == 1

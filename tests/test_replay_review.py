"""Replay in the room and the API: the incident as it was after any event, folded from the timeline alone
(the fold itself, `incidents/replay.py`, is also tested in tests/test_replay.py)."""

import random
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.models import AuditEvent, Incident
from incidents.publishing import incident_state
from incidents.replay import ReplayError, state_from_events

Api = Callable[[User | None], APIClient]
COMPARED = ["title", "status", "severity", "summary", "created_at", "resolved_at", "version"]


def _user(ref: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if ref is None else {"id": ref["id"], "username": ref["username"]}


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """The fields the timeline records, users as {id, username} (a role may change later; the id does not)."""
    # The fold names the roles in `roles`; the broadcast state has a key per role.
    roles = state.get("roles") or {name: state[name] for name in Incident.ROLES}
    return {
        **{name: state[name] for name in COMPARED},
        **{name: _user(roles.get(name)) for name in Incident.ROLES},
        "created_by": _user(state["created_by"]),
        "assignees": [_user(u) for u in state["assignees"]],
        "action_items": [
            {"id": i["id"], "title": i["title"], "owner": _user(i["owner"]), "done": i["done"]}
            for i in state["action_items"]
        ],
    }


def timeline_of(incident: Incident) -> list[dict[str, Any]]:
    return [event.as_data() for event in AuditEvent.objects.filter(incident=incident).order_by("seq")]


@pytest.mark.django_db
def test_replaying_every_event_of_a_long_incident_matches_the_state_each_change_left(
    make_user: Callable[..., User],
) -> None:
    """Every command's broadcast state is what folding the timeline up to its event gives; the last is now."""
    rng = random.Random(12)  # a fixed mix of every kind of change, reopens included
    people = [make_user("responder", f"r{n}") for n in range(4)]
    actor = people[0]
    incident = commands.incident_create(actor=actor, title="Checkout latency", severity="high").incident
    states: dict[int, dict[str, Any]] = {1: incident_state(incident.pk)}
    items: list[int] = []
    for step in range(240):
        kind = rng.choice(["status", "severity", "summary", "title", "assign", "note", "item", "tick", "owner", "pin"])
        current = Incident.objects.get(pk=incident.pk)
        if current.status == "resolved" and kind not in ("status", "note", "pin"):
            kind = "status"  # a resolved incident changes only after a reopen
        result: commands.CommandResult | None = None
        if kind == "status":
            status = rng.choice(current.allowed_transitions())
            result = commands.incident_change_status(
                actor=actor,
                incident_id=incident.pk,
                status=status,
                resolution=f"resolved at step {step}" if status == "resolved" else None,
            )
        elif kind == "title":
            result = commands.incident_update(actor=actor, incident_id=incident.pk, title=f"Checkout latency {step}")
        elif kind == "severity":
            choices = [s for s in Incident.Severity.values if s != current.severity]
            result = commands.incident_update(actor=actor, incident_id=incident.pk, severity=rng.choice(choices))
        elif kind == "summary":
            result = commands.incident_update(actor=actor, incident_id=incident.pk, summary=f"summary {step}")
        elif kind == "assign":
            result = commands.incident_update(
                actor=actor,
                incident_id=incident.pk,
                commander=rng.choice([None, *people]),
                comms_lead=rng.choice([None, *people]),
                scribe=rng.choice([None, *people]),
                assignees=rng.sample(people, rng.randint(0, 3)),
            )
        elif kind == "note":
            result = commands.incident_add_note(actor=actor, incident_id=incident.pk, body=f"note {step}")
        elif kind == "item" or not items:
            result = commands.action_item_add(
                actor=actor, incident_id=incident.pk, title=f"item {step}", owner=rng.choice([None, *people])
            )
            items.append(result.item.pk)  # type: ignore[union-attr]
        elif kind == "tick":
            item = rng.choice(items)
            done = not Incident.objects.get(pk=incident.pk).action_items.get(pk=item).done
            result = commands.action_item_update(actor=actor, incident_id=incident.pk, item_id=item, done=done)
        elif kind == "owner":
            result = commands.action_item_update(
                actor=actor, incident_id=incident.pk, item_id=rng.choice(items), owner=rng.choice(people)
            )
        else:
            seq = rng.randint(1, current.version)
            target = AuditEvent.objects.get(incident=incident, seq=seq)
            if target.type not in ("event_pinned", "event_unpinned"):
                pinned = state_from_events(timeline_of(incident)).pinned
                result = commands.event_pin(actor=actor, incident_id=incident.pk, seq=seq, pinned=seq not in pinned)
        for event in result.events if result else []:
            states[event.seq] = event.state_after  # type: ignore[assignment]

    timeline = timeline_of(incident)
    assert len(timeline) > 200
    kinds = {event["type"] for event in timeline}
    assert {"status_change", "assignment", "action_item_updated", "event_pinned", "title_change"} <= kinds
    assert any(e["type"] == "status_change" and e["data"]["from"] == "resolved" for e in timeline)  # a reopen
    for seq, state in states.items():
        assert comparable(state_from_events(timeline[:seq]).as_dict()) == comparable(state), f"after event {seq}"
    now = incident_state(incident.pk)
    assert comparable(state_from_events(timeline).as_dict()) == comparable(now)


def test_a_timeline_must_start_with_its_opening_and_have_no_gaps() -> None:
    opened = {"seq": 1, "type": "incident_created", "actor": {"id": 1, "username": "a"}, "at": "t", "data": {}}
    opened["data"] = {"title": "t", "severity": "low", "summary": ""}
    note = {"seq": 3, "type": "note", "actor": opened["actor"], "at": "t", "data": {"body": "x"}}
    with pytest.raises(ReplayError, match="starts with incident_created"):
        state_from_events([note])
    with pytest.raises(ReplayError, match="does not follow"):
        state_from_events([opened, note])
    with pytest.raises(ReplayError, match="no events"):
        state_from_events([])


def test_pins_fold_into_the_pinned_set() -> None:
    actor = {"id": 1, "username": "a"}
    opening = {"seq": 1, "type": "incident_created"}
    events = [
        {"seq": 1, "type": "incident_created", "actor": actor, "at": "t1", "data": {"title": "t", "severity": "low"}},
        {"seq": 2, "type": "event_pinned", "actor": actor, "at": "t2", "data": opening},
        {"seq": 3, "type": "note", "actor": actor, "at": "t3", "data": {"body": "x"}},
        {"seq": 4, "type": "event_pinned", "actor": actor, "at": "t4", "data": {"seq": 3, "type": "note"}},
        {
            "seq": 5,
            "type": "event_unpinned",
            "actor": actor,
            "at": "t5",
            "data": {"seq": 1, "type": "incident_created"},
        },
    ]
    assert state_from_events(events[:4]).pinned == {1, 3}
    assert state_from_events(events).pinned == {3}


# --- The API and the room's slider ---------------------------------------------------------------


@pytest.fixture
def incident(responder: User) -> Incident:
    incident = commands.incident_create(actor=responder, title="Disk full", severity="high", summary="db-3").incident
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
    commands.incident_update(actor=responder, incident_id=incident.pk, severity="critical", summary="db-3 and db-4")
    return incident


@pytest.mark.django_db
def test_the_replay_api_gives_the_state_after_an_event(api: Api, viewer: User, incident: Incident) -> None:
    body = api(viewer).get(f"/api/incidents/{incident.pk}/replay", {"seq": "2"}).json()
    assert body["version"] == 2 and body["incident"] == incident.pk
    assert (body["status"], body["severity"], body["summary"]) == ("identified", "high", "db-3")
    body = api(viewer).get(f"/api/incidents/{incident.pk}/replay", {"seq": "4"}).json()
    assert (body["severity"], body["summary"]) == ("critical", "db-3 and db-4")


@pytest.mark.django_db
@pytest.mark.parametrize("seq", ["0", "x", ""])
def test_the_replay_api_refuses_a_seq_that_is_not_one(api: Api, viewer: User, incident: Incident, seq: str) -> None:
    response = api(viewer).get(f"/api/incidents/{incident.pk}/replay", {"seq": seq})
    assert response.status_code == 400
    assert "seq" in response.json()


def test_a_seq_past_the_last_event_is_404(api: Api, viewer: User, incident: Incident) -> None:
    response = api(viewer).get(f"/api/incidents/{incident.pk}/replay", {"seq": "5"})
    assert response.status_code == 404
    assert response.json() == {"detail": "There is no event 5; the timeline has 4.", "code": "not_found"}


@pytest.mark.django_db
def test_the_replay_of_an_unknown_incident_is_404(api: Api, viewer: User) -> None:
    assert api(viewer).get("/api/incidents/999999/replay", {"seq": "1"}).status_code == 404
    client = Client()
    client.force_login(viewer)
    assert client.get(reverse("incident-replay", args=[999999]), {"seq": "1"}).status_code == 404


@pytest.mark.django_db
def test_the_room_slider_shows_the_incident_after_the_chosen_event(viewer: User, incident: Incident) -> None:
    client = Client()
    client.force_login(viewer)
    room = client.get(reverse("incident-room", args=[incident.pk])).content.decode()
    assert 'id="replay-seq" name="seq" min="1" max="4" value="4"' in room
    page = client.get(reverse("incident-replay", args=[incident.pk]), {"seq": "2"}).content.decode()
    assert "After event 2 of 4" in page and "investigating → identified" in page
    assert '<span class="status st-identified">Identified</span>' in page
    assert '<span class="badge sev-high">High</span>' in page and "db-3" in page
    response = client.get(reverse("incident-replay", args=[incident.pk]), {"seq": "9"})
    assert response.status_code == 404
    assert "There is no event 9; the timeline has 4." in response.content.decode()

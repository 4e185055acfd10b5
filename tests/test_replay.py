"""`state_from_events`: an incident's state folded from its events alone, with no database."""

from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import User
from incidents import commands, publishing
from incidents.models import AuditEvent
from incidents.replay import ReplayError, apply_event, state_from_events

ALICE = {"id": 1, "username": "alice"}
BOB = {"id": 2, "username": "bob"}
CAROL = {"id": 3, "username": "carol"}


def timeline(*steps: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    created = ("incident_created", {"title": "Disk full", "severity": "high", "summary": "db01"})
    return [
        {"seq": seq, "type": kind, "actor": ALICE, "at": f"2026-11-26T17:00:{seq:02d}Z", "data": data}
        for seq, (kind, data) in enumerate([created, *steps], start=1)
    ]


def test_a_new_incident_is_what_incident_created_says() -> None:
    state = state_from_events(timeline())
    assert state.as_dict() == {
        "title": "Disk full",
        "status": "investigating",
        "severity": "high",
        "summary": "db01",
        "commander": None,
        "assignees": [],
        "created_by": ALICE,
        "created_at": "2026-11-26T17:00:01Z",
        "resolved_at": None,
        "action_items": [],
        "roles": {"commander": None},
        "version": 1,
    }


def test_each_change_event_sets_its_field() -> None:
    state = state_from_events(
        timeline(
            ("status_change", {"from": "investigating", "to": "identified"}),
            ("severity_change", {"from": "high", "to": "critical"}),
            ("summary_change", {"from": "db01", "to": "db01 and db02"}),
            ("title_change", {"from": "Disk full", "to": "Disks full"}),
            ("note", {"body": "notes change no field"}),
        )
    )
    assert (state.status, state.severity, state.summary, state.title) == (
        "identified",
        "critical",
        "db01 and db02",
        "Disks full",
    )
    assert state.version == 6


def test_assignment_moves_the_commander_and_adds_and_removes_assignees_in_id_order() -> None:
    state = state_from_events(
        timeline(
            (
                "assignment",
                {"commander": {"from": None, "to": BOB}, "assignees": {"added": [CAROL, ALICE], "removed": []}},
            ),
            ("assignment", {"assignees": {"added": [BOB], "removed": [CAROL]}}),
            ("assignment", {"commander": {"from": BOB, "to": None}}),
        )
    )
    assert state.commander is None
    assert list(state.assignees) == [ALICE, BOB]


def test_any_incident_role_an_assignment_sets_is_kept_by_name() -> None:
    state = state_from_events(
        timeline(
            ("assignment", {"commander": {"from": None, "to": BOB}, "scribe": {"from": None, "to": CAROL}}),
            ("assignment", {"communications_lead": {"from": None, "to": ALICE}, "scribe": {"from": CAROL, "to": None}}),
        )
    )
    assert state.roles == {"commander": BOB, "scribe": None, "communications_lead": ALICE}
    assert state.commander == BOB


def test_action_items_are_kept_as_their_latest_event_recorded_them() -> None:
    first = {"id": 7, "title": "Rotate keys", "owner": None, "done": False}
    second = {"id": 5, "title": "Add alert", "owner": BOB, "done": False}
    state = state_from_events(
        timeline(
            ("action_item_added", {"item": first}),
            ("action_item_added", {"item": second}),
            ("action_item_updated", {"item": {**first, "done": True}, "changed": ["done"]}),
        )
    )
    assert [dict(item) for item in state.action_items] == [second, {**first, "done": True}]


def test_resolving_sets_resolved_at_and_a_reopen_clears_it() -> None:
    resolved = state_from_events(timeline(("status_change", {"from": "investigating", "to": "resolved"})))
    assert (resolved.status, resolved.resolved_at) == ("resolved", "2026-11-26T17:00:02Z")
    reopened = apply_event(
        resolved,
        {
            "seq": 3,
            "type": "status_change",
            "actor": ALICE,
            "at": "x",
            "data": {"from": "resolved", "to": "investigating"},
        },
    )
    assert (reopened.status, reopened.resolved_at) == ("investigating", None)
    assert resolved.status == "resolved"  # the fold never changes a state it was given


def test_an_event_type_it_does_not_know_still_counts_for_the_version() -> None:
    state = state_from_events(timeline(("pin", {"seq": 1})))
    assert (state.version, state.status, state.title) == (2, "investigating", "Disk full")


def test_folding_stops_where_the_events_stop() -> None:
    events = timeline(("status_change", {"from": "investigating", "to": "identified"}), ("note", {"body": "x"}))
    assert state_from_events(events[:1]).status == "investigating"
    assert state_from_events(events[:2]).status == "identified"


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "no events"),
        ([{"seq": 1, "type": "note", "actor": ALICE, "at": "x", "data": {"body": "x"}}], "starts with"),
        ([{**timeline()[0], "seq": 2}], "starts with"),
        ([timeline()[0], {**timeline(("note", {"body": "x"}))[1], "seq": 3}], "seq 3 does not follow 1"),
        ([timeline()[0], {**timeline()[0], "seq": 2}], "second incident_created"),
    ],
    ids=["empty", "no-created", "not-from-1", "gap", "created-twice"],
)
def test_what_cannot_be_a_timeline_is_refused(events: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ReplayError, match=message):
        state_from_events(events)


@pytest.mark.django_db
def test_the_fold_of_a_real_timeline_is_the_state_the_server_broadcasts(
    responder: User, make_user: Callable[..., User]
) -> None:
    other = make_user("responder", "other")
    incident = commands.incident_create(actor=responder, title="Checkout", severity="high", summary="5xx").incident
    pk = incident.pk
    commands.incident_update(actor=responder, incident_id=pk, severity="critical", commander=other)
    commands.incident_update(actor=responder, incident_id=pk, assignees=[other, responder], summary="5xx on pay")
    item = commands.action_item_add(actor=responder, incident_id=pk, title="Roll back", owner=other).item
    assert item is not None
    commands.action_item_update(actor=responder, incident_id=pk, item_id=item.pk, done=True)
    commands.incident_change_status(actor=responder, incident_id=pk, status="resolved", resolution="Fixed.")

    folded = state_from_events(e.as_data() for e in AuditEvent.objects.filter(incident=incident).order_by("seq"))
    served = publishing.incident_state(pk)

    def ids(users: Any) -> list[int]:
        return [user["id"] for user in users]

    assert (folded.title, folded.status, folded.severity, folded.summary, folded.version) == (
        served["title"],
        served["status"],
        served["severity"],
        served["summary"],
        served["version"],
    )
    assert folded.commander is not None and served["commander"] is not None
    assert folded.commander["id"] == served["commander"]["id"] == other.pk
    assert ids(folded.assignees) == sorted(ids(served["assignees"])) == sorted([other.pk, responder.pk])
    assert folded.created_by["id"] == served["created_by"]["id"]
    assert [(i["id"], i["title"], i["owner"]["id"], i["done"]) for i in folded.action_items] == [
        (i["id"], i["title"], i["owner"]["id"], i["done"]) for i in served["action_items"]
    ]

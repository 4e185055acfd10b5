"""Changing incidents over the socket: the same commands, rules and idempotency as REST, and the room hears of it."""

import asyncio
from typing import Any

import pytest

from accounts.models import User
from incidents.models import ActionItem, Incident
from tests.ws_support import Connect, create_incident, run_sync, snapshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def incident(responder: User) -> Incident:
    return create_incident(responder)


@pytest.fixture
def item(incident: Incident, responder: User) -> ActionItem:
    from incidents import commands

    result = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Rotate keys")
    assert result.item is not None
    return result.item


def every_command(incident: Incident, item: ActionItem, viewer: User) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("incident:updateStatus", {"incident": incident.pk, "status": "identified"}),
        ("incident:update", {"incident": incident.pk, "severity": "critical", "commander": None}),
        ("incident:addNote", {"incident": incident.pk, "body": "Rolled back"}),
        ("incident:addActionItem", {"incident": incident.pk, "title": "Write postmortem"}),
        ("incident:updateActionItem", {"incident": incident.pk, "item": item.pk, "done": True}),
    ]


@pytest.mark.parametrize("index", range(5))
async def test_a_viewer_is_forbidden_every_command_and_nothing_changes(
    connect: Connect, users: dict[str, User], incident: Incident, item: ActionItem, index: int
) -> None:
    kind, fields = every_command(incident, item, users["viewer"])[index]
    watcher = await connect(users["responder"])
    await watcher.ok("incident:join", incident=incident.pk)
    socket = await connect(users["viewer"])
    before = await snapshot(incident.pk)
    await socket.error(kind, "forbidden", **fields)
    assert await snapshot(incident.pk) == before
    # The room's next update is the next accepted change: nothing was broadcast for the refused one.
    await watcher.ok("incident:addNote", incident=incident.pk, body="witness")
    update = await watcher.push("incident:updated")
    assert (update["seq"], update["event"]["data"]) == (before[0] + 1, {"body": "witness"})


@pytest.mark.parametrize("role", ["responder", "admin"])
@pytest.mark.parametrize("index", range(5))
async def test_responders_and_admins_run_every_command_and_the_room_hears_it(
    connect: Connect, users: dict[str, User], incident: Incident, item: ActionItem, role: str, index: int
) -> None:
    kind, fields = every_command(incident, item, users["viewer"])[index]
    watcher = await connect(users["viewer"])
    await watcher.ok("incident:join", incident=incident.pk)
    socket = await connect(users[role])
    version, events, _ = await snapshot(incident.pk)
    ack = await socket.ok(kind, **fields)
    new_seqs = list(range(events + 1, events + 1 + len(ack["seqs"])))
    assert ack["seqs"] == new_seqs and ack["seqs"]
    assert ack["incident"] == incident.pk
    assert ack["version"] == ack["state"]["version"] == version + len(new_seqs)
    assert [event["seq"] for event in ack["events"]] == new_seqs
    updates = await watcher.pushes("incident:updated", len(new_seqs))
    assert [u["seq"] for u in updates] == new_seqs
    assert updates[-1]["state"] == ack["state"]
    assert updates[-1]["event"]["actor"]["id"] == users[role].pk


async def test_update_status_ack_carries_the_new_state(connect: Connect, responder: User, incident: Incident) -> None:
    socket = await connect(responder)
    ack = await socket.ok(
        "incident:updateStatus", incident=incident.pk, status="resolved", version=1, resolution="Rolled back."
    )
    assert ack["state"]["status"] == "resolved"
    assert ack["state"]["resolved_at"] is not None
    assert ack["events"][0]["data"] == {"from": "investigating", "to": "resolved", "resolution": "Rolled back."}


async def test_update_with_several_fields_appends_one_event_per_kind(
    connect: Connect, responder: User, viewer: User, incident: Incident
) -> None:
    socket = await connect(responder)
    ack = await socket.ok(
        "incident:update", incident=incident.pk, severity="low", summary="DNS", assignees=[viewer.pk, responder.pk]
    )
    assert [e["type"] for e in ack["events"]] == ["severity_change", "summary_change", "assignment"]
    assert ack["seq"] == 4
    assert {u["id"] for u in ack["state"]["assignees"]} == {viewer.pk, responder.pk}


async def test_action_item_acks_carry_the_item(connect: Connect, responder: User, incident: Incident) -> None:
    socket = await connect(responder)
    added = await socket.ok("incident:addActionItem", incident=incident.pk, title="Page DBA", owner=responder.pk)
    assert added["item"]["title"] == "Page DBA"
    assert added["item"]["owner"]["id"] == responder.pk
    updated = await socket.ok("incident:updateActionItem", incident=incident.pk, item=added["item"]["id"], done=True)
    assert updated["item"]["done"] is True
    assert updated["events"][0]["data"]["changed"] == ["done"]


async def test_moving_to_the_current_status_is_an_invalid_transition(
    connect: Connect, responder: User, incident: Incident
) -> None:
    socket = await connect(responder)
    await socket.error("incident:updateStatus", "invalid_transition", incident=incident.pk, status="investigating")
    assert await snapshot(incident.pk) == (1, 1, "investigating")


async def test_a_stale_version_is_a_conflict_carrying_the_current_version(
    connect: Connect, responder: User, incident: Incident
) -> None:
    socket = await connect(responder)
    await socket.ok("incident:addNote", incident=incident.pk, body="first")
    reply = await socket.error(
        "incident:updateStatus", "conflict", incident=incident.pk, status="monitoring", version=1
    )
    assert reply["version"] == 2
    assert await snapshot(incident.pk) == (2, 2, "investigating")


async def test_commands_on_unknown_incidents_and_items_are_not_found(
    connect: Connect, responder: User, incident: Incident
) -> None:
    socket = await connect(responder)
    await socket.error("incident:addNote", "not_found", incident=987654, body="hello")
    await socket.error("incident:updateActionItem", "not_found", incident=incident.pk, item=987654, done=True)


@pytest.mark.parametrize(
    ("kind", "fields", "field"),
    [
        ("incident:updateStatus", {"status": "on_fire"}, "status"),
        ("incident:updateStatus", {}, "status"),
        ("incident:updateStatus", {"status": "identified", "version": "two"}, "version"),
        ("incident:update", {"severity": "apocalyptic"}, "severity"),
        ("incident:update", {"commander": 987654}, "commander"),
        ("incident:update", {"assignees": "everyone"}, "assignees"),
        ("incident:update", {"sevrity": "low"}, "sevrity"),
        ("incident:addNote", {"body": ""}, "body"),
        ("incident:addNote", {"body": 42, "item": 3}, "item"),
        ("incident:addActionItem", {"title": ["a"]}, "title"),
        ("incident:updateActionItem", {"done": True}, "item"),
        ("incident:updateActionItem", {"item": "1", "done": True}, "item"),
    ],
)
async def test_wrong_field_types_are_invalid_with_field_errors(
    connect: Connect, responder: User, incident: Incident, kind: str, fields: dict[str, Any], field: str
) -> None:
    socket = await connect(responder)
    reply = await socket.error(kind, "invalid", incident=incident.pk, **fields)
    assert field in reply["fields"]
    assert await snapshot(incident.pk) == (1, 1, "investigating")


async def test_a_rest_change_reaches_a_joined_socket(
    connect: Connect, api: Any, responder: User, viewer: User, incident: Incident
) -> None:
    socket = await connect(viewer)
    await socket.ok("incident:join", incident=incident.pk)
    response = await run_sync(
        lambda: api(responder).post(f"/api/incidents/{incident.pk}/status", {"status": "monitoring"})
    )
    assert response.status_code == 200
    update = await socket.push("incident:updated")
    assert (update["incident"], update["seq"], update["version"]) == (incident.pk, 2, 2)
    assert update["event"]["type"] == "status_change"
    assert update["state"]["status"] == "monitoring"


async def test_an_admin_action_reaches_a_joined_socket(
    connect: Connect, admin: User, viewer: User, incident: Incident
) -> None:
    from django.test import Client

    socket = await connect(viewer)
    await socket.ok("incident:join", incident=incident.pk)

    def resolve_in_the_admin() -> int:
        client = Client()
        client.force_login(admin)
        response = client.post(
            "/admin/incidents/incident/",
            {
                "action": "resolve_selected",
                "_selected_action": [incident.pk],
                "apply": "Resolve",
                "resolution": "Done.",
            },
        )
        return response.status_code

    assert await run_sync(resolve_in_the_admin) == 302
    update = await socket.push("incident:updated")
    assert (update["seq"], update["event"]["type"], update["event"]["actor"]["id"]) == (2, "status_change", admin.pk)
    assert update["state"]["status"] == "resolved"


# --- Idempotency keys -------------------------------------------------------------


async def test_the_same_key_twice_runs_once_and_replays_the_first_outcome(
    connect: Connect, responder: User, incident: Incident
) -> None:
    socket = await connect(responder)
    first = await socket.ok("incident:addNote", incident=incident.pk, body="Paged on-call", key="note-1")
    again = await socket.ok("incident:addNote", incident=incident.pk, body="Paged on-call", key="note-1")
    assert again.pop("replayed") is True
    assert {**again, "id": first["id"]} == first
    assert await snapshot(incident.pk) == (2, 2, "investigating")


async def test_the_same_key_on_two_sockets_at_once_appends_one_event(
    connect: Connect, responder: User, incident: Incident
) -> None:
    """Two tabs retrying one command. (In one process the database thread serialises them;
    tests/test_scale_out.py races the same key through two server processes.)"""
    one, two = await connect(responder), await connect(responder)
    fields = {"incident": incident.pk, "status": "identified", "key": "status-7"}
    ids = await asyncio.gather(one.send("incident:updateStatus", **fields), two.send("incident:updateStatus", **fields))
    acks = await asyncio.gather(one.reply(ids[0]), two.reply(ids[1]))
    assert [a["type"] for a in acks] == ["ack", "ack"]
    assert acks[0]["seq"] == acks[1]["seq"] == 2
    assert sorted(bool(a.get("replayed")) for a in acks) == [False, True]
    assert await snapshot(incident.pk) == (2, 2, "identified")


async def test_a_key_reused_for_other_content_is_invalid(connect: Connect, responder: User, incident: Incident) -> None:
    socket = await connect(responder)
    await socket.ok("incident:addNote", incident=incident.pk, body="one", key="k")
    reply = await socket.error("incident:addNote", "invalid", incident=incident.pk, body="two", key="k")
    assert "key" in reply["fields"]
    assert await snapshot(incident.pk) == (2, 2, "investigating")


async def test_a_key_used_over_rest_is_not_a_websocket_replay(
    connect: Connect, api: Any, responder: User, incident: Incident
) -> None:
    response = await run_sync(
        lambda: api(responder).post(
            f"/api/incidents/{incident.pk}/notes", {"body": "same"}, headers={"Idempotency-Key": "shared"}
        )
    )
    assert response.status_code == 201
    socket = await connect(responder)
    await socket.error("incident:addNote", "invalid", incident=incident.pk, body="same", key="shared")


async def test_a_rejected_keyed_command_leaves_the_key_free(
    connect: Connect, responder: User, incident: Incident
) -> None:
    socket = await connect(responder)
    fields = {"incident": incident.pk, "status": "identified", "key": "s"}
    await socket.error("incident:updateStatus", "conflict", version=9, **fields)
    ack = await socket.ok("incident:updateStatus", **fields)
    assert ack["seq"] == 2 and "replayed" not in ack


async def test_a_key_that_is_not_a_string_is_invalid(connect: Connect, responder: User, incident: Incident) -> None:
    socket = await connect(responder)
    reply = await socket.error("incident:addNote", "invalid", incident=incident.pk, body="x", key=["k"])
    assert "key" in reply["fields"]

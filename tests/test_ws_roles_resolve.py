"""Roles, resolving and renaming over the socket: the same rules as REST, and a refused message changes nothing."""

from typing import Any

import pytest

from accounts.models import User
from incidents import commands
from incidents.models import ActionItem, Incident
from tests.ws_support import Connect, create_incident, run_sync, snapshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def incident(responder: User) -> Incident:
    """An open incident with one action item ("Rotate keys")."""
    incident = create_incident(responder)
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="Rotate keys")
    return incident


@pytest.fixture
def item(incident: Incident) -> ActionItem:
    return ActionItem.objects.get(incident=incident)


@pytest.mark.parametrize("role", ["commander", "comms_lead", "scribe"])
async def test_a_viewer_in_a_role_is_invalid_and_the_room_hears_nothing(
    connect: Connect, responder: User, viewer: User, incident: Incident, role: str
) -> None:
    watcher = await connect(viewer)
    await watcher.ok("incident:join", incident=incident.pk)
    socket = await connect(responder)
    before = await snapshot(incident.pk)
    error = await socket.error("incident:update", "invalid", incident=incident.pk, **{role: viewer.pk})
    assert "viewer" in error["fields"][role][0]
    assert await snapshot(incident.pk) == before
    # The room's next update is the next accepted change: nothing was broadcast for the refused one.
    await socket.ok("incident:addNote", incident=incident.pk, body="witness")
    update = await watcher.push("incident:updated")
    assert (update["seq"], update["event"]["data"]) == (before[0] + 1, {"body": "witness"})


async def test_a_viewer_cannot_own_an_item_over_the_socket(
    connect: Connect, responder: User, viewer: User, incident: Incident, item: ActionItem
) -> None:
    socket = await connect(responder)
    before = await snapshot(incident.pk)
    added = await socket.error("incident:addActionItem", "invalid", incident=incident.pk, title="X", owner=viewer.pk)
    assert "owner" in added["fields"]
    updated = await socket.error(
        "incident:updateActionItem", "invalid", incident=incident.pk, item=item.pk, owner=viewer.pk
    )
    assert "owner" in updated["fields"]
    assert await snapshot(incident.pk) == before


async def test_roles_and_title_change_over_the_socket_and_the_room_hears_them(
    connect: Connect, responder: User, admin: User, viewer: User, incident: Incident
) -> None:
    watcher = await connect(viewer)
    await watcher.ok("incident:join", incident=incident.pk)
    socket = await connect(responder)
    ack = await socket.ok(
        "incident:update", incident=incident.pk, title="Checkout 5xx", comms_lead=admin.pk, scribe=responder.pk
    )
    assert [e["type"] for e in ack["events"]] == ["title_change", "assignment"]
    assert ack["events"][0]["data"] == {"from": "Checkout errors", "to": "Checkout 5xx"}
    assert set(ack["events"][1]["data"]) == {"comms_lead", "scribe"}
    assert (ack["state"]["title"], ack["state"]["comms_lead"]["id"], ack["state"]["scribe"]["id"]) == (
        "Checkout 5xx",
        admin.pk,
        responder.pk,
    )
    pushed = [await watcher.push("incident:updated") for _ in range(2)]
    assert [p["event"]["type"] for p in pushed] == ["title_change", "assignment"]
    assert pushed[-1]["state"]["scribe"]["id"] == responder.pk


@pytest.mark.parametrize("title", ["", "   ", "\u200b\u200b", "x" * 201, 7, None])
async def test_a_bad_title_is_invalid(connect: Connect, responder: User, incident: Incident, title: Any) -> None:
    socket = await connect(responder)
    before = await snapshot(incident.pk)
    error = await socket.error("incident:update", "invalid", incident=incident.pk, title=title)
    assert "title" in error["fields"]
    assert await snapshot(incident.pk) == before


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "resolved"},
        {"status": "resolved", "resolution": ""},
        {"status": "resolved", "resolution": "  "},
        {"status": "resolved", "resolution": ["Fixed"]},
        {"status": "identified", "resolution": "Fixed."},
    ],
)
async def test_resolve_needs_a_resolution_and_only_resolve_takes_one(
    connect: Connect, responder: User, incident: Incident, fields: dict[str, Any]
) -> None:
    socket = await connect(responder)
    before = await snapshot(incident.pk)
    error = await socket.error("incident:updateStatus", "invalid", incident=incident.pk, **fields)
    assert "resolution" in error["fields"]
    assert await snapshot(incident.pk) == before


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("incident:update", {"severity": "low"}),
        ("incident:update", {"title": "Renamed"}),
        ("incident:update", {"commander": None}),
        ("incident:addActionItem", {"title": "Later"}),
        ("incident:updateActionItem", {"done": True}),
    ],
)
async def test_a_resolved_incident_is_read_only_over_the_socket(
    connect: Connect, responder: User, incident: Incident, item: ActionItem, kind: str, fields: dict[str, Any]
) -> None:
    await run_sync(
        commands.incident_change_status, actor=responder, incident_id=incident.pk, status="resolved", resolution="Ok."
    )
    socket = await connect(responder)
    before = await snapshot(incident.pk)
    extra = {"item": item.pk} if kind == "incident:updateActionItem" else {}
    error = await socket.error(kind, "invalid_transition", incident=incident.pk, **extra, **fields)
    assert "reopen" in error["message"]
    assert await snapshot(incident.pk) == before
    # Notes still go in; a reopen makes it editable again.
    await socket.ok("incident:addNote", incident=incident.pk, body="Postmortem on Friday")
    await socket.ok("incident:updateStatus", incident=incident.pk, status="investigating")
    await socket.ok(kind, incident=incident.pk, **extra, **fields)

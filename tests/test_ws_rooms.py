"""Rooms: joining, catching up after a reconnect, seq-ordered delivery with gaps filled, and the list feed."""

from typing import Any

import pytest
from channels.layers import get_channel_layer

from accounts.models import User
from incidents import commands, publishing
from incidents.models import Incident
from realtime.actions import JOIN_HISTORY
from tests.ws_support import Connect, acreate_incident, create_incident, run_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def incident(responder: User) -> Incident:
    return create_incident(responder)


def add_notes(actor: User, incident_id: int, *bodies: str) -> None:
    for body in bodies:
        commands.incident_add_note(actor=actor, incident_id=incident_id, body=body)


async def test_join_acks_state_viewers_focus_and_the_recent_history(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    await run_sync(add_notes, responder, incident.pk, "a", "b")
    socket = await connect(viewer)
    ack = await socket.ok("incident:join", incident=incident.pk)
    assert ack["incident"] == incident.pk
    assert ack["state"]["id"] == incident.pk and ack["state"]["version"] == ack["version"] == 3
    assert ack["viewers"] == [viewer.as_ref()]
    assert ack["focus"] == []
    assert [e["seq"] for e in ack["events"]] == [1, 2, 3]  # no `after`: the newest history, oldest first
    assert ack["events"][0]["type"] == "incident_created"


async def test_join_without_after_returns_at_most_the_history_length(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    await run_sync(add_notes, responder, incident.pk, *[f"n{i}" for i in range(JOIN_HISTORY + 4)])
    socket = await connect(viewer)
    ack = await socket.ok("incident:join", incident=incident.pk)
    seqs = [e["seq"] for e in ack["events"]]
    assert seqs == list(range(ack["version"] - JOIN_HISTORY + 1, ack["version"] + 1))


async def test_join_with_after_returns_every_later_event(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    await run_sync(add_notes, responder, incident.pk, "a", "b", "c")
    socket = await connect(viewer)
    assert [e["seq"] for e in (await socket.ok("incident:join", incident=incident.pk, after=2))["events"]] == [3, 4]
    assert (await socket.ok("incident:join", incident=incident.pk, after=4))["events"] == []


async def test_a_reconnecting_client_gets_exactly_what_it_missed_in_order(
    connect: Connect, api: Any, viewer: User, responder: User, incident: Incident
) -> None:
    first = await connect(viewer)
    seen = (await first.ok("incident:join", incident=incident.pk))["version"]
    await first.close()

    client = await run_sync(api, responder)
    for path, body in [
        ("status", {"status": "identified"}),
        ("notes", {"body": "DNS"}),
        ("status", {"status": "monitoring"}),
    ]:
        response = await run_sync(client.post, f"/api/incidents/{incident.pk}/{path}", body)
        assert response.status_code in (200, 201)

    second = await connect(viewer)
    ack = await second.ok("incident:join", incident=incident.pk, after=seen)
    assert [(e["seq"], e["type"]) for e in ack["events"]] == [
        (2, "status_change"),
        (3, "note"),
        (4, "status_change"),
    ]
    assert ack["state"]["status"] == "monitoring"
    # Nothing already in the ack arrives again: the next update the socket gets is the next change.
    await run_sync(add_notes, responder, incident.pk, "witness")
    assert (await second.push("incident:updated"))["seq"] == 5


async def test_leave_stops_updates_and_leaving_twice_is_invalid(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    socket = await connect(viewer)
    await socket.ok("incident:join", incident=incident.pk)
    assert (await socket.ok("incident:leave", incident=incident.pk))["incident"] == incident.pk
    other = await acreate_incident(responder, "DNS flapping")
    await socket.ok("incident:join", incident=other.pk)
    await run_sync(add_notes, responder, incident.pk, "after leaving")
    # The witness: a change to a room it is still in, made after, reaches it through the same hub in order.
    await run_sync(add_notes, responder, other.pk, "witness")
    assert (await socket.push("incident:updated"))["incident"] == other.pk
    assert [m for m in socket.inbox if m["type"] == "incident:updated"] == []
    await socket.error("incident:leave", "invalid", incident=incident.pk)


async def test_every_member_receives_updates_in_seq_order_once(
    connect: Connect, viewer: User, responder: User, admin: User, incident: Incident
) -> None:
    watcher = await connect(viewer)
    await watcher.ok("incident:join", incident=incident.pk)
    one, two = await connect(responder), await connect(admin)
    for index in range(4):
        await one.ok("incident:addNote", incident=incident.pk, body=f"r{index}")
        await two.ok("incident:addNote", incident=incident.pk, body=f"a{index}")
    updates = await watcher.pushes("incident:updated", 8)
    assert [u["seq"] for u in updates] == list(range(2, 10))
    assert [u["version"] for u in updates] == list(range(2, 10))
    await one.ok("incident:addNote", incident=incident.pk, body="witness")
    assert (await watcher.push("incident:updated"))["seq"] == 10  # none of the eight came twice


async def test_a_gap_is_filled_from_the_database_and_late_duplicates_are_dropped(
    connect: Connect, viewer: User, responder: User, incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulates the channel layer's failure modes: three broadcasts are held back (as a dropped or
    racing on_commit send would be), then the newest is delivered first and the others late."""
    socket = await connect(viewer)
    await socket.ok("incident:join", incident=incident.pk)
    held: list[list[tuple[str, dict[str, Any]]]] = []
    monkeypatch.setattr(publishing, "send", held.append)
    await run_sync(add_notes, responder, incident.pk, "two", "three", "four")
    monkeypatch.undo()
    updates = {message["seq"]: message for batch in held for group, message in batch if group.startswith("incident.")}
    assert sorted(updates) == [2, 3, 4]
    layer = get_channel_layer()
    assert layer is not None

    await layer.group_send(publishing.incident_group(incident.pk), updates[4])
    delivered = await socket.pushes("incident:updated", 3)
    assert [m["seq"] for m in delivered] == [2, 3, 4]
    assert [m["event"]["data"]["body"] for m in delivered] == ["two", "three", "four"]
    assert [m.get("gap_filled", False) for m in delivered] == [True, True, False]
    assert all(m["state"]["version"] == 4 for m in delivered)  # gap-filled events carry the newest state

    await layer.group_send(publishing.incident_group(incident.pk), updates[2])
    await layer.group_send(publishing.incident_group(incident.pk), updates[3])
    await run_sync(add_notes, responder, incident.pk, "five")
    after = await socket.push("incident:updated")
    assert after["seq"] == 5  # the late 2 and 3 were dropped, not sent twice
    await run_sync(add_notes, responder, incident.pk, "witness")
    assert (await socket.push("incident:updated"))["seq"] == 6  # and 5 once


async def test_incidents_subscribe_sees_creations_and_list_changes(
    connect: Connect, api: Any, viewer: User, responder: User
) -> None:
    socket = await connect(viewer)
    await socket.ok("incidents:subscribe")
    response = await run_sync(
        lambda: api(responder).post("/api/incidents", {"title": "Payments down", "severity": "critical"})
    )
    assert response.status_code == 201
    created = await socket.push("incident:created")
    incident_id = response.json()["id"]
    assert (created["id"], created["incident"], created["title"], created["status"]) == (
        incident_id,
        incident_id,
        "Payments down",
        "investigating",
    )
    await run_sync(
        commands.incident_change_status,
        actor=responder,
        incident_id=incident_id,
        status="resolved",
        expected_version=1,
        resolution="Fixed.",
    )
    changed = await socket.push("incident:listChanged")
    assert (changed["id"], changed["status"], changed["version"]) == (incident_id, "resolved", 2)
    assert "summary" not in changed  # a list row, not the whole incident


async def test_list_updates_stop_after_unsubscribe_and_need_no_subscription_to_rooms(
    connect: Connect, viewer: User, responder: User
) -> None:
    socket = await connect(viewer)
    await socket.ok("incidents:subscribe")
    await socket.ok("incidents:unsubscribe")
    incident = await acreate_incident(responder)
    await socket.ok("incident:join", incident=incident.pk)
    await run_sync(add_notes, responder, incident.pk, "x", "witness")
    # The witness (the second note's update) comes after the creation and the first note's list change.
    assert (await socket.push("incident:updated", seq=3))["event"]["data"] == {"body": "witness"}
    assert [m["type"] for m in socket.inbox if m["type"].startswith("incident:")] == ["incident:updated"]


async def test_a_join_after_a_long_absence_is_capped_and_says_more_remain(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    from realtime.actions import JOIN_EVENTS_LIMIT

    await run_sync(add_notes, responder, incident.pk, *[f"n{n}" for n in range(JOIN_EVENTS_LIMIT + 2)])
    socket = await connect(viewer)
    first = await socket.ok("incident:join", incident=incident.pk, after=0)
    assert (len(first["events"]), first["more"]) == (JOIN_EVENTS_LIMIT, True)
    assert [e["seq"] for e in first["events"]] == list(range(1, JOIN_EVENTS_LIMIT + 1))
    rest = await socket.ok("incident:join", incident=incident.pk, after=first["events"][-1]["seq"])
    assert ([e["seq"] for e in rest["events"]], rest["more"]) == (
        [JOIN_EVENTS_LIMIT + 1, JOIN_EVENTS_LIMIT + 2, JOIN_EVENTS_LIMIT + 3],
        False,
    )
    assert rest["version"] == JOIN_EVENTS_LIMIT + 3


async def test_the_process_not_each_socket_is_in_the_rooms_group(
    connect: Connect, make_user: Any, responder: User, incident: Incident
) -> None:
    """Fan-out once per process: five sockets in a room, one member of its channel-layer group."""
    from django.conf import settings

    from incidents.publishing import incident_group
    from realtime.hub import get_hub

    sockets = [await connect(await run_sync(make_user, "viewer", f"member{n}")) for n in range(5)]
    for socket in sockets:
        await socket.ok("incident:join", incident=incident.pk)
    hub = get_hub()
    group = incident_group(incident.pk)
    if settings.REDIS_URL:
        layer: Any = hub.layer
        async with layer.connection(layer.consistent_hash(group)) as redis:
            members = [m.decode() for m in await redis.zrange(layer._group_key(group), 0, -1)]
    else:
        members = list(get_channel_layer().groups[group])
    assert members == [hub.channel_name]
    # And a change still reaches every one of them.
    await run_sync(add_notes, responder, incident.pk, "one frame, five sockets")
    for socket in sockets:
        assert (await socket.push("incident:updated"))["seq"] == 2

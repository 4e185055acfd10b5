"""The incident list's "viewers now": who is in each room, in the subscribe ack and as `incident:viewers` pushes.

Runs in both passes: with the in-memory store and layer, and with Redis.
"""

import asyncio
from typing import Any

import pytest
from django.conf import LazySettings

from accounts.models import User
from incidents.models import Incident
from incidents.views import LIST_LIMIT
from realtime.presence import get_presence_store
from realtime.protocol import MAX_SUBSCRIBED_INCIDENTS
from tests.ws_support import Connect, Socket, acreate_incident, create_incident, run_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def incident(responder: User) -> Incident:
    return create_incident(responder)


def test_every_row_the_web_list_shows_fits_in_one_subscribe() -> None:
    assert MAX_SUBSCRIBED_INCIDENTS >= LIST_LIMIT


async def test_subscribe_with_incidents_acks_the_distinct_viewers_of_each(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    empty = await acreate_incident(responder, title="Quiet one", severity="low")
    for user in (viewer, viewer, responder):  # the viewer with two tabs is listed once
        await (await connect(user)).ok("incident:join", incident=incident.pk)
    listener = await connect(viewer)
    ack = await listener.ok("incidents:subscribe", incidents=[incident.pk, empty.pk, incident.pk])
    assert ack["viewers"] == {
        str(incident.pk): [responder.as_ref(), viewer.as_ref()],  # sorted by username: rae, vic
        str(empty.pk): [],
    }
    assert ack["counts"] == {str(incident.pk): 2, str(empty.pk): 0}


async def subscribed(connect: Connect, user: User) -> Socket:
    """A list subscriber whose viewers push witnesses one: the hub sends each push to its subscribers in
    the order they subscribed, so one made earlier that wrongly stayed on the list has it already."""
    socket = await connect(user)
    await socket.ok("incidents:subscribe")
    return socket


async def test_subscribe_without_incidents_acks_no_viewers(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer)
    assert (await socket.ok("incidents:subscribe"))["viewers"] == {}
    assert (await socket.ok("incidents:subscribe", incidents=[]))["viewers"] == {}


async def test_a_user_joining_and_leaving_a_room_tells_list_subscribers(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    listener = await connect(viewer)
    await listener.ok("incidents:subscribe")

    tab1 = await connect(responder)
    await tab1.ok("incident:join", incident=incident.pk)
    joined = await listener.push("incident:viewers")
    assert (joined["incident"], joined["viewers"], joined["count"]) == (incident.pk, [responder.as_ref()], 1)

    tab2 = await connect(responder)
    await tab2.ok("incident:join", incident=incident.pk)  # a second tab changes nobody's list
    await tab1.close()  # nor does closing one of two

    await tab2.ok("incident:leave", incident=incident.pk)
    left = await listener.push("incident:viewers")  # the next push: none came for the second tab
    assert (left["incident"], left["viewers"], left["count"]) == (incident.pk, [], 0)
    assert left["version"] == joined["version"] + 1  # and no presence change between


async def test_a_connection_swept_out_after_expiry_tells_list_subscribers(
    connect: Connect, viewer: User, responder: User, incident: Incident, settings: LazySettings
) -> None:
    """As in test_presence: an entry written and never refreshed stands for a dead process's connection."""
    settings.PRESENCE_TTL_SECONDS = 1
    settings.PRESENCE_REFRESH_SECONDS = 0.2
    live = await connect(responder)
    await live.ok("incident:join", incident=incident.pk)
    await get_presence_store().join(incident.pk, "conn-of-a-dead-process", viewer.as_ref())
    listener = await connect(viewer)
    ack = await listener.ok("incidents:subscribe", incidents=[incident.pk])
    assert ack["viewers"] == {str(incident.pk): [responder.as_ref(), viewer.as_ref()]}

    swept = await listener.push("incident:viewers", timeout=5, incident=incident.pk, count=1)
    assert swept["viewers"] == [responder.as_ref()]


@pytest.mark.parametrize(
    "value",
    [
        "1",
        7,
        {"1": 1},
        [1, "2"],
        [True],
        [1.5],
        [-1],
        [[1]],
        [None],
        [2**63],
        list(range(MAX_SUBSCRIBED_INCIDENTS + 1)),
    ],
    ids=repr,
)
async def test_bad_incidents_are_invalid_and_do_not_subscribe(
    connect: Connect, viewer: User, responder: User, incident: Incident, value: Any
) -> None:
    socket = await connect(viewer)
    error = await socket.error("incidents:subscribe", "invalid", incidents=value)
    assert list(error["fields"]) == ["incidents"]
    witness = await subscribed(connect, viewer)
    await (await connect(responder)).ok("incident:join", incident=incident.pk)
    await witness.push("incident:viewers")
    assert await socket.settled("incident:viewers") == []  # a rejected message changes nothing


async def test_a_socket_not_subscribed_gets_no_viewer_updates(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    in_room = await connect(viewer)  # in the room (so it hears presence:joined), never subscribed
    await in_room.ok("incident:join", incident=incident.pk)
    unsubscribed = await connect(viewer)
    await unsubscribed.ok("incidents:subscribe")
    await unsubscribed.ok("incidents:unsubscribe")

    witness = await subscribed(connect, viewer)

    await (await connect(responder)).ok("incident:join", incident=incident.pk)
    assert (await in_room.presence("presence:joined", responder.as_ref()))["incident"] == incident.pk
    await witness.push("incident:viewers")
    assert await in_room.settled("incident:viewers") == []
    assert await unsubscribed.settled() == []


async def test_the_list_is_sent_the_first_few_viewers_of_a_big_room_and_the_count(
    connect: Connect, make_user: Any, incident: Incident
) -> None:
    from realtime.hub import LIST_VIEWERS

    people = [await run_sync(make_user, "viewer", f"user{n:02}") for n in range(LIST_VIEWERS + 3)]
    listener = await connect(people[0])
    await listener.ok("incidents:subscribe")
    for person in people:
        await (await connect(person)).ok("incident:join", incident=incident.pk)
    deadline = asyncio.get_running_loop().time() + 5
    while True:  # pushes are coalesced: the last one says where the burst ended
        pushed = await listener.push(
            "incident:viewers", timeout=max(0.01, deadline - asyncio.get_running_loop().time())
        )
        if pushed["count"] == len(people):
            break
    assert pushed["viewers"] == [person.as_ref() for person in people[:LIST_VIEWERS]]
    ack = await listener.ok("incidents:subscribe", incidents=[incident.pk])
    assert (ack["viewers"][str(incident.pk)], ack["counts"][str(incident.pk)]) == (pushed["viewers"], len(people))

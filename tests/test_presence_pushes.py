"""Constant-size presence pushes: versions, coalesced windows, and clients that rebuild the list from them."""

import asyncio
import json
from typing import Any

import pytest

from accounts.models import User
from incidents.models import Incident
from realtime.hub import presence_frames
from tests.ws_support import WAIT, Connect, Socket, create_incident, run_sync

ALICE = {"id": 1, "username": "alice"}
BOB = {"id": 2, "username": "bob"}
CAROL = {"id": 3, "username": "carol"}


def change(user: dict[str, Any], joined: bool, version: int, count: int, focus: bool = False) -> dict[str, Any]:
    return {"user": user, "joined": joined, "version": version, "count": count, "focus": focus}


def test_a_window_becomes_one_frame_per_kind_with_the_newest_version() -> None:
    frames = presence_frames(7, [change(ALICE, True, 11, 1), change(BOB, True, 12, 2), change(CAROL, True, 13, 3)])
    assert frames == [
        {"type": "presence:joined", "incident": 7, "users": [ALICE, BOB, CAROL], "version": 13, "since": 10, "count": 3}
    ]


def test_a_user_who_came_and_went_in_one_window_is_reported_gone() -> None:
    frames = presence_frames(7, [change(ALICE, True, 11, 1), change(BOB, True, 12, 2), change(ALICE, False, 13, 1)])
    joined, left = (next(f for f in frames if f["type"] == kind) for kind in ("presence:joined", "presence:left"))
    assert (left["users"], left["user"], joined["users"]) == ([ALICE], ALICE, [BOB])
    assert {(f["since"], f["version"], f["count"]) for f in frames} == {(10, 13, 1)}


def test_changes_arriving_out_of_order_are_sorted_by_version() -> None:
    frames = presence_frames(7, [change(ALICE, False, 12, 0), change(ALICE, True, 11, 1)])
    assert [(f["type"], f["users"], f["since"], f["version"]) for f in frames] == [("presence:left", [ALICE], 10, 12)]


def test_a_missing_version_makes_the_frame_complete_only_from_after_it() -> None:
    """Version 12 never arrived (lost): a client at 10 must ask for the list; one at 12 may apply."""
    frames = presence_frames(7, [change(ALICE, True, 11, 1), change(BOB, True, 13, 2), change(CAROL, True, 14, 3)])
    assert [(f["users"], f["since"], f["version"]) for f in frames] == [([BOB, CAROL], 12, 14)]


def test_a_user_who_left_with_a_focus_gets_it_cleared() -> None:
    frames = presence_frames(7, [change(ALICE, False, 5, 0, focus=True)])
    assert frames[-1] == {"type": "focus:updated", "incident": 7, "user": ALICE, "section": None}


# --- The hub's windows -----------------------------------------------------------------


class Member:
    """A socket as the hub sees it, keeping what it is sent."""

    def __init__(self, name: str) -> None:
        self.channel_name = name
        self.user_ref: dict[str, Any] = {"id": 99, "username": name}
        self.rooms: dict[int, int] = {}
        self.frames: list[dict[str, Any]] = []

    async def send_frame(self, text: str) -> None:
        self.frames.append(json.loads(text))


@pytest.fixture
def windows_by_hand(settings: Any) -> None:
    """Windows flushed by the test only: their timers never fire while it runs."""
    settings.PRESENCE_WINDOW_SECONDS = 3600


@pytest.mark.usefixtures("windows_by_hand")
async def test_a_window_missing_a_version_waits_for_it_then_sends_one_complete_frame() -> None:
    """Changes made at once on several sockets or processes arrive in any order; no client is sent back for the list."""
    from channels.layers import InMemoryChannelLayer

    from realtime.hub import Hub
    from realtime.presence import MemoryPresenceStore

    hub = Hub(InMemoryChannelLayer(), MemoryPresenceStore())
    member = Member("a")
    await hub.enter(7, member)
    await hub.activate(7, member, 0)
    await hub.on_presence_changed({"incident": 7, "changes": [change(ALICE, True, 11, 1)]})
    await hub._flush_presence(7)  # the first window sets where this room's frames start
    await hub.on_presence_changed({"incident": 7, "changes": [change(CAROL, True, 13, 3)]})
    await hub._flush_presence(7)  # 12 is missing: held
    assert [f["version"] for f in member.frames] == [11]
    await hub.on_presence_changed({"incident": 7, "changes": [change(BOB, True, 12, 2)]})  # late, out of order
    await hub._flush_presence(7)
    assert [(f["users"], f["since"], f["version"], f["count"]) for f in member.frames[1:]] == [
        ([BOB, CAROL], 11, 13, 3)
    ]
    for task in hub.tasks:
        task.cancel()


@pytest.mark.usefixtures("windows_by_hand")
async def test_a_version_that_never_comes_is_given_up_on_and_the_frame_says_where_it_is_complete() -> None:
    from channels.layers import InMemoryChannelLayer

    from realtime.hub import MAX_HELD_WINDOWS, Hub
    from realtime.presence import MemoryPresenceStore

    hub = Hub(InMemoryChannelLayer(), MemoryPresenceStore())
    member = Member("a")
    await hub.enter(7, member)
    await hub.activate(7, member, 0)
    await hub.on_presence_changed({"incident": 7, "changes": [change(ALICE, True, 11, 1)]})
    await hub._flush_presence(7)
    await hub.on_presence_changed({"incident": 7, "changes": [change(CAROL, True, 13, 2)]})  # 12 is lost
    for _ in range(MAX_HELD_WINDOWS + 1):
        await hub._flush_presence(7)
    assert [(f["users"], f["since"], f["version"]) for f in member.frames[1:]] == [([CAROL], 12, 13)]
    for task in hub.tasks:
        task.cancel()


# --- Over the socket ----------------------------------------------------------------


class Viewers:
    """What a client does with presence pushes (as `Presence` in static/js/live.js)."""

    def __init__(self, ack: dict[str, Any]) -> None:
        self.users = {user["id"]: user for user in ack["viewers"]}
        self.version = ack["presence_version"]
        self.refetches = 0

    async def apply(self, socket: Socket, message: dict[str, Any]) -> None:
        if message["version"] < self.version:
            return
        if message["since"] > self.version:
            self.refetches += 1
            reply = await socket.ok("presence:get", incident=message["incident"])
            self.users = {user["id"]: user for user in reply["viewers"]}
            self.version = reply["presence_version"]
            return
        for user in message["users"]:
            if message["type"] == "presence:joined":
                self.users[user["id"]] = user
            else:
                self.users.pop(user["id"], None)
        self.version = message["version"]


@pytest.mark.django_db(transaction=True)
async def test_a_burst_of_joins_is_coalesced_and_every_client_ends_with_the_whole_list(
    connect: Connect, make_user: Any, responder: User
) -> None:
    incident: Incident = await run_sync(create_incident, responder)
    people = [await run_sync(make_user, "viewer", f"person{n:02}") for n in range(20)]
    sockets = [await connect(person) for person in people]
    acks = await asyncio.gather(*[s.ok("incident:join", incident=incident.pk) for s in sockets])
    # The last to join saw everyone; every ack is one consistent picture.
    assert max(ack["count"] for ack in acks) == len(people)
    for ack in acks:
        assert len(ack["viewers"]) == ack["count"]

    final = sorted(person.as_ref()["id"] for person in people)
    loop = asyncio.get_running_loop()
    for socket, ack in zip(sockets, acks, strict=True):
        viewers = Viewers(ack)
        pushes = 0
        deadline = loop.time() + WAIT
        while sorted(viewers.users) != final:
            message = await socket.push("presence:joined", timeout=max(0.01, deadline - loop.time()))
            pushes += 1
            await viewers.apply(socket, message)
        # Far fewer pushes than joins (coalesced), none of them carrying the list.
        assert pushes < len(people) // 2


@pytest.mark.django_db(transaction=True)
async def test_a_client_that_missed_a_push_sees_the_version_jump_and_asks_again(
    connect: Connect, make_user: Any, responder: User, viewer: User
) -> None:
    incident: Incident = await run_sync(create_incident, responder)
    watcher = await connect(viewer)
    ack = await watcher.ok("incident:join", incident=incident.pk)
    viewers = Viewers(ack)
    first, second = await run_sync(make_user, "viewer", "first"), await run_sync(make_user, "viewer", "second")
    await (await connect(first)).ok("incident:join", incident=incident.pk)
    lost = await watcher.presence("presence:joined", first.as_ref())  # never applied: as if lost
    await (await connect(second)).ok("incident:join", incident=incident.pk)
    message = await watcher.presence("presence:joined", second.as_ref())
    assert message["since"] >= lost["version"] > viewers.version
    await viewers.apply(watcher, message)
    assert viewers.refetches == 1
    assert sorted(viewers.users) == sorted([viewer.pk, first.pk, second.pk])


def test_a_frame_after_an_earlier_one_is_complete_from_what_was_sent_before() -> None:
    frames = presence_frames(7, [change(ALICE, True, 12, 2), change(BOB, False, 9, 1)], base=11)
    assert [(f["type"], f["users"], f["since"], f["version"]) for f in frames] == [
        ("presence:joined", [ALICE], 11, 12)  # version 9 was sent before: dropped
    ]

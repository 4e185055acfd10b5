"""Presence and focus: distinct users per room, announced on a user's first and last connection, and expiring.

The store tests run against MemoryPresenceStore everywhere and against
RedisPresenceStore (real Redis) in the production-stack pass. The socket
tests use whichever store settings choose, so they cover both as well.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.conf import LazySettings, settings

from accounts.models import User
from incidents.models import Incident
from realtime.presence import MemoryPresenceStore, PresenceStore, RedisPresenceStore
from tests.ws_support import Connect, create_incident

ALICE: dict[str, Any] = {"id": 1, "username": "alice", "role": "responder", "display_name": "Alice"}
BOB: dict[str, Any] = {"id": 2, "username": "bob", "role": "viewer", "display_name": "bob"}


# --- The store ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PresenceStore]:
    if request.param == "memory":
        yield MemoryPresenceStore(ttl=30)
        return
    redis_store = RedisPresenceStore(ttl=30, prefix=f"{settings.REDIS_PREFIX}:store-test")
    await redis_store.clear()
    yield redis_store
    await redis_store.clear()
    await redis_store.close()


async def test_a_user_joins_with_the_first_connection_and_leaves_with_the_last(store: PresenceStore) -> None:
    assert (await store.join(7, "a1", ALICE)).first
    assert not (await store.join(7, "a2", ALICE)).first  # a second tab
    joined = await store.join(7, "b1", BOB)
    assert joined.first and joined.viewers == [ALICE, BOB]
    assert await store.leave(7, "a1") is None
    assert await store.viewers(7) == [ALICE, BOB]
    left = await store.leave(7, "a2")
    assert left is not None and left.user == ALICE
    assert await store.viewers(7) == [BOB]
    assert await store.leave(7, "a2") is None  # leaving twice is not leaving twice


async def test_rejoining_with_the_same_connection_is_not_a_second_tab(store: PresenceStore) -> None:
    await store.join(7, "a1", ALICE)
    assert not (await store.join(7, "a1", ALICE)).first
    assert (await store.leave(7, "a1")) is not None


async def test_rooms_are_separate(store: PresenceStore) -> None:
    await store.join(7, "a1", ALICE)
    assert (await store.join(8, "a1", ALICE)).first
    assert await store.viewers(9) == []


async def test_focus_is_per_user_and_clears_when_the_user_leaves(store: PresenceStore) -> None:
    await store.join(7, "a1", ALICE)
    await store.join(7, "b1", BOB)
    assert await store.set_focus(7, ALICE["id"], "status")
    assert await store.set_focus(7, BOB["id"], "notes")
    assert await store.focus(7) == [{"user": ALICE, "section": "status"}, {"user": BOB, "section": "notes"}]
    assert await store.set_focus(7, BOB["id"], None)
    assert await store.focus(7) == [{"user": ALICE, "section": "status"}]
    left = await store.leave(7, "a1")
    assert left is not None and left.had_focus
    assert await store.focus(7) == []
    assert not await store.set_focus(7, ALICE["id"], "status")  # not in the room: nothing stored


async def test_concurrent_tabs_give_exactly_one_first_and_one_last(store: PresenceStore) -> None:
    """The first/last decisions are atomic: twenty tabs racing in and out announce the user once each way."""
    joins = await asyncio.gather(*[store.join(7, f"a{i}", ALICE) for i in range(20)])
    assert sum(j.first for j in joins) == 1
    lefts = await asyncio.gather(*[store.leave(7, f"a{i}") for i in range(20)])
    assert sum(left is not None for left in lefts) == 1


async def test_memory_entries_expire_unless_refreshed() -> None:
    clock = Clock()
    store = MemoryPresenceStore(ttl=30, clock=clock)
    await store.join(7, "a1", ALICE)
    await store.join(7, "b1", BOB)
    clock.now += 20
    assert await store.refresh(7, "b1")
    clock.now += 15  # alice's entry is 35 s old, bob's 15 s
    lefts = await store.sweep(7)
    assert [left.user for left in lefts] == [ALICE]
    assert await store.viewers(7) == [BOB]
    assert not await store.refresh(7, "a1")  # swept: the owner must join again
    assert await store.sweep(7) == []  # removed once, announced once


@pytest.mark.redis
async def test_redis_entries_expire_on_the_server_clock_and_two_processes_agree() -> None:
    """Two stores stand for two server processes; a short TTL stands for a dead one's silence."""
    prefix = f"{settings.REDIS_PREFIX}:expiry-test"
    alive, dead = RedisPresenceStore(ttl=0.4, prefix=prefix), RedisPresenceStore(ttl=0.4, prefix=prefix)
    try:
        await dead.join(7, "dead-conn", ALICE)
        await alive.join(7, "live-conn", BOB)
        assert await alive.viewers(7) == [ALICE, BOB]
        deadline = asyncio.get_running_loop().time() + 5
        lefts: list[Any] = []
        while not lefts and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            assert await alive.refresh(7, "live-conn")
            lefts = await alive.sweep(7)
        assert [left.user for left in lefts] == [ALICE]
        assert await alive.viewers(7) == [BOB]
        assert await dead.sweep(7) == []  # the other process finds nothing left to announce
        assert await alive.redis.pttl(alive.keys(7)[0]) > 0  # room keys expire on their own, too
    finally:
        await alive.clear()
        await alive.close()
        await dead.close()


# --- Over the socket ------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def incident(responder: User) -> Incident:
    return create_incident(responder)


@pytestmark_db
async def test_presence_with_two_users_and_two_tabs(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    tab1 = await connect(viewer)
    await tab1.ok("incident:join", incident=incident.pk)
    assert (await tab1.push("presence:joined"))["user"] == viewer.as_ref()

    other = await connect(responder)
    ack = await other.ok("incident:join", incident=incident.pk)
    assert ack["viewers"] == [responder.as_ref(), viewer.as_ref()]  # sorted by username: rae, vic
    joined = await tab1.push("presence:joined")
    assert (joined["incident"], joined["user"], joined["users"]) == (
        incident.pk,
        responder.as_ref(),
        [responder.as_ref()],
    )
    assert (joined["version"], joined["count"]) == (ack["presence_version"], 2)  # constant size: no list
    assert "viewers" not in joined

    tab2 = await connect(viewer)
    assert (await tab2.ok("incident:join", incident=incident.pk))["viewers"] == ack["viewers"]
    await tab1.close()  # one of two tabs: still present

    await tab2.ok("incident:leave", incident=incident.pk)  # the last tab
    left = await other.push("presence:left")
    # The next presence change after the responder's arrival: the second tab and closing one of two
    # changed nothing (no version between), and the room heard of neither.
    assert (left["user"], left["count"], left["since"]) == (viewer.as_ref(), 1, joined["version"])
    assert left["version"] == joined["version"] + 1
    assert [m["user"] for m in other.inbox if m["type"].startswith("presence:")] == [responder.as_ref()]


@pytestmark_db
async def test_focus_is_shown_to_the_room_and_clears_when_the_user_leaves(
    connect: Connect, viewer: User, responder: User, incident: Incident
) -> None:
    worker, watcher = await connect(responder), await connect(viewer)
    await worker.ok("incident:join", incident=incident.pk)
    await watcher.ok("incident:join", incident=incident.pk)
    assert (await worker.ok("focus:set", incident=incident.pk, section="status"))["section"] == "status"
    update = await watcher.push("focus:updated")
    assert (update["incident"], update["user"], update["section"]) == (incident.pk, responder.as_ref(), "status")

    late = await connect(viewer)
    assert (await late.ok("incident:join", incident=incident.pk))["focus"] == [
        {"user": responder.as_ref(), "section": "status"}
    ]
    await worker.close()
    cleared = await watcher.push("focus:updated")
    assert (cleared["user"], cleared["section"]) == (responder.as_ref(), None)
    assert (await watcher.push("presence:left"))["user"] == responder.as_ref()
    assert (await late.ok("incident:join", incident=incident.pk))["focus"] == []


@pytestmark_db
async def test_focus_needs_a_joined_room_and_a_known_section(
    connect: Connect, responder: User, incident: Incident
) -> None:
    socket = await connect(responder)
    await socket.error("focus:set", "invalid", incident=incident.pk, section="status")
    await socket.ok("incident:join", incident=incident.pk)
    await socket.error("focus:set", "invalid", incident=incident.pk, section="kitchen")
    await socket.error("focus:set", "invalid", incident=incident.pk)  # section is required; null clears
    assert (await socket.ok("focus:set", incident=incident.pk, section=None))["section"] is None


@pytestmark_db
async def test_a_connection_that_stops_refreshing_is_swept_and_the_room_told(
    connect: Connect, viewer: User, responder: User, incident: Incident, settings: LazySettings
) -> None:
    """The entry of a connection whose process died (here: written to the store, then never refreshed)
    expires after the TTL; a live consumer's periodic sweep removes it and broadcasts presence:left."""
    from realtime.presence import get_presence_store

    settings.PRESENCE_TTL_SECONDS = 1
    settings.PRESENCE_REFRESH_SECONDS = 0.2
    live = await connect(responder)
    await live.ok("incident:join", incident=incident.pk)
    store = get_presence_store()
    await store.join(incident.pk, "conn-of-a-dead-process", viewer.as_ref())
    await store.set_focus(incident.pk, viewer.pk, "notes")
    assert await store.viewers(incident.pk) == [responder.as_ref(), viewer.as_ref()]

    started = asyncio.get_running_loop().time()
    left = await live.push("presence:left", timeout=5)
    elapsed = asyncio.get_running_loop().time() - started
    assert (left["user"], left["count"]) == (viewer.as_ref(), 1)
    assert elapsed < 1 + 0.2 + 1  # TTL + refresh interval, and some slack for a busy machine
    assert (await live.push("focus:updated"))["section"] is None
    assert await store.viewers(incident.pk) == [responder.as_ref()]  # the live socket kept refreshing


@pytestmark_db
async def test_a_socket_restores_its_groups_and_presence_after_the_layer_forgets_them(
    connect: Connect, viewer: User, responder: User, incident: Incident, settings: LazySettings
) -> None:
    """As after a Redis restart (or channels-redis's one-day group expiry): the next refresh puts the
    socket back in its room's group and its presence entry back, announcing the user again."""
    from channels.layers import get_channel_layer

    from incidents import commands
    from realtime.presence import get_presence_store
    from tests.ws_support import run_sync

    settings.PRESENCE_REFRESH_SECONDS = 0.2
    socket = await connect(viewer)
    await socket.ok("incident:join", incident=incident.pk)
    await socket.push("presence:joined")
    layer = get_channel_layer()
    if settings.REDIS_URL:
        redis = get_presence_store().redis  # type: ignore[attr-defined]
        async for key in redis.scan_iter(match=f"{settings.REDIS_PREFIX}:asgi*group*"):
            await redis.delete(key)
    else:
        layer.groups.clear()
    await get_presence_store().clear()

    rejoined = await socket.push("presence:joined", timeout=5)  # back in the group and in the store
    assert (rejoined["user"], rejoined["count"]) == (viewer.as_ref(), 1)
    assert (await socket.ok("presence:get", incident=incident.pk))["viewers"] == [viewer.as_ref()]
    await run_sync(commands.incident_add_note, actor=responder, incident_id=incident.pk, body="still delivered")
    assert (await socket.push("incident:updated"))["event"]["data"] == {"body": "still delivered"}

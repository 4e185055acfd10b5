"""A socket's slot among its user's WS_MAX_SOCKETS_PER_USER, and its place in the user's group, stay while it lives.

The slots live in Redis on the production stack: each process refreshes all
of its own in one batch per PRESENCE_REFRESH_SECONDS (not a task and a Redis
call per socket), so a dead process's slots expire after
PRESENCE_TTL_SECONDS while a live one's do not.
"""

import asyncio
from typing import Any

import pytest
from channels.layers import get_channel_layer

from accounts.models import User
from accounts.sockets import user_group
from realtime.limits import RedisSocketCounter, get_socket_counter
from tests.ws_support import Connect

pytestmark = pytest.mark.django_db(transaction=True)


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.05)


@pytest.mark.redis
async def test_one_refresh_moves_every_local_slot_forward_and_leaves_released_ones_gone(
    fresh_realtime: None, settings: Any
) -> None:
    settings.PRESENCE_TTL_SECONDS = 30
    counter = RedisSocketCounter()
    counter.BATCH = 2  # three sockets: two round trips
    assert await counter.claim(1, "one-a") and await counter.claim(1, "one-b") and await counter.claim(2, "two-a")
    await counter.release(1, "one-b")
    before = await counter.redis.zscore(counter.key(1), "one-a")
    await counter.redis.pexpire(counter.key(1), 1000)

    await counter.refresh_all()

    assert await counter.redis.zscore(counter.key(1), "one-a") > before
    assert await counter.redis.zscore(counter.key(2), "two-a") is not None
    assert await counter.redis.zscore(counter.key(1), "one-b") is None  # released: not brought back
    assert await counter.redis.pttl(counter.key(1)) > 25_000
    await counter.clear()
    await counter.redis.aclose()


@pytest.mark.redis
async def test_a_live_processs_slots_outlast_their_time_to_live(fresh_realtime: None, settings: Any) -> None:
    settings.PRESENCE_TTL_SECONDS = 2
    settings.PRESENCE_REFRESH_SECONDS = 1
    counter = RedisSocketCounter()
    assert await counter.claim(5, "live")
    first = await counter.redis.zscore(counter.key(5), "live")

    async def refreshed() -> bool:
        score = await counter.redis.zscore(counter.key(5), "live")
        return score is not None and score > first

    await wait_until(refreshed)
    assert counter.refresher is not None
    await counter.release(5, "live")
    await wait_until(lambda: asyncio.sleep(0, counter.refresher.done()))
    await counter.redis.aclose()


async def test_a_socket_holds_its_slot_until_it_closes(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer)
    counter = get_socket_counter()
    if isinstance(counter, RedisSocketCounter):
        assert counter.local == {socket_channel(counter): viewer.pk}
    await socket.close()
    if isinstance(counter, RedisSocketCounter):
        assert counter.local == {}
        assert await counter.redis.zcard(counter.key(viewer.pk)) == 0
    else:
        assert counter.open.get(viewer.pk, set()) == set()  # type: ignore[attr-defined]


def socket_channel(counter: RedisSocketCounter) -> str:
    (channel,) = counter.local
    return channel


async def test_a_socket_stays_in_its_users_group_past_the_groups_expiry(connect: Connect, viewer: User) -> None:
    layer = get_channel_layer()
    assert layer is not None
    expiry = layer.group_expiry
    layer.group_expiry = 2  # the socket re-adds itself every second
    try:
        socket = await connect(viewer)
        group = user_group(viewer.pk)
        first = await membership(layer, group)

        async def renewed() -> bool:
            return (await membership(layer, group) or 0) > (first or 0)

        assert first is not None
        await wait_until(renewed)
        await socket.ok("ping")
    finally:
        layer.group_expiry = expiry


async def membership(layer: Any, group: str) -> float | None:
    """When the group's one member last joined it, as the layer keeps it."""
    if hasattr(layer, "groups"):  # the in-memory layer
        members = layer.groups.get(group, {})
        return max(members.values()) if members else None
    connection = layer.connection(layer.consistent_hash(group))
    scores = await connection.zrange(layer._group_key(group), 0, -1, withscores=True)
    return max(score for _, score in scores) if scores else None

"""Per-user and per-socket limits of the WebSocket endpoint (docs/protocol.md, "Limits").

- Sockets per user (WS_MAX_SOCKETS_PER_USER), counted across every process:
  in Redis when REDIS_URL is set (a sorted set per user, one member per
  connection scored by its expiry, refreshed with presence, so a dead
  process's sockets stop counting after PRESENCE_TTL_SECONDS), in memory for
  the one-process embedded default.
- Rooms per socket (WS_MAX_ROOMS_PER_SOCKET): each joined room costs a
  presence refresh and a group re-add every PRESENCE_REFRESH_SECONDS.
- `focus:set` per socket (WS_FOCUS_BURST, WS_FOCUS_PER_SECOND): every one is
  a presence write and a broadcast to the whole room.
"""

import asyncio
import logging
import time
import weakref
from typing import Any, ClassVar

from django.conf import settings

from accounts.sockets import session_digest

from .protocol import TokenBucket

logger = logging.getLogger(__name__)

CLOSE_TOO_MANY_SOCKETS = 4429

_LUA_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


def focus_bucket() -> TokenBucket:
    return TokenBucket(burst=settings.WS_FOCUS_BURST, per_second=settings.WS_FOCUS_PER_SECOND)


class SocketCounter:
    """Who has how many sockets open. `claim` is atomic: of two racing claims for the last slot, one wins."""

    async def claim(self, user_id: int, channel: str) -> bool:
        raise NotImplementedError

    async def release(self, user_id: int, channel: str) -> None:
        raise NotImplementedError

    async def clear(self) -> None:
        raise NotImplementedError


class MemorySocketCounter(SocketCounter):
    def __init__(self) -> None:
        self.open: dict[int, set[str]] = {}

    async def claim(self, user_id: int, channel: str) -> bool:
        channels = self.open.setdefault(user_id, set())
        if channel not in channels and len(channels) >= settings.WS_MAX_SOCKETS_PER_USER:
            return False
        channels.add(channel)
        return True

    async def release(self, user_id: int, channel: str) -> None:
        self.open.get(user_id, set()).discard(channel)

    async def clear(self) -> None:
        self.open.clear()


class RedisSocketCounter(SocketCounter):
    """The slots in Redis; this process refreshes all of its own in one batch per PRESENCE_REFRESH_SECONDS.

    A task per socket refreshing its own slot cost an idle process a Redis
    call and a wake-up per socket every period (5,000 idle sockets: 500 Lua
    calls a second; docs/benchmarks.md).
    """

    BATCH = 500  # sockets per pipelined round trip, so one refresh does not hold the event loop long

    def __init__(self) -> None:
        import redis.asyncio as redis

        self.redis = redis.Redis.from_url(settings.REDIS_URL)
        self._claim = self.redis.register_script(_LUA_CLAIM)
        self.local: dict[str, int] = {}  # the sockets of this process holding a slot: channel name -> user id
        self.refresher: asyncio.Task[None] | None = None

    def key(self, user_id: int) -> str:
        return f"{settings.REDIS_PREFIX}:sockets:{user_id}"

    async def claim(self, user_id: int, channel: str) -> bool:
        now = time.time()
        ttl = settings.PRESENCE_TTL_SECONDS
        args = [now, settings.WS_MAX_SOCKETS_PER_USER, channel, now + ttl, int(ttl * 1000)]
        if not await self._claim(keys=[self.key(user_id)], args=args):
            return False
        self.local[channel] = user_id
        if self.refresher is None or self.refresher.done():
            self.refresher = asyncio.create_task(self._refresh_forever())
        return True

    async def refresh_all(self) -> None:
        """Move every local slot's expiry forward (a slot lost meanwhile, say to a flushed Redis, is put back)."""
        ttl = settings.PRESENCE_TTL_SECONDS
        held = list(self.local.items())
        for start in range(0, len(held), self.BATCH):
            expires = time.time() + ttl
            async with self.redis.pipeline(transaction=False) as pipe:
                for channel, user_id in held[start : start + self.BATCH]:
                    pipe.zadd(self.key(user_id), {channel: expires})
                    pipe.pexpire(self.key(user_id), int(ttl * 1000))
                await pipe.execute()

    async def _refresh_forever(self) -> None:
        while self.local:
            await asyncio.sleep(settings.PRESENCE_REFRESH_SECONDS)
            try:
                await self.refresh_all()
            except Exception:
                # Redis hiccup: the slots outlive it by PRESENCE_TTL_SECONDS; the next round tries again.
                logger.warning("Socket slots not refreshed: Redis unreachable", exc_info=True)

    async def release(self, user_id: int, channel: str) -> None:
        self.local.pop(channel, None)
        await self.redis.zrem(self.key(user_id), channel)

    async def clear(self) -> None:
        self.local.clear()
        keys = [key async for key in self.redis.scan_iter(match=f"{settings.REDIS_PREFIX}:sockets:*")]
        if keys:
            await self.redis.delete(*keys)


class _Counters:
    shared: ClassVar[MemorySocketCounter | None] = None
    per_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SocketCounter]] = (
        weakref.WeakKeyDictionary()
    )


def get_socket_counter() -> SocketCounter:
    if not settings.REDIS_URL:
        if _Counters.shared is None:
            _Counters.shared = MemorySocketCounter()
        return _Counters.shared
    loop = asyncio.get_running_loop()
    counter = _Counters.per_loop.get(loop)
    if counter is None:
        counter = _Counters.per_loop[loop] = RedisSocketCounter()
    return counter


def revoke_applies(message: dict[str, Any], session_key: str | None) -> bool:
    """Whether a `user.revoke` (accounts.sockets) ends this socket: all of the user's, or one session's."""
    session = message.get("session")
    return session is None or (session_key is not None and session_digest(session_key) == session)

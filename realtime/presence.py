"""Who is looking at an incident, and where they are working: presence and focus.

Presence is kept per *connection* (a socket in a room) but reported per
*user*: a user with two tabs is one viewer, who joins with the first tab and
leaves with the last. Each entry carries an expiry; the consumer that owns it
refreshes it every PRESENCE_REFRESH_SECONDS, so the entries of a process that
died (kill -9, lost box) stop being refreshed and are swept by whichever live
consumer in the room looks next. Whoever removes a user's last connection is
told so, exactly once, and broadcasts `presence:left`.

Two implementations behind one interface, chosen by settings.PRESENCE_STORE:

- MemoryPresenceStore: one process (the embedded default, with the in-memory
  channel layer).
- RedisPresenceStore: many processes. Every decision that must be made once
  across processes ("first connection of this user", "last connection",
  "this expired entry is mine to remove") happens inside a Lua script, which
  Redis runs atomically; times come from the Redis server's clock, so boxes
  with skewed clocks agree on what has expired.
"""

import asyncio
import functools
import json
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings
from django.utils.module_loading import import_string

UserRef = dict[str, Any]

SECTIONS = ("summary", "status", "severity", "commander", "notes", "action_items")


@dataclass(frozen=True)
class Left:
    """A user whose last connection left a room (or expired out of it)."""

    user: UserRef
    had_focus: bool
    version: int = 0  # the room's presence version this departure made
    count: int = 0  # distinct users left in the room after it


@dataclass(frozen=True)
class Joined:
    """The result of adding a connection to a room."""

    first: bool  # the user's first connection in the room: announce presence:joined
    viewers: list[UserRef]
    version: int = 0  # the room's presence version after the join (the join's own if `first`)
    count: int = 0  # distinct users in the room after the join
    expired: list[Left] = field(default_factory=list)  # users swept out on the way in


@dataclass(frozen=True)
class Snapshot:
    """A room's presence at one version: its viewers (all, or the first few) and how many there are."""

    viewers: list[UserRef]
    version: int
    count: int


def _sorted(users: list[UserRef]) -> list[UserRef]:
    return sorted(users, key=lambda user: (str(user.get("username", "")), user.get("id", 0)))


class PresenceStore(ABC):
    """Presence and focus of users in incident rooms."""

    def __init__(self, *, ttl: float | None = None) -> None:
        self._ttl = ttl

    @property
    def ttl(self) -> float:
        """Seconds an entry lives without a refresh (read from settings each time unless given)."""
        return float(self._ttl if self._ttl is not None else settings.PRESENCE_TTL_SECONDS)

    @abstractmethod
    async def join(self, incident: int, conn: str, user: UserRef) -> Joined:
        """Add (or refresh) a connection, after sweeping the room's expired entries."""

    @abstractmethod
    async def leave(self, incident: int, conn: str) -> Left | None:
        """Remove a connection; a Left if it was its user's last one in the room."""

    @abstractmethod
    async def refresh(self, incident: int, conn: str) -> bool:
        """Push back a connection's expiry; False if the entry is gone (it was swept)."""

    async def refresh_many(self, incident: int, conns: list[str]) -> list[str]:
        """Push back the expiry of a process's connections in a room; those that are gone (swept)."""
        return [conn for conn in conns if not await self.refresh(incident, conn)]

    @abstractmethod
    async def sweep(self, incident: int) -> list[Left]:
        """Remove expired connections; the users whose last connection that was."""

    @abstractmethod
    async def viewers(self, incident: int) -> list[UserRef]:
        """Distinct users present, sorted by username."""

    @abstractmethod
    async def snapshot(self, incident: int) -> Snapshot:
        """Every viewer, with the presence version and count they belong to (read atomically)."""

    async def snapshots(self, incidents: list[int], *, limit: int) -> dict[int, Snapshot]:
        """The first `limit` viewers and the count of several rooms at once (the incident list shows a page)."""
        result = {}
        for incident in incidents:
            snap = await self.snapshot(incident)
            result[incident] = Snapshot(viewers=snap.viewers[:limit], version=snap.version, count=snap.count)
        return result

    @abstractmethod
    async def set_focus(self, incident: int, user_id: int, section: str | None) -> bool:
        """Set or clear a present user's focus; False if the user is not in the room."""

    @abstractmethod
    async def focus(self, incident: int) -> list[dict[str, Any]]:
        """[{user, section}] for every present user with a focus."""

    @abstractmethod
    async def clear(self) -> None:
        """Forget everything (tests)."""

    async def close(self) -> None:
        """Release connections (tests that open a store per event loop)."""
        return None


# --- One process --------------------------------------------------------------


@dataclass
class _Room:
    expiry: dict[str, float] = field(default_factory=dict)  # conn -> expiry (monotonic)
    owner: dict[str, int] = field(default_factory=dict)  # conn -> user id
    count: dict[int, int] = field(default_factory=dict)  # user id -> connections
    users: dict[int, UserRef] = field(default_factory=dict)
    focus: dict[int, str] = field(default_factory=dict)


class MemoryPresenceStore(PresenceStore):
    """Presence in this process's memory, for the one-process embedded default.

    Every method runs without awaiting anything, so on one event loop each is
    atomic, as the Redis scripts are across processes. Entries expire like the
    Redis ones, so a consumer stuck without refreshing is swept here too.
    """

    def __init__(self, *, ttl: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl=ttl)
        self.clock = clock
        self.rooms: dict[int, _Room] = {}
        # A room's version outlives the room (it only grows), as the Redis key does for a while.
        self.versions: dict[int, int] = {}

    def _bump(self, incident: int) -> int:
        """As in Redis: a version starts from the clock in ms, so it keeps growing after a `clear`."""
        self.versions[incident] = self.versions.get(incident) or int(time.time() * 1000)
        self.versions[incident] += 1
        return self.versions[incident]

    def _remove(self, incident: int, room: _Room, conn: str) -> Left | None:
        if room.expiry.pop(conn, None) is None:
            return None
        user_id = room.owner.pop(conn)
        room.count[user_id] -= 1
        if room.count[user_id] > 0:
            return None
        del room.count[user_id]
        user = room.users.pop(user_id)
        had_focus = room.focus.pop(user_id, None) is not None
        return Left(user=user, had_focus=had_focus, version=self._bump(incident), count=len(room.users))

    def _sweep(self, incident: int) -> list[Left]:
        room = self.rooms.get(incident)
        if room is None:
            return []
        now = self.clock()
        left = [self._remove(incident, room, conn) for conn, expiry in list(room.expiry.items()) if expiry <= now]
        if not room.expiry:
            del self.rooms[incident]
        return [entry for entry in left if entry is not None]

    async def join(self, incident: int, conn: str, user: UserRef) -> Joined:
        expired = self._sweep(incident)
        room = self.rooms.setdefault(incident, _Room())
        first = False
        if conn not in room.expiry:
            user_id = int(user["id"])
            room.owner[conn] = user_id
            room.count[user_id] = room.count.get(user_id, 0) + 1
            room.users[user_id] = user
            first = room.count[user_id] == 1
            if first:
                self._bump(incident)
        room.expiry[conn] = self.clock() + self.ttl
        return Joined(
            first=first,
            viewers=_sorted(list(room.users.values())),
            version=self.versions.get(incident, 0),
            count=len(room.users),
            expired=expired,
        )

    async def leave(self, incident: int, conn: str) -> Left | None:
        room = self.rooms.get(incident)
        if room is None:
            return None
        left = self._remove(incident, room, conn)
        if not room.expiry:
            del self.rooms[incident]
        return left

    async def refresh(self, incident: int, conn: str) -> bool:
        room = self.rooms.get(incident)
        if room is None or conn not in room.expiry:
            return False
        room.expiry[conn] = self.clock() + self.ttl
        return True

    async def sweep(self, incident: int) -> list[Left]:
        return self._sweep(incident)

    async def viewers(self, incident: int) -> list[UserRef]:
        room = self.rooms.get(incident)
        return _sorted(list(room.users.values())) if room else []

    async def snapshot(self, incident: int) -> Snapshot:
        viewers = await self.viewers(incident)
        return Snapshot(viewers=viewers, version=self.versions.get(incident, 0), count=len(viewers))

    async def set_focus(self, incident: int, user_id: int, section: str | None) -> bool:
        room = self.rooms.get(incident)
        if room is None or user_id not in room.count:
            return False
        if section is None:
            room.focus.pop(user_id, None)
        else:
            room.focus[user_id] = section
        return True

    async def focus(self, incident: int) -> list[dict[str, Any]]:
        room = self.rooms.get(incident)
        if room is None:
            return []
        return [
            {"user": room.users[user_id], "section": section}
            for user_id, section in sorted(room.focus.items())
            if user_id in room.users
        ]

    async def clear(self) -> None:
        self.rooms.clear()
        self.versions.clear()


# --- Many processes -----------------------------------------------------------

# KEYS of every script: conns (zset conn -> expiry ms), owner (hash conn -> user
# id), count (hash user id -> connections), users (hash user id -> ref JSON),
# focus (hash user id -> section), version (the room's presence version: +1 for
# every user who joins or leaves).
_LUA_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A room's presence version starts from the server's clock in ms, so it keeps
-- growing even if Redis lost the key (restart, flush, idle expiry).
local function bump()
  if redis.call('EXISTS', KEYS[6]) == 0 then redis.call('SET', KEYS[6], now_ms()) end
  return redis.call('INCR', KEYS[6])
end
local function remove(conn)
  if redis.call('ZREM', KEYS[1], conn) == 0 then return nil end
  local uid = redis.call('HGET', KEYS[2], conn)
  redis.call('HDEL', KEYS[2], conn)
  if not uid then return nil end
  if redis.call('HINCRBY', KEYS[3], uid, -1) > 0 then return nil end
  redis.call('HDEL', KEYS[3], uid)
  local ref = redis.call('HGET', KEYS[4], uid)
  redis.call('HDEL', KEYS[4], uid)
  local had_focus = redis.call('HDEL', KEYS[5], uid)
  return {ref, had_focus, bump(), redis.call('HLEN', KEYS[3])}
end
local function sweep()
  local left = {}
  for _, conn in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms())) do
    local gone = remove(conn)
    if gone then table.insert(left, gone) end
  end
  return left
end
local function touch(key_ttl)
  for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], key_ttl) end
end
local function version()
  return tonumber(redis.call('GET', KEYS[6]) or '0')
end
"""

# ARGV: conn, user id, user ref JSON, ttl ms, key ttl ms.
_LUA_JOIN = (
    _LUA_COMMON
    + """
local left = sweep()
local first = 0
if redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[4]), ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
  if redis.call('HINCRBY', KEYS[3], ARGV[2], 1) == 1 then
    first = 1
    bump()
  end
end
touch(tonumber(ARGV[5]))
return {first, redis.call('HVALS', KEYS[4]), left, version()}
"""
)

# ARGV: conn.
_LUA_LEAVE = (
    _LUA_COMMON
    + """
local gone = remove(ARGV[1])
if gone then return {gone} end
return {}
"""
)

# ARGV: ttl ms, key ttl ms, conn... Returns the conns that are gone.
_LUA_REFRESH = (
    _LUA_COMMON
    + """
local expiry = now_ms() + tonumber(ARGV[1])
local missing = {}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], expiry, ARGV[i])
  else
    table.insert(missing, ARGV[i])
  end
end
touch(tonumber(ARGV[2]))
return missing
"""
)

_LUA_SWEEP = _LUA_COMMON + "\nreturn sweep()\n"

# ARGV: user id, section ('' clears).
_LUA_FOCUS = """
if not redis.call('HGET', KEYS[3], ARGV[1]) then return 0 end
if ARGV[2] == '' then redis.call('HDEL', KEYS[5], ARGV[1]) else redis.call('HSET', KEYS[5], ARGV[1], ARGV[2]) end
return 1
"""


@functools.lru_cache(maxsize=65536)
def _user(ref: bytes | str) -> UserRef:
    """A stored user ref, parsed once per process: a join returns the whole room, so each ref comes back often.

    Callers must not change the dict (it is shared).
    """
    return dict(json.loads(ref))


# {user id, section, user ref} of every present user with a focus.
_LUA_FOCUS_READ = """
local rows = {}
local focus = redis.call('HGETALL', KEYS[5])
for i = 1, #focus, 2 do
  local ref = redis.call('HGET', KEYS[4], focus[i])
  if ref then table.insert(rows, {focus[i], focus[i + 1], ref}) end
end
return rows
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _lefts(rows: Any) -> list[Left]:
    return [
        Left(user=_user(ref), had_focus=bool(int(had)), version=int(version), count=int(count))
        for ref, had, version, count in rows or []
    ]


class RedisPresenceStore(PresenceStore):
    """Presence in Redis, shared by every server process, under settings.REDIS_PREFIX.

    The room's keys expire on their own a while after the last refresh, so a
    room whose every viewer died with its process does not stay in Redis.
    """

    def __init__(self, *, ttl: float | None = None, url: str | None = None, prefix: str | None = None) -> None:
        import redis.asyncio as redis

        super().__init__(ttl=ttl)
        self.redis = redis.Redis.from_url(url or settings.REDIS_URL)
        self.prefix = f"{prefix or settings.REDIS_PREFIX}:presence"
        self._join = self.redis.register_script(_LUA_JOIN)
        self._leave = self.redis.register_script(_LUA_LEAVE)
        self._refresh = self.redis.register_script(_LUA_REFRESH)
        self._sweep = self.redis.register_script(_LUA_SWEEP)
        self._focus = self.redis.register_script(_LUA_FOCUS)
        self._focus_read = self.redis.register_script(_LUA_FOCUS_READ)

    @property
    def ttl_ms(self) -> int:
        return int(self.ttl * 1000)

    @property
    def key_ttl_ms(self) -> int:
        return self.ttl_ms * 3 + 60_000

    def keys(self, incident: int) -> list[str]:
        base = f"{self.prefix}:{int(incident)}"
        return [
            f"{base}:conns",
            f"{base}:owner",
            f"{base}:count",
            f"{base}:users",
            f"{base}:focus",
            f"{base}:version",
        ]

    async def join(self, incident: int, conn: str, user: UserRef) -> Joined:
        first, viewers, left, version = await self._join(
            keys=self.keys(incident),
            args=[conn, int(user["id"]), json.dumps(user), self.ttl_ms, self.key_ttl_ms],
        )
        return Joined(
            first=bool(first),
            viewers=_sorted([_user(ref) for ref in viewers]),
            version=int(version),
            count=len(viewers),
            expired=_lefts(left),
        )

    async def leave(self, incident: int, conn: str) -> Left | None:
        gone = _lefts(await self._leave(keys=self.keys(incident), args=[conn]))
        return gone[0] if gone else None

    async def refresh(self, incident: int, conn: str) -> bool:
        return not await self.refresh_many(incident, [conn])

    async def refresh_many(self, incident: int, conns: list[str]) -> list[str]:
        """One round trip for all of a process's connections in the room."""
        if not conns:
            return []
        missing = await self._refresh(keys=self.keys(incident), args=[self.ttl_ms, self.key_ttl_ms, *conns])
        return [_text(conn) for conn in missing or []]

    async def sweep(self, incident: int) -> list[Left]:
        return _lefts(await self._sweep(keys=self.keys(incident)))

    async def viewers(self, incident: int) -> list[UserRef]:
        return _sorted([_user(ref) for ref in await self.redis.hvals(self.keys(incident)[3])])

    async def snapshot(self, incident: int) -> Snapshot:
        keys = self.keys(incident)
        async with self.redis.pipeline(transaction=True) as pipe:
            refs, version = await pipe.hvals(keys[3]).get(keys[5]).execute()
        viewers = _sorted([_user(ref) for ref in refs])
        return Snapshot(viewers=viewers, version=int(version or 0), count=len(viewers))

    async def snapshots(self, incidents: list[int], *, limit: int) -> dict[int, Snapshot]:
        """One round trip for all of them, not one per room."""
        if not incidents:
            return {}
        async with self.redis.pipeline(transaction=True) as pipe:
            for incident in incidents:
                keys = self.keys(incident)
                pipe.hvals(keys[3]).get(keys[5])
            rows = await pipe.execute()
        result = {}
        for index, incident in enumerate(incidents):
            refs, version = rows[2 * index], rows[2 * index + 1]
            viewers = _sorted([_user(ref) for ref in refs])
            result[incident] = Snapshot(viewers=viewers[:limit], version=int(version or 0), count=len(viewers))
        return result

    async def set_focus(self, incident: int, user_id: int, section: str | None) -> bool:
        return bool(await self._focus(keys=self.keys(incident), args=[int(user_id), section or ""]))

    async def focus(self, incident: int) -> list[dict[str, Any]]:
        """Read the refs of the focused users only: a join asks, and a room may hold thousands."""
        keys = self.keys(incident)
        rows = await self._focus_read(keys=keys)
        return [
            {"user": _user(ref), "section": _text(section)}
            for user_id, section, ref in sorted((int(_text(uid)), section, ref) for uid, section, ref in rows or [])
        ]

    async def clear(self) -> None:
        async for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=500):
            await self.redis.delete(key)

    async def close(self) -> None:
        await self.redis.aclose()


# --- The store of this process ------------------------------------------------


class _Stores:
    """One store per event loop: a redis.asyncio connection belongs to the loop that opened it.

    daphne runs one loop, so a server has one store; tests run a loop per test.
    The memory store has no loop-bound resources and is shared, so all
    consumers of the process see one another.
    """

    shared: ClassVar[PresenceStore | None] = None
    per_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PresenceStore]] = (
        weakref.WeakKeyDictionary()
    )


def get_presence_store() -> PresenceStore:
    store_class = import_string(settings.PRESENCE_STORE)
    if store_class is MemoryPresenceStore:
        if not isinstance(_Stores.shared, MemoryPresenceStore):
            _Stores.shared = MemoryPresenceStore()
        return _Stores.shared
    loop = asyncio.get_running_loop()
    store = _Stores.per_loop.get(loop)
    if store is None:
        store = _Stores.per_loop[loop] = store_class()
    return store

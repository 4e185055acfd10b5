"""The sockets' database work: a pool of threads of its own, not the one thread Channels shares.

`database_sync_to_async` runs every call of every consumer (and of Channels'
auth middleware) of a process on one shared thread: a command waiting on an
incident's row lock, or a burst of a thousand handshakes, then holds up every
other socket of the process. `database_work` runs calls on a bounded pool
instead (WS_DATABASE_THREADS; each call holds at most one pooled connection),
closing stale connections around each call as Channels' wrapper does.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.conf import settings

_EXECUTOR = ThreadPoolExecutor(max_workers=settings.WS_DATABASE_THREADS, thread_name_prefix="ws-database")


def database_work(function: Callable[..., Any]) -> Any:
    """`database_sync_to_async` on the sockets' own threads."""
    return DatabaseSyncToAsync(function, thread_sensitive=False, executor=_EXECUTOR)

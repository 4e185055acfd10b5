"""Socket database work runs on a pool of threads of its own: one socket blocked on a lock stalls nobody else.

Channels runs every consumer's `database_sync_to_async` call of a process on
one shared thread; a command waiting on an incident's row lock (held by a
REST write, an admin, another process) then held up every other socket of
the process. Here a transaction holds incident A's lock while one socket's
note on A waits for it; another socket's join to incident B is answered all
the same, before the lock is let go.
"""

import threading

import pytest
from django.db import connection, transaction

from accounts.models import User
from incidents.models import Incident
from tests.ws_support import WAIT, Connect, acreate_incident, run_sync

pytestmark = pytest.mark.django_db(transaction=True)


class LockHolder:
    """A transaction in a thread of its own that locks an incident until told to let go."""

    def __init__(self, incident_id: int) -> None:
        self.incident_id = incident_id
        self.locked = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        try:
            with transaction.atomic():
                # SQLite's transactions begin IMMEDIATE (the database's write lock); PostgreSQL locks the row.
                Incident.objects.select_for_update().get(pk=self.incident_id)
                self.locked.set()
                self.release.wait(timeout=60)
        finally:
            connection.close()

    def __enter__(self) -> "LockHolder":
        self.thread.start()
        assert self.locked.wait(timeout=WAIT)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(timeout=WAIT)


async def test_a_command_waiting_on_a_row_lock_does_not_delay_a_join_elsewhere(
    connect: Connect, responder: User, viewer: User
) -> None:
    busy = await acreate_incident(responder, title="Busy")
    other = await acreate_incident(responder, title="Elsewhere")
    writer, joiner = await connect(responder), await connect(viewer)

    with LockHolder(busy.pk):
        note = await writer.send("incident:addNote", incident=busy.pk, body="waits for the lock")
        # Answered while the note is still waiting: the join did not queue behind it.
        ack = await joiner.ok("incident:join", incident=other.pk)
        assert ack["state"]["title"] == "Elsewhere"
        assert await run_sync(lambda: Incident.objects.get(pk=busy.pk).version) == 1  # the note is still waiting
    reply = await writer.reply(note)  # and lands once the lock is let go
    assert (reply["type"], reply["seq"]) == ("ack", 2)

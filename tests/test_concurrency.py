"""Writers racing on one incident: the row lock (PostgreSQL) or the IMMEDIATE write lock (SQLite)
must serialise them so the timeline has no gaps, no repeats, and no lost update.

These tests commit for real (threads have their own connections and cannot
see a test's open transaction), so they use transactional_db; every thread
closes its connection when it is done.
"""

import threading
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.errors import CommandError
from incidents.models import AuditEvent, Incident

from .conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 20


def race(work: Callable[[int], Any], count: int = THREADS) -> list[Any]:
    """Run work(i) in `count` threads released together; return each result or the exception it raised."""
    barrier = threading.Barrier(count, timeout=30)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a writer is stuck"
    return results


def test_twenty_concurrent_writers_leave_one_unbroken_timeline(responder: User) -> None:
    incident = commands.incident_create(actor=responder, title="Racing", severity="high").incident
    statuses = ["identified", "monitoring", "investigating", "resolved"]
    severities = ["critical", "medium", "low", "high"]

    def change(i: int) -> commands.CommandResult:
        kind = i % 3
        if kind == 0:
            return commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {i}")
        if kind == 1:
            status = statuses[i % len(statuses)]
            resolution = f"resolved by writer {i}" if status == "resolved" else None
            return commands.incident_change_status(
                actor=responder, incident_id=incident.pk, status=status, resolution=resolution
            )
        return commands.incident_update(actor=responder, incident_id=incident.pk, severity=severities[i % 4])

    results = race(change)

    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, CommandError)]
    assert unexpected == []
    accepted = sum(len(r.events) for r in results if isinstance(r, commands.CommandResult))
    assert accepted >= THREADS // 3  # every note at least
    events = list(AuditEvent.objects.filter(incident=incident).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, accepted + 2))
    stored = Incident.objects.get(pk=incident.pk)
    assert stored.version == accepted + 1
    # No lost update: each change starts from where the previous one left the incident.
    for kind, start in (("status_change", "investigating"), ("severity_change", "high")):
        chain = [e.data for e in events if e.type == kind]
        # (A resolve early in the race may leave no severity change at all: a resolved incident refuses them.)
        assert [step["from"] for step in chain] == ([start] + [step["to"] for step in chain[:-1]])[: len(chain)]
    assert stored.status == next((e.data["to"] for e in reversed(events) if e.type == "status_change"), "investigating")
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "intact for 1 incident" in out.getvalue()


def test_concurrent_requests_with_one_idempotency_key_append_exactly_one_event(responder: User) -> None:
    incident = commands.incident_create(actor=responder, title="Racing", severity="high").incident
    token = token_for(responder)

    def post(i: int) -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client.post(
            f"/api/incidents/{incident.pk}/notes", {"body": "only once"}, format="json", HTTP_IDEMPOTENCY_KEY="same"
        )

    responses = race(post, count=8)

    assert all(not isinstance(r, Exception) for r in responses), responses
    assert {r.status_code for r in responses} == {201}
    # Equal as JSON: PostgreSQL's jsonb keeps the replayed body's keys in its own order.
    assert all(r.json() == responses[0].json() for r in responses)
    assert sum(not r.has_header("Idempotent-Replayed") for r in responses) == 1
    assert list(AuditEvent.objects.filter(incident=incident).values_list("seq", "type")) == [
        (1, "incident_created"),
        (2, "note"),
    ]
    assert Incident.objects.get(pk=incident.pk).version == 2


@pytest.mark.postgres
def test_fifty_concurrent_writers_on_postgresql_leave_one_unforked_chain(responder: User) -> None:
    """Fifty threads, fifty connections' worth of writers queued on one row lock: one chain, no gaps."""
    incident = commands.incident_create(actor=responder, title="Stampede", severity="high").incident

    def write(i: int) -> commands.CommandResult:
        if i % 2:
            return commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {i}")
        return commands.action_item_add(actor=responder, incident_id=incident.pk, title=f"item {i}")

    results = race(write, count=50)

    assert [r for r in results if not isinstance(r, commands.CommandResult)] == []
    events = list(AuditEvent.objects.filter(incident=incident).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, 52))
    # One chain: every event points at the one before it, so no two share a parent.
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert len({e.prev_hash for e in events}) == 51
    assert sorted(r.events[0].seq for r in results) == list(range(2, 52))
    assert Incident.objects.get(pk=incident.pk).version == 51
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "intact for 1 incident" in out.getvalue()

"""A database (or Redis) that cannot be reached is a 503 / `unavailable` with a retry hint, never a 500.

The real outage, with a real daphne process and PostgreSQL cut off, is
tests/test_fault_postgres.py; these pin the mapping itself on both passes.
"""

from typing import Any

import pytest
import redis.exceptions
from django.db import InterfaceError, OperationalError

from accounts.models import User
from incident_platform.unavailable import RETRY_AFTER_SECONDS, is_unavailable
from incidents import commands
from incidents.models import Incident

from .ws_support import Connect, acreate_incident, snapshot

pytestmark = pytest.mark.django_db


def refuse(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("gone"),
        InterfaceError("connection already closed"),
        redis.exceptions.ConnectionError("refused"),
        redis.exceptions.TimeoutError("slow"),
    ],
)
def test_unreachable_services_are_recognised(error: Exception) -> None:
    assert is_unavailable(error)
    try:
        raise RuntimeError("wrapped") from error
    except RuntimeError as wrapper:
        assert is_unavailable(wrapper)


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("x"), RuntimeError("bug")])
def test_other_errors_are_not_mistaken_for_an_outage(error: Exception) -> None:
    assert not is_unavailable(error)


def test_a_rest_write_that_cannot_reach_the_database_answers_503_with_retry_after(
    api: Any, responder: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = commands.incident_create(actor=responder, title="x", severity="low").incident
    monkeypatch.setattr(commands, "incident_add_note", refuse)
    response = api(responder).post(f"/api/incidents/{incident.pk}/notes", {"body": "hello"}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert response.json()["retry_after"] == RETRY_AFTER_SECONDS
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert Incident.objects.get(pk=incident.pk).version == 1


def test_other_server_errors_still_raise(api: Any, responder: User, monkeypatch: pytest.MonkeyPatch) -> None:
    incident = commands.incident_create(actor=responder, title="x", severity="low").incident

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug, not an outage")

    monkeypatch.setattr(commands, "incident_add_note", bug)
    client = api(responder)
    client.raise_request_exception = False
    response = client.post(f"/api/incidents/{incident.pk}/notes", {"body": "hello"}, format="json")
    assert response.status_code == 500


@pytest.mark.django_db(transaction=True)
async def test_a_socket_command_that_cannot_reach_the_database_gets_unavailable_and_the_socket_stays(
    connect: Connect, responder: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = await acreate_incident(responder)
    socket = await connect(responder)
    await socket.ok("incident:join", incident=incident.pk)
    monkeypatch.setattr(commands, "incident_add_note", refuse)
    error = await socket.error("incident:addNote", "unavailable", incident=incident.pk, body="hello", key="k1")
    assert error["retry_after"] == RETRY_AFTER_SECONDS
    assert await snapshot(incident.pk) == (1, 1, "investigating")
    monkeypatch.undo()
    ack = await socket.ok("incident:addNote", incident=incident.pk, body="hello", key="k1")  # same key, now it lands
    assert ack["seq"] == 2

"""Status updates and the cadence over the socket: the same command and rules as REST, and the room hears them."""

from typing import Any

import pytest

from accounts.models import User
from incidents.models import Incident
from tests.ws_support import Connect, create_incident, snapshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def incident(responder: User) -> Incident:
    return create_incident(responder)


async def test_a_posted_update_is_acked_and_reaches_the_room_with_the_latest_on_the_state(
    connect: Connect, responder: User, viewer: User, incident: Incident
) -> None:
    watcher = await connect(viewer)
    await watcher.ok("incident:join", incident=incident.pk)
    socket = await connect(responder)
    ack = await socket.ok("incident:postStatusUpdate", incident=incident.pk, body=" Rolling back ", key="s-1")
    assert [(e["type"], e["data"]) for e in ack["events"]] == [("status_update", {"body": "Rolling back"})]
    update = await watcher.push("incident:updated", seq=ack["seq"])
    assert update["state"]["latest_status_update"]["body"] == "Rolling back"
    assert update["state"]["latest_status_update"]["author"]["id"] == responder.pk
    again = await socket.ok("incident:postStatusUpdate", incident=incident.pk, body=" Rolling back ", key="s-1")
    assert again["replayed"] is True and again["seq"] == ack["seq"]


async def test_the_cadence_is_set_over_the_socket(connect: Connect, responder: User, incident: Incident) -> None:
    socket = await connect(responder)
    ack = await socket.ok("incident:update", incident=incident.pk, status_update_cadence=45)
    assert ack["state"]["status_update_cadence"] == 45
    assert ack["events"][0]["type"] == "update_cadence_change"


@pytest.mark.parametrize(
    ("who", "fields", "code"),
    [
        ("viewer", {"body": "All fine"}, "forbidden"),
        ("responder", {"body": ""}, "invalid"),
        ("responder", {"body": "\u200b\u200b"}, "invalid"),
        ("responder", {"body": "x" * (Incident.STATUS_UPDATE_MAX_LENGTH + 1)}, "invalid"),
        ("responder", {"body": 12}, "invalid"),
        ("responder", {}, "invalid"),
        ("responder", {"body": "ok", "cadence": 5}, "invalid"),
    ],
)
async def test_bad_status_updates_are_refused_and_change_nothing(
    connect: Connect, users: dict[str, User], incident: Incident, who: str, fields: dict[str, Any], code: str
) -> None:
    socket = await connect(users[who])
    before = await snapshot(incident.pk)
    await socket.error("incident:postStatusUpdate", code, incident=incident.pk, **fields)
    assert await snapshot(incident.pk) == before


async def test_an_update_of_an_unknown_incident_is_not_found(connect: Connect, responder: User) -> None:
    socket = await connect(responder)
    await socket.error("incident:postStatusUpdate", "not_found", incident=987654, body="Hello")


@pytest.mark.parametrize("cadence", ["30", 0, 10081, 1.5, True, [1]])
async def test_a_bad_cadence_is_invalid_over_the_socket(
    connect: Connect, responder: User, incident: Incident, cadence: Any
) -> None:
    socket = await connect(responder)
    before = await snapshot(incident.pk)
    reply = await socket.error("incident:update", "invalid", incident=incident.pk, status_update_cadence=cadence)
    assert "status_update_cadence" in reply["fields"]
    assert await snapshot(incident.pk) == before

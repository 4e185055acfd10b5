"""docs/protocol.schema.json is the protocol: every client message type is sent, every reply and push validated.

The schema is JSON Schema (2020-12): `client:<type>` for each client message,
`ack:<type>` for its ack, `error` for any refusal, `push:<type>` for each server
push. A test that sends a frame the schema refuses, or receives one it does
not describe, fails here, so the document cannot drift from the server.
"""

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from accounts.models import User
from tests.ws_support import Connect, Socket, acreate_incident, create_incident, run_sync

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs" / "protocol.schema.json").read_text())
PUSHES = [name.split(":", 1)[1] for name in SCHEMA["$defs"] if name.startswith("push:")]
CLIENT_TYPES = [name.split(":", 1)[1] for name in SCHEMA["$defs"] if name.startswith("client:")]


def errors(message: dict[str, Any], definition: str) -> list[str]:
    validator = Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]})
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(message)]


def assert_valid(message: dict[str, Any], definition: str) -> None:
    problems = errors(message, definition)
    assert not problems, f"{definition}: {problems}\n{json.dumps(message)[:2000]}"


def test_the_schema_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_the_schema_knows_every_message_type_the_server_takes() -> None:
    from realtime.protocol import MESSAGE_TYPES

    assert sorted(CLIENT_TYPES) == sorted(MESSAGE_TYPES)


def test_the_schema_refuses_what_the_server_refuses() -> None:
    assert errors({"type": "incident:join", "incident": "1"}, "client:incident:join")
    assert errors({"type": "incident:join", "incident": 1, "sevrity": "low"}, "client:incident:join")
    assert errors({"type": "ack", "id": 1, "incident": 1}, "ack:incident:join")
    assert errors({"type": "error", "id": 1, "code": "teapot", "message": "x"}, "error")


class Exchange:
    """Sends messages as the schema describes them and checks each reply against its definition."""

    def __init__(self) -> None:
        self.sent: set[str] = set()

    async def call(self, socket: Socket, kind: str, *, refused: str | None = None, **fields: Any) -> dict[str, Any]:
        assert_valid({"type": kind, "id": 1, **fields}, f"client:{kind}")
        reply = await socket.request(kind, **fields)
        if refused is None:
            assert reply["type"] == "ack", reply
            assert_valid(reply, f"ack:{kind}")
        else:
            assert (reply["type"], reply["code"]) == ("error", refused), reply
            assert_valid(reply, "error")
        self.sent.add(kind)
        return reply


async def test_every_message_and_every_reply_and_push_match_the_schema(
    connect: Connect, responder: User, viewer: User
) -> None:
    incident = (await acreate_incident(responder)).pk
    alice = await connect(responder)
    bob = await connect(viewer)
    talk = Exchange()

    await talk.call(bob, "incidents:subscribe", incidents=[incident])
    await talk.call(bob, "incident:join", incident=incident)
    await talk.call(alice, "incident:join", incident=incident, after=0)
    # Presence is coalesced per window: a user who comes and goes within one is
    # only announced as left, so Bob hears of Alice's arrival before she leaves.
    joined = await bob.presence("presence:joined", responder.as_ref())
    await talk.call(alice, "presence:get", incident=incident)
    await talk.call(alice, "focus:set", incident=incident, section="notes")
    await talk.call(alice, "incident:updateStatus", incident=incident, status="identified", version=1, key="k-1")
    await talk.call(alice, "incident:update", incident=incident, severity="critical", commander=responder.pk)
    await talk.call(alice, "incident:addNote", incident=incident, body="Rolled back, @vic")
    await talk.call(alice, "incident:postStatusUpdate", incident=incident, body="We are rolling back.")
    await talk.call(alice, "incident:update", incident=incident, status_update_cadence=30)
    added = await talk.call(alice, "incident:addActionItem", incident=incident, title="Add an alert", owner=None)
    item = added["item"]
    await talk.call(alice, "incident:updateActionItem", incident=incident, item=item["id"], done=True)
    await talk.call(alice, "ping")
    # Refusals have one shape whatever refused them.
    await talk.call(bob, "incident:addNote", refused="forbidden", incident=incident, body="I may not")
    update = "incident:updateStatus"
    await talk.call(alice, update, refused="invalid_transition", incident=incident, status="identified")
    await talk.call(alice, update, refused="conflict", incident=incident, status="monitoring", version=1)
    await talk.call(alice, "incident:join", refused="not_found", incident=987654)
    await run_sync(create_incident, responder, "DNS flapping")
    await talk.call(alice, "incident:leave", incident=incident)
    await talk.call(bob, "incidents:unsubscribe")
    assert talk.sent == set(CLIENT_TYPES)

    # Bob, in the room and on the list, heard every kind of push; each matches its definition.
    seen = {
        "presence:joined": joined,
        "presence:left": await bob.presence("presence:left", responder.as_ref()),
        "incident:updated": await bob.push("incident:updated"),
        "focus:updated": await bob.push("focus:updated"),
        "incident:created": await bob.push("incident:created"),
        "incident:listChanged": await bob.push("incident:listChanged"),
        "incident:viewers": await bob.push("incident:viewers"),
        "notification:new": await bob.push("notification:new"),
    }
    assert sorted(seen) == sorted(PUSHES)
    for kind, message in seen.items():
        assert_valid(message, f"push:{kind}")
    # And everything else either socket was sent (up to a ping's reply, which comes after it).
    for socket in (alice, bob):
        for message in await socket.settled():
            assert_valid(message, f"push:{message['type']}")

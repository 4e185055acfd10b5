"""Frames the server must survive: every malformed message gets one `invalid` error and the socket carries on."""

import json
from typing import Any

import pytest
from django.conf import LazySettings

from accounts.models import User
from incidents import commands
from realtime.protocol import TokenBucket
from tests.ws_support import Connect, Socket, acreate_incident, run_sync

pytestmark = pytest.mark.django_db(transaction=True)


async def error_for_raw(socket: Socket, text: str) -> dict[str, Any]:
    """The error a raw frame earns (a frame without a readable id is answered with id null)."""
    await socket.send_raw(text)
    return await socket.reply(None)


async def still_serves(socket: Socket) -> None:
    assert (await socket.request("ping"))["type"] == "ack"


async def test_every_reply_echoes_the_id_string_or_integer(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer)
    await socket.send_raw(json.dumps({"type": "ping", "id": "abc"}))
    assert await socket.reply("abc") == {"type": "ack", "id": "abc"}
    await socket.send_raw(json.dumps({"type": "ping", "id": 7}))
    assert await socket.reply(7) == {"type": "ack", "id": 7}
    await socket.send_raw(json.dumps({"type": "ping"}))
    assert await socket.reply(None) == {"type": "ack", "id": None}


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2, 3]", "not an object"),
        ('"incident:join"', "a bare string"),
        ("{}", "no type"),
        ('{"type": "incident:explode"}', "unknown type"),
        ('{"type": 42}', "type not a string"),
        ('{"type": "ping", "id": [1]}', "id neither string nor integer"),
        ('{"type": "ping", "id": true}', "id a boolean"),
    ],
)
async def test_a_malformed_frame_is_invalid_and_the_socket_carries_on(
    connect: Connect, viewer: User, frame: str, why: str
) -> None:
    socket = await connect(viewer)
    reply = await error_for_raw(socket, frame)
    assert reply["code"] == "invalid", why
    assert reply["message"]
    await still_serves(socket)


async def test_an_unknown_type_echoes_the_id(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer)
    reply = await socket.error("incident:explode", "invalid")
    assert "type" in reply["fields"]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"incident": "1"},
        {"incident": 1.5},
        {"incident": True},
        {"incident": None},
        {"incident": 1, "after": -1},
        {"incident": 1, "after": "3"},
        {"incident": 1, "colour": "red"},
    ],
)
async def test_join_with_wrong_field_types_is_invalid(connect: Connect, viewer: User, fields: dict[str, Any]) -> None:
    socket = await connect(viewer)
    reply = await socket.error("incident:join", "invalid", **fields)
    assert reply["fields"]


async def test_joining_an_unknown_incident_is_not_found(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer)
    await socket.error("incident:join", "not_found", incident=987654)
    await still_serves(socket)


async def test_a_binary_frame_is_invalid(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer)
    await socket.communicator.send_to(bytes_data=b'{"type": "ping"}')
    assert (await socket.reply(None))["code"] == "invalid"
    await still_serves(socket)


async def test_a_frame_over_the_size_limit_is_refused_unparsed_and_other_rooms_keep_working(
    connect: Connect, responder: User, settings: LazySettings
) -> None:
    first, second = await acreate_incident(responder), await acreate_incident(responder, "Queue backlog")
    socket = await connect(responder)
    await socket.ok("incident:join", incident=first.pk)
    await socket.ok("incident:join", incident=second.pk)
    huge = json.dumps({"type": "incident:addNote", "id": 1, "incident": first.pk, "body": "x" * 1_000_000})
    reply = await error_for_raw(socket, huge)  # unparsed, so not even the id is read
    assert reply["code"] == "invalid"
    assert str(settings.WS_MAX_MESSAGE_BYTES) in reply["message"]
    await run_sync(commands.incident_add_note, actor=responder, incident_id=second.pk, body="still here")
    update = await socket.push("incident:updated", incident=second.pk)
    assert update["event"]["data"] == {"body": "still here"}
    assert (await run_sync(lambda: first.events.count())) == 1  # the oversized note changed nothing


async def test_a_frame_just_under_the_limit_is_parsed(connect: Connect, viewer: User, settings: LazySettings) -> None:
    settings.WS_MAX_MESSAGE_BYTES = 200
    socket = await connect(viewer)
    frame = json.dumps({"type": "ping", "id": "p", "pad": ""})
    frame = frame.replace('"pad": ""', '"pad": "' + "é" * ((200 - len(frame.encode())) // 2) + '"')
    assert len(frame.encode()) <= 200
    await socket.send_raw(frame)
    assert (await socket.reply("p"))["code"] == "invalid"  # parsed: `pad` is an unknown field
    await socket.send_raw(frame.replace("é", "éé"))
    reply = await socket.reply(None)
    assert "200 bytes" in reply["message"]


async def test_unknown_fields_are_invalid_not_ignored(connect: Connect, viewer: User) -> None:
    socket = await connect(viewer)
    reply = await socket.error("incidents:subscribe", "invalid", filter="all")
    assert reply["fields"] == {"filter": ["Unknown field."]}


async def test_a_flooding_socket_is_rate_limited_while_another_is_served(
    connect: Connect, viewer: User, responder: User, settings: LazySettings
) -> None:
    settings.WS_RATE_BURST = 5
    settings.WS_RATE_PER_SECOND = 0.01
    flood, calm = await connect(viewer), await connect(responder)
    ids = [await flood.send("ping") for _ in range(9)]
    replies = [await flood.reply(message_id) for message_id in ids]
    assert [r["type"] for r in replies] == ["ack"] * 5 + ["error"] * 4
    assert {r["code"] for r in replies[5:]} == {"rate_limited"}
    assert [r["id"] for r in replies] == ids  # still one reply per message, id echoed
    await still_serves(calm)


def test_the_token_bucket_allows_a_burst_then_the_refill_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(burst=3, per_second=2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 100  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]

"""The socket under fuzz: whatever a client sends, each frame gets exactly one reply or a clean close.

hypothesis writes the frames: arbitrary JSON, message-shaped objects with
wrong or unknown types, ids and fields, deep nesting, binary frames, frames
over WS_MAX_MESSAGE_BYTES and plain garbage. Never a 1011, never an
`internal` error, never a traceback in the log.
"""

import json
import logging
from typing import Any

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.models import User
from realtime.protocol import MESSAGE_TYPES
from tests.ws_support import Connect

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ids = st.none() | st.integers() | st.text(max_size=10) | st.booleans() | st.lists(st.integers(), max_size=2)
message_shaped = st.fixed_dictionaries(
    {"type": st.sampled_from(MESSAGE_TYPES) | st.text(max_size=20)},
    optional={
        "id": ids,
        "incident": st.integers(min_value=-5, max_value=2**70) | json_values,
        "after": st.integers(min_value=-5, max_value=2**70) | json_values,
        "section": st.sampled_from(["summary", "notes", None, "nope"]) | json_values,
        "body": json_values,
        "status": st.sampled_from(["identified", "resolved", "on_fire"]) | json_values,
        "incidents": json_values,
        "key": json_values,
        "extra": json_values,
    },
)
text_frames = st.one_of(
    message_shaped.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=50),
    st.integers(min_value=1, max_value=100_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=1, max_value=2_000).map(
        lambda k: '{"type": "ping", "x": "' + "x" * (settings.WS_MAX_MESSAGE_BYTES + k) + '"}'
    ),
)
frames = st.one_of(
    text_frames.map(lambda text: ("text", text)), st.binary(max_size=64).map(lambda data: ("bytes", data))
)


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=12))
async def test_every_frame_gets_one_reply_or_a_clean_close(
    connect: Connect, viewer: User, caplog: pytest.LogCaptureFixture, batch: list[tuple[str, Any]]
) -> None:
    caplog.clear()
    socket = await connect(viewer)
    replies: list[dict[str, Any]] = []
    for kind, payload in batch:
        # As the server hands a frame to the consumer: an empty text or binary frame included.
        await socket.communicator.send_input({"type": "websocket.receive", kind: payload})
        while True:  # the reply to this frame; pushes (presence, focus) may come first
            message = await socket._next(10)
            assert message["type"] != "websocket.close" or message["code"] != 1011, message
            if message["type"] in ("ack", "error", "websocket.close"):
                break
        replies.append(message)
        if message["type"] == "websocket.close":
            assert message["code"] in (1000, 4401), message
            break
    assert len(replies) <= len(batch)
    assert all(reply.get("code") != "internal" for reply in replies), replies
    # Nothing more: no second reply to any frame. Frames are handled one at a time, so a ping's
    # reply comes after every reply to those before it; a closed socket was read up to its close.
    if socket.closed_with is None:
        assert [m for m in await socket.settled() if m["type"] in ("ack", "error")] == []
    await socket.close()
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]
    assert errors == [], [record.getMessage() for record in errors]

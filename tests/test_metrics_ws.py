"""The socket metrics and lifecycle log lines: open sockets, rooms, frames in and out, rate limiting, fan-out."""

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from accounts.models import User
from incidents import commands
from tests.ws_support import Connect, acreate_incident, run_sync

pytestmark = pytest.mark.django_db(transaction=True)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_open_sockets_and_joined_rooms_follow_connects_joins_and_closes(
    connect: Connect, responder: User
) -> None:
    incident = (await acreate_incident(responder)).pk
    sockets, rooms, entries = sample("ws_open_sockets"), sample("ws_joined_rooms"), sample("presence_entries")
    socket = await connect(responder)
    assert sample("ws_open_sockets") == sockets + 1
    await socket.ok("incident:join", incident=incident)
    await socket.ok("incident:join", incident=incident)  # joining again is one room still
    assert (sample("ws_joined_rooms"), sample("presence_entries")) == (rooms + 1, entries + 1)
    await socket.ok("incident:leave", incident=incident)
    assert (sample("ws_joined_rooms"), sample("presence_entries")) == (rooms, entries)
    await socket.ok("incident:join", incident=incident)
    await socket.close()
    assert (sample("ws_open_sockets"), sample("ws_joined_rooms")) == (sockets, rooms)


async def test_frames_are_counted_in_and_out_by_type(connect: Connect, viewer: User) -> None:
    pings, acks, invalid, errors = (
        sample("ws_messages_received_total", type="ping"),
        sample("ws_messages_sent_total", type="ack"),
        sample("ws_messages_received_total", type="invalid"),
        sample("ws_messages_sent_total", type="error"),
    )
    socket = await connect(viewer)
    await socket.ok("ping")
    await socket.send_raw("{not json")
    await socket.reply(None)
    assert sample("ws_messages_received_total", type="ping") == pings + 1
    assert sample("ws_messages_sent_total", type="ack") == acks + 1
    assert sample("ws_messages_received_total", type="invalid") == invalid + 1
    assert sample("ws_messages_sent_total", type="error") == errors + 1


async def test_rate_limited_frames_are_counted(connect: Connect, viewer: User, settings: Any) -> None:
    settings.WS_RATE_BURST = 1
    settings.WS_RATE_PER_SECOND = 0.001
    before = sample("ws_rate_limited_total")
    socket = await connect(viewer)
    await socket.ok("ping")
    await socket.error("ping", "rate_limited")
    assert sample("ws_rate_limited_total") == before + 1


async def test_fan_out_latency_is_observed_when_a_change_reaches_the_room(connect: Connect, responder: User) -> None:
    incident = (await acreate_incident(responder)).pk
    socket = await connect(responder)
    await socket.ok("incident:join", incident=incident)
    before = sample("fanout_latency_seconds_count")
    await run_sync(commands.incident_add_note, actor=responder, incident_id=incident, body="Looking")
    await socket.push("incident:updated")
    assert sample("fanout_latency_seconds_count") == before + 1


async def test_a_socket_logs_connect_join_and_disconnect_with_its_code(
    connect: Connect, responder: User, caplog: pytest.LogCaptureFixture
) -> None:
    incident = (await acreate_incident(responder)).pk
    with caplog.at_level(logging.INFO, logger="incident_platform.access"):
        socket = await connect(responder, extra=[(b"x-request-id", b"sock-7")])
        await socket.ok("incident:join", incident=incident)
        await socket.close()
    lines = [(r.event, r.fields) for r in caplog.records if hasattr(r, "event")]  # type: ignore[attr-defined]
    mine = [(event, fields) for event, fields in lines if fields.get("socket_id") == "sock-7"]
    assert [event for event, _ in mine] == ["ws_connect", "ws_join", "ws_disconnect"]
    assert mine[1][1]["incident"] == incident
    assert mine[2][1]["code"] == 1000
    assert all(fields["user"] == responder.pk for _, fields in mine)


async def test_a_socket_without_identity_logs_the_servers_4401_close(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="incident_platform.access"):
        await connect(None, expect="any", extra=[(b"x-request-id", b"anon-1")])
    closes = [r.fields for r in caplog.records if getattr(r, "event", None) == "ws_close"]  # type: ignore[attr-defined]
    assert any(fields["socket_id"] == "anon-1" and fields["code"] == 4401 for fields in closes)

"""Issue 8.4, 8.5, 8.6 and 8.8 on the WebSocket: withdrawn identities, bounded replays, caps.

Through the whole ASGI application (origin check, session and JWT auth), on
the in-memory layer and on Redis (both passes).
"""

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.models import AuditEvent, Incident
from realtime import actions
from realtime.limits import CLOSE_TOO_MANY_SOCKETS
from tests.ws_support import Connect, Socket, create_incident, run_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def incident(responder: User) -> Incident:
    return create_incident(responder)


async def signed_in_browser(user: User) -> Client:
    client = Client()
    await run_sync(client.force_login, user)
    return client


async def session_socket(connect: Connect, client: Client) -> Socket:
    return await connect(extra=[(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())])


async def assert_closed_with_4401(socket: Socket) -> None:
    while True:
        message = await socket._next(5)
        if message["type"] == "websocket.close":
            assert message["code"] == 4401
            return


async def note_count(incident: Incident) -> int:
    return int(await run_sync(AuditEvent.objects.filter(incident=incident, type="note").count))


# --- 8.4: sign-out, password change, deactivation ------------------------------------


async def test_web_sign_out_closes_that_browsers_socket_before_it_can_add_a_note(
    connect: Connect, responder: User, incident: Incident
) -> None:
    browser = await signed_in_browser(responder)
    socket = await session_socket(connect, browser)
    await socket.ok("incident:join", incident=incident.pk)
    assert (await run_sync(browser.post, "/logout/")).status_code == 302
    await assert_closed_with_4401(socket)
    # A frame already on its way when the close went out: dropped, not run.
    await socket.send("incident:addNote", incident=incident.pk, body="still here?")
    await socket.communicator.disconnect(timeout=5)  # returns once the consumer has handled every frame
    socket.closed_with = 4401
    assert await note_count(incident) == 0


async def test_signing_out_one_browser_leaves_the_users_other_sockets_open(
    connect: Connect, responder: User, incident: Incident
) -> None:
    laptop, phone = await signed_in_browser(responder), await signed_in_browser(responder)
    leaving, staying = await session_socket(connect, laptop), await session_socket(connect, phone)
    bot = await connect(responder)  # bearer token
    await run_sync(laptop.post, "/logout/")
    await assert_closed_with_4401(leaving)
    await staying.ok("incident:addNote", incident=incident.pk, body="from the phone")
    await bot.ok("ping")


async def test_a_password_change_closes_every_socket_of_the_user(connect: Connect, responder: User) -> None:
    browser = await signed_in_browser(responder)
    sockets = [await session_socket(connect, browser), await connect(responder)]

    def change_password() -> None:
        responder.set_password("another-long-phrase-77")
        responder.save()

    await run_sync(change_password)
    for socket in sockets:
        await assert_closed_with_4401(socket)


async def test_deactivation_in_the_admin_closes_the_socket_at_once(
    connect: Connect, admin: User, viewer: User, incident: Incident
) -> None:
    socket = await connect(viewer)
    await socket.ok("incident:join", incident=incident.pk)

    def deactivate() -> None:
        viewer.is_active = False
        viewer.save()

    await run_sync(deactivate)
    await assert_closed_with_4401(socket)  # without sending anything: it stops receiving now


async def test_a_demotion_applies_to_the_open_sockets_next_command(
    connect: Connect, admin: User, responder: User, incident: Incident
) -> None:
    """Demotion downgrades the socket in place: it stays open as a viewer's, and may no longer write."""
    socket = await connect(responder)
    await socket.ok("incident:addNote", incident=incident.pk, body="while a responder")

    def demote() -> int:
        client = APIClient()
        client.force_authenticate(admin)
        return int(client.patch(f"/api/users/{responder.pk}", {"role": "viewer"}, format="json").status_code)

    assert await run_sync(demote) == 200
    await socket.error("incident:addNote", "forbidden", incident=incident.pk, body="after the demotion")
    assert await note_count(incident) == 1
    await socket.ok("incident:join", incident=incident.pk)  # still a viewer's socket


# --- 8.5: a join with `after` is bounded --------------------------------------------------


async def test_a_join_with_after_returns_at_most_the_limit_and_says_more_remain(
    connect: Connect, viewer: User, responder: User, incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert actions.JOIN_EVENTS_LIMIT == 500  # as GET …/events caps a page
    monkeypatch.setattr(actions, "JOIN_EVENTS_LIMIT", 4)

    def add_notes() -> None:
        for n in range(9):
            commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n}")

    await run_sync(add_notes)  # seq 1 (created) … 10
    socket = await connect(viewer)
    seen: list[int] = []
    after = 0
    pages = []
    while True:
        ack = await socket.ok("incident:join", incident=incident.pk, after=after)
        seqs = [event["seq"] for event in ack["events"]]
        pages.append((seqs, ack["more"]))
        seen += seqs
        if not ack["more"]:
            break
        after = seqs[-1]
    assert pages == [([1, 2, 3, 4], True), ([5, 6, 7, 8], True), ([9, 10], False)]
    assert seen == list(range(1, 11))


# --- 8.6: deep nesting on the socket --------------------------------------------------------


@pytest.mark.parametrize("depth", [40, 200_000])
async def test_deeply_nested_json_on_the_socket_is_an_invalid_reply(connect: Connect, viewer: User, depth: int) -> None:
    socket = await connect(viewer)
    await socket.send_raw('{"type": "ping", "id": 1, "x": ' + "[" * depth + "]" * depth + "}")
    reply = await socket._next(5)
    assert (reply["type"], reply["code"]) == ("error", "invalid")
    await socket.ok("ping")  # and the socket goes on


# --- 8.8: caps ---------------------------------------------------------------------------------


async def test_a_socket_may_join_only_so_many_rooms(
    connect: Connect, viewer: User, responder: User, settings: Any
) -> None:
    settings.WS_MAX_ROOMS_PER_SOCKET = 2
    one, two, three = [await run_sync(create_incident, responder, f"Incident {n}") for n in range(3)]
    socket = await connect(viewer)
    await socket.ok("incident:join", incident=one.pk)
    await socket.ok("incident:join", incident=two.pk)
    refused = await socket.error("incident:join", "invalid", incident=three.pk)
    assert refused["fields"] == {"incident": ["Too many incidents joined."]}
    await socket.ok("incident:join", incident=two.pk)  # joining again is not one more
    await socket.ok("incident:leave", incident=one.pk)
    await socket.ok("incident:join", incident=three.pk)


async def test_a_user_may_open_only_so_many_sockets(
    connect: Connect, viewer: User, responder: User, settings: Any
) -> None:
    settings.WS_MAX_SOCKETS_PER_USER = 2
    first, _second = await connect(viewer), await connect(viewer)
    third = await connect(viewer, expect="any")
    assert await third._next(5) == {"type": "websocket.close", "code": CLOSE_TOO_MANY_SOCKETS}
    await connect(responder)  # another user has slots of their own
    await first.close()
    fourth = await connect(viewer)
    await fourth.ok("ping")


async def test_focus_changes_are_rate_limited_per_socket(
    connect: Connect, viewer: User, incident: Incident, settings: Any
) -> None:
    settings.WS_FOCUS_BURST = 3
    settings.WS_FOCUS_PER_SECOND = 0.001
    socket = await connect(viewer)
    await socket.ok("incident:join", incident=incident.pk)
    for section in ["summary", "status", "notes"]:
        await socket.ok("focus:set", incident=incident.pk, section=section)
    await socket.error("focus:set", "rate_limited", incident=incident.pk, section="severity")
    await socket.ok("ping")  # other messages still go through

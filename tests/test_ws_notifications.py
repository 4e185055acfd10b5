"""`notification:new` over the socket: pushed after the commit to every socket of the recipient, and to no one else."""

import pytest

from accounts.models import User
from incidents import commands
from incidents.models import Incident
from tests.ws_support import Connect, create_incident, run_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def incident(responder: User) -> Incident:
    return create_incident(responder)


async def test_a_mention_reaches_every_socket_of_the_mentioned_user_and_no_one_else(
    connect: Connect, responder: User, viewer: User, admin: User, incident: Incident
) -> None:
    first, second = await connect(viewer), await connect(viewer)  # two tabs, in no room
    bystander = await connect(admin)
    author = await connect(responder)
    ack = await author.ok("incident:addNote", incident=incident.pk, body="@vic please confirm")
    for socket in (first, second):
        push = await socket.push("notification:new")
        assert push["unread"] == 1
        notification = push["notification"]
        assert (notification["kind"], notification["seq"], notification["excerpt"]) == (
            "mention",
            ack["seq"],
            "@vic please confirm",
        )
        assert notification["incident"]["id"] == incident.pk
        assert notification["actor"]["username"] == "rae"
    # The author and a bystander hear nothing of it: each is then mentioned in turn, and that later
    # mention (the witness, sent after) is the only notification each has.
    later = await author.ok("incident:addNote", incident=incident.pk, body="@ada over to you")
    assert (await bystander.push("notification:new"))["notification"]["seq"] == later["seq"]
    thanks = await bystander.ok("incident:addNote", incident=incident.pk, body="@rae thanks")
    assert (await author.push("notification:new"))["notification"]["seq"] == thanks["seq"]
    for socket in (bystander, author):
        assert await socket.settled("notification:new") == []


async def test_an_assignment_made_over_rest_is_pushed_with_the_new_unread_count(
    connect: Connect, responder: User, viewer: User, incident: Incident
) -> None:
    socket = await connect(viewer)
    await run_sync(commands.incident_add_note, actor=responder, incident_id=incident.pk, body="@vic one")
    assert (await socket.push("notification:new"))["unread"] == 1
    await run_sync(commands.incident_update, actor=responder, incident_id=incident.pk, assignees=[viewer])
    push = await socket.push("notification:new", unread=2)
    assert (push["notification"]["kind"], push["notification"]["role"]) == ("assignment", "assignee")


async def test_a_refused_command_pushes_nothing(
    connect: Connect, viewer: User, admin: User, incident: Incident
) -> None:
    socket = await connect(admin)
    refused = await connect(viewer)
    await refused.error("incident:addNote", "forbidden", incident=incident.pk, body="@ada hello")
    # A later, accepted mention is the witness: it is the only one that arrives.
    await run_sync(commands.incident_add_note, actor=admin, incident_id=incident.pk, body="self @ada")
    ack = await run_sync(
        commands.incident_post_status_update, actor=incident.created_by, incident_id=incident.pk, body="@ada"
    )
    assert (await socket.push("notification:new"))["notification"]["seq"] == ack.events[0].seq
    assert await socket.settled("notification:new") == []

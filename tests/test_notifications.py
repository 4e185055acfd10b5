"""In-app notifications: written by the commands with their event, read and marked through the API, one's own only."""

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.models import Incident, Notification

pytestmark = pytest.mark.django_db

LIST = "/api/notifications"
READ = "/api/notifications/read"


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("responder", "bob")


@pytest.fixture
def incident(responder: User) -> Incident:
    return commands.incident_create(actor=responder, title="Checkout errors", severity="high").incident


def rows(user: User) -> list[tuple[str, str, int]]:
    return list(Notification.objects.filter(recipient=user).order_by("id").values_list("kind", "role", "seq"))


# --- Written by the commands ---------------------------------------------------------------------


def test_a_note_that_mentions_someone_notifies_them_once(responder: User, bob: User, incident: Incident) -> None:
    event = commands.incident_add_note(
        actor=responder, incident_id=incident.pk, body="@bob can you look? cc @bob @nobody"
    ).events[0]
    assert rows(bob) == [("mention", "", event.seq)]
    notification = Notification.objects.get(recipient=bob)
    assert (notification.actor, notification.excerpt) == (responder, "@bob can you look? cc @bob @nobody")


def test_a_status_update_that_mentions_someone_notifies_them(responder: User, viewer: User, incident: Incident) -> None:
    event = commands.incident_post_status_update(actor=responder, incident_id=incident.pk, body="FYI @vic").events[0]
    assert rows(viewer) == [("mention", "", event.seq)]


def test_mentioning_yourself_or_nobody_notifies_no_one(responder: User, incident: Incident) -> None:
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="@rae note to self, @ghost")
    assert Notification.objects.count() == 0


def test_being_made_commander_or_assignee_notifies_and_a_removal_does_not(
    responder: User, bob: User, admin: User, incident: Incident
) -> None:
    event = commands.incident_update(actor=responder, incident_id=incident.pk, commander=bob, assignees=[admin]).events[
        0
    ]
    assert rows(bob) == [("assignment", "commander", event.seq)]
    assert rows(admin) == [("assignment", "assignee", event.seq)]
    commands.incident_update(actor=responder, incident_id=incident.pk, commander=None, assignees=[])
    assert len(rows(bob)) == 1 and len(rows(admin)) == 1


def test_assigning_yourself_notifies_no_one(responder: User, incident: Incident) -> None:
    commands.incident_update(actor=responder, incident_id=incident.pk, commander=responder, assignees=[responder])
    assert Notification.objects.count() == 0


def test_a_notification_is_written_in_the_events_transaction(responder: User, bob: User, incident: Incident) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body="@bob")
        raise RuntimeError("rolled back")
    assert Notification.objects.count() == 0
    assert incident.events.count() == 1


def test_a_refused_command_notifies_no_one(viewer: User, bob: User, incident: Incident) -> None:
    with pytest.raises(commands.Forbidden):
        commands.incident_add_note(actor=viewer, incident_id=incident.pk, body="@bob")
    assert Notification.objects.count() == 0


# --- REST ----------------------------------------------------------------------------------------


def test_the_list_is_mine_only_newest_first_with_the_unread_count(
    api: Callable[[User | None], APIClient], responder: User, bob: User, viewer: User, incident: Incident
) -> None:
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="@bob first")
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="@bob second @vic")
    body = api(bob).get(LIST).json()
    assert (body["count"], body["unread"]) == (2, 2)
    assert [n["excerpt"] for n in body["results"]] == ["@bob second @vic", "@bob first"]
    first = body["results"][0]
    assert first["kind"] == "mention" and first["role"] is None and first["read_at"] is None
    assert first["incident"] == {"id": incident.pk, "title": "Checkout errors"}
    assert first["actor"] == {"id": responder.pk, "username": "rae"}
    assert first["url"] == f"/incidents/{incident.pk}/#event-{first['seq']}"
    assert api(viewer).get(LIST).json()["count"] == 1
    assert api(responder).get(LIST).json() == {"count": 0, "next": None, "previous": None, "results": [], "unread": 0}


def test_reading_marks_mine_and_the_unread_filter_follows(
    api: Callable[[User | None], APIClient], responder: User, bob: User, incident: Incident
) -> None:
    for text in ("@bob a", "@bob b", "@bob c"):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=text)
    client = api(bob)
    ids = [n["id"] for n in client.get(LIST).json()["results"]]
    assert client.post(READ, {"ids": ids[:1]}, format="json").json() == {"marked": 1, "unread": 2}
    assert client.post(READ, {"ids": ids[:1]}, format="json").json() == {"marked": 0, "unread": 2}
    unread = client.get(LIST, {"unread": "true"}).json()
    assert [n["id"] for n in unread["results"]] == ids[1:] and unread["unread"] == 2
    assert client.post(READ, {"all": True}, format="json").json() == {"marked": 2, "unread": 0}
    assert all(n["read_at"] for n in client.get(LIST).json()["results"])


def test_reading_another_users_notification_is_not_found_and_changes_nothing(
    api: Callable[[User | None], APIClient], responder: User, bob: User, viewer: User, incident: Incident
) -> None:
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="@bob and @vic")
    theirs = Notification.objects.get(recipient=viewer).pk
    mine = Notification.objects.get(recipient=bob).pk
    response = api(bob).post(READ, {"ids": [mine, theirs]}, format="json")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert Notification.objects.filter(read_at__isnull=False).count() == 0
    # "all" is all of mine, never anyone else's.
    api(bob).post(READ, {"all": True}, format="json")
    assert Notification.objects.get(recipient=viewer).read_at is None
    assert [n["id"] for n in api(bob).get(LIST).json()["results"]] == [mine]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": []},
        {"ids": ["1"]},
        {"ids": [True]},
        {"ids": 1},
        {"ids": [1], "all": True},
        {"all": False},
        {"all": "true"},
        {"all": True, "extra": 1},
        [1, 2],
    ],
)
def test_bad_read_requests_are_invalid_and_change_nothing(
    api: Callable[[User | None], APIClient], responder: User, bob: User, incident: Incident, body: Any
) -> None:
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="@bob")
    response = api(bob).post(READ, body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert Notification.objects.get(recipient=bob).read_at is None


@pytest.mark.parametrize(("method", "path"), [("get", LIST), ("post", READ)])
def test_notifications_need_a_signed_in_user(api: Callable[[User | None], APIClient], method: str, path: str) -> None:
    response = getattr(api(None), method)(path, {"all": True} if method == "post" else None, format="json")
    assert (response.status_code, response.json()["code"]) == (401, "unauthenticated")


def test_a_bad_unread_flag_is_invalid(api: Callable[[User | None], APIClient], bob: User) -> None:
    response = api(bob).get(LIST, {"unread": "yes"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


def test_the_list_costs_the_same_queries_whatever_its_length(
    api: Callable[[User | None], APIClient],
    responder: User,
    bob: User,
    incident: Incident,
    django_assert_num_queries: Any,
) -> None:
    for index in range(5):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"@bob {index}")
    client = api(bob)
    # the user, the count, the page with incidents and actors, the unread count
    with django_assert_num_queries(4):
        assert len(client.get(LIST).json()["results"]) == 5


def test_one_person_given_two_roles_by_one_change_is_told_once(responder: User, bob: User, incident: Incident) -> None:
    event = commands.incident_update(actor=responder, incident_id=incident.pk, commander=bob, assignees=[bob]).events[0]
    assert rows(bob) == [("assignment", "commander", event.seq)]

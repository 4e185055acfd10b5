"""Issue 8.10: look-alike usernames and text that shows nothing are refused, at every door.

`admin` spelt with a Cyrillic a (U+0430) registered beside `admin`, and titles made only of
control or zero-width characters were accepted. The rules live in one place
each (accounts.validation for usernames, incident_platform.text through the
incident commands for text), and each door is tried here.
"""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from incident_platform.text import shows_nothing
from incidents import commands
from incidents.errors import Invalid
from incidents.models import ActionItem, AuditEvent, Incident

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-unusual-phrase-42"
LOOK_ALIKES = ["\u0430dmin", "adm\u0456n", "\u0391dmin"]  # Cyrillic a, Cyrillic i, Greek capital alpha
SAME_AFTER_NFKC = ["\uff41\uff44\uff4d\uff49\uff4e", "\uff21\uff24\uff2d\uff29\uff2e", "ADMIN"]  # full-width
INVISIBLE = ["\u200b", "\u200b\u200c\u200d\ufeff", "\x00\x01\x1f", "\u2060\u2061", "\u3164\u3164", " \u200b ", "\u202e"]


@pytest.fixture
def taken(make_user: Callable[..., User]) -> User:
    return make_user("admin", "admin")


@pytest.mark.parametrize("name", LOOK_ALIKES)
def test_the_api_refuses_a_mixed_script_look_alike(taken: User, name: str) -> None:
    response = APIClient().post("/api/auth/register", {"username": name, "password": PASSWORD})
    assert response.status_code == 400
    assert response.json()["username"]
    assert User.objects.count() == 1


@pytest.mark.parametrize("name", SAME_AFTER_NFKC)
def test_the_api_normalises_before_it_compares(taken: User, name: str) -> None:
    response = APIClient().post("/api/auth/register", {"username": name, "password": PASSWORD})
    assert response.status_code == 409
    assert response.json()["code"] == "username_taken"


def test_a_name_in_one_script_is_welcome() -> None:
    names = ["\u0421\u0430\u0448\u0430", "m\u00fcller", "rae_2.x@ops"]  # Cyrillic only; Latin with an umlaut
    for name in names:
        assert APIClient().post("/api/auth/register", {"username": name, "password": PASSWORD}).status_code == 201
    assert set(User.objects.values_list("username", flat=True)) == set(names)


def test_a_full_width_name_is_stored_normalised() -> None:
    response = APIClient().post("/api/auth/register", {"username": "\uff52\uff41\uff45", "password": PASSWORD})
    assert response.status_code == 201
    assert response.json()["username"] == "rae"


def test_the_sign_up_page_refuses_a_look_alike(taken: User) -> None:
    form = {"username": LOOK_ALIKES[0], "password1": PASSWORD, "password2": PASSWORD}
    response = Client().post("/register/", form)
    assert response.status_code == 400
    assert b"look alike" in response.content
    assert User.objects.count() == 1


def test_the_admin_refuses_a_look_alike_rename(taken: User, make_user: Callable[..., User]) -> None:
    other = make_user("viewer", "victor")
    client = Client()
    client.force_login(taken)
    url = reverse("admin:accounts_user_change", args=[other.pk])
    response = client.post(
        url,
        {
            "username": LOOK_ALIKES[0],
            "role": "viewer",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "is_active": "on",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert b"look alike" in response.content
    other.refresh_from_db()
    assert other.username == "victor"


def test_the_admin_refuses_a_look_alike_new_user(taken: User) -> None:
    client = Client()
    client.force_login(taken)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {"username": LOOK_ALIKES[1], "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 200
    assert b"look alike" in response.content
    assert User.objects.count() == 1


# --- Text that shows nothing -----------------------------------------------------------


@pytest.mark.parametrize("text", INVISIBLE, ids=[repr(t) for t in INVISIBLE])
def test_invisible_text_shows_nothing(text: str) -> None:
    assert shows_nothing(text)


def test_visible_text_shows_something() -> None:
    for text in ["a", " a\u200b", "🔥", "日本", "—"]:
        assert not shows_nothing(text)


@pytest.mark.parametrize("text", INVISIBLE, ids=[repr(t) for t in INVISIBLE])
def test_every_incident_text_refuses_invisible_only_content(responder: User, text: str) -> None:
    incident = commands.incident_create(actor=responder, title="Disk full", severity="high").incident
    item = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Clean up").item
    assert item is not None
    attempts: list[Callable[[], Any]] = [
        lambda: commands.incident_create(actor=responder, title=text, severity="high"),
        lambda: commands.incident_update(actor=responder, incident_id=incident.pk, summary=text),
        lambda: commands.incident_add_note(actor=responder, incident_id=incident.pk, body=text),
        lambda: commands.action_item_add(actor=responder, incident_id=incident.pk, title=text),
        lambda: commands.action_item_update(actor=responder, incident_id=incident.pk, item_id=item.pk, title=text),
    ]
    before = (Incident.objects.count(), AuditEvent.objects.count(), ActionItem.objects.count())
    for attempt in attempts:
        with pytest.raises(Invalid):
            attempt()
    assert (Incident.objects.count(), AuditEvent.objects.count(), ActionItem.objects.count()) == before


def test_the_rest_api_answers_invisible_title_with_a_400(
    api: Callable[[User | None], APIClient], responder: User
) -> None:
    response = api(responder).post("/api/incidents", {"title": "\u200b\u200b", "severity": "high"})
    assert response.status_code == 400
    assert "title" in response.json()
    assert not Incident.objects.exists()


def test_the_web_form_refuses_an_invisible_title(client: Client, responder: User) -> None:
    client.force_login(responder)
    response = client.post(reverse("incident-new"), {"title": "\u2060\u2060", "severity": "high"})
    assert response.status_code == 400
    assert not Incident.objects.exists()

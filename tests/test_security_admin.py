"""Issue 8.12: the Django admin shows no refresh token bodies, and a role and its admin flags cannot drift apart."""

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, admin: User) -> Client:
    client.force_login(admin)
    return client


def test_the_admin_never_shows_a_refresh_token_body(staff: Client, viewer: User) -> None:
    tokens = APIClient().post("/api/auth/login", {"username": "vic", "password": PASSWORD}).json()
    refresh = tokens["refresh"]
    outstanding = OutstandingToken.objects.get(user=viewer)
    assert outstanding.token == refresh  # the database has it; the pages must not
    APIClient().post("/api/auth/refresh", {"refresh": refresh})  # blacklists it: its own admin page too
    blacklisted = BlacklistedToken.objects.get(token=outstanding)
    pages = [
        reverse("admin:token_blacklist_outstandingtoken_changelist"),
        reverse("admin:token_blacklist_outstandingtoken_change", args=[outstanding.pk]),
        reverse("admin:token_blacklist_blacklistedtoken_changelist"),
        reverse("admin:token_blacklist_blacklistedtoken_change", args=[blacklisted.pk]),
    ]
    for url in pages:
        response = staff.get(url)
        assert response.status_code == 200, url
        assert outstanding.jti.encode() in response.content, url  # the page is about this token
        for token in OutstandingToken.objects.values_list("token", flat=True):
            assert token.encode() not in response.content, url
            assert token.split(".")[2].encode() not in response.content, url  # not even its signature


def test_a_blacklist_entry_cannot_be_repointed_to_revive_a_token(staff: Client, viewer: User) -> None:
    refresh = APIClient().post("/api/auth/login", {"username": "vic", "password": PASSWORD}).json()["refresh"]
    APIClient().post("/api/auth/refresh", {"refresh": refresh})
    entry = BlacklistedToken.objects.get()
    other = OutstandingToken.objects.exclude(pk=entry.token.pk).get()
    url = reverse("admin:token_blacklist_blacklistedtoken_change", args=[entry.pk])
    assert staff.post(url, {"token": other.pk}).status_code == 403
    entry.refresh_from_db()
    assert entry.token_id != other.pk


def user_form(client: Client, user: User, **changes: str) -> dict[str, str]:
    data = {
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        **changes,
    }
    return {key: value for key, value in data.items() if value is not None}


def test_ticking_superuser_on_a_viewer_in_the_admin_gives_nothing(staff: Client, viewer: User) -> None:
    url = reverse("admin:accounts_user_change", args=[viewer.pk])
    response = staff.post(url, user_form(staff, viewer, is_staff="on", is_superuser="on"))
    assert response.status_code == 302, response.content[:500]
    viewer.refresh_from_db()
    assert (viewer.role, viewer.is_staff, viewer.is_superuser) == ("viewer", False, False)


@pytest.mark.parametrize(("role", "flags"), [("admin", True), ("responder", False), ("viewer", False)])
def test_the_role_set_in_the_admin_brings_its_flags(
    staff: Client, make_user: Callable[..., User], role: str, flags: bool
) -> None:
    user = make_user("admin" if role != "admin" else "viewer", "someone")
    response = staff.post(reverse("admin:accounts_user_change", args=[user.pk]), user_form(staff, user, role=role))
    assert response.status_code == 302, response.content[:500]
    user.refresh_from_db()
    assert (user.role, user.is_staff, user.is_superuser) == (role, flags, flags)


def test_any_save_keeps_the_flags_in_step_with_the_role(viewer: User) -> None:
    viewer.is_superuser = viewer.is_staff = True
    viewer.save()
    viewer.refresh_from_db()
    assert (viewer.is_staff, viewer.is_superuser) == (False, False)
    viewer.role = User.Role.ADMIN
    viewer.save(update_fields=["role"])
    viewer.refresh_from_db()
    assert (viewer.is_staff, viewer.is_superuser) == (True, True)

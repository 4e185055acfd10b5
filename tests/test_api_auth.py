"""Accounts over REST: registration, JWT sign-in, rotation, sign-out, the current user, roles, throttling."""

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.settings import api_settings
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import User

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

Api = Callable[[User | None], APIClient]


def login(client: APIClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/api/auth/login", {"username": username, "password": password})
    assert response.status_code == 200, response.content
    return dict(response.json())


# --- Registration -------------------------------------------------------------


def test_register_makes_a_viewer() -> None:
    response = APIClient().post(
        "/api/auth/register", {"username": "newbie", "password": "a-long-unusual-phrase-42", "email": "n@example.com"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "username": "newbie", "role": "viewer"}
    user = User.objects.get(username="newbie")
    assert (user.role, user.is_staff, user.is_superuser, user.email) == ("viewer", False, False, "n@example.com")
    assert user.check_password("a-long-unusual-phrase-42")


def test_register_refuses_a_taken_username_whatever_its_case(viewer: User) -> None:
    response = APIClient().post("/api/auth/register", {"username": "VIC", "password": "a-long-unusual-phrase-42"})
    assert response.status_code == 409
    assert response.json() == {
        "detail": "That username is taken.",
        "code": "username_taken",
        "username": ["That username is taken."],
    }
    assert User.objects.filter(username__iexact="vic").count() == 1


@pytest.mark.parametrize("password", ["short", "12345678901", "password123", "newbie1234"])
def test_register_refuses_a_weak_password(password: str) -> None:
    response = APIClient().post("/api/auth/register", {"username": "newbie", "password": password})
    assert response.status_code == 400
    assert response.json()["password"]
    assert not User.objects.filter(username="newbie").exists()


def test_register_refuses_an_unknown_field_so_no_one_picks_their_own_role() -> None:
    response = APIClient().post(
        "/api/auth/register", {"username": "newbie", "password": "a-long-unusual-phrase-42", "role": "admin"}
    )
    assert response.status_code == 400
    assert response.json() == {"role": ["Unknown field."], "code": "invalid"}
    assert not User.objects.filter(username="newbie").exists()


def test_register_requires_username_and_password() -> None:
    response = APIClient().post("/api/auth/register", {})
    assert response.status_code == 400
    assert response.json() == {
        "username": ["This field is required."],
        "password": ["This field is required."],
        "code": "invalid",
    }


# --- Sign-in, rotation, sign-out -----------------------------------------------


def test_login_returns_tokens_that_authenticate(responder: User) -> None:
    tokens = login(APIClient(), "rae")
    assert set(tokens) == {"access", "refresh"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.get("/api/me").json()["username"] == "rae"


def test_login_with_a_wrong_password_is_401(responder: User) -> None:
    response = APIClient().post("/api/auth/login", {"username": "rae", "password": "wrong"})
    assert response.status_code == 401
    assert "access" not in response.json()


def test_login_of_a_deactivated_user_is_401(make_user: Callable[..., User]) -> None:
    make_user("responder", "gone", is_active=False)
    assert APIClient().post("/api/auth/login", {"username": "gone", "password": PASSWORD}).status_code == 401


def test_refresh_rotates_and_the_old_refresh_is_dead(responder: User) -> None:
    client = APIClient()
    first = login(client, "rae")
    rotated = client.post("/api/auth/refresh", {"refresh": first["refresh"]})
    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != first["refresh"]
    again = client.post("/api/auth/refresh", {"refresh": first["refresh"]})
    assert again.status_code == 401
    assert client.post("/api/auth/refresh", {"refresh": rotated.json()["refresh"]}).status_code == 200


def test_refresh_with_garbage_is_401() -> None:
    assert APIClient().post("/api/auth/refresh", {"refresh": "not-a-token"}).status_code == 401


def test_logout_returns_205_and_the_refresh_is_dead_afterwards(responder: User) -> None:
    client = APIClient()
    tokens = login(client, "rae")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.post("/api/auth/logout", {"refresh": tokens["refresh"]}).status_code == 205
    assert APIClient().post("/api/auth/refresh", {"refresh": tokens["refresh"]}).status_code == 401


def test_logout_refuses_someone_elses_refresh_and_leaves_it_alive(responder: User, viewer: User) -> None:
    client = APIClient()
    theirs = login(client, "vic")
    mine = login(client, "rae")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {mine['access']}")
    response = client.post("/api/auth/logout", {"refresh": theirs["refresh"]})
    assert response.status_code == 400
    assert "someone else" in response.json()["refresh"][0]
    assert APIClient().post("/api/auth/refresh", {"refresh": theirs["refresh"]}).status_code == 200


def test_logout_needs_a_signed_in_user(responder: User) -> None:
    tokens = login(APIClient(), "rae")
    assert APIClient().post("/api/auth/logout", {"refresh": tokens["refresh"]}).status_code == 401
    assert APIClient().post("/api/auth/refresh", {"refresh": tokens["refresh"]}).status_code == 200


# --- The current user and role management ---------------------------------------


def test_me_describes_the_signed_in_user(api: Api, responder: User) -> None:
    body = api(responder).get("/api/me").json()
    assert {k: body[k] for k in ("id", "username", "email", "role")} == {
        "id": responder.pk,
        "username": "rae",
        "email": "",
        "role": "responder",
    }


def test_me_needs_a_signed_in_user(api: Api) -> None:
    assert api(None).get("/api/me").status_code == 401


def test_users_are_listed_for_admins(api: Api, users: dict[str, User]) -> None:
    response = api(users["admin"]).get("/api/users")
    assert response.status_code == 200
    assert [u["username"] for u in response.json()["results"]] == ["ada", "rae", "vic"]


@pytest.mark.parametrize(("role", "expected"), [(None, 401), ("viewer", 403), ("responder", 403)])
def test_users_are_hidden_from_non_admins(api: Api, users: dict[str, User], role: str | None, expected: int) -> None:
    client = api(users[role] if role else None)
    assert client.get("/api/users").status_code == expected
    assert client.get(f"/api/users/{users['viewer'].pk}").status_code == expected


def test_admin_changes_a_role(api: Api, users: dict[str, User]) -> None:
    response = api(users["admin"]).patch(f"/api/users/{users['viewer'].pk}", {"role": "responder"})
    assert response.status_code == 200
    assert response.json()["role"] == "responder"
    assert User.objects.get(pk=users["viewer"].pk).role == "responder"


def test_making_someone_admin_grants_the_django_admin_and_demoting_takes_it_away(
    api: Api, users: dict[str, User]
) -> None:
    client, viewer = api(users["admin"]), users["viewer"]
    client.patch(f"/api/users/{viewer.pk}", {"role": "admin"})
    viewer.refresh_from_db()
    assert (viewer.role, viewer.is_staff, viewer.is_superuser) == ("admin", True, True)
    client.patch(f"/api/users/{viewer.pk}", {"role": "viewer"})
    viewer.refresh_from_db()
    assert (viewer.role, viewer.is_staff, viewer.is_superuser) == ("viewer", False, False)


@pytest.mark.parametrize("role", ["viewer", "responder"])
def test_non_admin_cannot_change_a_role(api: Api, users: dict[str, User], role: str) -> None:
    response = api(users[role]).patch(f"/api/users/{users[role].pk}", {"role": "admin"})
    assert response.status_code == 403
    assert User.objects.get(pk=users[role].pk).role == role


@pytest.mark.parametrize("body", [{"role": "superuser"}, {"role": ["admin"]}, {}, {"role": "admin", "is_staff": True}])
def test_bad_role_change_is_400_and_changes_nothing(api: Api, users: dict[str, User], body: dict[str, Any]) -> None:
    response = api(users["admin"]).patch(f"/api/users/{users['viewer'].pk}", body)
    assert response.status_code == 400
    assert response.json()
    viewer = User.objects.get(pk=users["viewer"].pk)
    assert (viewer.role, viewer.is_staff) == ("viewer", False)


def test_role_change_of_an_unknown_user_is_404(api: Api, users: dict[str, User]) -> None:
    assert api(users["admin"]).patch("/api/users/999999", {"role": "admin"}).status_code == 404


# --- Throttling -------------------------------------------------------------------


def test_login_is_throttled_with_429(settings: Any, monkeypatch: pytest.MonkeyPatch, responder: User) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "3/min"}}
    # DRF copies the rates onto the throttle class when it is imported, so a
    # settings override alone does not reach it; point the class at the new rates.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES)
    client = APIClient()
    statuses = [client.post("/api/auth/login", {"username": "rae", "password": PASSWORD}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.post("/api/auth/login", {"username": "rae", "password": PASSWORD})
    assert refused.status_code == 429
    assert "throttled" in refused.json()["detail"].lower()
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0

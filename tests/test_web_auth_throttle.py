"""Every password form spends one sign-in budget per address, shared with POST /api/auth/login."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import User

pytestmark = pytest.mark.django_db

BUDGET = 3


@pytest.fixture(autouse=True)
def small_budget(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": f"{BUDGET}/min"}}
    # DRF copies the rates onto the throttle class at import; point it at the new ones.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES)
    yield


@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/api-auth/login/", "/register/"])
def test_a_password_form_refuses_posts_past_the_budget_with_429(path: str) -> None:
    client = Client()
    wrong = {"username": "nobody", "password": "wrong-password", "password1": "x", "password2": "y"}
    statuses = [client.post(path, wrong).status_code for _ in range(BUDGET)]
    assert 429 not in statuses
    refused = client.post(path, wrong)
    assert refused.status_code == 429
    assert b"Too many sign-in attempts" in refused.content
    assert client.get(path).status_code == 200  # reading the form costs nothing


def test_the_budget_is_shared_with_the_json_login(viewer: User) -> None:
    client = Client()
    for _ in range(BUDGET):
        client.post("/api/auth/login", {"username": "vic", "password": "wrong"}, content_type="application/json")
    assert client.post("/login/", {"username": "vic", "password": "wrong"}).status_code == 429


def test_a_refused_sign_in_does_not_sign_in_even_with_the_right_password(viewer: User) -> None:
    from .conftest import PASSWORD

    client = Client()
    for _ in range(BUDGET):
        client.post("/login/", {"username": "vic", "password": "wrong"})
    assert client.post("/login/", {"username": "vic", "password": PASSWORD}).status_code == 429
    assert "_auth_user_id" not in client.session


def test_behind_a_proxy_the_budget_follows_the_address_the_proxy_saw(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With NUM_PROXIES=1 the last X-Forwarded-For entry (the one our proxy appended) counts:
    a guesser cannot buy a fresh budget by forging earlier entries, and other clients keep theirs."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    monkeypatch.setattr(api_settings, "NUM_PROXIES", 1)
    proxy = Client(REMOTE_ADDR="10.0.0.1")

    def attempt(forwarded_for: str) -> int:
        return proxy.post("/login/", {"username": "x", "password": "y"}, HTTP_X_FORWARDED_FOR=forwarded_for).status_code

    statuses = [attempt(f"192.0.2.{n}, 203.0.113.7") for n in range(BUDGET + 1)]
    assert statuses[-1] == 429
    assert attempt("198.51.100.2") == 200

"""Issue 8.3: a made-up X-Forwarded-For does not buy a fresh sign-in budget.

With NUM_PROXIES unset, DRF's throttles counted the whole X-Forwarded-For
header as the client's address, so a new header per attempt gave 25 wrong
passwords without a 429. Every door shares the one budget.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

pytestmark = pytest.mark.django_db

BUDGET = 5
DOORS = ["/api/auth/login", "/login/", "/admin/login/", "/api-auth/login/", "/register/", "/api/auth/register"]


@pytest.fixture(autouse=True)
def small_budget(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": f"{BUDGET}/min"}}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES)
    assert api_settings.NUM_PROXIES is None  # the default: no proxy configured
    yield


def attempt(client: Client, path: str, forwarded_for: str) -> int:
    wrong = {"username": "nobody", "password": "wrong-password", "password1": "x", "password2": "y"}
    if path.startswith("/api/auth/"):
        return client.post(path, wrong, content_type="application/json", HTTP_X_FORWARDED_FOR=forwarded_for).status_code
    return client.post(path, wrong, HTTP_X_FORWARDED_FOR=forwarded_for).status_code


@pytest.mark.parametrize("path", DOORS)
def test_a_fresh_forwarded_for_per_attempt_does_not_reset_the_budget(path: str) -> None:
    client = Client()
    statuses = [attempt(client, path, f"198.51.100.{n}") for n in range(BUDGET + 3)]
    assert 429 not in statuses[:BUDGET]
    assert set(statuses[BUDGET:]) == {429}


def test_all_doors_spend_one_budget_whatever_the_forwarded_for() -> None:
    client = Client()
    statuses = [attempt(client, DOORS[n % len(DOORS)], f"203.0.113.{n}") for n in range(BUDGET)]
    assert 429 not in statuses
    assert {attempt(client, door, "192.0.2.99") for door in DOORS} == {429}


def test_another_address_keeps_its_own_budget() -> None:
    addresses = ["10.1.1.1", "10.1.1.2"]
    try:
        statuses = [attempt(Client(REMOTE_ADDR=addresses[0]), "/login/", f"198.51.100.{n}") for n in range(BUDGET + 1)]
        assert statuses[-1] == 429
        assert attempt(Client(REMOTE_ADDR=addresses[1]), "/login/", "198.51.100.1") != 429
    finally:
        for address in addresses:
            cache.delete(ScopedRateThrottle.cache_format % {"scope": "auth", "ident": address})

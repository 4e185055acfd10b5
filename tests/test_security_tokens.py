"""Issue 8.2: a refresh token is spent once, even by requests racing each other.

Eight concurrent `POST /api/auth/refresh` with one refresh token all got 200,
forking a stolen token into eight token families. Real threads, each with
its own database connection, on SQLite and on PostgreSQL (both passes).
"""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 8


@pytest.fixture(autouse=True)
def _signs_in_with_the_default_hasher(responder: User) -> None:
    """The shared fixture hash may have been made under another test's fast hasher setting; make one now."""
    responder.set_password(PASSWORD)
    responder.save()


def refresh_token(username: str) -> str:
    response = APIClient().post("/api/auth/login", {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return str(response.json()["refresh"])


def race(count: int, request: Callable[[], Any]) -> list[Any]:
    """Run `request` in `count` threads released together; their results."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = request()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_concurrent_refreshes_of_one_token_let_exactly_one_win(responder: User) -> None:
    token = refresh_token("rae")
    responses = race(RACERS, lambda: APIClient().post("/api/auth/refresh", {"refresh": token}))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [401] * (RACERS - 1), statuses
    assert all(r.json()["code"] == "token_not_valid" for r in responses if r.status_code == 401)
    assert BlacklistedToken.objects.filter(token__jti__isnull=False).count() == 1
    # The winner's new refresh token works once more; the old one stays dead.
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert APIClient().post("/api/auth/refresh", {"refresh": winner["refresh"]}).status_code == 200
    assert APIClient().post("/api/auth/refresh", {"refresh": token}).status_code == 401


def test_a_refresh_racing_a_sign_out_cannot_both_succeed(responder: User) -> None:
    token = refresh_token("rae")
    access = APIClient().post("/api/auth/refresh", {"refresh": refresh_token("rae")}).json()["access"]

    def sign_out() -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
        return client.post("/api/auth/logout", {"refresh": token})

    def refresh() -> Any:
        return APIClient().post("/api/auth/refresh", {"refresh": token})

    functions = [sign_out, refresh] * 4
    counter = iter(range(len(functions)))
    lock = threading.Lock()

    def next_call() -> Any:
        with lock:
            index = next(counter)
        return functions[index]()

    responses = race(len(functions), next_call)
    succeeded = [r for r in responses if r.status_code in (200, 205)]
    assert len(succeeded) == 1, sorted(r.status_code for r in responses)

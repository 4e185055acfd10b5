"""Shared fixtures: users of every role, authenticated API clients, and the backend passes.

The suite runs in two passes (see tests/run.py): the embedded default
(SQLite, in-memory channel layer) and the production stack (PostgreSQL,
Redis). Tests marked for one backend are deselected in the other pass; they
are not skipped, they run in the pass that has their backend.
"""

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from accounts.services import user_set_role
from incidents import audit_triggers

from .throttling import reset_auth_throttle

# WebSocket fixtures (`connect`, `fresh_realtime`), opt-in by name.
pytest_plugins = ["tests.ws_support"]

ROLES = ["admin", "responder", "viewer"]
PASSWORD = "correct-horse-battery-staple"


def _backend() -> dict[str, bool]:
    engine = settings.DATABASES["default"]["ENGINE"]
    return {
        "postgres": engine == "django.db.backends.postgresql",
        "sqlite": engine == "django.db.backends.sqlite3",
        "redis": bool(settings.REDIS_URL),
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = _backend()
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        needs = [name for name in ("postgres", "sqlite", "redis") if item.get_closest_marker(name)]
        if item.get_closest_marker("browser") and not backend["sqlite"]:
            needs.append("sqlite")  # browser tests run once, in the embedded pass
        (selected if all(backend[name] for name in needs) else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(autouse=True)
def _fresh_auth_throttle() -> Iterator[None]:
    """Every test starts with an unspent sign-in budget (see tests/throttling.py)."""
    reset_auth_throttle()
    yield
    reset_auth_throttle()


@pytest.fixture(autouse=True)
def _audit_triggers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Keep the append-only triggers in place, and let the test flush get past them.

    A transactional test ends with Django flushing every table: SQLite with
    DELETE, which the row triggers refuse, PostgreSQL with TRUNCATE, which the
    statement trigger of migration 0003 refuses (as it refuses `manage.py
    flush` in production). So once a transactional test is done, the trigger
    in the flush's way is dropped for the flush, and put back before the next
    test.
    """
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or "live_server" in request.fixturenames
    transactional = transactional or bool(marker and marker.kwargs.get("transaction"))
    if not (marker or "db" in request.fixturenames or transactional):
        yield
        return
    if transactional:
        request.getfixturevalue("transactional_db")
    else:
        request.getfixturevalue("db")
    if connection.vendor == "sqlite":
        audit_triggers.install(connection)
    if connection.vendor == "postgresql" and (transactional or not _truncate_guard_installed()):
        # A DDL lock on the events table: taken only when the guard is missing
        # (right after a transactional test), so a test's own threads never queue on it.
        audit_triggers.install_truncate_guard(connection)
    yield
    if transactional and connection.vendor == "sqlite":
        audit_triggers.uninstall(connection)
    if transactional:
        audit_triggers.uninstall_truncate_guard(connection)


def _truncate_guard_installed() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = %s AND NOT tgisinternal",
            [f"{audit_triggers.TABLE}_no_truncate"],
        )
        return cursor.fetchone() is not None


@functools.cache
def password_hash() -> str:
    """PASSWORD hashed once per session and shared by every fixture user.

    Password hashing is slow on purpose (about 0.3 s with Django's PBKDF2);
    hashing per user made user fixtures the bulk of the suite's time. The hash
    is a real default-hasher hash, so servers started by tests accept it too.
    """
    return make_password(PASSWORD)


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(role: str = "responder", username: str | None = None, **extra: Any) -> User:
        user = User.objects.create(
            username=username or f"{role}{next(counter)}", password=password_hash(), email="", **extra
        )
        user_set_role(user=user, role=role)
        return user

    return make


@pytest.fixture
def admin(make_user: Callable[..., User]) -> User:
    return make_user("admin", "ada")


@pytest.fixture
def responder(make_user: Callable[..., User]) -> User:
    return make_user("responder", "rae")


@pytest.fixture
def viewer(make_user: Callable[..., User]) -> User:
    return make_user("viewer", "vic")


@pytest.fixture
def users(admin: User, responder: User, viewer: User) -> dict[str, User]:
    return {"admin": admin, "responder": responder, "viewer": viewer}


def token_for(user: User) -> str:
    return str(RefreshToken.for_user(user).access_token)


@pytest.fixture
def api() -> Callable[[User | None], APIClient]:
    """An API client authenticated with a Bearer token for `user` (or anonymous for None)."""

    def client(user: User | None = None) -> APIClient:
        c = APIClient()
        if user is not None:
            c.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return c

    return client

"""Settings from the environment: production refuses to start without its values, and is deploy-clean."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DATABASE_URL", "AUDIT_KEY")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_a_secret_key_fails_at_start_up() -> None:
    result = manage("check", DEBUG="false", ALLOWED_HOSTS="incidents.example.com")
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


def test_production_without_allowed_hosts_fails_at_start_up() -> None:
    result = manage("check", DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode != 0
    assert "Set the ALLOWED_HOSTS environment variable" in result.stderr


def test_production_settings_pass_check_deploy() -> None:
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="incidents.example.com",
        AUDIT_KEY=secrets.token_urlsafe(32),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_an_audit_key_fails_at_start_up() -> None:
    result = manage("check", DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="incidents.example.com")
    assert result.returncode != 0
    assert "Set the AUDIT_KEY environment variable" in result.stderr


def test_an_audit_key_that_is_short_or_the_secret_key_is_refused() -> None:
    secret = secrets.token_urlsafe(50)
    for audit_key in ("too-short", secret):
        result = manage("check", DEBUG="false", SECRET_KEY=secret, ALLOWED_HOSTS="example.com", AUDIT_KEY=audit_key)
        assert result.returncode != 0
        assert "AUDIT_KEY must be at least 32 characters and differ from SECRET_KEY" in result.stderr


def _database_options(**env: str) -> str:
    result = manage(
        "shell", "-c", "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])", **env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_postgresql_uses_a_connection_pool_by_default() -> None:
    options = _database_options(DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused", DATABASE_POOL_MAX="7")
    assert "'pool': {'min_size': 2, 'max_size': 7, 'timeout': 10}" in options


def test_the_pool_can_be_turned_off_for_an_external_pooler() -> None:
    options = _database_options(DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused", DATABASE_POOL="false")
    assert "pool" not in options


def test_the_middleware_stack_runs_in_one_thread_per_request() -> None:
    """Django runs a middleware in async mode when it can and the one below it is async.

    Under ASGI the view's handler at the bottom is async, so an async-capable
    middleware at the bottom puts every `MiddlewareMixin` above it in async mode,
    where each hops to a thread and back for its hooks (about ten hops per
    request, measured in docs/benchmarks.md). With the innermost middleware
    synchronous, the whole stack runs synchronously in one thread.
    """
    from django.conf import settings
    from django.utils.module_loading import import_string

    classes = [import_string(path) for path in settings.MIDDLEWARE]
    assert all(getattr(cls, "sync_capable", True) for cls in classes)
    assert getattr(classes[-1], "async_capable", False) is False, classes[-1]

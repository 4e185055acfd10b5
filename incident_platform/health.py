"""Probes for load balancers and orchestrators.

`/healthz` answers while the process can serve a request at all: it touches
nothing, so a database outage does not get every process restarted.
`/readyz` says whether this process can do its work: the database answers a
query and, when REDIS_URL is set, Redis answers a PING, each within
READY_TIMEOUT_SECONDS. A 503 names what failed, so an operator reads the
cause from the probe itself.

A small view rather than django-health-check: that library's database check
writes and deletes a row in a table of its own (a migration, and a write on
every probe), it answers a failure with 500 rather than the 503 load
balancers and Kubernetes read as "not ready", and the channel layer's Redis
needs a PING of its own anyway; two checks under one deadline are shorter
than its configuration.
"""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# Probes that outlive their deadline keep running here, bounded, instead of piling up threads.
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


def check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # this worker thread's connection (back to the pool, if there is one)


def check_redis() -> None:
    timeout = settings.READY_TIMEOUT_SECONDS
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def dependencies() -> dict[str, Callable[[], None]]:
    checks = {"database": check_database}
    if settings.REDIS_URL:
        checks["redis"] = check_redis
    return checks


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    deadline = time.monotonic() + settings.READY_TIMEOUT_SECONDS
    running = {name: _checks.submit(check) for name, check in dependencies().items()}
    results: dict[str, str] = {}
    for name, future in running.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
            results[name] = "ok"
        except FutureTimeout:
            results[name] = f"no answer within {settings.READY_TIMEOUT_SECONDS} s"
        except Exception as exc:
            results[name] = f"{type(exc).__name__}: {exc}".strip()[:300]
    failed = [name for name, result in results.items() if result != "ok"]
    body = {"status": "unavailable" if failed else "ready", "failed": failed, "checks": results}
    return JsonResponse(body, status=503 if failed else 200)

"""/healthz and /readyz: alive without dependencies; ready when the database and Redis answer, else 503."""

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest
import redis
from django.test import Client

from .servers import DaphneServer, free_port


def test_healthz_answers_without_touching_the_database() -> None:
    # No database fixture: pytest-django would fail any query this made.
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_is_ready_when_its_dependencies_answer(settings: Any) -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200
    expected = {"database": "ok", **({"redis": "ok"} if settings.REDIS_URL else {})}
    assert response.json() == {"status": "ready", "failed": [], "checks": expected}


def test_probes_refuse_writes() -> None:
    assert Client().post("/healthz").status_code == 405


class PrivateRedis:
    """A redis-server of this test's own on a free port: the shared one on 6379 is never touched."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # polling the server's start-up, not a timing assertion

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.mark.django_db
def test_readyz_goes_503_naming_redis_when_redis_dies_and_comes_back(
    settings: Any, private_redis: PrivateRedis
) -> None:
    settings.REDIS_URL = private_redis.url
    settings.READY_TIMEOUT_SECONDS = 2
    assert Client().get("/readyz").status_code == 200

    private_redis.stop()
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["failed"], body["checks"]["database"]) == ("unavailable", ["redis"], "ok")
    assert "Connection" in body["checks"]["redis"]

    private_redis.start()
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_readyz_goes_503_naming_the_database_when_it_cannot_be_reached() -> None:
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/nothing"
    with DaphneServer(DATABASE_URL=nowhere, READY_TIMEOUT_SECONDS="1") as server:
        with urlopen(f"{server.url}/healthz", timeout=10) as alive:  # noqa: S310 (our own server)
            assert alive.status == 200
        with pytest.raises(HTTPError) as refused:
            urlopen(f"{server.url}/readyz", timeout=10)  # noqa: S310
        assert refused.value.code == 503
        body = json.loads(refused.value.read())
        assert body["status"] == "unavailable"
        assert "database" in body["failed"]

"""Issue 8.1, 8.6 and 8.8 over HTTP: deep JSON, compressed charsets and oversized bodies.

- 8.6: deeply nested JSON was a 500 (RecursionError) on every endpoint, also
  unauthenticated on login and registration; now it is a 400 parse error.
- 8.1: CVE-2026-114136 (DRF < 3.18.2): a `charset=bz2_codec` body was
  decompressed after the size check; now refused.
- 8.8: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is refused from its
  Content-Length before it is read, for anonymous callers too.
"""

import bz2
import json
from collections.abc import Callable
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import User
from incident_platform.jsonlimits import MAX_JSON_DEPTH, depth_exceeds
from tests.test_api_bad_input import WRITE_IDS, WRITES, admin_client, assert_refused, snapshot, write_targets

ANONYMOUS = ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"]
WAY_TOO_DEEP = "[" * 200_000 + "]" * 200_000  # Python's parser gives up (RecursionError)
JUST_TOO_DEEP = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)  # parses, but deeper than allowed


def nested_object(body: str) -> str:
    return '{"title": ' + body + ', "severity": "high"}'


# The bad-input tests' fixtures: the ids the paths of WRITES need, and an admin's client.
world = pytest.fixture(write_targets, name="world")
client = pytest.fixture(admin_client, name="client")


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [WAY_TOO_DEEP, JUST_TOO_DEEP], ids=["recursion", "over-the-bound"])
@pytest.mark.parametrize(("method", "path", "valid"), WRITES, ids=WRITE_IDS)
def test_deeply_nested_json_is_a_400_on_every_write(
    client: APIClient, world: dict[str, Any], method: str, path: str, valid: dict[str, Any], depth: str
) -> None:
    before = snapshot()
    response = getattr(client, method)(path.format(**world), nested_object(depth), content_type="application/json")
    assert "JSON parse error" in assert_refused(response)["detail"]
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("path", ANONYMOUS)
@pytest.mark.parametrize("depth", [WAY_TOO_DEEP, JUST_TOO_DEEP], ids=["recursion", "over-the-bound"])
def test_deeply_nested_json_is_a_400_without_signing_in(path: str, depth: str) -> None:
    response = APIClient().post(path, nested_object(depth), content_type="application/json")
    assert "JSON parse error" in assert_refused(response)["detail"]
    assert not User.objects.exists()


@pytest.mark.django_db
def test_json_nested_within_the_bound_still_parses(api: Callable[[User | None], APIClient], admin: User) -> None:
    deep_enough = "[" * (MAX_JSON_DEPTH - 1) + '"x"' + "]" * (MAX_JSON_DEPTH - 1)
    response = api(admin).post("/api/incidents", nested_object(deep_enough), content_type="application/json")
    assert response.status_code == 400
    assert "title" in response.json()  # refused by the serializer (not a string), not by the parser


def test_depth_is_measured_without_recursion() -> None:
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    assert depth_exceeds(value)
    assert not depth_exceeds({"a": [1, {"b": [2]}]})


@pytest.mark.django_db
def test_a_compression_codec_as_charset_is_refused() -> None:
    """CVE-2026-114136: 100 bytes on the wire must not become megabytes in the parser."""
    bomb = bz2.compress(json.dumps({"username": "x" * 5_000_000, "password": "p"}).encode())
    response = APIClient().post("/api/auth/login", bomb, content_type="application/json; charset=bz2_codec")
    assert response.status_code == 400
    assert "charset" in response.json()["detail"]


# --- Oversized bodies, at the ASGI door --------------------------------------------------


async def asgi_post(path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, dict[str, Any]]:
    """POST through the whole ASGI application, sending only `chunks` of the body; the status and JSON body."""
    from incident_platform.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    communicator = ApplicationCommunicator(application, scope)
    for index, chunk in enumerate(chunks):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1})
    start = await communicator.receive_output(timeout=10)
    body = await communicator.receive_output(timeout=10)
    await communicator.wait(timeout=10)
    return start["status"], json.loads(body["body"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/api/auth/login", "/api/auth/register", "/api/incidents", "/login/"])
async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(path: str) -> None:
    """Not one byte of the body is sent: an answer proves it was not waited for."""
    declared = str(50 * 1024 * 1024).encode()
    status, body = await asgi_post(path, [(b"content-length", declared)], chunks=[])
    assert status == 413
    assert body["code"] == "too_large"


@pytest.mark.django_db(transaction=True)
async def test_a_body_that_runs_past_the_limit_without_a_length_is_cut_off() -> None:
    piece = b" " * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 2 + 1)
    status, body = await asgi_post("/api/auth/login", [], chunks=[piece, piece, piece])
    assert (status, body["code"]) == (413, "too_large")


@pytest.mark.django_db(transaction=True)
async def test_a_malformed_content_length_is_refused() -> None:
    status, body = await asgi_post("/api/auth/login", [(b"content-length", b"-1")], chunks=[])
    assert (status, body["code"]) == (400, "invalid")


@pytest.mark.django_db(transaction=True)
async def test_a_body_within_the_limit_reaches_the_view() -> None:
    payload = json.dumps({"username": "nobody", "password": "wrong"}).encode()
    status, _ = await asgi_post("/api/auth/login", [(b"content-length", str(len(payload)).encode())], [payload])
    assert status == 401  # the view answered: bad credentials


@pytest.mark.django_db
def test_an_api_path_with_a_newline_is_a_json_404() -> None:
    response = APIClient().get("/api/incidents/x%0A/events")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")

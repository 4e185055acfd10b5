"""LOG_FORMAT=json: one JSON line per request, with a request id that the response echoes."""

import json
import logging
from typing import Any
from urllib.request import Request, urlopen

import pytest
from django.test import Client

from incident_platform.observability import JsonFormatter, request_id_from

from .servers import DaphneServer


def test_a_request_gets_an_id_echoed_in_the_response() -> None:
    response = Client().get("/healthz")
    assert len(response["X-Request-ID"]) == 32
    assert Client().get("/healthz", HTTP_X_REQUEST_ID="lb-1234").get("X-Request-ID") == "lb-1234"


@pytest.mark.parametrize("given", ["", "x" * 65, "has space", "new\nline", "<script>"])
def test_an_unusable_request_id_is_replaced(given: str) -> None:
    assert request_id_from(given) != given


def test_a_request_is_logged_once_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="incident_platform.access"):
        Client().get("/healthz", HTTP_X_REQUEST_ID="req-1")
    lines = [r for r in caplog.records if getattr(r, "event", None) == "request"]
    assert len(lines) == 1
    fields: dict[str, Any] = lines[0].fields  # type: ignore[attr-defined]
    assert {k: fields[k] for k in ("request_id", "method", "path", "view", "status")} == {
        "request_id": "req-1",
        "method": "GET",
        "path": "/healthz",
        "view": "healthz",
        "status": 200,
    }
    assert fields["duration_ms"] >= 0


def test_the_json_formatter_writes_one_object_per_line() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "two\nlines %s", ("here",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["message"] == "two\nlines here"
    assert json.loads(line)["level"] == "WARNING"


@pytest.mark.django_db(transaction=True)
def test_a_server_with_log_format_json_writes_json_request_lines() -> None:
    with DaphneServer(LOG_FORMAT="json") as server:
        request = Request(f"{server.url}/healthz", headers={"X-Request-ID": "probe-42"})  # noqa: S310
        with urlopen(request, timeout=10) as response:  # noqa: S310 (our own server)
            assert response.headers["X-Request-ID"] == "probe-42"
        # The line is written before the response is sent; a stop flushes the log.
        server.stop()
        objects = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    mine = [o for o in objects if o.get("event") == "request" and o.get("request_id") == "probe-42"]
    assert len(mine) == 1
    assert (mine[0]["path"], mine[0]["status"], mine[0]["level"]) == ("/healthz", 200, "INFO")

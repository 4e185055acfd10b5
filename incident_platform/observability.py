"""One log line and one latency sample per HTTP request, with a request id; JSON logs with LOG_FORMAT=json.

The request id is the client's (or the proxy's) `X-Request-ID` when it sends a
sane one, else a fresh one; it is echoed in the response's `X-Request-ID`, set
on `request.request_id`, and carried by the request's log line, so a client's
report and a server's log meet. WebSocket lifecycle lines come from
`realtime` through `log_event` with the socket's own id.
"""

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from . import metrics

access_log = logging.getLogger("incident_platform.access")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id_from(value: str | None) -> str:
    """The caller's id if it is short and plain (it ends up in logs), else a new one."""
    if value and REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


def log_event(event: str, **fields: Any) -> None:
    """One lifecycle line: `event` plus its fields (JSON keys with LOG_FORMAT=json)."""
    text = " ".join(f"{name}={value}" for name, value in fields.items())
    access_log.info(f"{event} {text}", extra={"event": event, "fields": fields})


class RequestMiddleware:
    """Time every request, count it by view, log it once."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        response["X-Request-ID"] = request_id
        metrics.observe_request(request, response.status_code, seconds)
        user = getattr(request, "user", None)
        log_event(
            "request",
            request_id=request_id,
            method=request.method,
            path=request.path,
            view=metrics.view_name(request),
            status=response.status_code,
            duration_ms=round(seconds * 1000, 1),
            user=user.pk if user is not None and user.is_authenticated else None,
        )
        return response


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the event's fields when it has them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
        }
        event = getattr(record, "event", None)
        if event is not None:
            line["event"] = event
            line.update(getattr(record, "fields", {}))
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)

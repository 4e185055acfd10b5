"""Prometheus metrics: every metric object of the platform, and the /metrics view.

The code that measures calls small helpers here (a middleware for HTTP, a few
calls in the consumer and the commands), so what is measured reads in one place.

Several daphne processes: set PROMETHEUS_MULTIPROC_DIR to an empty directory
shared by the processes of one box (wiped before they start); each process
writes its samples there and a scrape of any of them returns the box's sum
(prometheus_client's multiprocess mode). Without it, each process reports its own.

/metrics is off unless METRICS_TOKEN is set, and then answers only
`Authorization: Bearer <METRICS_TOKEN>`: it names views and rates that an
outsider has no business reading.
"""

import atexit
import hmac
import os
import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# Latency buckets from a cache hit to a slow write under load (seconds).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by view (URL name), method and status.",
    ["view", "method", "status"],
    buckets=BUCKETS,
)
WS_OPEN = Gauge("ws_open_sockets", "WebSocket connections open now.", multiprocess_mode="livesum")
WS_ROOMS = Gauge(
    "ws_joined_rooms", "Incident rooms joined by open sockets (one per socket and room).", multiprocess_mode="livesum"
)
WS_IN = Counter("ws_messages_received_total", "Client frames received, by message type.", ["type"])
WS_OUT = Counter("ws_messages_sent_total", "Frames sent to clients, by type.", ["type"])
WS_RATE_LIMITED = Counter("ws_rate_limited_total", "Client frames refused with rate_limited.")
FANOUT_LATENCY = Histogram(
    "fanout_latency_seconds",
    "From the commit of a change to its incident:updated frame being handed to a socket.",
    buckets=BUCKETS,
)
PRESENCE_ENTRIES = Gauge(
    "presence_entries",
    "Presence entries (one per socket and room) this process keeps alive in the presence store.",
    multiprocess_mode="livesum",
)
COMMANDS = Counter(
    "commands_total",
    "Commands of incidents.commands by name and outcome: accepted, or the refusal's code.",
    ["command", "outcome"],
)

if MULTIPROCESS:

    @atexit.register
    def _forget_this_process() -> None:
        """A process that exits cleanly drops out of the live gauges (a killed one stays until the dir is wiped)."""
        multiprocess.mark_process_dead(os.getpid())


F = TypeVar("F", bound=Callable[..., Any])


def counted(command: F) -> F:
    """Count a command's calls: accepted, or refused with its typed error's code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = command(*args, **kwargs)
        except Exception as exc:
            COMMANDS.labels(command.__name__, getattr(exc, "code", "error")).inc()
            raise
        COMMANDS.labels(command.__name__, "accepted").inc()
        return result

    return wrapper  # type: ignore[return-value]


# The first "type" of an encoded frame is its own: the server writes it first, or (list rows) it is
# the only top-level "type"; a "type" inside a string value is escaped and cannot match.
_FRAME_TYPE = re.compile(r'"type": ?"([^"\\]+)"')


def ws_frame_sent(text: str) -> None:
    """A frame handed to a socket, counted by its type."""
    match = _FRAME_TYPE.search(text)
    WS_OUT.labels(match.group(1) if match else "unknown").inc()


def ws_received(kind: str) -> None:
    """A client frame by its type (`invalid` when it has none the server knows)."""
    WS_IN.labels(kind).inc()


def fanout_delivered(message: dict[str, Any]) -> None:
    """An incident:updated handed to this process's sockets: how long after its commit."""
    committed_at = message.get("committed_at")
    if isinstance(committed_at, int | float):
        FANOUT_LATENCY.observe(max(0.0, time.time() - committed_at))


def view_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return match.view_name or match.route or "<unnamed>"


def observe_request(request: HttpRequest, status: int, seconds: float) -> None:
    HTTP_LATENCY.labels(view_name(request), request.method or "", str(status)).observe(seconds)


def _registry() -> CollectorRegistry:
    if not MULTIPROCESS:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        return JsonResponse({"detail": "Metrics are off: set METRICS_TOKEN.", "code": "not_found"}, status=404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = JsonResponse({"detail": "A valid metrics token is required.", "code": "unauthenticated"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)

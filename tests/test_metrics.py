"""/metrics: protected by METRICS_TOKEN, HTTP latency by view, commands by outcome, summed across daphne processes."""

import tempfile
from typing import Any
from urllib.request import Request, urlopen

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from accounts.models import User
from incidents import commands
from incidents.errors import InvalidTransition

from .servers import DaphneServer

TOKEN = "scrape-me-please"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_are_off_without_a_token(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    response = Client().get("/metrics")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_refuse_a_missing_or_wrong_token(settings: Any, header: str | None) -> None:
    settings.METRICS_TOKEN = TOKEN
    response = Client().get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"http_request_duration_seconds" not in response.content


def test_metrics_with_the_token_count_requests_by_view(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    labels = {"view": "healthz", "method": "GET", "status": "200"}
    before = sample("http_request_duration_seconds_count", **labels)
    Client().get("/healthz")
    Client().get("/healthz")
    assert sample("http_request_duration_seconds_count", **labels) == before + 2
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",status="200",view="healthz"}' in (
        response.content.decode()
    )


@pytest.mark.django_db
def test_metrics_label_an_unknown_path_unmatched() -> None:
    labels = {"view": "<unmatched>", "method": "GET", "status": "404"}
    before = sample("http_request_duration_seconds_count", **labels)
    Client().get("/no-such-page")
    assert sample("http_request_duration_seconds_count", **labels) == before + 1


@pytest.mark.django_db
def test_commands_are_counted_accepted_and_refused_by_code(responder: User) -> None:
    accepted = sample("commands_total", command="incident_change_status", outcome="accepted")
    refused = sample("commands_total", command="incident_change_status", outcome="invalid_transition")
    incident = commands.incident_create(actor=responder, title="Disk full", severity="high").incident
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
    with pytest.raises(InvalidTransition):
        commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
    assert sample("commands_total", command="incident_change_status", outcome="accepted") == accepted + 1
    assert sample("commands_total", command="incident_change_status", outcome="invalid_transition") == refused + 1


def scrape(server: DaphneServer) -> str:
    request = Request(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})  # noqa: S310
    with urlopen(request, timeout=10) as response:  # noqa: S310 (our own server)
        return response.read().decode()


def healthz_count(text: str) -> float:
    prefix = 'http_request_duration_seconds_count{method="GET",status="200",view="healthz"} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


@pytest.mark.django_db(transaction=True)
def test_several_daphne_processes_report_one_sum() -> None:
    shared = tempfile.mkdtemp(prefix="prometheus-")
    with (
        DaphneServer(PROMETHEUS_MULTIPROC_DIR=shared, METRICS_TOKEN=TOKEN) as one,
        DaphneServer(PROMETHEUS_MULTIPROC_DIR=shared, METRICS_TOKEN=TOKEN) as two,
    ):
        for server, times in ((one, 3), (two, 2)):
            for _ in range(times):
                with urlopen(f"{server.url}/healthz", timeout=10) as response:  # noqa: S310
                    assert response.status == 200
        # Either process answers for both: 3 + 2, whichever is scraped.
        assert healthz_count(scrape(one)) == 5
        assert healthz_count(scrape(two)) == 5


def test_frames_are_counted_by_their_own_type() -> None:
    from incident_platform import metrics

    before = sample("ws_messages_sent_total", type="incident:created")
    # A list row puts its type last; a "type" inside a string value does not count.
    metrics.ws_frame_sent('{"id": 1, "title": "a \\"type\\": \\"ack\\"", "type": "incident:created"}')
    assert sample("ws_messages_sent_total", type="incident:created") == before + 1


def test_fan_out_latency_is_observed_from_the_commit_time() -> None:
    import time

    from incident_platform import metrics

    before = sample("fanout_latency_seconds_count")
    metrics.fanout_delivered({"type": "incident.updated", "committed_at": time.time()})
    metrics.fanout_delivered({"type": "incident.updated"})  # no commit time: nothing to measure
    assert sample("fanout_latency_seconds_count") == before + 1

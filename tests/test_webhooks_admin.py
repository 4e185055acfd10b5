"""The admin's webhook pages: endpoints registered with checked input, deliveries and attempts read-only."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from accounts.models import User
from incidents import commands
from incidents.webhooks import delivery
from incidents.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

from .webhook_receiver import Receiver, closed_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, admin: User) -> Client:
    client.force_login(admin)
    return client


def add_form(**fields: Any) -> dict[str, Any]:
    return {
        "name": "ops",
        "url": "https://hooks.example.com/incidents",
        "secret": "a-shared-secret",
        "payload_format": "json",
        "is_active": "on",
        **fields,
    }


def deliveries_with_attempts(actor: User, count: int) -> None:
    """`count` events, each delivered to two endpoints, one of them after a 500."""
    with Receiver(statuses=(500,) * count) as receiver:
        WebhookEndpoint.objects.create(name="flaky", url=receiver.url)
        WebhookEndpoint.objects.create(name="slack", url=receiver.url, payload_format="slack")
        incident = commands.incident_create(actor=actor, title="Admin pages", severity="low").incident
        for n in range(count - 1):
            commands.incident_add_note(actor=actor, incident_id=incident.pk, body=f"note {n}")
        now = timezone.now()
        while delivery.deliver_due(limit=50, now=now):
            now += timedelta(days=1)  # past any backoff


# --- Registering an endpoint ------------------------------------------------------


def test_an_admin_registers_an_endpoint_with_the_event_types_it_wants(staff: Client) -> None:
    response = staff.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        add_form(event_types=["status_change", "note"], payload_format="slack"),
    )
    assert response.status_code == 302
    hook = WebhookEndpoint.objects.get()
    assert (hook.url, hook.event_types, hook.payload_format, hook.is_active) == (
        "https://hooks.example.com/incidents",
        ["note", "status_change"],
        "slack",
        True,
    )


def test_an_endpoint_without_event_types_gets_every_type(staff: Client) -> None:
    assert staff.post(reverse("admin:webhooks_webhookendpoint_add"), add_form()).status_code == 302
    hook = WebhookEndpoint.objects.get()
    assert hook.event_types == []
    assert hook.wants("note") and hook.wants("a_type_added_later")


def test_the_add_page_offers_a_fresh_random_secret(staff: Client) -> None:
    first = staff.get(reverse("admin:webhooks_webhookendpoint_add")).context["adminform"].form
    second = staff.get(reverse("admin:webhooks_webhookendpoint_add")).context["adminform"].form
    assert len(first["secret"].value()) >= 40
    assert first["secret"].value() != second["secret"].value()


@pytest.mark.parametrize(
    "url",
    ["ftp://files.example.com/hook", "javascript:alert(1)", "file:///etc/passwd", "gopher://x.example/", "not a url"],
)
def test_a_url_that_is_not_http_or_https_is_refused(staff: Client, url: str) -> None:
    response = staff.post(reverse("admin:webhooks_webhookendpoint_add"), add_form(url=url))
    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event_types": ["no_such_type"]}, "event_types"),
        ({"payload_format": "xml"}, "payload_format"),
        ({"name": ""}, "name"),
        ({"secret": ""}, "secret"),
    ],
)
def test_bad_endpoint_input_is_a_form_error_and_saves_nothing(
    staff: Client, fields: dict[str, Any], field: str
) -> None:
    response = staff.post(reverse("admin:webhooks_webhookendpoint_add"), add_form(**fields))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.exists()


def test_loopback_receivers_are_allowed(staff: Client) -> None:
    response = staff.post(reverse("admin:webhooks_webhookendpoint_add"), add_form(url="http://127.0.0.1:8081/hook"))
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().url == "http://127.0.0.1:8081/hook"


def test_non_staff_cannot_see_the_webhook_pages(client: Client, responder: User) -> None:
    client.force_login(responder)
    for name in ("webhookendpoint", "webhookdelivery", "webhookattempt"):
        response = client.get(reverse(f"admin:webhooks_{name}_changelist"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


# --- Pages with pinned query counts -----------------------------------------------


@pytest.mark.parametrize("count", [2, 12])
def test_delivery_and_attempt_lists_query_count_does_not_grow(
    staff: Client, responder: User, count: int, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    deliveries_with_attempts(responder, count)
    assert WebhookDelivery.objects.count() == 2 * count
    assert WebhookAttempt.objects.count() == 3 * count
    for name, rows, queries in (
        ("webhookdelivery", 2 * count, 6),  # session, user, 2 counts, page, the endpoint filter
        ("webhookattempt", 3 * count, 6),  # session, user, 2 counts, page, the endpoint filter
        ("webhookendpoint", 2, 5),  # session, user, 2 counts, page
    ):
        url = reverse(f"admin:webhooks_{name}_changelist")
        staff.get(url)  # warm the per-process caches
        with django_assert_num_queries(queries):
            response = staff.get(url)
        assert response.status_code == 200
        assert response.context["cl"].result_count == rows
    counted = {hook.name: (hook.pending_count, hook.failed_count) for hook in response.context["cl"].result_list}
    assert counted == {"flaky": (0, 0), "slack": (0, 0)}  # every delivery delivered in the end


@pytest.mark.parametrize("count", [2, 12])
def test_a_delivery_page_shows_its_attempts_read_only_in_a_fixed_number_of_queries(
    staff: Client, responder: User, count: int, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    deliveries_with_attempts(responder, count)
    row = WebhookDelivery.objects.filter(endpoint__name="flaky", attempts=2).first()
    assert row is not None
    url = reverse("admin:webhooks_webhookdelivery_change", args=[row.pk])
    staff.get(url)
    with django_assert_num_queries(4):  # session, user, the delivery with its endpoint and event, its attempts
        page = staff.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert "HTTP 500" in html and "answer 200" in html
    assert 'name="status"' not in html and 'name="attempts"' not in html  # nothing to edit
    hook = WebhookEndpoint.objects.get(name="flaky")
    endpoint_url = reverse("admin:webhooks_webhookendpoint_change", args=[hook.pk])
    staff.get(endpoint_url)
    with django_assert_num_queries(3):  # session, user, the endpoint
        assert staff.get(endpoint_url).status_code == 200


def test_the_endpoint_list_counts_each_endpoints_pending_and_failed_deliveries(
    staff: Client, responder: User, settings: Any
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    WebhookEndpoint.objects.create(name="down", url=f"http://127.0.0.1:{closed_port()}/hook")
    WebhookEndpoint.objects.create(name="quiet", url="http://127.0.0.1:9/hook", event_types=["status_change"])
    incident = commands.incident_create(actor=responder, title="Counting", severity="low").incident
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="second")
    assert delivery.deliver_due(limit=1) == {"failed": 1}
    response = staff.get(reverse("admin:webhooks_webhookendpoint_changelist"))
    counted = {hook.name: (hook.pending_count, hook.failed_count) for hook in response.context["cl"].result_list}
    assert counted == {"down": (1, 1), "quiet": (0, 0)}
    assert '<td class="field-subscribed">status_change</td>' in response.content.decode()


def test_the_delivery_list_filters_by_event_type_and_status(staff: Client, responder: User) -> None:
    deliveries_with_attempts(responder, 3)
    url = reverse("admin:webhooks_webhookdelivery_changelist")
    notes = staff.get(url, {"event_type": "note", "status__exact": "delivered"}).context["cl"]
    assert notes.result_count == 4
    assert {row.event_type for row in notes.result_list} == {"note"}
    assert staff.get(url, {"event_type": "status_change"}).context["cl"].result_count == 0
    assert staff.get(url, {"status__exact": "failed"}).context["cl"].result_count == 0


def test_deliveries_and_attempts_cannot_be_added_changed_or_deleted(staff: Client, responder: User) -> None:
    deliveries_with_attempts(responder, 1)
    row = WebhookDelivery.objects.first()
    attempt = WebhookAttempt.objects.first()
    assert row is not None and attempt is not None
    for name, pk in (("webhookdelivery", row.pk), ("webhookattempt", attempt.pk)):
        assert staff.get(reverse(f"admin:webhooks_{name}_add")).status_code == 403
        assert staff.post(reverse(f"admin:webhooks_{name}_change", args=[pk]), {"status": "failed"}).status_code == 403
        assert staff.post(reverse(f"admin:webhooks_{name}_delete", args=[pk]), {"post": "yes"}).status_code == 403
    assert WebhookDelivery.objects.filter(pk=row.pk, status="delivered").exists()
    assert WebhookAttempt.objects.filter(pk=attempt.pk).exists()


def test_retry_now_makes_failed_deliveries_due_and_leaves_delivered_ones(
    staff: Client, responder: User, settings: Any
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    with Receiver(statuses=(500,)) as receiver:
        WebhookEndpoint.objects.create(name="ops", url=receiver.url)
        incident = commands.incident_create(actor=responder, title="Retry", severity="low").incident
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body="second")
        assert delivery.deliver_due() == {"failed": 1, "delivered": 1}
        failed = WebhookDelivery.objects.get(status="failed")
        delivered = WebhookDelivery.objects.get(status="delivered")

        response = staff.post(
            reverse("admin:webhooks_webhookdelivery_changelist"),
            {"action": "retry_selected", "_selected_action": [failed.pk, delivered.pk]},
            follow=True,
        )
        assert response.status_code == 200
        assert "1 delivery(ies) will be sent" in response.content.decode()
        failed.refresh_from_db()
        assert failed.status == "pending"
        assert delivery.deliver_due() == {"delivered": 1}
    assert len(receiver.received) == 3
    assert WebhookDelivery.objects.get(pk=delivered.pk).attempts == 1

"""The outbox: one delivery per matching endpoint per event, written in the command's transaction.

`incidents.commands` calls `enqueue` right after it appends an event, inside
the same transaction, so a delivery exists exactly when its event does: a
rolled-back command leaves neither. The worker (`incidents.webhooks.delivery`)
sends them later; nothing here touches the network.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..models import AuditEvent, Incident
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .payloads import build_payload


def enqueue(incident: Incident, event: AuditEvent) -> list[WebhookDelivery]:
    """One query for the active endpoints, and one insert when any of them wants this event."""
    endpoints = [endpoint for endpoint in WebhookEndpoint.objects.filter(is_active=True) if endpoint.wants(event.type)]
    if not endpoints:
        return []
    now = timezone.now()
    return WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint=endpoint,
            event=event,
            event_type=event.type,
            payload=build_payload(endpoint, incident, event),
            created_at=now,
            next_attempt_at=now,
        )
        for endpoint in endpoints
    )


def deliveries_purge(*, older_than: timedelta, batch_size: int = 1000) -> tuple[int, int]:
    """Delete settled (delivered or failed) deliveries created before `older_than` ago, with their attempts.

    Pending ones are kept whatever their age. Oldest first, in batches of
    primary keys (each its own transaction), so the outbox's writers are never
    held up behind one long delete. Returns (deliveries deleted, batches).
    """
    cutoff = timezone.now() - older_than
    settled = WebhookDelivery.objects.filter(
        status__in=[WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED], created_at__lt=cutoff
    )
    deleted = batches = 0
    while pks := list(settled.order_by("pk").values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            WebhookAttempt.objects.filter(delivery__in=pks).delete()
            count, _ = WebhookDelivery.objects.filter(pk__in=pks).delete()
        deleted += count
        batches += 1
    return deleted, batches

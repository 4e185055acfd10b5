"""The outbox: one delivery per matching endpoint per event, written in the command's transaction.

`incidents.commands` calls `enqueue` right after it appends an event, inside
the same transaction, so a delivery exists exactly when its event does: a
rolled-back command leaves neither. The worker (`incidents.webhooks.delivery`)
sends them later; nothing here touches the network.
"""

from django.utils import timezone

from ..models import AuditEvent, Incident
from .models import WebhookDelivery, WebhookEndpoint
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

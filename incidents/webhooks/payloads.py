"""What a delivery carries, and how it is signed.

The body is built from the event inside the command's transaction, so it
says what happened as it happened (the incident's title then, not later).
A receiver verifies it as docs/api.md ("Outgoing webhooks") shows.
"""

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse

from ..models import AuditEvent, Incident
from .models import WebhookEndpoint

SIGNATURE_HEADER = "X-Webhook-Signature"


def incident_url(incident: Incident) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("incident-room", args=[incident.pk])


def json_payload(incident: Incident, event: AuditEvent) -> dict[str, Any]:
    return {
        "event": json.loads(json.dumps(event.as_data(), cls=DjangoJSONEncoder)),
        "incident": {
            "id": incident.pk,
            "title": incident.title,
            "url": incident_url(incident),
            "status": incident.status,
            "severity": incident.severity,
        },
        "actor": {"id": event.actor_id, "username": event.actor_username},
    }


def _mrkdwn(text: Any) -> str:
    """Slack's escaping: only &, < and > are special in mrkdwn text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _username(ref: Any) -> str:
    return ref["username"] if isinstance(ref, dict) and "username" in ref else "nobody"


ROLE_WORDS = {"comms_lead": "communications lead"}


def describe(event: AuditEvent) -> str:
    """One line in words (mrkdwn-escaped): what the actor did."""
    data = event.data if isinstance(event.data, dict) else {}
    who = f"*{_mrkdwn(event.actor_username)}*"
    match event.type:
        case AuditEvent.Type.INCIDENT_CREATED:
            return f"{who} declared the incident ({_mrkdwn(data.get('severity', ''))})"
        case AuditEvent.Type.STATUS_CHANGE | AuditEvent.Type.SEVERITY_CHANGE:
            what = "status" if event.type == AuditEvent.Type.STATUS_CHANGE else "severity"
            return f"{who} changed the {what}: {_mrkdwn(data.get('from'))} → {_mrkdwn(data.get('to'))}"
        case AuditEvent.Type.SUMMARY_CHANGE:
            return f"{who} changed the summary"
        case "title_change":
            return f"{who} renamed the incident: {_mrkdwn(data.get('from'))} → {_mrkdwn(data.get('to'))}"
        case AuditEvent.Type.EVENT_PINNED | AuditEvent.Type.EVENT_UNPINNED:
            verb = "pinned" if event.type == AuditEvent.Type.EVENT_PINNED else "unpinned"
            return f"{who} {verb} event {_mrkdwn(data.get('seq'))} as a key moment"
        case AuditEvent.Type.NOTE:
            return f"{who} added a note: {_mrkdwn(str(data.get('body', ''))[:500])}"
        case AuditEvent.Type.STATUS_UPDATE:
            return f"{who} posted a status update: {_mrkdwn(str(data.get('body', ''))[:500])}"
        case AuditEvent.Type.UPDATE_CADENCE_CHANGE:
            every = data.get("to")
            return f"{who} set status updates {f'every {_mrkdwn(every)} min' if every else 'to no cadence'}"
        case AuditEvent.Type.ASSIGNMENT:
            # Each incident role changed ({from, to}), then the assignees added and removed.
            parts = [
                f"{ROLE_WORDS.get(role, role.replace('_', ' '))} → {_mrkdwn(_username(change.get('to')))}"
                for role, change in data.items()
                if role != "assignees" and isinstance(change, dict)
            ]
            if "assignees" in data:
                added = ", ".join(_mrkdwn(_username(u)) for u in data["assignees"].get("added", []))
                removed = ", ".join(_mrkdwn(_username(u)) for u in data["assignees"].get("removed", []))
                parts += [f"assigned {added}"] if added else []
                parts += [f"unassigned {removed}"] if removed else []
            return f"{who} changed the assignment: {'; '.join(parts)}"
        case AuditEvent.Type.ACTION_ITEM_ADDED | AuditEvent.Type.ACTION_ITEM_UPDATED:
            item = data.get("item") or {}
            verb = "added" if event.type == AuditEvent.Type.ACTION_ITEM_ADDED else "updated"
            return f"{who} {verb} an action item: {_mrkdwn(item.get('title', ''))}"
        case _:
            return f"{who} recorded {_mrkdwn(event.type.replace('_', ' '))}"


def slack_payload(incident: Incident, event: AuditEvent) -> dict[str, Any]:
    """Slack's incoming-webhook shape: `text` for notifications, `blocks` for the message."""
    url = incident_url(incident)
    title = _mrkdwn(incident.title)
    line = describe(event)
    return {
        "text": f"[#{incident.pk} {title}] {line}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*<{url}|#{incident.pk} {title}>*\n{line}"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{incident.severity} · {incident.status} · event {event.seq} ({event.type})",
                    }
                ],
            },
        ],
    }


def build_payload(endpoint: WebhookEndpoint, incident: Incident, event: AuditEvent) -> dict[str, Any]:
    if endpoint.payload_format == WebhookEndpoint.Format.SLACK:
        return slack_payload(incident, event)
    return json_payload(incident, event)


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body under the secret>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"

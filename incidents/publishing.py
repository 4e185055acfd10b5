"""Publishing committed changes to the channel layer.

Uses only the channel layer's own API, so `incidents` never imports
`realtime`. A message is built inside the transaction (the state it carries is
the state the event produced) and sent after the commit, once: a rolled-back
change is never broadcast.
"""

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import prefetch_related_objects

from .models import AuditEvent, Incident

logger = logging.getLogger(__name__)

LIST_GROUP = "incidents"


def incident_group(incident_id: int) -> str:
    return f"incident.{incident_id}"


def plain(data: Any) -> Any:
    """JSON-safe plain types (the channel layer serialises with msgpack)."""
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def incident_state(incident_id: int) -> dict[str, Any]:
    """The incident's whole state, as `IncidentSerializer` gives it, built without DRF (it runs on every write).

    tests/test_state.py holds it equal to the serializer's output.
    """
    from .selectors import incident_state_queryset

    return state_of(incident_state_queryset().get(pk=incident_id))


def _when(value: datetime | None) -> str | None:
    """DRF's rendering of a datetime: ISO 8601 in UTC, with `Z`."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _ref(user: Any) -> dict[str, Any] | None:
    return user.as_ref() if user is not None else None


def state_of(incident: Incident) -> dict[str, Any]:
    """The state of an incident loaded with `incident_state_queryset` (its relations prefetched)."""
    return {
        "id": incident.pk,
        "title": incident.title,
        "status": incident.status,
        "severity": incident.severity,
        "commander": _ref(incident.commander),
        "comms_lead": _ref(incident.comms_lead),
        "scribe": _ref(incident.scribe),
        "created_at": _when(incident.created_at),
        "updated_at": _when(incident.updated_at),
        "resolved_at": _when(incident.resolved_at),
        "version": incident.version,
        "summary": incident.summary,
        "assignees": [user.as_ref() for user in incident.assignees.all()],
        "created_by": _ref(incident.created_by),
        "action_items": [item.as_data() for item in incident.action_items.all()],
        "allowed_transitions": incident.allowed_transitions(),
        "latest_status_update": _status_update(incident),
        "status_update_cadence": incident.status_update_cadence,
    }


def _status_update(incident: Incident) -> dict[str, Any] | None:
    latest = incident.latest_status_update
    return None if latest is None else {**latest, "at": _when(latest["at"])}


def list_row(state: dict[str, Any]) -> dict[str, Any]:
    from .serializers import IncidentListSerializer

    return {name: state[name] for name in IncidentListSerializer.Meta.fields}


def state_after_change(incident: Incident) -> dict[str, Any]:
    """The state of an incident a command has just changed, read from the row it holds (no second read of it).

    Its many-to-many and reverse relations are read afresh, since the
    command may have changed them since they were last read.
    """
    from .selectors import ACTION_ITEMS

    getattr(incident, "_prefetched_objects_cache", {}).clear()
    prefetch_related_objects([incident], "assignees", ACTION_ITEMS)
    return state_of(incident)


def publish_on_commit(incident: Incident, event: AuditEvent) -> dict[str, Any]:
    """Build the messages now (inside the transaction), send them after the commit; return the state."""
    state = state_after_change(incident)
    updated = {
        "type": "incident.updated",
        "incident": incident.pk,
        "seq": event.seq,
        "version": state["version"],
        "event": plain(event.as_data()),
        "state": state,
    }
    listed = {
        "type": "incident.created" if event.type == AuditEvent.Type.INCIDENT_CREATED else "incident.list_changed",
        "incident": incident.pk,
        "row": list_row(state),
    }
    # `committed_at` lets each process measure commit-to-socket time (fanout_latency_seconds).
    transaction.on_commit(
        lambda: send([(incident_group(incident.pk), {**updated, "committed_at": time.time()}), (LIST_GROUP, listed)])
    )
    return state


def send(messages: list[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for group, message in messages:
            await layer.group_send(group, message)

    try:
        async_to_sync(send_all)()
    except Exception:
        # The change is committed; a lost broadcast is repaired by seq (clients
        # ask for what they missed), so it must not turn success into an error.
        logger.exception("Could not publish %s", [group for group, _ in messages])

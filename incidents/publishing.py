"""Publishing committed changes to the channel layer.

Uses only the channel layer's own API, so `incidents` never imports
`realtime`. A message is built inside the transaction (the state it carries is
the state the event produced) and sent after the commit, once: a rolled-back
change is never broadcast.
"""

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from .models import AuditEvent, Incident

logger = logging.getLogger(__name__)

LIST_GROUP = "incidents"


def incident_group(incident_id: int) -> str:
    return f"incident.{incident_id}"


def plain(data: Any) -> Any:
    """JSON-safe plain types (the channel layer serialises with msgpack)."""
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def incident_state(incident_id: int) -> dict[str, Any]:
    from .selectors import incident_state_queryset
    from .serializers import IncidentSerializer

    return plain(IncidentSerializer(incident_state_queryset().get(pk=incident_id)).data)


def list_row(state: dict[str, Any]) -> dict[str, Any]:
    from .serializers import IncidentListSerializer

    return {name: state[name] for name in IncidentListSerializer.Meta.fields}


def publish_on_commit(incident: Incident, event: AuditEvent) -> dict[str, Any]:
    """Build the messages now (inside the transaction), send them after the commit; return the state."""
    state = incident_state(incident.pk)
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
    transaction.on_commit(lambda: send([(incident_group(incident.pk), updated), (LIST_GROUP, listed)]))
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

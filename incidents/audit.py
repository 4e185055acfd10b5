"""Proving a timeline whole: the chain, its outside anchor, and the rows it explains.

For one incident, `verify_incident` checks, naming the first problem:

1. the chain: seq 1, 2, 3 … with no gap or repeat, each event's `prev_hash`
   the previous event's hash, each hash recomputed from the content;
2. the MACs (with AUDIT_KEY set): each keyed event's MAC is the HMAC of its
   hash, and no unkeyed event follows a keyed one;
3. the rows: `Incident.version` is the last seq (a cut-off tail or a change
   without an event shows here), and the incident's title, status, severity,
   summary, incident roles (commander, communications lead, scribe), assignees
   and action items are what its events say
   (`incidents.replay`).

What each check can and cannot catch is in the README ("The audit timeline").
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import audit_key
from .models import ActionItem, AuditEvent, Incident
from .replay import ReplayedState, ReplayError, apply_event, state_from_events


@dataclass(frozen=True)
class AuditProblem:
    incident_id: int
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"incident {self.incident_id}" + (f" event {self.seq}" if self.seq is not None else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    """The outcome for one incident: its first problem (or None), its chain head, and its unkeyed events."""

    incident_id: int
    problem: AuditProblem | None
    head_seq: int = 0
    head_hash: str = ""
    unkeyed: int = 0


def verify_incident(incident_id: int, *, allow_unkeyed: bool = False) -> AuditProblem | None:
    """The first problem with one incident's timeline, or None if it is whole."""
    return verify(incident_id, allow_unkeyed=allow_unkeyed).problem


def verify(incident_id: int, *, allow_unkeyed: bool = False) -> Verification:
    """Check one incident; with AUDIT_KEY set, an event without a MAC fails unless `allow_unkeyed`.

    A timeline rewritten by someone without the key can only carry no MACs,
    so unkeyed events are accepted only when the operator says some were
    written before the key was set (and then only before the first keyed one).
    """
    expected_seq = 1
    prev_hash = ""
    unkeyed = 0
    keyed_seen = False
    state: ReplayedState | None = None

    def fail(seq: int | None, reason: str) -> Verification:
        return Verification(incident_id, AuditProblem(incident_id, seq, reason), expected_seq - 1, prev_hash, unkeyed)

    events: Iterator[AuditEvent] = (
        AuditEvent.objects.filter(incident_id=incident_id).order_by("seq").iterator(chunk_size=1000)
    )
    for event in events:
        if event.seq != expected_seq:
            return fail(event.seq, f"expected seq {expected_seq} (a gap or a repeat)")
        if event.prev_hash != prev_hash:
            return fail(event.seq, "prev_hash does not match the previous event's hash")
        if event.compute_hash() != event.hash:
            return fail(event.seq, "content does not match its hash (edited after it was written)")
        if event.mac:
            keyed_seen = True
            if audit_key.is_set() and not audit_key.mac_matches(event.hash, event.mac):
                return fail(event.seq, "MAC does not match AUDIT_KEY (rewritten by someone without the key)")
        else:
            unkeyed += 1
            if keyed_seen:
                return fail(event.seq, "no MAC after keyed events (written or rewritten without AUDIT_KEY)")
            if audit_key.is_set() and not allow_unkeyed:
                return fail(
                    event.seq,
                    "no MAC (written without AUDIT_KEY: before it was set, or by a rewrite; "
                    "--allow-unkeyed accepts events from before the key)",
                )
        try:
            data = event.as_data()
            state = state_from_events([data]) if state is None else apply_event(state, data)
        except (ReplayError, KeyError, TypeError) as error:
            return fail(event.seq, f"cannot be applied to the state before it: {error!r}")
        prev_hash = event.hash
        expected_seq += 1

    problem = _compare_rows(incident_id, state)
    return Verification(incident_id, problem, expected_seq - 1, prev_hash, unkeyed)


def _compare_rows(incident_id: int, state: ReplayedState | None) -> AuditProblem | None:
    """The first field where the incident's rows disagree with what its events say."""
    incident = Incident.objects.select_related("commander").get(pk=incident_id)
    last_seq = state.version if state is not None else 0
    if incident.version != last_seq:
        return AuditProblem(
            incident_id,
            None,
            f"version is {incident.version} but the last event is seq {last_seq} "
            "(events cut off the end, or a change made without an event)",
        )
    if state is None:
        return AuditProblem(incident_id, None, "no events: every incident starts with incident_created")
    row: dict[str, Any] = {
        "title": incident.title,
        "status": incident.status,
        "severity": incident.severity,
        "summary": incident.summary,
        "commander": incident.commander_id,
        "comms_lead": incident.comms_lead_id,
        "scribe": incident.scribe_id,
        "assignees": sorted(incident.assignees.values_list("pk", flat=True)),
        "action_items": [
            {"id": item.pk, "title": item.title, "owner": item.owner_id, "done": item.done}
            for item in ActionItem.objects.filter(incident_id=incident_id).order_by("pk")
        ],
    }
    told: dict[str, Any] = {
        "title": state.title,
        "status": state.status,
        "severity": state.severity,
        "summary": state.summary,
        "commander": state.commander["id"] if state.commander else None,
        "comms_lead": _id(state.roles.get("comms_lead")),
        "scribe": _id(state.roles.get("scribe")),
        "assignees": [user["id"] for user in state.assignees],
        "action_items": [
            {
                "id": item["id"],
                "title": item["title"],
                "owner": item["owner"]["id"] if item.get("owner") else None,
                "done": item["done"],
            }
            for item in state.action_items
        ],
    }
    for name, value in row.items():
        if value != told[name]:
            return AuditProblem(incident_id, None, f"{name} is {_short(value)} but its events say {_short(told[name])}")
    return None


def _id(user: Any) -> int | None:
    return user["id"] if user else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

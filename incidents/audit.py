"""Proving a timeline untouched: recompute every event's hash along the chain."""

from collections.abc import Iterator
from dataclasses import dataclass

from .models import AuditEvent


@dataclass(frozen=True)
class AuditProblem:
    incident_id: int
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"incident {self.incident_id} event {self.seq}: {self.reason}"


def verify_incident(incident_id: int) -> AuditProblem | None:
    """The first broken link of one incident's timeline, or None if it is whole."""
    expected_seq = 1
    prev_hash = ""
    events: Iterator[AuditEvent] = (
        AuditEvent.objects.filter(incident_id=incident_id).order_by("seq").iterator(chunk_size=1000)
    )
    for event in events:
        if event.seq != expected_seq:
            return AuditProblem(incident_id, event.seq, f"expected seq {expected_seq} (a gap or a repeat)")
        if event.prev_hash != prev_hash:
            return AuditProblem(incident_id, event.seq, "prev_hash does not match the previous event's hash")
        if event.compute_hash() != event.hash:
            return AuditProblem(incident_id, event.seq, "content does not match its hash (edited after it was written)")
        prev_hash = event.hash
        expected_seq += 1
    return None

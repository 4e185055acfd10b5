"""The timeline's words come from one formatter per audit event type (incidents.timeline)."""

from incidents.models import AuditEvent
from incidents.timeline import FORMATTERS, describe_event


def test_every_event_type_has_a_formatter() -> None:
    assert set(FORMATTERS) == set(AuditEvent.Type.values)


def test_a_type_without_a_formatter_reads_as_its_name() -> None:
    event = AuditEvent(type="runbook_linked", data={})
    assert describe_event(event) == "runbook linked"


def test_an_event_without_data_still_reads() -> None:
    assert describe_event(AuditEvent(type=AuditEvent.Type.INCIDENT_CREATED, data=None)) == "opened it (?)"
    assert describe_event(AuditEvent(type=AuditEvent.Type.ASSIGNMENT, data={})) == "changed the assignment"

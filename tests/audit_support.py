"""What the audit tests share (tests/test_audit.py, tests/test_audit_integrity.py): made into fixtures there.

Plain functions, so each module names its fixtures itself without importing a
fixture object (which linters take for an unused import).
"""

from collections.abc import Iterator

from django.db import connection

from accounts.models import User
from incidents import audit_triggers, commands
from incidents.models import Incident


def incident_with_a_timeline(responder: User) -> Incident:
    """An incident with three events: created, a note, identified."""
    incident = commands.incident_create(actor=responder, title="Disk full", severity="high").incident
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="first")
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
    return incident


def triggers_down() -> Iterator[None]:
    """The append-only row triggers dropped, for a test that must tamper on purpose, and put back after."""
    audit_triggers.uninstall(connection)
    try:
        yield
    finally:
        audit_triggers.install(connection)

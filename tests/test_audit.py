"""The audit timeline is append-only at every layer, and its hash chain proves it untouched."""

from io import StringIO
from itertools import pairwise
from typing import Any

import pytest
from django.core.management import ManagementUtility, call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import ProtectedError

from accounts.models import User
from incidents import audit_triggers, commands
from incidents.audit import verify_incident
from incidents.models import ActionItem, AppendOnlyError, AuditEvent, Incident
from tests.audit_support import incident_with_a_timeline, triggers_down

pytestmark = pytest.mark.django_db


incident = pytest.fixture(incident_with_a_timeline, name="incident")
untriggered = pytest.fixture(triggers_down, name="untriggered")


def stored(incident: Incident) -> list[tuple[Any, ...]]:
    return list(AuditEvent.objects.filter(incident=incident).order_by("seq").values_list("seq", "type", "data", "hash"))


def tamper(sql: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# --- The database refuses ---------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE incidents_auditevent SET type = 'note'",
        "UPDATE incidents_auditevent SET data = '{}' WHERE seq = 2",
        "DELETE FROM incidents_auditevent WHERE seq = 3",
        "DELETE FROM incidents_auditevent",
    ],
)
def test_raw_sql_update_or_delete_of_an_event_is_refused_by_the_database(incident: Incident, sql: str) -> None:
    before = stored(incident)
    # A savepoint, so PostgreSQL's aborted transaction ends here and the test can still query.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert stored(incident) == before


def test_raw_sql_insert_is_still_allowed_so_the_commands_can_append(incident: Incident) -> None:
    commands.incident_add_note(actor=incident.created_by, incident_id=incident.pk, body="after")
    assert [row[0] for row in stored(incident)] == [1, 2, 3, 4]


# --- The ORM refuses -------------------------------------------------------------------


def test_saving_an_existing_event_is_refused(incident: Incident) -> None:
    before = stored(incident)
    event = AuditEvent.objects.get(incident=incident, seq=2)
    event.data = {"body": "edited"}
    with pytest.raises(AppendOnlyError):
        event.save()
    assert stored(incident) == before


def test_deleting_an_event_is_refused(incident: Incident) -> None:
    before = stored(incident)
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.get(incident=incident, seq=2).delete()
    assert stored(incident) == before


@pytest.mark.parametrize(
    "attempt",
    [
        lambda qs: qs.update(type="note"),
        lambda qs: qs.delete(),
        lambda qs: qs.bulk_update(list(qs), ["type"]),
    ],
    ids=["update", "delete", "bulk_update"],
)
def test_queryset_update_and_delete_are_refused(incident: Incident, attempt: Any) -> None:
    before = stored(incident)
    with pytest.raises(AppendOnlyError):
        attempt(AuditEvent.objects.filter(incident=incident))
    assert stored(incident) == before


def test_an_incident_with_a_timeline_cannot_be_deleted(incident: Incident) -> None:
    with pytest.raises(ProtectedError), transaction.atomic():
        Incident.objects.filter(pk=incident.pk).delete()
    assert len(stored(incident)) == 3


# --- The hash chain -----------------------------------------------------------------------


def test_each_event_hashes_the_previous_hash_and_its_own_content(incident: Incident) -> None:
    events = list(AuditEvent.objects.filter(incident=incident).order_by("seq"))
    assert events[0].prev_hash == ""
    for previous, event in pairwise(events):
        assert event.prev_hash == previous.hash
    for event in events:
        assert event.hash == event.compute_hash()
        assert len(event.hash) == 64
    assert len({e.hash for e in events}) == len(events)


def test_each_incident_has_its_own_chain(incident: Incident, responder: User) -> None:
    other = commands.incident_create(actor=responder, title="Other", severity="low").incident
    first = AuditEvent.objects.get(incident=other, seq=1)
    assert first.prev_hash == ""
    assert verify_incident(incident.pk) is None
    assert verify_incident(other.pk) is None


def seeded() -> dict[str, int]:
    call_command("seed_demo", stdout=StringIO())
    return {
        "users": User.objects.count(),
        "incidents": Incident.objects.count(),
        "events": AuditEvent.objects.count(),
        "items": ActionItem.objects.count(),
    }


def test_verify_audit_passes_on_the_demo_data() -> None:
    counts = seeded()
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert f"intact for {counts['incidents']} incident(s)" in out.getvalue()


def test_seed_demo_is_idempotent() -> None:
    first = seeded()
    assert first["incidents"] == 3 and first["events"] > 3
    assert seeded() == first


@pytest.mark.usefixtures("untriggered")
def test_verify_audit_names_the_first_edited_event_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # manage.py closes every connection on its way out; this test's connection holds its transaction.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    seeded()
    incident = Incident.objects.get(title="Checkout latency spike")
    for seq in (5, 3):  # two edits: the first one along the chain is named
        tamper(
            "UPDATE incidents_auditevent SET data = %s WHERE incident_id = %s AND seq = %s",
            ['{"body": "nothing happened"}', incident.pk, seq],
        )
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "verify_audit"]).execute()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert f"incident {incident.pk} event 3: content does not match its hash" in err


@pytest.mark.usefixtures("untriggered")
def test_verify_audit_names_a_deleted_event_as_a_gap(incident: Incident) -> None:
    tamper("DELETE FROM incidents_auditevent WHERE incident_id = %s AND seq = %s", [incident.pk, 2])
    with pytest.raises(CommandError, match=f"incident {incident.pk} event 3: expected seq 2"):
        call_command("verify_audit", str(incident.pk))


@pytest.mark.usefixtures("untriggered")
def test_verify_audit_catches_an_edit_that_rehashes_the_event_itself(incident: Incident) -> None:
    # Recomputing the edited event's own hash is not enough: the next event still points at the old one.
    event = AuditEvent.objects.get(incident=incident, seq=2)
    event.data = {"body": "forged"}
    tamper(
        "UPDATE incidents_auditevent SET data = %s, hash = %s WHERE id = %s",
        ['{"body": "forged"}', event.compute_hash(), event.pk],
    )
    with pytest.raises(CommandError, match=f"incident {incident.pk} event 3: prev_hash does not match"):
        call_command("verify_audit")


def test_the_triggers_refuse_again_once_a_tampering_test_puts_them_back(incident: Incident) -> None:
    # In one transaction: a later test's would roll the triggers back whether or not they were put back.
    audit_triggers.uninstall(connection)
    tamper(
        "UPDATE incidents_auditevent SET data = %s WHERE incident_id = %s AND seq = 2", ['{"body": "x"}', incident.pk]
    )
    audit_triggers.install(connection)
    before = stored(incident)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM incidents_auditevent")
    assert stored(incident) == before


def test_verify_audit_refuses_an_unknown_incident() -> None:
    with pytest.raises(CommandError, match="does not exist"):
        call_command("verify_audit", "999999")

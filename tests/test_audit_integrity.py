"""What `verify_audit` proves beyond the hash chain, and the holes the database itself closes.

- TRUNCATE (and so `manage.py flush`) is refused; taking the triggers away by
  reversing a migration is refused unless said explicitly, and logged.
- `Incident.version` must be the last seq, and the rows must be what the
  events say (a cut-off tail, or a row changed without an event).
- With AUDIT_KEY, every event carries an HMAC no one without the key can
  recompute: a rewritten timeline with recomputed hashes fails.
- `--checkpoint FILE` compares the chain with heads recorded earlier outside
  the database: a cut-off tail or a rewrite, even a consistent one, fails.
"""

import importlib
import json
import logging
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import override_settings

from accounts.models import User
from incidents import audit_key, audit_triggers, commands
from incidents.audit import verify_incident
from incidents.models import AuditEvent, Incident
from tests.audit_support import incident_with_a_timeline, triggers_down

pytestmark = pytest.mark.django_db

KEY = "k" * 40
migration_0003 = importlib.import_module("incidents.migrations.0003_audit_mac_and_refuse_truncate")


incident = pytest.fixture(incident_with_a_timeline, name="incident")
untriggered = pytest.fixture(triggers_down, name="untriggered")


def sql(statement: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def settled() -> None:
    """Check the test transaction's deferred foreign keys now, as a committed database would have.

    Else PostgreSQL refuses a TRUNCATE for "pending trigger events" before its
    own TRUNCATE trigger is reached, and the test would not see that trigger.
    """
    if connection.vendor == "postgresql":
        sql("SET CONSTRAINTS ALL IMMEDIATE")


def event_count(incident: Incident) -> int:
    return AuditEvent.objects.filter(incident=incident).count()


def verify(*args: str) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def rechain(incident: Incident, *, edit: dict[int, dict[str, Any]] | None = None) -> None:
    """Rewrite a timeline the way someone with write access but no key could: edits, then every hash recomputed."""
    prev_hash = ""
    for event in AuditEvent.objects.filter(incident=incident).order_by("seq"):
        if edit and event.seq in edit:
            event.data = edit[event.seq]
        event.prev_hash = prev_hash
        event.hash = event.compute_hash()
        sql(
            "UPDATE incidents_auditevent SET data = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [json.dumps(event.data), event.prev_hash, event.hash, event.pk],
        )
        prev_hash = event.hash


# --- The database refuses what the row triggers do not see ----------------------------------


@pytest.mark.postgres
def test_truncate_of_the_events_table_is_refused_on_postgresql(incident: Incident) -> None:
    settled()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql("TRUNCATE incidents_auditevent CASCADE")
    assert event_count(incident) == 3


@pytest.mark.postgres
def test_truncate_through_the_incidents_table_is_refused_too(incident: Incident) -> None:
    settled()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql("TRUNCATE incidents_incident CASCADE")
    assert event_count(incident) == 3


@pytest.mark.postgres
def test_truncate_stays_refused_while_a_test_has_the_row_triggers_down(incident: Incident, untriggered: None) -> None:
    settled()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        # CASCADE: tables that refer to events (the webhook outbox) would refuse a plain TRUNCATE before the trigger.
        sql("TRUNCATE incidents_auditevent CASCADE")
    assert event_count(incident) == 3


def test_manage_py_flush_is_refused_and_deletes_nothing(incident: Incident) -> None:
    users = User.objects.count()
    settled()
    with pytest.raises(CommandError, match="couldn't be flushed") as refused:
        call_command("flush", interactive=False, verbosity=0)
    assert "append-only" in str(refused.value.__cause__)
    assert event_count(incident) == 3
    assert Incident.objects.filter(pk=incident.pk).exists()
    assert User.objects.count() == users


# --- Removing the protection is explicit and logged ---------------------------------------------


def schema_editor() -> Any:
    return SimpleNamespace(connection=connection)


def test_reversing_the_trigger_migrations_is_refused_without_the_explicit_setting(
    incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(audit_triggers.REMOVAL_VARIABLE, raising=False)
    with pytest.raises(audit_triggers.ProtectionRemovalRefused, match=audit_triggers.REMOVAL_VARIABLE):
        migration_0003.uninstall(None, schema_editor())
    # Nothing was removed: the database still refuses.
    settled()
    truncate = "TRUNCATE incidents_auditevent CASCADE"
    statement = truncate if connection.vendor == "postgresql" else "DELETE FROM incidents_auditevent"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql(statement)
    assert event_count(incident) == 3


@pytest.mark.django_db(transaction=True)
def test_migrate_backwards_stops_at_the_guard_with_a_clear_message(
    incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(audit_triggers.REMOVAL_VARIABLE, raising=False)
    try:
        with pytest.raises(CommandError, match=f"{audit_triggers.REMOVAL_VARIABLE}=true"):
            call_command("migrate", "incidents", "0001", verbosity=0)
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            sql("DELETE FROM incidents_auditevent")
        assert event_count(incident) == 3
    finally:
        # The later migrations (0004 on, and other apps' that depend on them, such as webhooks'
        # outbox) were reversed before the guard stopped the walk: put them all back.
        call_command("migrate", verbosity=0)


@pytest.mark.postgres
def test_the_explicit_setting_lets_the_reversal_through_and_it_is_logged(
    incident: Incident, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(audit_triggers.REMOVAL_VARIABLE, "true")
    with caplog.at_level(logging.WARNING, logger="incidents.audit_triggers"):
        migration_0003.uninstall(None, schema_editor())
    try:
        assert "no longer protected" in caplog.text
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'incidents_auditevent_no_truncate' AND NOT tgisinternal"
            )
            assert cursor.fetchone() == (0,)
    finally:
        audit_triggers.install_truncate_guard(connection)


# --- The rows must be what the events say ----------------------------------------------------


@pytest.mark.usefixtures("untriggered")
def test_a_cut_off_tail_shows_as_version_ahead_of_the_last_seq(incident: Incident) -> None:
    sql("DELETE FROM incidents_auditevent WHERE incident_id = %s AND seq = 3", [incident.pk])
    with pytest.raises(CommandError, match=f"incident {incident.pk}: version is 3 but the last event is seq 2"):
        verify()


def test_a_change_made_without_an_event_is_named(incident: Incident) -> None:
    sql("UPDATE incidents_incident SET status = 'resolved' WHERE id = %s", [incident.pk])
    with pytest.raises(
        CommandError, match=f"incident {incident.pk}: status is 'resolved' but its events say 'identified'"
    ):
        verify()


def test_the_first_disagreement_is_named(incident: Incident) -> None:
    sql("UPDATE incidents_incident SET summary = 'edited', severity = 'low' WHERE id = %s", [incident.pk])
    with pytest.raises(CommandError, match="severity is 'low' but its events say 'high'"):
        verify(str(incident.pk))


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("UPDATE incidents_incident SET title = 'Nothing happened' WHERE id = %s", "title is 'Nothing happened'"),
        ("UPDATE incidents_incident SET summary = 'all fine' WHERE id = %s", "summary is 'all fine'"),
        ("UPDATE incidents_incident SET commander_id = NULL WHERE id = %s", "commander is"),
        ("UPDATE incidents_incident SET comms_lead_id = created_by_id WHERE id = %s", "comms_lead is"),
        ("UPDATE incidents_incident SET scribe_id = created_by_id WHERE id = %s", "scribe is"),
        (
            "INSERT INTO incidents_incident_assignees (incident_id, user_id) SELECT id, created_by_id "
            "FROM incidents_incident WHERE id = %s",
            "assignees is",
        ),
        ("UPDATE incidents_actionitem SET done = true WHERE incident_id = %s", "action_items is"),
        (
            "UPDATE incidents_incident SET version = version + 1 WHERE id = %s",
            "version is 5 but the last event is seq 4",
        ),
    ],
    ids=["title", "summary", "commander", "comms_lead", "scribe", "assignees", "action_items", "version"],
)
def test_each_field_the_events_decide_is_compared(incident: Incident, statement: str, named: str) -> None:
    commands.action_item_add(actor=incident.created_by, incident_id=incident.pk, title="Rotate keys")
    assert verify_incident(incident.pk) is None
    sql(statement, [incident.pk])
    problem = verify_incident(incident.pk)
    assert problem is not None and named in str(problem), problem


def test_verify_audit_passes_after_every_kind_of_change(
    incident: Incident, responder: User, make_user: Callable[..., User]
) -> None:
    other = make_user("responder", "other")
    pk = incident.pk
    commands.incident_update(actor=responder, incident_id=pk, severity="critical", summary="s", commander=other)
    commands.incident_update(actor=responder, incident_id=pk, assignees=[other, responder])
    commands.incident_update(actor=responder, incident_id=pk, assignees=[responder], commander=None)
    item = commands.action_item_add(actor=responder, incident_id=pk, title="Rotate keys", owner=other).item
    assert item is not None
    commands.action_item_update(actor=responder, incident_id=pk, item_id=item.pk, done=True, owner=None)
    commands.incident_change_status(actor=responder, incident_id=pk, status="resolved", resolution="Fixed.")
    commands.incident_change_status(actor=responder, incident_id=pk, status="investigating")
    assert "intact for 1 incident" in verify()


# --- AUDIT_KEY: an anchor the database does not hold ----------------------------------------------


def test_without_a_key_events_are_unkeyed_and_the_output_says_so(incident: Incident) -> None:
    assert set(AuditEvent.objects.filter(incident=incident).values_list("mac", flat=True)) == {""}
    assert "AUDIT_KEY is not set" in verify()


@override_settings(AUDIT_KEY=KEY)
def test_with_a_key_every_event_carries_the_hmac_of_its_hash(responder: User) -> None:
    incident = commands.incident_create(actor=responder, title="Keyed", severity="low").incident
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="keyed note")
    events = list(AuditEvent.objects.filter(incident=incident))
    assert all(len(e.mac) == 64 and audit_key.mac_matches(e.hash, e.mac) for e in events)
    with override_settings(AUDIT_KEY="another key of at least thirty-two characters"):
        assert not audit_key.mac_matches(events[0].hash, events[0].mac)
    out = verify()
    assert "intact for 1 incident" in out and "AUDIT_KEY" not in out


@override_settings(AUDIT_KEY=KEY)
@pytest.mark.usefixtures("untriggered")
def test_a_rewrite_with_recomputed_hashes_passes_the_chain_but_not_the_key(responder: User) -> None:
    incident = commands.incident_create(actor=responder, title="Keyed", severity="low").incident
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="we broke it")
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="fixed")
    rechain(incident, edit={2: {"body": "someone else broke it"}})
    with override_settings(AUDIT_KEY=""):
        assert verify_incident(incident.pk) is None  # the chain alone is consistent again
    with pytest.raises(CommandError, match=f"incident {incident.pk} event 2: MAC does not match AUDIT_KEY"):
        verify()


@override_settings(AUDIT_KEY=KEY)
@pytest.mark.usefixtures("untriggered")
def test_a_rewrite_that_blanks_the_macs_is_refused_too(responder: User) -> None:
    incident = commands.incident_create(actor=responder, title="Keyed", severity="low").incident
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="we broke it")
    rechain(incident, edit={2: {"body": "someone else broke it"}})
    sql("UPDATE incidents_auditevent SET mac = '' WHERE incident_id = %s", [incident.pk])
    with pytest.raises(CommandError, match=f"incident {incident.pk} event 1: no MAC"):
        verify()
    # Where unkeyed events must be allowed (a history from before the key), such a
    # rewrite passes as that history: only a checkpoint taken earlier tells them apart.
    assert verify_incident(incident.pk, allow_unkeyed=True) is None


def test_events_from_before_the_key_are_accepted_only_when_allowed(incident: Incident) -> None:
    with override_settings(AUDIT_KEY=KEY):
        commands.incident_add_note(actor=incident.created_by, incident_id=incident.pk, body="keyed from here on")
        with pytest.raises(CommandError, match="event 1: no MAC"):
            verify()
        out = verify("--allow-unkeyed")
    assert "intact for 1 incident" in out
    assert "3 event(s) carry no MAC (written before AUDIT_KEY was set)" in out


@pytest.mark.usefixtures("untriggered")
def test_an_unkeyed_event_after_a_keyed_one_fails(incident: Incident) -> None:
    with override_settings(AUDIT_KEY=KEY):
        commands.incident_add_note(actor=incident.created_by, incident_id=incident.pk, body="keyed")
        commands.incident_add_note(actor=incident.created_by, incident_id=incident.pk, body="keyed too")
        sql("UPDATE incidents_auditevent SET mac = '' WHERE incident_id = %s AND seq = 5", [incident.pk])
        with pytest.raises(CommandError, match="event 5: no MAC after keyed events"):
            verify("--allow-unkeyed")


# --- --checkpoint: chain heads kept outside the database --------------------------------------------


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_checkpoint_records_each_head_and_appends_only_what_moved(
    incident: Incident, responder: User, tmp_path: Path
) -> None:
    other = commands.incident_create(actor=responder, title="Other", severity="low").incident
    checkpoint = tmp_path / "heads.jsonl"
    out = verify("--checkpoint", str(checkpoint))
    assert "0 incident(s) matched their recorded heads; 2 head(s) appended" in out
    first = checkpoint.read_text()
    heads = {(line["incident"], line["seq"]) for line in lines(checkpoint)}
    assert heads == {(incident.pk, 3), (other.pk, 1)}
    head = lines(checkpoint)[0]
    assert head["hash"] == AuditEvent.objects.get(incident=incident, seq=3).hash

    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="later")
    out = verify("--checkpoint", str(checkpoint))
    assert "2 incident(s) matched their recorded heads; 1 head(s) appended" in out
    assert checkpoint.read_text().startswith(first)  # appended, never rewritten
    assert [(line["incident"], line["seq"]) for line in lines(checkpoint)][-1] == (incident.pk, 4)

    assert "0 head(s) appended" in verify("--checkpoint", str(checkpoint))


@pytest.mark.usefixtures("untriggered")
def test_a_checkpoint_catches_a_tail_cut_off_with_the_row_made_to_match(incident: Incident, tmp_path: Path) -> None:
    checkpoint = tmp_path / "heads.jsonl"
    verify("--checkpoint", str(checkpoint))
    # A consistent cut: the last event deleted, and the row put back to what the rest says.
    sql("DELETE FROM incidents_auditevent WHERE incident_id = %s AND seq = 3", [incident.pk])
    sql("UPDATE incidents_incident SET version = 2, status = 'investigating' WHERE id = %s", [incident.pk])
    assert "intact" in verify()  # nothing inside the database can tell
    with pytest.raises(CommandError, match=r"recorded seq 3, the database ends at seq 2 \(events cut off the end\)"):
        verify("--checkpoint", str(checkpoint))
    assert len(lines(checkpoint)) == 1  # a failing run appends nothing


@pytest.mark.usefixtures("untriggered")
def test_a_checkpoint_catches_a_consistent_rewrite(incident: Incident, tmp_path: Path) -> None:
    checkpoint = tmp_path / "heads.jsonl"
    verify("--checkpoint", str(checkpoint))
    rechain(incident, edit={2: {"body": "nothing to see"}})
    assert "intact" in verify()
    with pytest.raises(CommandError, match=f"incident {incident.pk} event 3: its hash is not the one the checkpoint"):
        verify("--checkpoint", str(checkpoint))


def test_a_checkpoint_of_one_incident_checks_and_appends_only_that_one(
    incident: Incident, responder: User, tmp_path: Path
) -> None:
    commands.incident_create(actor=responder, title="Other", severity="low")
    checkpoint = tmp_path / "heads.jsonl"
    verify(str(incident.pk), "--checkpoint", str(checkpoint))
    assert [line["incident"] for line in lines(checkpoint)] == [incident.pk]


@pytest.mark.parametrize(
    "content",
    ["not json\n", '{"incident": 1, "seq": 2}\n', '{"incident": "1", "seq": 2, "hash": "ab"}\n', "[1, 2, 3]\n"],
    ids=["not-json", "no-hash", "string-id", "not-an-object"],
)
def test_a_malformed_checkpoint_is_refused_naming_the_line(incident: Incident, tmp_path: Path, content: str) -> None:
    checkpoint = tmp_path / "heads.jsonl"
    checkpoint.write_text('{"incident": 999999, "seq": 1, "hash": "x"}\n' + content)
    with pytest.raises(CommandError, match=f"{checkpoint} line 2 is not a checkpoint line"):
        verify("--checkpoint", str(checkpoint))
    assert checkpoint.read_text().count("\n") == 2  # left as it was


def test_an_incident_in_the_checkpoint_but_gone_from_the_database_fails(incident: Incident, tmp_path: Path) -> None:
    checkpoint = tmp_path / "heads.jsonl"
    checkpoint.write_text('{"incident": 999999, "seq": 4, "hash": "abc"}\n')
    with pytest.raises(CommandError, match=r"incident 999999 is in the checkpoint .* but not in the database"):
        verify("--checkpoint", str(checkpoint))

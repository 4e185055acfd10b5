"""Searching incidents by their title, summary and notes.

On PostgreSQL this is full-text search (`websearch_to_tsquery`, English
stemming, so "rolled back" finds "roll back"), backed by two GIN indexes that
migration 0003 installs: one over an incident's title and summary, one over
the body of every note event. The SQL of the query and of the indexes is
written here once, so the planner can match them. Titles also match as a
plain substring, since people type fragments ("db-3"). On SQLite (the
embedded default) it is a plain case-insensitive substring search over the
same fields.
"""

from typing import Any

from django.db.models import Exists, OuterRef, Q
from django.db.models.expressions import RawSQL

CONFIG = "english"
INCIDENT_DOCUMENT = "to_tsvector('english', title || ' ' || summary)"
NOTE_DOCUMENT = "to_tsvector('english', coalesce(data->>'body', ''))"

# Constant SQL: the searched text is always a query parameter, never part of the string.
TSQUERY = f"websearch_to_tsquery('{CONFIG}', %s)"
INCIDENTS_MATCHING = f"SELECT id FROM incidents_incident WHERE {INCIDENT_DOCUMENT} @@ {TSQUERY}"  # noqa: S608
NOTES_MATCHING = f"SELECT incident_id FROM incidents_auditevent WHERE type = 'note' AND {NOTE_DOCUMENT} @@ {TSQUERY}"  # noqa: S608

POSTGRESQL_INSTALL = [
    f"CREATE INDEX IF NOT EXISTS incident_search_idx ON incidents_incident USING gin ({INCIDENT_DOCUMENT})",
    f"CREATE INDEX IF NOT EXISTS auditevent_note_search_idx ON incidents_auditevent "
    f"USING gin ({NOTE_DOCUMENT}) WHERE type = 'note'",
]
POSTGRESQL_UNINSTALL = [
    "DROP INDEX IF EXISTS incident_search_idx",
    "DROP INDEX IF EXISTS auditevent_note_search_idx",
]


def install(connection: Any) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for statement in POSTGRESQL_INSTALL:
            cursor.execute(statement)


def uninstall(connection: Any) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for statement in POSTGRESQL_UNINSTALL:
            cursor.execute(statement)


def incident_search_q(q: str, *, vendor: str) -> Q:
    """A filter on incidents matching `q` in the title, the summary or a note."""
    from .models import AuditEvent

    if vendor == "postgresql":
        return (
            Q(title__icontains=q)
            | Q(pk__in=RawSQL(INCIDENTS_MATCHING, [q]))  # noqa: S611 (constant SQL, q is a parameter)
            | Q(pk__in=RawSQL(NOTES_MATCHING, [q]))  # noqa: S611
        )
    notes = AuditEvent.objects.filter(incident=OuterRef("pk"), type=AuditEvent.Type.NOTE, data__body__icontains=q)
    return Q(title__icontains=q) | Q(summary__icontains=q) | Q(Exists(notes))


def note_search_q(q: str) -> Q:
    """A filter on one incident's events: notes whose body contains `q` (case-insensitive).

    Scoped to one incident by the (incident, type, seq) index, a substring
    match is cheap and finds exactly what was typed, on both databases.
    """
    return Q(type="note", data__body__icontains=q)

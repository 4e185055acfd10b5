"""Database triggers that make the audit table append-only below the ORM.

The model and queryset refuse edits, but raw SQL, a shell or another program
could still try; these triggers make the database itself reject UPDATE and
DELETE of an event, on PostgreSQL and on SQLite. Installed by migration
0002; the same SQL is used by tests that must tamper on purpose.

PostgreSQL's TRUNCATE (and so `manage.py flush`) passes row triggers by, so
migration 0003 adds a statement-level trigger that refuses it. SQLite has no
TRUNCATE: its flush is a DELETE, which the row triggers refuse.

Taking the protection away is an explicit, logged step: reversing migration
0003 (which any reversal of 0002 must do first) refuses unless the
environment says AUDIT_ALLOW_TRIGGER_REMOVAL=true, and logs a warning when
it does.
"""

import logging
import os
from typing import Any

from django.core.management.base import CommandError

logger = logging.getLogger(__name__)

REMOVAL_VARIABLE = "AUDIT_ALLOW_TRIGGER_REMOVAL"

TABLE = "incidents_auditevent"

POSTGRESQL_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit events are append-only: % on {TABLE} is refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    f"DROP TRIGGER IF EXISTS {TABLE}_no_update ON {TABLE}",
    f"""
    CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION {TABLE}_append_only()
    """,
]
POSTGRESQL_UNINSTALL = [
    f"DROP TRIGGER IF EXISTS {TABLE}_no_update ON {TABLE}",
    f"DROP FUNCTION IF EXISTS {TABLE}_append_only()",
]

# Its own function, so the row triggers can be dropped (by a test that must
# tamper) while TRUNCATE stays refused.
POSTGRESQL_TRUNCATE_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION {TABLE}_no_truncate() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit events are append-only: TRUNCATE of {TABLE} is refused'
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}",
    f"""
    CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_no_truncate()
    """,
]
POSTGRESQL_TRUNCATE_UNINSTALL = [
    f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}",
]

SQLITE_INSTALL = [
    f"""
    CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE on {TABLE} is refused'); END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE on {TABLE} is refused'); END
    """,
]
SQLITE_UNINSTALL = [
    f"DROP TRIGGER IF EXISTS {TABLE}_no_update",
    f"DROP TRIGGER IF EXISTS {TABLE}_no_delete",
]


def _statements(vendor: str, *, install: bool) -> list[str]:
    if vendor == "postgresql":
        return POSTGRESQL_INSTALL if install else POSTGRESQL_UNINSTALL
    if vendor == "sqlite":
        return SQLITE_INSTALL if install else SQLITE_UNINSTALL
    raise NotImplementedError(f"No append-only triggers for the {vendor} database yet.")


def install(connection: Any) -> None:
    with connection.cursor() as cursor:
        for statement in _statements(connection.vendor, install=True):
            cursor.execute(statement)


def uninstall(connection: Any) -> None:
    with connection.cursor() as cursor:
        for statement in _statements(connection.vendor, install=False):
            cursor.execute(statement)


def install_truncate_guard(connection: Any) -> None:
    """PostgreSQL: refuse TRUNCATE of the audit table (SQLite has no TRUNCATE; nothing to do)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for statement in POSTGRESQL_TRUNCATE_INSTALL:
                cursor.execute(statement)


def uninstall_truncate_guard(connection: Any) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for statement in POSTGRESQL_TRUNCATE_UNINSTALL:
                cursor.execute(statement)


class ProtectionRemovalRefused(CommandError):
    """A migration was asked to take the audit table's protection away without saying so explicitly."""


def check_removal_allowed(what: str) -> None:
    """Refuse, naming the way to say it is meant, unless AUDIT_ALLOW_TRIGGER_REMOVAL=true; log it when it is."""
    if os.environ.get(REMOVAL_VARIABLE, "").strip().lower() not in ("1", "true", "yes"):
        raise ProtectionRemovalRefused(
            f"Refusing to remove {what} from {TABLE}: that would let the audit timeline be edited, "
            f"deleted or truncated. If this is really meant, run the migration again with "
            f"{REMOVAL_VARIABLE}=true in the environment (the removal is logged)."
        )
    logger.warning(
        "%s=true: removing %s from %s; the audit timeline is no longer protected.", REMOVAL_VARIABLE, what, TABLE
    )

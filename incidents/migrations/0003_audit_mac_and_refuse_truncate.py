"""The audit table's outside anchor and its last hole.

- `mac`: an HMAC of each event's hash under AUDIT_KEY (a secret outside the
  database); events written before carry "". PostgreSQL adds the column in
  place (no UPDATE of any row). SQLite rebuilds the table (copies the rows
  into a new one), which loses its triggers, so they are put back at once,
  the same triggers as 0002's.
- PostgreSQL refuses TRUNCATE of the table (row triggers do not see it).

Reversing this migration, which any reversal of 0002 (the row triggers) must
do first, refuses unless AUDIT_ALLOW_TRIGGER_REMOVAL=true, and logs it.
"""

from typing import Any

from django.db import migrations, models

from incidents import audit_triggers


def install(apps: Any, schema_editor: Any) -> None:
    audit_triggers.install(schema_editor.connection)  # idempotent; SQLite's rebuilt table needs them again
    audit_triggers.install_truncate_guard(schema_editor.connection)


def uninstall(apps: Any, schema_editor: Any) -> None:
    audit_triggers.check_removal_allowed("the TRUNCATE trigger (and, with migration 0002, the row triggers)")
    audit_triggers.uninstall_truncate_guard(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("incidents", "0002_audit_append_only_triggers")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.RunPython(install, uninstall),
    ]

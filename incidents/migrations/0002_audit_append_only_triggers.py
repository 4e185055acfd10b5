from typing import Any

from django.db import migrations

from incidents import audit_triggers


def install(apps: Any, schema_editor: Any) -> None:
    audit_triggers.install(schema_editor.connection)


def uninstall(apps: Any, schema_editor: Any) -> None:
    audit_triggers.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]

"""Nothing outside incidents/commands.py writes an Incident, an ActionItem or an AuditEvent.

A static scan of the product's code (every package but tests/ and the
migrations): a write through a manager or queryset of those models, through
an incident's related managers, `.save()`/`.delete()` in a module that
imports them, or raw SQL that writes their tables, anywhere else fails the
test, naming the file and line. incidents/models.py is exempt: it defines
the one append primitive that the commands call.
"""

import ast
import re
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
PACKAGES = ["accounts", "incidents", "realtime", "incident_platform", "bench"]
ALLOWED = {"incidents/commands.py", "incidents/models.py"}

MODELS = {"Incident", "ActionItem", "AuditEvent"}
# Related managers of an incident that write the guarded tables.
RELATED = {"assignees", "action_items", "events"}
WRITES = {
    "create",
    "bulk_create",
    "update",
    "update_or_create",
    "get_or_create",
    "bulk_update",
    "delete",
    "append",
    "add",
    "remove",
    "set",
    "clear",
    "save",
}
RAW_WRITE = re.compile(
    r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE)\s+\"?incidents_(incident|actionitem|auditevent)\b", re.IGNORECASE
)


def _chain(node: ast.expr) -> list[str]:
    """The names along `a.b(...).c.d`, root first (calls looked through)."""
    names: list[str] = []
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            names.append(node.id)
            return names[::-1]
        else:
            return names[::-1]


def _imports_guarded_models(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").endswith("models")
            and any(alias.name in MODELS for alias in node.names)
        ):
            return True
    return False


def writes_in(source: str) -> list[tuple[int, str]]:
    """(line, what) for each write of a guarded model found in the source."""
    tree = ast.parse(source)
    imports_models = _imports_guarded_models(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
            receiver = _chain(node.func.value)
            text = ".".join([*receiver, node.func.attr])
            on_model = bool(receiver) and receiver[0] in MODELS
            on_related = any(name in RELATED for name in receiver) and node.func.attr != "update"
            on_instance = node.func.attr in ("save", "delete") and imports_models and receiver[:1] != ["super"]
            if on_model or on_related or on_instance:
                found.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            raw = RAW_WRITE.search(node.value)
            if raw:
                found.append((node.lineno, f"raw SQL: {raw.group(0)}"))
    return found


def product_files() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((BASE_DIR / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def test_only_the_commands_write_incidents_action_items_and_audit_events() -> None:
    offences = [
        f"{path.relative_to(BASE_DIR)}:{line}: {what}"
        for path in product_files()
        if str(path.relative_to(BASE_DIR)) not in ALLOWED
        for line, what in writes_in(path.read_text(encoding="utf-8"))
    ]
    assert offences == [], "Write these through incidents/commands.py:\n" + "\n".join(offences)


def test_the_scan_covers_the_product() -> None:
    scanned = {str(path.relative_to(BASE_DIR)) for path in product_files()}
    assert {"incidents/admin.py", "incidents/views.py", "realtime/consumers.py", "incidents/commands.py"} <= scanned
    assert writes_in((BASE_DIR / "incidents/commands.py").read_text()), "the scan sees the commands' own writes"


@pytest.mark.parametrize(
    "source",
    [
        "from incidents.models import Incident\nIncident.objects.create(title='x')",
        "from incidents.models import Incident\nIncident.objects.filter(pk=1).update(status='resolved')",
        "from .models import AuditEvent\nAuditEvent.objects.append(incident=i, type='note', actor=a, data={})",
        "from incidents.models import ActionItem\nActionItem.objects.bulk_create([])",
        "from incidents.models import Incident\ndef f(incident):\n    incident.title = 'x'\n    incident.save()",
        "from incidents.models import AuditEvent\ndef f(e):\n    e.delete()",
        "def f(incident, user):\n    incident.assignees.add(user)",
        "def f(incident):\n    incident.action_items.create(title='x')",
        "def f(cursor):\n    cursor.execute('UPDATE incidents_incident SET status = %s', ['resolved'])",
        "def f(cursor):\n    cursor.execute('DELETE FROM incidents_auditevent')",
    ],
    ids=[
        "create",
        "queryset-update",
        "append",
        "bulk_create",
        "instance-save",
        "instance-delete",
        "m2m-add",
        "related-create",
        "raw-update",
        "raw-delete",
    ],
)
def test_the_scan_catches_each_way_of_writing(source: str) -> None:
    assert writes_in(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from incidents.models import Incident\nIncident.objects.filter(pk=1).first()",
        "from accounts.models import User\ndef f(user):\n    user.save()",
        "from incidents import commands\ncommands.incident_add_note(actor=a, incident_id=1, body='x')",
        "def f(d):\n    d.update({'a': 1})",
        "class A:\n    def save(self):\n        super().save()",
    ],
    ids=["read", "other-model-save", "command", "dict-update", "super-save"],
)
def test_the_scan_leaves_reads_and_other_models_alone(source: str) -> None:
    assert writes_in(source) == []

"""schemathesis, every check, against a real daphne server, as each role: the API is what its schema says.

It loads the schema the server serves at /api/schema/ (the one the docs page
renders), generates requests from it (the schema's examples, its boundary
values, then random valid and invalid data) and checks every response: no
5xx, a documented status, content type and headers, a body that matches the
documented schema, invalid data refused, valid data accepted, and
authentication not ignored. Settings are in tests/schemathesis/.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from accounts.models import User
from incidents import commands

from .conftest import token_for
from .servers import DaphneServer

HERE = Path(__file__).resolve().parent / "schemathesis"

# What each role runs, within a few minutes on a 2-core machine. The admin, who may call every
# operation, gets the deterministic coverage phase (every boundary and wrong type the schema
# implies) and random examples, in both passes (PostgreSQL answers some bad input differently
# from SQLite). The responder and the viewer differ from it only in what they are refused, so
# random examples in the embedded pass are enough for them.
RUNS = [
    pytest.param("admin", "examples,coverage,fuzzing", 8, id="admin"),
    pytest.param("responder", "examples,fuzzing", 5, id="responder", marks=pytest.mark.sqlite),
    pytest.param("viewer", "examples,fuzzing", 5, id="viewer", marks=pytest.mark.sqlite),
]
FAR_ID = 7_654_321


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("role", "phases", "max_examples"), RUNS)
def test_schemathesis_finds_nothing(
    role: str, phases: str, max_examples: int, users: dict[str, User], make_user: Callable[..., User]
) -> None:
    responder = users["responder"]
    # The caller's id is far from the small ids the generator tries, so an admin's run
    # does not demote itself half-way (PATCH /api/users/{id}) and go on as someone else.
    caller = make_user(role, f"fuzz-{role}", pk=FAR_ID)
    # Something for generated ids to land on: incidents 1.., one resolved, with items and notes.
    for title in ("Checkout errors", "DNS flapping"):
        incident = commands.incident_create(actor=responder, title=title, severity="high").incident
        commands.action_item_add(actor=responder, incident_id=incident.pk, title="Roll back")
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body="Looking")
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed.")

    with DaphneServer(AUTH_THROTTLE_RATE="1000000/min") as server:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                f"{server.url}/api/schema/",
                "--checks",
                "all",
                "--phases",
                phases,
                "--max-examples",
                str(max_examples),
                "--workers",
                "1",
                "--header",
                f"Authorization: Bearer {token_for(caller)}",
                "--no-color",
                "--seed",
                "1",
            ],
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis.hooks"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    report = result.stdout[-20000:] + result.stderr[-5000:]
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout or " passed" in result.stdout, report

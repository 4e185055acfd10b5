"""Malformed, oversized, unknown or out-of-date input to every write endpoint: a clear 4xx, nothing changed.

Each case is sent by an admin (who may call everything), so what is refused is
the input, not the caller. After every refusal the incidents, their
versions, the timeline, the action items, the users and the idempotency keys
are exactly as they were.
"""

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.models import ActionItem, AuditEvent, IdempotencyKey, Incident

pytestmark = pytest.mark.django_db

BIG = "x" * 100_000

INCIDENT = "/api/incidents/{incident}"
STATUS = "/api/incidents/{incident}/status"
NOTES = "/api/incidents/{incident}/notes"
ITEMS = "/api/incidents/{incident}/action-items"
ITEM = "/api/incidents/{incident}/action-items/{item}"

# Every write endpoint with a body it would accept (so a case changes one thing at a time).
WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("post", "/api/incidents", {"title": "DNS down", "severity": "high"}),
    ("patch", INCIDENT, {"severity": "low"}),
    ("post", STATUS, {"status": "identified"}),
    ("post", NOTES, {"body": "Paged the DBA."}),
    ("post", ITEMS, {"title": "Add an alert"}),
    ("patch", ITEM, {"done": True}),
    ("patch", "/api/users/{user}", {"role": "responder"}),
    ("post", "/api/auth/register", {"username": "newbie", "password": "a-long-unusual-phrase-42"}),
    ("post", "/api/auth/login", {"username": "ada", "password": "whatever"}),
    ("post", "/api/auth/logout", {"refresh": "whatever"}),
]
WRITE_IDS = [f"{method} {path}" for method, path, _ in WRITES]


def write_targets(users: dict[str, User]) -> dict[str, Any]:
    """An incident with an action item, and the ids every path template of WRITES needs."""
    incident = commands.incident_create(actor=users["responder"], title="Disk full", severity="high").incident
    item = commands.action_item_add(actor=users["responder"], incident_id=incident.pk, title="Clean up").item
    assert item is not None
    return {"incident": incident.pk, "item": item.pk, "user": users["viewer"].pk}


def admin_client(api: Callable[[User | None], APIClient], users: dict[str, User]) -> APIClient:
    return api(users["admin"])


# As plain functions above, so other modules can make the same fixtures (tests/test_security_http.py).
world = pytest.fixture(write_targets, name="world")
client = pytest.fixture(admin_client, name="client")


def snapshot() -> dict[str, Any]:
    return {
        "incidents": list(
            Incident.objects.order_by("pk").values_list("pk", "version", "status", "severity", "summary")
        ),
        "events": list(AuditEvent.objects.order_by("pk").values_list("pk", "hash")),
        "items": list(ActionItem.objects.order_by("pk").values_list("pk", "title", "owner", "done")),
        "users": list(User.objects.order_by("pk").values_list("username", "role")),
        "keys": IdempotencyKey.objects.count(),
    }


def send(client: APIClient, method: str, path: str, world: dict[str, Any], body: Any, **extra: Any) -> Any:
    return getattr(client, method)(path.format(**world), body, format="json", **extra)


def assert_refused(response: Any, status: int = 400) -> dict[str, Any]:
    """A JSON error with the expected status and something a person can read."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and body
    assert all(value for value in body.values())
    return body


# --- Bodies that are not what the endpoint takes -------------------------------------


@pytest.mark.parametrize("raw", ["[]", '["title"]', '"title"', "42", "null"])
@pytest.mark.parametrize(("method", "path", "valid"), WRITES, ids=WRITE_IDS)
def test_a_body_that_is_not_a_json_object_is_refused(
    client: APIClient, world: dict[str, Any], method: str, path: str, valid: dict[str, Any], raw: str
) -> None:
    before = snapshot()
    assert_refused(getattr(client, method)(path.format(**world), raw, content_type="application/json"))
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "valid"), WRITES, ids=WRITE_IDS)
def test_invalid_json_is_refused_with_a_parse_error(
    client: APIClient, world: dict[str, Any], method: str, path: str, valid: dict[str, Any]
) -> None:
    before = snapshot()
    response = getattr(client, method)(path.format(**world), '{"title": "x",', content_type="application/json")
    assert "JSON parse error" in assert_refused(response)["detail"]
    assert snapshot() == before


# simplejwt's login serializer is not ours: it ignores extra fields (a typo there is a missing field anyway).
STRICT_WRITES = [write for write in WRITES if write[1] != "/api/auth/login"]


@pytest.mark.parametrize(("method", "path", "valid"), STRICT_WRITES, ids=[f"{m} {p}" for m, p, _ in STRICT_WRITES])
def test_an_unknown_field_is_refused_by_name(
    client: APIClient, world: dict[str, Any], method: str, path: str, valid: dict[str, Any]
) -> None:
    before = snapshot()
    assert assert_refused(send(client, method, path, world, {**valid, "sevrity": "low"}))["sevrity"] == [
        "Unknown field."
    ]
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "valid"), WRITES, ids=WRITE_IDS)
def test_a_body_over_the_upload_limit_is_a_json_4xx(
    client: APIClient, world: dict[str, Any], method: str, path: str, valid: dict[str, Any]
) -> None:
    before = snapshot()
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = send(client, method, path, world, {**valid, "padding": padding})
    body = assert_refused(response, 413)
    assert body["code"] == "too_large"
    assert snapshot() == before


# --- Wrong types, missing fields, sizes -------------------------------------------------


WRONG_TYPES = [
    ("post", "/api/incidents", {"title": ["DNS"], "severity": "high"}, "title"),
    ("post", "/api/incidents", {"title": {"text": "DNS"}, "severity": "high"}, "title"),
    ("post", "/api/incidents", {"title": None, "severity": "high"}, "title"),
    ("post", "/api/incidents", {"title": "DNS", "severity": 1}, "severity"),
    ("post", "/api/incidents", {"title": "DNS", "severity": "high", "summary": ["a"]}, "summary"),
    ("patch", INCIDENT, {"severity": ["low"]}, "severity"),
    ("patch", INCIDENT, {"summary": {"text": "x"}}, "summary"),
    ("patch", INCIDENT, {"summary": None}, "summary"),
    ("patch", INCIDENT, {"version": "three"}, "version"),
    ("patch", INCIDENT, {"version": -1}, "version"),
    ("patch", INCIDENT, {"version": 2**40}, "version"),
    ("patch", INCIDENT, {"commander": "ada"}, "commander"),
    ("patch", INCIDENT, {"commander": [1]}, "commander"),
    ("patch", INCIDENT, {"assignees": {"id": 1}}, "assignees"),
    ("patch", INCIDENT, {"assignees": "1"}, "assignees"),
    ("patch", INCIDENT, {"assignees": [{"id": 1}]}, "assignees"),
    ("post", STATUS, {"status": 1}, "status"),
    ("post", STATUS, {"status": ["resolved"]}, "status"),
    ("post", STATUS, {"status": "identified", "version": "one"}, "version"),
    ("post", NOTES, {"body": ["hello"]}, "body"),
    ("post", NOTES, {"body": {"text": "hello"}}, "body"),
    ("post", NOTES, {"body": True}, "body"),
    ("post", ITEMS, {"title": ["x"]}, "title"),
    ("post", ITEMS, {"title": "x", "owner": "ada"}, "owner"),
    ("post", ITEMS, {"title": "x", "owner": {"id": 1}}, "owner"),
    ("patch", ITEM, {"done": "maybe"}, "done"),
    ("patch", ITEM, {"done": []}, "done"),
    ("patch", ITEM, {"title": {}}, "title"),
    ("patch", ITEM, {"owner": [1]}, "owner"),
    ("patch", "/api/users/{user}", {"role": ["admin"]}, "role"),
    ("post", "/api/auth/register", {"username": ["newbie"], "password": "a-long-unusual-phrase-42"}, "username"),
    # JSON is typed: DRF alone would take a number for a string and a numeric string for a number.
    ("post", "/api/incidents", {"title": 0, "severity": "high"}, "title"),
    ("post", "/api/incidents", {"title": "DNS", "severity": "high", "summary": 1.5}, "summary"),
    ("patch", INCIDENT, {"version": "1"}, "version"),
    ("patch", INCIDENT, {"commander": "1"}, "commander"),
    ("patch", INCIDENT, {"assignees": ["1"]}, "assignees"),
    ("patch", INCIDENT, {"assignees": {}}, "assignees"),
    ("post", NOTES, {"body": 12}, "body"),
    ("patch", ITEM, {"done": "true"}, "done"),
    ("patch", ITEM, {"done": 1}, "done"),
    ("post", "/api/auth/register", {"username": 42, "password": "a-long-unusual-phrase-42"}, "username"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), WRONG_TYPES)
def test_a_value_of_the_wrong_type_is_refused_on_its_field(
    client: APIClient, world: dict[str, Any], method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = snapshot()
    errors = assert_refused(send(client, method, path, world, body))
    assert errors[field]
    assert snapshot() == before


MISSING = [
    ("post", "/api/incidents", {}, {"title", "severity"}),
    ("post", "/api/incidents", {"title": "DNS down"}, {"severity"}),
    ("post", STATUS, {"version": 1}, {"status"}),
    ("post", NOTES, {}, {"body"}),
    ("post", ITEMS, {"owner": None}, {"title"}),
    ("patch", "/api/users/{user}", {}, {"role"}),
    ("post", "/api/auth/register", {"password": "a-long-unusual-phrase-42"}, {"username"}),
    ("post", "/api/auth/logout", {}, {"refresh"}),
]


@pytest.mark.parametrize(("method", "path", "body", "fields"), MISSING)
def test_a_missing_required_field_is_named(
    client: APIClient, world: dict[str, Any], method: str, path: str, body: dict[str, Any], fields: set[str]
) -> None:
    before = snapshot()
    errors = assert_refused(send(client, method, path, world, body))
    assert errors.pop("code") == "invalid"
    assert set(errors) == fields
    assert all(messages == ["This field is required."] for messages in errors.values())
    assert snapshot() == before


OVERSIZED = [
    ("post", "/api/incidents", {"title": BIG, "severity": "high"}, "title"),
    ("post", "/api/incidents", {"title": "DNS", "severity": "high", "summary": BIG}, "summary"),
    ("patch", INCIDENT, {"summary": BIG}, "summary"),
    ("post", NOTES, {"body": BIG}, "body"),
    ("post", ITEMS, {"title": BIG}, "title"),
    ("patch", ITEM, {"title": BIG}, "title"),
    ("post", "/api/auth/register", {"username": BIG, "password": "a-long-unusual-phrase-42"}, "username"),
    ("post", "/api/auth/logout", {"refresh": BIG}, "refresh"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), OVERSIZED)
def test_a_100_kb_string_is_refused_with_its_limit(
    client: APIClient, world: dict[str, Any], method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = snapshot()
    errors = assert_refused(send(client, method, path, world, body))
    assert "no more than" in errors[field][0]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/incidents", {"title": "DNS\x00down", "severity": "high"}, "title"),
        ("post", NOTES, {"body": "nul \x00 byte"}, "body"),
        ("patch", INCIDENT, {"summary": "nul \x00 byte"}, "summary"),
    ],
)
def test_a_null_character_is_refused_before_the_database_sees_it(
    client: APIClient, world: dict[str, Any], method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = snapshot()
    assert assert_refused(send(client, method, path, world, body))[field] == ["Null characters are not allowed."]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "raw", "field"),
    [
        ("post", "/api/incidents", '{"title": "bad \\ud800 text", "severity": "high"}', "title"),
        ("post", NOTES, '{"body": "bad \\udfff text"}', "body"),
        ("patch", INCIDENT, '{"summary": "bad \\ud83d"}', "summary"),
    ],
)
def test_a_lone_surrogate_is_refused_before_it_reaches_the_hash_or_the_database(
    client: APIClient, world: dict[str, Any], method: str, path: str, raw: str, field: str
) -> None:
    before = snapshot()
    response = getattr(client, method)(path.format(**world), raw, content_type="application/json")
    assert "Surrogate characters are not allowed" in assert_refused(response)[field][0]
    assert snapshot() == before


def test_an_overlong_idempotency_key_is_refused(client: APIClient, world: dict[str, Any]) -> None:
    before = snapshot()
    response = send(client, "post", NOTES, world, {"body": "hi"}, HTTP_IDEMPOTENCY_KEY="k" * 300)
    assert assert_refused(response)["code"] == "invalid"
    assert snapshot() == before


# --- Unknown ids ------------------------------------------------------------------------


UNKNOWN_TARGETS = [
    ("patch", "/api/incidents/999999", {"severity": "low"}),
    ("post", "/api/incidents/999999/status", {"status": "identified"}),
    ("post", "/api/incidents/999999/notes", {"body": "hi"}),
    ("post", "/api/incidents/999999/action-items", {"title": "x"}),
    ("patch", "/api/incidents/{incident}/action-items/999999", {"done": True}),
    ("patch", "/api/incidents/999999/action-items/{item}", {"done": True}),
    ("patch", "/api/users/999999", {"role": "admin"}),
]


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_TARGETS)
def test_an_unknown_target_is_404(
    client: APIClient, world: dict[str, Any], method: str, path: str, body: dict[str, Any]
) -> None:
    before = snapshot()
    assert_refused(send(client, method, path, world, body), 404)
    assert snapshot() == before


def test_an_action_item_of_another_incident_is_404(
    client: APIClient, world: dict[str, Any], users: dict[str, User]
) -> None:
    other = commands.incident_create(actor=users["admin"], title="Other", severity="low").incident
    before = snapshot()
    path = f"/api/incidents/{other.pk}/action-items/{world['item']}"
    assert assert_refused(client.patch(path, {"done": True}, format="json"), 404)["code"] == "not_found"
    assert snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("patch", INCIDENT, {"commander": 999999}, "commander"),
        ("patch", INCIDENT, {"assignees": [999999]}, "assignees"),
        ("post", ITEMS, {"title": "x", "owner": 999999}, "owner"),
        ("patch", ITEM, {"owner": 999999}, "owner"),
    ],
)
def test_an_unknown_user_is_refused_on_its_field(
    client: APIClient, world: dict[str, Any], method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = snapshot()
    errors = assert_refused(send(client, method, path, world, body))
    assert "does not exist" in str(errors[field])
    assert snapshot() == before


def test_a_deactivated_user_cannot_be_made_commander(
    client: APIClient, world: dict[str, Any], make_user: Callable[..., User]
) -> None:
    gone = make_user("responder", "gone", is_active=False)
    before = snapshot()
    assert assert_refused(send(client, "patch", INCIDENT, world, {"commander": gone.pk}))["commander"]
    assert snapshot() == before


# --- Rules of change --------------------------------------------------------------------


def test_moving_to_the_current_status_is_an_invalid_transition(client: APIClient, world: dict[str, Any]) -> None:
    before = snapshot()
    body = assert_refused(send(client, "post", STATUS, world, {"status": "investigating"}), 409)
    assert body["code"] == "invalid_transition"
    assert "already investigating" in body["detail"]
    assert snapshot() == before


def test_a_resolved_incident_only_reopens(client: APIClient, world: dict[str, Any], users: dict[str, User]) -> None:
    commands.incident_change_status(
        actor=users["admin"], incident_id=world["incident"], status="resolved", resolution="Fixed."
    )
    before = snapshot()
    body = assert_refused(send(client, "post", STATUS, world, {"status": "monitoring"}), 409)
    assert body["code"] == "invalid_transition"
    assert "allowed: investigating" in body["detail"]
    assert snapshot() == before


def test_an_unknown_status_is_refused(client: APIClient, world: dict[str, Any]) -> None:
    before = snapshot()
    assert assert_refused(send(client, "post", STATUS, world, {"status": "closed"}))["status"]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("path", "body"),
    [(INCIDENT, {"severity": "low", "version": 0}), (STATUS, {"status": "identified", "version": 0})],
    ids=["patch", "status"],
)
def test_a_stale_version_is_409_with_the_current_version(
    client: APIClient, world: dict[str, Any], path: str, body: dict[str, Any]
) -> None:
    method = "patch" if path == INCIDENT else "post"
    before = snapshot()
    response = send(client, method, path, world, body)
    assert assert_refused(response, 409) == {
        "detail": "The incident is at version 2, not 0.",
        "code": "conflict",
        "version": 2,
    }
    assert snapshot() == before


# --- Every error names a code -------------------------------------------------------


def test_a_taken_username_is_a_409_conflict_and_changes_nothing(client: APIClient, world: dict[str, Any]) -> None:
    before = snapshot()
    body = {"username": "ADA", "password": "a-long-unusual-phrase-42"}
    assert assert_refused(send(APIClient(), "post", "/api/auth/register", world, body), 409) == {
        "detail": "That username is taken.",
        "code": "username_taken",
        "username": ["That username is taken."],
    }
    assert snapshot() == before


@pytest.mark.parametrize(
    ("who", "method", "path", "status", "code"),
    [
        (None, "get", "/api/incidents", 401, "unauthenticated"),
        ("viewer", "post", STATUS, 403, "forbidden"),
        ("viewer", "get", "/api/users", 403, "forbidden"),
        ("admin", "get", "/api/incidents/987654", 404, "not_found"),
        ("admin", "get", "/api/users/987654", 404, "not_found"),
        ("admin", "get", "/api/incidents/%01%C2%A9l-%0A/events", 404, "not_found"),  # found by schemathesis
        ("admin", "put", INCIDENT, 405, "method_not_allowed"),
        ("admin", "post", STATUS, 400, "invalid"),
    ],
    ids=["401", "403-incident", "403-users", "404-incident", "404-user", "404-newline-path", "405", "400"],
)
def test_every_error_body_carries_a_code(
    api: Callable[[User | None], APIClient],
    users: dict[str, User],
    world: dict[str, Any],
    who: str | None,
    method: str,
    path: str,
    status: int,
    code: str,
) -> None:
    client = api(users[who] if who else None)
    body = assert_refused(send(client, method, path, world, {}), status)
    assert body["code"] == code
    assert body.get("detail") or len(body) > 1


@pytest.mark.parametrize("tail", ["", "/metrics", "/events", "/postmortem", "/replay?seq=1", "/action-items"])
def test_an_id_past_64_bits_is_a_404(client: APIClient, tail: str) -> None:
    """Such an id names nothing (and SQLite cannot compare with it): never a 500."""
    response = client.get(f"/api/incidents/{10**22}{tail}")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.parametrize("query", ["actor", "after", "before"])
def test_an_events_filter_past_64_bits_is_a_400(client: APIClient, world: dict[str, Any], query: str) -> None:
    response = client.get(f"/api/incidents/{world['incident']}/events", {query: 2**63 + 1})
    assert (response.status_code, response.json()["code"]) == (400, "invalid") and query in response.json()

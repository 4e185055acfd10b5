"""Who may call what: every endpoint of the contract's REST table for every kind of caller.

A refused call must also change nothing: the incident's version, its
timeline, the counts of incidents and action items, users' roles and the
token blacklist are compared before and after.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from incidents import commands
from incidents.models import ActionItem, AuditEvent, Incident

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

CALLERS = ["anonymous", "viewer", "responder", "admin"]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {incident}, {item}, {user} placeholders
    expected: tuple[int, int, int, int]  # status for anonymous, viewer, responder, admin
    body: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ANYONE_POST = (201, 201, 201, 201)
SIGNED_IN = (401, 200, 200, 200)
ADMIN_ONLY = (401, 403, 403, 200)

ENDPOINTS = [
    Endpoint(
        "post",
        "/api/auth/register",
        ANYONE_POST,
        lambda ctx: {"username": f"new-{ctx['caller']}", "password": "a-long-unusual-phrase-42"},
    ),
    Endpoint("post", "/api/auth/login", (200, 200, 200, 200), lambda ctx: {"username": "rae", "password": PASSWORD}),
    Endpoint("post", "/api/auth/refresh", (200, 200, 200, 200), lambda ctx: {"refresh": ctx["refresh"]}),
    Endpoint("post", "/api/auth/logout", (401, 205, 205, 205), lambda ctx: {"refresh": ctx["refresh"]}),
    Endpoint("get", "/api/me", SIGNED_IN),
    Endpoint("get", "/api/users", ADMIN_ONLY),
    Endpoint("get", "/api/users/{user}", ADMIN_ONLY),
    Endpoint("patch", "/api/users/{user}", ADMIN_ONLY, lambda ctx: {"role": "responder"}),
    Endpoint("get", "/api/incidents", SIGNED_IN),
    Endpoint("post", "/api/incidents", (401, 403, 201, 201), lambda ctx: {"title": "DNS down", "severity": "high"}),
    Endpoint("get", "/api/incidents/{incident}", SIGNED_IN),
    Endpoint("patch", "/api/incidents/{incident}", (401, 403, 200, 200), lambda ctx: {"severity": "critical"}),
    Endpoint("post", "/api/incidents/{incident}/status", (401, 403, 200, 200), lambda ctx: {"status": "identified"}),
    Endpoint("post", "/api/incidents/{incident}/notes", (401, 403, 201, 201), lambda ctx: {"body": "Paged DBA."}),
    Endpoint("get", "/api/incidents/{incident}/action-items", SIGNED_IN),
    Endpoint(
        "post", "/api/incidents/{incident}/action-items", (401, 403, 201, 201), lambda ctx: {"title": "Add alert"}
    ),
    Endpoint(
        "patch", "/api/incidents/{incident}/action-items/{item}", (401, 403, 200, 200), lambda ctx: {"done": True}
    ),
    Endpoint("get", "/api/incidents/{incident}/events?after=0", SIGNED_IN),
    Endpoint("get", "/api/schema/", (200, 200, 200, 200)),
    Endpoint("get", "/api/schema/docs/", (200, 200, 200, 200)),
]


def snapshot() -> dict[str, Any]:
    """Everything a refused call could have touched."""
    return {
        "incidents": list(Incident.objects.order_by("pk").values_list("pk", "version", "status", "severity")),
        "events": AuditEvent.objects.count(),
        "action_items": list(ActionItem.objects.order_by("pk").values_list("pk", "title", "done")),
        "users": list(User.objects.order_by("pk").values_list("username", "role", "is_staff")),
        "blacklisted": BlacklistedToken.objects.count(),
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@pytest.mark.parametrize("caller", CALLERS)
def test_endpoint_answers_each_caller_as_the_contract_says(
    api: Callable[[User | None], APIClient], users: dict[str, User], endpoint: Endpoint, caller: str
) -> None:
    incident = commands.incident_create(actor=users["responder"], title="Disk full", severity="high").incident
    item = commands.action_item_add(actor=users["responder"], incident_id=incident.pk, title="Clean up").item
    assert item is not None
    user = users.get(caller)
    # The refresh token is the caller's own (someone else's is refused: see test_api_auth).
    refresh = str(RefreshToken.for_user(user or users["viewer"]))
    ctx = {"caller": caller, "refresh": refresh}
    path = endpoint.path.format(incident=incident.pk, item=item.pk, user=users["viewer"].pk)
    before = snapshot()

    client = api(user)
    send = getattr(client, endpoint.method)
    response = send(path, endpoint.body(ctx), format="json") if endpoint.body else send(path)

    expected = endpoint.expected[CALLERS.index(caller)]
    assert response.status_code == expected, response.content[:300]
    if expected >= 400:
        assert snapshot() == before
        assert response.json()["detail"]

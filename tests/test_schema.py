"""The OpenAPI schema: served to anyone, valid, warning-free, documented from this server."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_schema_is_served_to_anonymous_clients() -> None:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/incidents",
        "/api/incidents/{id}",
        "/api/incidents/{id}/status",
        "/api/incidents/{id}/events",
    ]:
        assert path in paths


def test_schema_generates_without_warnings(tmp_path: object) -> None:
    # --fail-on-warn turns every drf-spectacular warning (an undocumented field, a guessed type) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path) + "/schema.yaml")


def test_docs_page_uses_local_assets_not_a_cdn() -> None:
    response = APIClient().get("/api/schema/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html

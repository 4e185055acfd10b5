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


def resolve(schema: dict, node: dict) -> dict:
    """Follow a $ref (or a one-item allOf, as spectacular writes nullable refs)."""
    if "allOf" in node and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    if "$ref" in node:
        return resolve(schema, schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
    return node


def served_schema() -> dict:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_incident_list_is_documented_as_a_page() -> None:
    schema = served_schema()
    ok = schema["paths"]["/api/incidents"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    page = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    names = {p["name"] for p in schema["paths"]["/api/incidents"]["get"]["parameters"]}
    assert {"page", "page_size", "status", "severity", "q"} <= names


def test_an_events_actor_is_documented_as_id_and_username() -> None:
    schema = served_schema()
    actor = resolve(schema, schema["components"]["schemas"]["AuditEvent"]["properties"]["actor"])
    assert set(actor["properties"]) == {"id", "username"}
    assert actor["properties"]["id"]["type"] == "integer"


def test_bodies_that_refuse_unknown_fields_say_so_and_mark_required_fields() -> None:
    components = served_schema()["components"]["schemas"]
    for name in ["IncidentCreateInputRequest", "StatusInputRequest", "RoleInputRequest", "RegisterInputRequest"]:
        assert components[name]["additionalProperties"] is False, name
    assert components["RoleInputRequest"]["required"] == ["role"]
    assert set(components["IncidentCreateInputRequest"]["required"]) == {"title", "severity"}


def test_every_operation_documents_its_errors_with_a_code() -> None:
    schema = served_schema()
    components = schema["components"]["schemas"]
    create = schema["paths"]["/api/incidents"]["post"]
    assert {"201", "400", "401", "403", "413", "415"} <= set(create["responses"])
    assert {"401", "404"} <= set(schema["paths"]["/api/incidents/{id}"]["get"]["responses"])
    assert "429" in schema["paths"]["/api/auth/login"]["post"]["responses"]
    assert "Retry-After" in schema["paths"]["/api/auth/login"]["post"]["responses"]["429"]["headers"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    body = components[ref.rsplit("/", 1)[1]]
                    assert "code" in body["required"], (method, path, status)


def test_conflicts_are_documented_with_their_bodies() -> None:
    schema = served_schema()

    def conflict(path: str, method: str) -> tuple[dict, list[str]]:
        response = schema["paths"][path][method]["responses"]["409"]
        body = resolve(schema, response["content"]["application/json"]["schema"])
        return body, resolve(schema, body["properties"]["code"])["enum"]

    body, codes = conflict("/api/incidents/{id}", "patch")
    assert "version" in body["properties"] and codes == ["conflict", "invalid_transition"]
    assert conflict("/api/incidents/{id}/action-items", "post")[1] == ["invalid_transition"]
    assert conflict("/api/incidents/{id}/action-items/{item}", "patch")[1] == ["invalid_transition"]
    assert conflict("/api/incidents/{id}/status", "post")[1] == ["conflict", "invalid_transition"]
    assert conflict("/api/auth/register", "post")[1] == ["username_taken"]


def test_writes_document_the_idempotency_key_header() -> None:
    schema = served_schema()
    for path, method in [("/api/incidents", "post"), ("/api/incidents/{id}/status", "post")]:
        headers = [p for p in schema["paths"][path][method]["parameters"] if p["in"] == "header"]
        assert [h["name"] for h in headers] == ["Idempotency-Key"]
        assert headers[0]["schema"]["maxLength"] == 200


def test_the_docs_page_renders_the_schema_that_is_served() -> None:
    html = APIClient().get("/api/schema/docs/").content.decode()
    assert '"/api/schema/"' in html or "'/api/schema/'" in html or "/api/schema/" in html
    from drf_spectacular.generators import SchemaGenerator

    generated = SchemaGenerator().get_schema(request=None, public=True)
    assert served_schema()["paths"].keys() == generated["paths"].keys()


def test_an_unknown_api_path_is_a_json_404() -> None:
    response = APIClient().post("/api/incidents/not-a-number/status", {})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}

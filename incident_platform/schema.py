"""The OpenAPI schema, exact enough for a generated client and for schemathesis.

drf-spectacular describes the success bodies from the serializers. What it
cannot see, this adds:

- every error an operation can answer, with its body and `code`
  (see `incident_platform.exceptions.exception_handler`), decided from the view's
  permissions, throttles, parameters and body, so a new view is documented
  the same way without a decorator;
- `additionalProperties: false` on the bodies of `StrictSerializer`s, which
  refuse fields they do not know.

Error bodies keep DRF's shapes; a 409 is documented by the view that can
answer it (it knows which conflict), with the bodies below.
"""

import copy
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework_simplejwt.views import TokenViewBase

from accounts.permissions import IsPlatformAdmin


def _error(description: str, codes: list[str], **properties: Any) -> dict[str, Any]:
    required = ["detail", "code", *(name for name, schema in properties.items() if schema.pop("required", False))]
    return {
        "type": "object",
        "description": description,
        "properties": {
            "detail": {"type": "string", "description": "What went wrong, for a person."},
            "code": {"type": "string", "enum": codes, "description": "What went wrong, for a program."},
            **properties,
        },
        "required": required,
    }


MESSAGES = {"type": "array", "items": {"type": "string"}}

# Component name -> schema. Each is one error body of incident_platform.exceptions.exception_handler.
ERROR_COMPONENTS: dict[str, dict[str, Any]] = {
    "ValidationError": {
        "type": "object",
        "description": "The request is malformed. Each other key is a field of the request with its messages "
        "(a list of strings, or an object for a nested field); `detail` is set when the problem is not one field's.",
        "properties": {
            "code": {"type": "string", "enum": ["invalid"]},
            "detail": {"type": "string"},
            "non_field_errors": MESSAGES,
        },
        "required": ["code"],
    },
    "AuthenticationError": _error(
        "No credentials, or bad or expired ones.",
        ["unauthenticated", "token_not_valid"],
        messages={"type": "array", "items": {"type": "object"}, "description": "simplejwt's details of a bad token."},
    ),
    "PermissionError": _error("The role may not do this (or a session write without its CSRF token).", ["forbidden"]),
    "NotFoundError": _error("No such object (or page).", ["not_found"]),
    "VersionConflictError": _error(
        "A stale `version` (`conflict`, with the current `version`), or a change to a resolved incident "
        "(`invalid_transition`: reopen it first). Nothing changed.",
        ["conflict", "invalid_transition"],
        version={"type": "integer", "description": "The incident's current version (with `conflict`)."},
    ),
    "ResolvedConflictError": _error(
        "The incident is resolved: its action items change only after it is reopened. Nothing changed.",
        ["invalid_transition"],
    ),
    "StatusConflictError": _error(
        "A stale `version` (`conflict`, with the current `version`), or a move the current status does not allow "
        "(`invalid_transition`, including to the status it already has). Nothing changed.",
        ["conflict", "invalid_transition"],
        version={"type": "integer", "description": "The incident's current version (with `conflict`)."},
    ),
    "ConflictError": _error("The change conflicts with the current state; nothing changed.", ["conflict"]),
    "UsernameTakenError": _error(
        "Someone has this username (ignoring case).", ["username_taken"], username={**MESSAGES, "required": True}
    ),
    "RegistrationClosedError": _error(
        "Self-registration is off (REGISTRATION_OPEN); an admin makes accounts.", ["registration_closed"]
    ),
    "TooLargeError": _error("The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.", ["too_large"]),
    "UnsupportedMediaTypeError": _error(
        "The body is in a media type the API does not read.", ["unsupported_media_type"]
    ),
    "ThrottledError": _error("Too many requests from this address; see Retry-After.", ["rate_limited"]),
    "UnavailableError": _error(
        "The database or Redis cannot be reached just now; retry after `retry_after` seconds (a write with the same "
        "Idempotency-Key).",
        ["unavailable"],
        retry_after={"type": "integer", "required": True},
    ),
}


def error_ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(description: str, component: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": error_ref(component)}},
    }
    if headers:
        response["headers"] = headers
    return response


class ApiSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the errors each operation can answer."""

    def get_operation(self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any) -> Any:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        for name, schema in ERROR_COMPONENTS.items():
            registry.register_on_missing(
                # A copy: spectacular's enum post-processing rewrites the schemas it is given.
                ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=name, schema=copy.deepcopy(schema))
            )
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                # Django's <int:…> matches digits only: a negative id is not a URL of this API.
                parameter["schema"]["minimum"] = 0
        responses = operation.setdefault("responses", {})
        for status, response in self.error_responses(operation).items():
            responses.setdefault(str(status), response)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def error_responses(self, operation: dict[str, Any]) -> dict[int, dict[str, Any]]:
        view = self.view
        permissions = view.get_permissions()
        public = all(isinstance(permission, AllowAny) for permission in permissions)
        signs_in = isinstance(view, TokenViewBase)  # login and refresh answer 401 to bad credentials
        unsafe = self.method not in SAFE_METHODS
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        errors: dict[int, dict[str, Any]] = {}
        if has_body or any(parameter["in"] == "query" for parameter in parameters):
            errors[400] = _response("The request is malformed; nothing changed.", "ValidationError")
        if not public or signs_in:
            errors[401] = _response("Not signed in, or bad credentials.", "AuthenticationError")
        if not public and (unsafe or any(isinstance(p, IsPlatformAdmin) for p in permissions)):
            errors[403] = _response("Not allowed for this role; nothing changed.", "PermissionError")
        if any(parameter["in"] == "path" for parameter in parameters) or any(
            parameter["name"] == "page" for parameter in parameters
        ):
            errors[404] = _response("No such object, or no such page.", "NotFoundError")
        if has_body:
            errors[413] = _response("The body is too large; nothing changed.", "TooLargeError")
            errors[415] = _response("The body is not JSON.", "UnsupportedMediaTypeError")
        retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
        if view.get_throttles():
            errors[429] = _response("Throttled.", "ThrottledError", headers=retry_after)
        # Every operation reads the database (a token's user, a session, the data itself).
        errors[503] = _response(
            "A backing service is unreachable; nothing half-written.", "UnavailableError", headers=retry_after
        )
        return errors


class StrictSerializerExtension(OpenApiSerializerExtension):
    """Bodies that refuse unknown fields say so: `additionalProperties: false`."""

    target_class = "incident_platform.strict.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> Any:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        return schema

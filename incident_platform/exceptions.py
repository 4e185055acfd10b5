"""The project-wide DRF exception handler (settings REST_FRAMEWORK["EXCEPTION_HANDLER"]).

Every API error body is JSON with a `code`: the commands' typed errors
(incidents.errors) keep theirs, an oversized body is `too_large`, and DRF's
own errors get the code of their status. The schema describes these bodies
(incident_platform.schema).
"""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from incidents.errors import CommandError

# The `code` of an error that did not name one, by status: the WebSocket's codes where it has them.
ERROR_CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's shapes, plus the commands' typed errors and oversized bodies; every error body has a `code`."""
    if isinstance(exc, CommandError):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code, **exc.fields, **exc.extra}
        return Response(body, status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "The request body is too large.", "code": "too_large"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    response = drf_exception_handler(exc, context)
    if response is not None:
        if not isinstance(response.data, dict):
            response.data = {"non_field_errors": response.data}
        # A library's own code (simplejwt's `token_not_valid`) is kept; DRF's generic ones are not.
        response.data.setdefault("code", ERROR_CODES.get(response.status_code, "error"))
    return response

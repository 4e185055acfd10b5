from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request


class IsPlatformAdmin(BasePermission):
    message = "Only an admin may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_platform_admin)


class CanChangeIncidentsOrReadOnly(BasePermission):
    """Everyone signed in reads; only responders and admins write.

    Checked before the body is parsed, so a viewer's malformed request is a 403,
    not a 400 that would tell them how to shape a request they may not make.
    The commands check the role again: this is the early answer, not the only one.
    """

    message = "Only responders and admins may change incidents."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or request.user.can_change_incidents

"""Sign-in and registration pages share the API's `auth` throttle.

One budget per client address whichever door is knocked on (the JSON login,
the sign-in page, the admin's login, the browsable API's login,
registration), so a password guesser gains nothing by switching between them.

The address is the connection's own unless NUM_PROXIES says proxies stand in
front: DRF's throttles otherwise take the whole `X-Forwarded-For` header as
the address when NUM_PROXIES is unset, so a fresh made-up header bought a
fresh budget with every attempt.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import render
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class AuthRateThrottle(ScopedRateThrottle):
    """The `auth` scope, counted per client address; X-Forwarded-For only from configured proxies."""

    def get_ident(self, request: Request) -> str:
        if not api_settings.NUM_PROXIES:
            # No proxy is configured: the header is whatever the client wrote.
            return str(request.META.get("REMOTE_ADDR") or "")
        return str(super().get_ident(request))


class _AuthScope:
    throttle_scope = "auth"


def auth_attempt_allowed(request: HttpRequest) -> bool:
    return AuthRateThrottle().allow_request(Request(request), _AuthScope())  # type: ignore[arg-type]


def throttle_auth_posts(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Refuse a POST with 429 once the address has spent its sign-in budget; GETs are free."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST" and not auth_attempt_allowed(request):
            return render(request, "accounts/throttled.html", status=429)
        return view(request, *args, **kwargs)

    return wrapper

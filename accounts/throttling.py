"""Sign-in and registration pages share the API's `auth` throttle.

One budget per client address whichever door is knocked on (the JSON login,
the sign-in page, the admin's login, registration), so a password guesser
gains nothing by switching between them.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import render
from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle


class _AuthScope:
    throttle_scope = "auth"


def auth_attempt_allowed(request: HttpRequest) -> bool:
    return ScopedRateThrottle().allow_request(Request(request), _AuthScope())  # type: ignore[arg-type]


def throttle_auth_posts(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Refuse a POST with 429 once the address has spent its sign-in budget; GETs are free."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST" and not auth_attempt_allowed(request):
            return render(request, "accounts/throttled.html", status=429)
        return view(request, *args, **kwargs)

    return wrapper

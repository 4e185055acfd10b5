"""The auth throttle's state, for tests that call the throttled endpoints (register, login, refresh).

The throttle counts per client address, and every test client is 127.0.0.1,
so without a reset the suite's own logins would spend one shared budget and
a later test would get a 429 it did not ask for. Only this key is deleted:
clearing the whole cache would FLUSHDB a Redis that other processes share.
"""

from django.core.cache import cache
from rest_framework.throttling import ScopedRateThrottle

AUTH_THROTTLE_KEY = ScopedRateThrottle.cache_format % {"scope": "auth", "ident": "127.0.0.1"}


def reset_auth_throttle() -> None:
    cache.delete(AUTH_THROTTLE_KEY)

"""The audit chain's outside anchor: an HMAC of each event's hash under AUDIT_KEY.

The hash chain alone proves a timeline consistent, not authentic: anyone who
can write the table can rewrite a timeline and recompute every hash. The key
lives in the environment, never in the database, so such a rewrite cannot
produce MACs that `verify_audit` accepts. (It does not catch a cut-off tail
by itself: the MACs of the events that remain are still good. That is what
`verify_audit --checkpoint` is for.)
"""

import hashlib
import hmac

from django.conf import settings


def is_set() -> bool:
    return bool(settings.AUDIT_KEY)


def mac(event_hash: str) -> str:
    """HMAC-SHA256 of the event's hash under AUDIT_KEY, or "" when no key is set."""
    if not settings.AUDIT_KEY:
        return ""
    return hmac.new(settings.AUDIT_KEY.encode(), event_hash.encode(), hashlib.sha256).hexdigest()


def mac_matches(event_hash: str, event_mac: str) -> bool:
    return hmac.compare_digest(mac(event_hash), event_mac)

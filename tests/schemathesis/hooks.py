"""Schemathesis hooks for tests/test_api_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

An `Idempotency-Key` is valid by the schema whatever its value, but reusing
one for a different body is refused (400) by design: that is state, which a
schema cannot say. Generated keys repeat ("0", "00", ...), so each request that
carries a schema-valid key gets a fresh one; a key the schema refuses (longer
than 200 characters) is sent as generated, so the server's refusal is tested.
"""

import uuid
from typing import Any

import schemathesis

KEY_HEADER = "Idempotency-Key"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers or {}
    key = headers.get(KEY_HEADER)
    if isinstance(key, str) and len(key) <= 200:
        headers[KEY_HEADER] = str(uuid.uuid4())

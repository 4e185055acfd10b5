"""JSON from clients, parsed with a bound on nesting: one rule for the REST API and the socket.

Python's parser recurses once per level, so a body of `[[[[…` a few hundred
thousand deep raises RecursionError (a 500 with a traceback), and a few
hundred levels that do parse still cost every later walker (serializers,
`json.dumps`, msgpack) a recursion each. No message of this platform nests
deeper than a handful of levels, so anything past MAX_JSON_DEPTH is refused
as malformed before any other code sees it.
"""

import json
from typing import Any

# An incident command nests at most 3 levels ({"assignees": [1, 2]}); 32 leaves room.
MAX_JSON_DEPTH = 32


class TooDeep(ValueError):
    """The document nests deeper than MAX_JSON_DEPTH (a ValueError, as any malformed JSON)."""


def depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed value nests lists and objects deeper than `limit`; iterative, so never a RecursionError."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """json.loads that raises ValueError (TooDeep) for nesting too deep to parse or deeper than allowed."""
    try:
        value = json.loads(text, **kwargs)
    except RecursionError as exc:
        raise TooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from exc
    if depth_exceeds(value):
        raise TooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
    return value

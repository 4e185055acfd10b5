"""Text that people read: what counts as showing nothing at all.

A title made only of control, format (zero-width, bidi) or blank characters
passes a `strip()` check, because Python's `strip()` does not strip most of
them, and then shows as an empty row in every list. One rule, used by the
incident commands (every door's text goes through them) and by usernames.
"""

import unicodedata

# Letters that render as nothing: Hangul fillers, the blank braille pattern, and friends.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u034f")
# Control, format (zero-width, joiners, bidi marks), separators, unassigned and private use, combining marks.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})


def is_invisible(char: str) -> bool:
    return char.isspace() or char in BLANK_LETTERS or unicodedata.category(char) in INVISIBLE_CATEGORIES


def shows_nothing(text: str) -> bool:
    """True when `text` is non-empty yet has no character a reader would see."""
    return bool(text) and all(is_invisible(char) for char in text)

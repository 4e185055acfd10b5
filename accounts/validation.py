"""What a username may be, in one place: the API, the sign-up page and the Django admin all ask here.

- NFKC-normalised first, so a full-width `admin` (U+FF41 ...) *is* `admin` and is taken;
- letters, digits and @ . + - _ only (Django's own rule);
- no mixture of scripts that includes look-alikes: `admin` spelt with a
  Cyrillic `a` (U+0430) beside `admin` is refused (confusable-homoglyphs'
  `is_dangerous`), while a name wholly in one script (Cyrillic, or `muller`
  with an umlaut) is fine;
- taken whatever its case.
"""

import re
import unicodedata

from confusable_homoglyphs import confusables
from django.core.exceptions import ValidationError

from incident_platform.text import shows_nothing

from .models import User

USERNAME_PATTERN = re.compile(r"^[\w.@+-]+\Z")


def username_normalize(value: str) -> str:
    return unicodedata.normalize("NFKC", value)


def username_check(value: str, *, exclude_pk: int | None = None, check_taken: bool = True) -> str:
    """The normalised username, or ValidationError saying what is wrong with it.

    The API leaves `check_taken` to `accounts.services.user_register`, which
    answers a taken name as a conflict (409), after normalising here.
    """
    username = username_normalize(value)
    if not USERNAME_PATTERN.match(username) or shows_nothing(username):
        raise ValidationError("Letters, digits and @ . + - _ only.", code="invalid")
    if confusables.is_dangerous(username):
        raise ValidationError(
            "Mixes letters of different scripts that look alike (e.g. a Cyrillic 'a' among Latin letters).",
            code="confusable",
        )
    if not check_taken:
        return username
    taken = User.objects.filter(username__iexact=username)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError("That username is taken.", code="taken")
    return username

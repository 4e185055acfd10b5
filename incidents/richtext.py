"""Incident text as HTML: URLs become safe links and @username a mention of a user who exists.

Everything else is escaped. The page renders every event on the server
(the live client fetches rendered partials), so these are the only rules:
a link is http or https only (never javascript:, data: …), opens in a new
tab with rel="noopener noreferrer nofollow", and its text and href are
escaped; a mention names an active user, or stays plain text.
"""

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

# A URL runs to whitespace or a character that cannot end one unescaped; a mention is an @ not
# inside a word or an e-mail address, followed by a username's characters (Django's: letters,
# digits and @ . + - _).
TOKEN = re.compile(r"(?P<url>\bhttps?://[^\s<>\"'`]+)|(?<![\w@.+-])@(?P<name>[\w.@+-]{1,150})", re.IGNORECASE)
# Punctuation that ends a sentence rather than the URL or name before it.
TRAILING = ".,;:!?)]}'\"*"
MENTION_LIMIT = 50  # mentions looked up per text: a wall of @s costs one bounded query


def _candidates(name: str) -> list[str]:
    """`name`, then shorter by each trailing punctuation mark ("@bob." is bob unless "bob." exists)."""
    names = [name]
    while name and name[-1] in TRAILING:
        name = name[:-1]
        if name:
            names.append(name)
    return names


def mentioned_names(texts: Iterable[str]) -> set[str]:
    names: set[str] = set()
    for text in texts:
        for match in TOKEN.finditer(text):
            if match.group("name"):
                names.update(_candidates(match.group("name")))
            if len(names) >= MENTION_LIMIT * 4:
                return names
    return names


def users_named(names: Iterable[str]) -> dict[str, Any]:
    """The active users among `names`, by username (one query)."""
    wanted = list(names)[: MENTION_LIMIT * 4]
    if not wanted:
        return {}
    User = get_user_model()
    return {user.username: user for user in User.objects.filter(username__in=wanted, is_active=True)}


def mentioned_users(text: str) -> list[Any]:
    """The users a text mentions, in order of first mention, each once."""
    users = users_named(mentioned_names([text]))
    found: dict[int, Any] = {}
    for match in TOKEN.finditer(text):
        name = match.group("name")
        if name:
            user = next((users[n] for n in _candidates(name) if n in users), None)
            if user is not None:
                found.setdefault(user.pk, user)
    return list(found.values())


def _link(url: str) -> tuple[str, str]:
    """The link for a URL found in text, and what follows it (trailing punctuation); ("", url) if not a link."""
    rest = ""
    while url and url[-1] in TRAILING:
        # A closing parenthesis that closes one inside the URL belongs to it (Wikipedia's links).
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url, rest = url[:-1], url[-1] + rest
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", url + rest
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "", url + rest
    html = format_html('<a href="{}" rel="noopener noreferrer nofollow" target="_blank">{}</a>', url, url)
    return html, rest


def _mention(name: str, users: dict[str, Any]) -> tuple[str, str]:
    for candidate in _candidates(name):
        user = users.get(candidate)
        if user is not None:
            html = format_html(
                '<span class="mention" data-user="{}" title="{} ({})">@{}</span>',
                user.pk,
                user.username,
                user.role,
                candidate,
            )
            return html, name[len(candidate) :]
    return "", "@" + name


def render(text: str, users: dict[str, Any] | None = None, *, line_breaks: bool = False) -> SafeString:
    """`text` as safe HTML with links and mentions; `users` (by username) from `users_named`, else looked up."""
    if users is None:
        users = users_named(mentioned_names([text]))
    out: list[str] = []
    position = 0
    for match in TOKEN.finditer(text):
        out.append(escape(text[position : match.start()]))
        position = match.end()
        if match.group("url"):
            html, rest = _link(match.group("url"))
        else:
            html, rest = _mention(match.group("name"), users)
        out.append(html)
        out.append(escape(rest))
    out.append(escape(text[position:]))
    html = "".join(out)
    if line_breaks:
        html = html.replace("\r\n", "\n").replace("\n", "<br>")
    return mark_safe(html)  # noqa: S308 (every piece above is escaped or built by format_html)

"""Retries without double effects.

A command carrying a key runs once per (user, key) within the replay window;
a retry gets the first outcome back and changes nothing. The key row is
written in the same transaction as the command, so a command that fails
leaves no key behind (a retry runs it again), and two concurrent requests with
one key are serialised by the unique constraint: the loser waits for the
winner's commit, hits the constraint and replays the winner's outcome.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from .errors import Invalid
from .models import IdempotencyKey


@dataclass(frozen=True)
class Outcome:
    status: int
    body: Any
    replayed: bool = False


def fingerprint(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(text.encode()).hexdigest()


def command_content(*, transport: str, command: str, target: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    """What a keyed command was asked to do, as plain values (users as their ids), for its fingerprint.

    The transport is part of it because REST and WebSocket answer the same
    command with differently shaped outcomes; a key is replayed on its own door.
    """

    def plain(value: Any) -> Any:
        return [plain(v) for v in value] if isinstance(value, list) else getattr(value, "pk", value)

    return {
        "transport": transport,
        "command": command,
        "target": target,
        "data": {k: plain(v) for k, v in data.items()},
    }


def check_key(key: Any) -> str | None:
    if key is None or key == "":
        return None
    if not isinstance(key, str) or len(key) > IdempotencyKey.KEY_MAX_LENGTH or not key.isprintable():
        raise Invalid(
            f"An idempotency key is a printable string of at most {IdempotencyKey.KEY_MAX_LENGTH} characters.",
            fields={"key": ["Invalid idempotency key."]},
        )
    return key


def run_once(*, actor: Any, key: str | None, content: Any, execute: Callable[[], Outcome]) -> Outcome:
    """Run `execute` unless this user already ran a command with this key; replay its outcome if so.

    `content` is what the command was asked to do; the same key with other
    content is refused rather than silently answered with an unrelated outcome.
    """
    key = check_key(key)
    if key is None:
        return execute()
    print_ = fingerprint(content)
    cutoff = timezone.now() - settings.IDEMPOTENCY_TTL
    existing = IdempotencyKey.objects.filter(user=actor, key=key).first()
    if existing is not None and existing.created_at >= cutoff:
        return _replay(existing, print_)
    try:
        with transaction.atomic():
            if existing is not None:  # expired: the key may be used afresh
                IdempotencyKey.objects.filter(pk=existing.pk).delete()
            record = IdempotencyKey.objects.create(user=actor, key=key, fingerprint=print_)
            outcome = execute()
            record.status_code = outcome.status
            record.response = json.loads(json.dumps(outcome.body, cls=DjangoJSONEncoder))
            record.save(update_fields=["status_code", "response"])
    except IntegrityError:
        # Another request with this key committed first; anything else is a real error.
        winner = IdempotencyKey.objects.filter(user=actor, key=key).first()
        if winner is None:
            raise
        return _replay(winner, print_)
    return outcome


def _replay(record: IdempotencyKey, print_: str) -> Outcome:
    if record.fingerprint != print_:
        raise Invalid(
            "This idempotency key was already used for a different command.",
            fields={"key": ["Already used for a different command."]},
        )
    return Outcome(status=record.status_code, body=record.response, replayed=True)


def expired_keys_batch(*, cutoff: datetime, size: int) -> "QuerySet[IdempotencyKey, int]":
    """The ids of up to `size` keys created before `cutoff`, oldest first: a range scan of `idempotency_created_idx`."""
    return (
        IdempotencyKey.objects.filter(created_at__lt=cutoff).order_by("created_at").values_list("pk", flat=True)[:size]
    )


def idempotency_keys_purge(*, older_than: timedelta, batch_size: int) -> tuple[int, int]:
    """Delete the keys created more than `older_than` ago, `batch_size` rows per transaction.

    Short transactions, so a purge of a large backlog never holds many row
    locks at once. The cutoff is fixed at the start: keys that age meanwhile
    wait for the next run. Returns (keys deleted, batches).
    """
    cutoff = timezone.now() - older_than
    deleted = batches = 0
    while True:
        with transaction.atomic():
            ids = list(expired_keys_batch(cutoff=cutoff, size=batch_size))
            if not ids:
                return deleted, batches
            deleted += IdempotencyKey.objects.filter(pk__in=ids).delete()[0]
            batches += 1

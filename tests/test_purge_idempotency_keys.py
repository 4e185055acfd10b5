"""`manage.py purge_idempotency_keys`: keys past the replay window go, in batches, on the created_at index."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from accounts.models import User
from incidents.idempotency import expired_keys_batch
from incidents.models import IdempotencyKey

pytestmark = pytest.mark.django_db


def keys(user: User, **ages_in_hours: float) -> None:
    """One key per name, created that many hours ago."""
    now = timezone.now()
    for name, hours in ages_in_hours.items():
        created_at = now - timedelta(hours=hours)
        IdempotencyKey.objects.create(user=user, key=name, fingerprint="f" * 64, created_at=created_at)


def remaining() -> list[str]:
    return sorted(IdempotencyKey.objects.values_list("key", flat=True))


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_idempotency_keys", *args, stdout=out)
    return out.getvalue()


def test_keys_past_the_replay_window_are_deleted_and_counted(responder: User) -> None:
    keys(responder, fresh=1, edge=23.9, old=25, older=24 * 30)
    assert purge() == "Deleted 2 idempotency keys older than 24 hours; batches: 1.\n"
    assert remaining() == ["edge", "fresh"]


def test_keys_are_deleted_in_batches_of_the_given_size(responder: User) -> None:
    keys(responder, **{f"k{n}": 30 + n for n in range(5)}, fresh=2)
    assert purge("--batch-size", "2") == "Deleted 5 idempotency keys older than 24 hours; batches: 3.\n"
    assert remaining() == ["fresh"]


def test_older_than_keeps_younger_keys_for_longer(responder: User) -> None:
    keys(responder, day_and_a_bit=30, three_days=72)
    assert purge("--older-than", "48") == "Deleted 1 idempotency keys older than 48 hours; batches: 1.\n"
    assert remaining() == ["day_and_a_bit"]


def test_nothing_to_delete_says_so(responder: User) -> None:
    keys(responder, fresh=1)
    assert purge() == "Deleted 0 idempotency keys older than 24 hours; batches: 0.\n"
    assert remaining() == ["fresh"]


def test_a_cutoff_inside_the_replay_window_is_refused_and_deletes_nothing(responder: User) -> None:
    keys(responder, fresh=1, hours_old=5, old=30)
    with pytest.raises(CommandError, match="at least the replay window"):
        purge("--older-than", "2")
    assert remaining() == ["fresh", "hours_old", "old"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--older-than", "0"),
        ("--older-than", "-30"),
        ("--older-than", "a day"),
        ("--older-than", "nan"),
        ("--older-than", "inf"),
        ("--older-than", "1e300"),
        ("--batch-size", "0"),
        ("--batch-size", "1.5"),
        ("--batch-size", "many"),
    ],
)
def test_bad_values_are_refused_and_delete_nothing(responder: User, option: str, value: str) -> None:
    keys(responder, old=30)
    with pytest.raises(CommandError, match=option):
        purge(option, value)
    assert remaining() == ["old"]


@pytest.mark.postgres
def test_a_batch_is_read_from_the_created_at_index(responder: User) -> None:
    keys(responder, **{f"k{n}": 30 + n for n in range(3)})
    sql, params = expired_keys_batch(cutoff=timezone.now() - timedelta(hours=24), size=1000).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show what it can use
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Cond: (created_at <" in plan and "idempotency_created_idx" in plan, plan

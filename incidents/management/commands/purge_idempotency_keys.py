import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.idempotency import idempotency_keys_purge

MAX_HOURS = 1_000_000  # about 114 years: anything longer keeps every key anyway


def hours(value: str) -> timedelta:
    number = float(value)
    if not math.isfinite(number) or not 0 < number <= MAX_HOURS:
        raise ValueError(value)
    return timedelta(hours=number)


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Delete idempotency keys older than the replay window (IDEMPOTENCY_TTL, 24 hours), in batches. "
        "Run it from cron or a scheduler; a key is replayed only within the window, so older rows are dead weight."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=hours,
            metavar="HOURS",
            help="delete keys created more than HOURS ago (default: the replay window, "
            f"{settings.IDEMPOTENCY_TTL.total_seconds() / 3600:g}); never less than the window",
        )
        parser.add_argument(
            "--batch-size", type=positive_int, default=1000, help="rows deleted per transaction (default 1000)"
        )

    def handle(self, *args: Any, older_than: timedelta | None = None, batch_size: int = 1000, **options: Any) -> None:
        window = settings.IDEMPOTENCY_TTL
        age = older_than or window
        if age < window:
            # Younger keys are still replayed to retries: deleting one would let a retry run its command twice.
            raise CommandError(
                f"--older-than must be at least the replay window ({window.total_seconds() / 3600:g} hours)."
            )
        deleted, batches = idempotency_keys_purge(older_than=age, batch_size=batch_size)
        hours = age.total_seconds() / 3600
        self.stdout.write(f"Deleted {deleted} idempotency keys older than {hours:g} hours; batches: {batches}.")

"""`manage.py purge_webhook_deliveries`: drop the log of settled webhook deliveries past an age."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.webhooks.delivery import deliveries_purge


class Command(BaseCommand):
    help = (
        "Delete delivered and failed webhook deliveries (and their attempts) older than --days (default 30), "
        "in batches. Pending deliveries are never deleted. Run it from cron or a scheduler."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=30, help="age in days of the deliveries to delete (>= 1)")
        parser.add_argument("--batch-size", type=int, default=1000, help="deliveries per transaction (default 1000)")

    def handle(self, *args: Any, days: int, batch_size: int, **options: Any) -> None:
        if not 1 <= days <= 100_000:
            raise CommandError("--days must be a whole number of days from 1 to 100000.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        deleted, batches = deliveries_purge(older_than=timedelta(days=days), batch_size=batch_size)
        self.stdout.write(f"Deleted {deleted} settled webhook deliveries older than {days} days; batches: {batches}.")

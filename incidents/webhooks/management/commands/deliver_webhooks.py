"""`manage.py deliver_webhooks`: the worker that sends the webhook outbox.

Runs until SIGTERM or SIGINT, polling every `--interval` seconds when there
is nothing due; `--once` sends whatever is due now and exits. Several may run
at once on PostgreSQL (see `incidents.webhooks.delivery`).
"""

import logging
import signal
import threading
from collections import Counter
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, close_old_connections, connection

from incidents.webhooks.delivery import deliver_due

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Send the webhook deliveries that are due, retrying failures with backoff."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Send what is due now, then exit.")
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.WEBHOOK_POLL_SECONDS,
            help="Seconds to wait when nothing is due (default: WEBHOOK_POLL_SECONDS).",
        )
        parser.add_argument("--batch", type=int, default=10, help="Deliveries claimed at a time (default 10).")

    def handle(self, *args: Any, once: bool, interval: float, batch: int, **options: Any) -> None:
        if not 0 < interval <= 3600:
            raise CommandError("--interval must be more than 0 and at most 3600 seconds.")
        if not 1 <= batch <= 1000:
            raise CommandError("--batch must be from 1 to 1000.")
        stop = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda *_: stop.set())
        total: Counter[str] = Counter()
        try:
            while not stop.is_set():
                if not connection.in_atomic_block:  # (a test's transaction keeps its connection)
                    close_old_connections()  # a long-running worker drops a broken or expired connection
                try:
                    settled = deliver_due(limit=batch, should_stop=stop.is_set)
                except DatabaseError:
                    if once:
                        raise
                    # The database is away (a restart, a failover): say so, wait, and try again.
                    logger.exception("webhook worker: database error; retrying in %s s", interval)
                    stop.wait(interval)
                    continue
                total.update(settled)
                if once and not settled:
                    break
                if not settled:
                    stop.wait(interval)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.stdout.write(f"delivered {total['delivered']}, to retry {total['pending']}, failed {total['failed']}")

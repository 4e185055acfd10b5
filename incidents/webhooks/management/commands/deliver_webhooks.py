"""`manage.py deliver_webhooks`: the worker that sends the webhook outbox.

Runs until SIGTERM or SIGINT, polling every `--interval` seconds when there
is nothing due; `--once` sends whatever is due now and exits. Several may run
at once on PostgreSQL (see `incidents.webhooks.delivery`).
"""

import signal
import threading
from collections import Counter
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connection

from incidents.webhooks.delivery import deliver_due


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
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        total: Counter[str] = Counter()
        while not stop.is_set():
            if not connection.in_atomic_block:  # (a test's transaction keeps its connection)
                close_old_connections()  # a long-running worker drops a broken or expired connection
            settled = deliver_due(limit=batch, should_stop=stop.is_set)
            total.update(settled)
            if once and not settled:
                break
            if not settled:
                stop.wait(interval)
        self.stdout.write(f"delivered {total['delivered']}, to retry {total['pending']}, failed {total['failed']}")

"""The worker's side: claim due deliveries, POST them, log each attempt, schedule retries.

Several workers may run at once on PostgreSQL: a claim is a short
transaction that takes due rows with SELECT ... FOR UPDATE SKIP LOCKED and
pushes their `next_attempt_at` past a lease before committing, so no other
worker sees them while this one sends (the network is never touched inside a
transaction). A worker that dies mid-send leaves its rows to be taken again
when the lease ends: delivery is at least once, and receivers deduplicate by
`X-Webhook-Id`. On SQLite, run one worker.
"""

import http.client
import logging
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .payloads import SIGNATURE_HEADER, encode, signature

logger = logging.getLogger(__name__)

USER_AGENT = "incident-platform-webhooks/1"
EXCERPT_BYTES = 500


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str
    duration_ms: int
    excerpt: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not an instruction: it is logged as a failed attempt, never followed."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def backoff_seconds(attempt: int, *, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: between half and all of base·2^(attempt-1), capped.

    The jitter keeps the retries of many deliveries that failed together
    (a receiver down) from arriving together when it comes back.
    """
    delay = min(settings.WEBHOOK_BACKOFF_MAX_SECONDS, settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def lease(limit: int) -> timedelta:
    """Long enough to send a whole claimed batch, each with its timeout, with room to spare."""
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * limit + 60)


def claim(*, limit: int, now: datetime) -> list[WebhookDelivery]:
    """Take up to `limit` due deliveries of active endpoints for this worker alone."""
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now, endpoint__is_active=True)
            .order_by("next_attempt_at", "pk")[:limit]
        )
        if due:
            WebhookDelivery.objects.filter(pk__in=[d.pk for d in due]).update(next_attempt_at=now + lease(limit))
    return due


def send(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> Outcome:
    """POST the signed body once; whatever happens becomes an Outcome, never an exception."""
    body = encode(delivery.payload)
    request = urllib.request.Request(  # noqa: S310 (the URL's scheme is validated: http or https)
        endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Webhook-Id": str(delivery.pk),
            "X-Webhook-Event": delivery.event_type,
            SIGNATURE_HEADER: signature(endpoint.secret, int(time.time()), body),
        },
    )
    started = time.monotonic()

    def took() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        with _opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            return Outcome(response.status, "", took(), _excerpt(response))
    except urllib.error.HTTPError as error:
        with error:
            return Outcome(error.code, f"HTTP {error.code}", took(), _excerpt(error))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return Outcome(None, _storable(f"{type(error).__name__}: {reason}"), took())


def _excerpt(response: Any) -> str:
    """The start of the answer, as text the database can store; "" if it cannot be read in time."""
    try:
        return _storable(response.read(EXCERPT_BYTES).decode(errors="replace"))
    except (OSError, http.client.HTTPException, ValueError):
        return ""


def _storable(text: str) -> str:
    """At most 500 characters, without NUL (PostgreSQL text cannot hold it; a receiver may send it)."""
    return text.replace("\x00", "\ufffd")[:500]


def record(delivery: WebhookDelivery, outcome: Outcome, *, now: datetime) -> WebhookDelivery | None:
    """Log the attempt and settle the delivery: delivered, failed for good, or due again after a backoff.

    None if the delivery is gone meanwhile (its endpoint was deleted while it was being sent).
    """
    with transaction.atomic():
        # Read afresh under the lock: the attempt number is the row's, whoever else touched it.
        row = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if row is None:
            return None
        row.attempts += 1
        WebhookAttempt.objects.create(
            delivery=row,
            number=row.attempts,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            response_excerpt=outcome.excerpt[:500],
        )
        if outcome.ok:
            row.status = WebhookDelivery.Status.DELIVERED
            row.delivered_at = timezone.now()
            row.last_error = ""
        else:
            row.last_error = outcome.error
            if row.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
                row.status = WebhookDelivery.Status.FAILED
            else:
                row.status = WebhookDelivery.Status.PENDING
                row.next_attempt_at = now + timedelta(seconds=backoff_seconds(row.attempts))
        row.save(update_fields=["attempts", "status", "delivered_at", "last_error", "next_attempt_at"])
    return row


def deliver_due(
    *, limit: int = 10, now: datetime | None = None, should_stop: Callable[[], bool] = lambda: False
) -> Counter[str]:
    """One round: claim a batch, send each, record each. Returns how many ended in each status.

    `now` is the worker's clock for what is due and when to retry (tests move it forward).
    When `should_stop()` turns true the rest of the batch is handed back, due at once, unsent.
    """
    now = now or timezone.now()
    settled: Counter[str] = Counter()
    claimed = claim(limit=limit, now=now)
    for index, delivery in enumerate(claimed):
        if should_stop():
            rest = [d.pk for d in claimed[index:]]
            WebhookDelivery.objects.filter(pk__in=rest).update(next_attempt_at=timezone.now())
            break
        outcome = send(delivery.endpoint, delivery)
        row = record(delivery, outcome, now=now)
        if row is None:
            continue
        settled[row.status] += 1
        logger.info(
            "webhook delivery %s to %s attempt %s: %s in %s ms%s",
            row.pk,
            delivery.endpoint.name,
            row.attempts,
            outcome.status_code or "no answer",
            outcome.duration_ms,
            f" ({outcome.error})" if outcome.error else "",
        )
    return settled


def retry_now(deliveries: QuerySet[WebhookDelivery]) -> int:
    """The admin's "retry now": failed or waiting deliveries are due at once (one more attempt for a failed one).

    Delivered ones are left alone. Returns how many were made due.
    """
    return deliveries.exclude(status=WebhookDelivery.Status.DELIVERED).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=timezone.now()
    )


def deliveries_purge(*, older_than: timedelta, batch_size: int = 1000) -> tuple[int, int]:
    """Delete settled (delivered or failed) deliveries created before `older_than` ago, with their attempts.

    Pending ones are kept whatever their age. Oldest first, in batches of
    primary keys (each its own transaction), so the outbox's writers are never
    held up behind one long delete. Returns (deliveries deleted, batches).
    """
    cutoff = timezone.now() - older_than
    settled = WebhookDelivery.objects.filter(
        status__in=[WebhookDelivery.Status.DELIVERED, WebhookDelivery.Status.FAILED], created_at__lt=cutoff
    )
    deleted = batches = 0
    while pks := list(settled.order_by("pk").values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            WebhookAttempt.objects.filter(delivery__in=pks).delete()
            count, _ = WebhookDelivery.objects.filter(pk__in=pks).delete()
        deleted += count
        batches += 1
    return deleted, batches

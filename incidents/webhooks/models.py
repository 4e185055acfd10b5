"""Webhook endpoints, the outbox of deliveries, and the log of every attempt.

An endpoint is registered by an admin. A delivery is one event for one
endpoint: written by the command that recorded the event, in its transaction
(`incidents.webhooks.outbox`), and sent by `manage.py deliver_webhooks`
(`incidents.webhooks.delivery`), which logs each try as an attempt.
"""

import secrets

from django.core.validators import URLValidator
from django.db import models
from django.utils import timezone


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    class Format(models.TextChoices):
        JSON = "json", "JSON (signed event)"
        SLACK = "slack", "Slack-style (text and blocks)"

    name = models.CharField(max_length=100)
    # http and https only; loopback and private addresses are allowed (a receiver may live beside us).
    url = models.URLField(max_length=500, validators=[URLValidator(schemes=["http", "https"])])
    secret = models.CharField(
        max_length=200,
        default=new_secret,
        help_text="Signs every delivery (HMAC-SHA256); give the receiver the same value.",
    )
    # Event types (AuditEvent.Type values) this endpoint receives; empty means every type.
    event_types = models.JSONField(default=list, blank=True)
    payload_format = models.CharField(max_length=8, choices=Format.choices, default=Format.JSON)
    is_active = models.BooleanField(
        default=True, help_text="Inactive endpoints get no new deliveries, and their pending ones wait."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.name

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class WebhookDelivery(models.Model):
    """One event for one endpoint: an outbox row until it is delivered or has failed for good."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey("incidents.AuditEvent", on_delete=models.PROTECT, related_name="+")
    event_type = models.CharField(max_length=32)
    # The body as it will be sent, built from the event in the command's transaction.
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When a worker may next try it; a claimed delivery is pushed past its lease, so one worker has it.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-pk"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The worker's claim: pending deliveries due now, oldest due first.
            models.Index(fields=["status", "next_attempt_at"], name="webhookdelivery_due_idx"),
            # The endpoint list's pending and failed counts (and "this endpoint's deliveries" filtered by status).
            models.Index(fields=["endpoint", "status"], name="webhookdelivery_endpoint_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} (#{self.pk})"


class WebhookAttempt(models.Model):
    """One try at sending a delivery: written once by the worker, never changed."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    duration_ms = models.PositiveIntegerField()
    # The start of the receiver's answer, for diagnosis.
    response_excerpt = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]
        verbose_name = "webhook attempt"
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhookattempt_delivery_number_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.delivery_id} attempt {self.number}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

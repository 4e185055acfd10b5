"""The incident the browser tests and the screenshots stage: the same title and summary in every picture."""

from accounts.models import User
from incidents import commands
from incidents.models import Incident


def checkout_latency_spike(actor: User) -> Incident:
    return commands.incident_create(
        actor=actor,
        title="Checkout latency spike",
        severity="high",
        summary="p99 above 2 s since deploy 8812; payments API timing out for ~5% of checkouts.",
    ).incident
